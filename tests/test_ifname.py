import pytest

from wgkill.errors import UsageError
from wgkill.ifname import chain_name, jump_comment, validate_interface


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
    assert jump_comment("wg0") == "wgkill:wg0"
