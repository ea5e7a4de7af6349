import pytest

from wgkill.errors import UsageError
from wgkill.names import (
    chain_interface,
    chain_name,
    forward_chain_name,
    jump_comment,
    jump_spec,
    owns_set,
    route_chain_names,
    route_jump_comment,
    set_name,
    validate_interface,
)


@pytest.mark.parametrize("name", ["wg0", "a", "wg-home_1", "x=y+z.1", "A" * 15, "-j"])
def test_accepts_what_wg_quick_accepts(name: str) -> None:
    assert validate_interface(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "", "wg0;touch /tmp/x", "-j ACCEPT", "A" * 16, "wg0 ", "wg/0", "wg0\n", "wgö", ".", "..",
        "$(id)", "a`b`",
    ],
)
def test_refuses_everything_else(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_interface(name)
    message = str(caught.value)
    assert "\n" not in message and "invalid interface name" in message


def test_derived_names_fit_iptables_limits() -> None:
    longest = "A" * 15
    assert chain_name(longest) == "wgkill-" + longest
    assert len(chain_name(longest)) <= 28
    assert len(forward_chain_name(longest)) <= 28
    assert all(len(chain) <= 28 for chain in route_chain_names(longest).values())
    assert jump_comment("wg0") == "wgkill:wg0"
    assert route_jump_comment("wg0") == "wgkill:wg0:routes"


def test_jump_spec_is_what_iptables_save_prints() -> None:
    spec = jump_spec(chain_name("wg0"), jump_comment("wg0"))
    assert spec == '-m comment --comment "wgkill:wg0" -j wgkill-wg0'


def test_chains_and_sets_lead_back_to_their_interface() -> None:
    assert chain_interface(chain_name("wg0")) == "wg0"
    assert chain_interface(forward_chain_name("wg0")) == "wg0"
    assert chain_interface("DOCKER") is None
    assert owns_set("wg0", set_name("wg0", 6)) and not owns_set("wg0", set_name("wg01", 4))


@pytest.mark.parametrize(("pattern", "nft"), [("docker0", "docker0"), ("br-+", "br-*"), ("veth+", "veth*"),
                                              ("virbr0", "virbr0"), ("tailscale0", "tailscale0")])
def test_allow_iface_patterns_in_both_notations(pattern: str, nft: str) -> None:
    from wgkill.names import nft_interface_pattern, validate_interface_pattern

    assert validate_interface_pattern(pattern) == pattern
    assert nft_interface_pattern(pattern) == nft


@pytest.mark.parametrize("bad", ["+", "", "a+b+", "br0 ", "x" * 16, "eth0;", "..", "a*", "br\n0"])
def test_allow_iface_patterns_refused(bad: str) -> None:
    from wgkill.names import validate_interface_pattern

    with pytest.raises(UsageError):
        validate_interface_pattern(bad)


def test_allow_iface_patterns_match_as_iptables_does() -> None:
    from wgkill.names import pattern_matches

    assert pattern_matches("br-+", "br-1a2b") and pattern_matches("veth+", "veth")
    assert pattern_matches("eth0", "eth0")
    assert not pattern_matches("br-+", "br0") and not pattern_matches("eth0", "eth01")
