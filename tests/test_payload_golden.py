"""Golden payloads: the exact iptables-restore text for each shape of tunnel.

Regenerate after an intended change with WGKILL_UPDATE_GOLDEN=1 and review the diff.
"""

import json

import goldenfiles
import pytest
from payload_cases import CASES, FEATURES, facts, render_body

from wgkill.errors import ConfigError
from wgkill.firewall.iptables import FilterSnapshot, IptablesFamily, chain_specs, parse_save
from wgkill.policy import build_policy, decide_split, dns_qname_hex
from wgkill.recordclass import asdict
from wgkill.records import policy_from_json
from wgkill.templating import render
from wgkill.tunnel import TunnelFacts
from wgkill.wgconf import Endpoint, parse_config

_check = goldenfiles.checker("payloads")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bodies(case: str) -> None:
    policy = build_policy("wg0", CASES[case], None)
    for fp in policy.families:
        _check(f"{case}.ipv{fp.family}.rules", render_body(fp))


def test_fresh_apply_inserts_one_jump_first() -> None:
    (fp,) = build_policy("wg0", CASES["full-tunnel"], None, families=(4,)).families
    _check("apply-fresh.ipv4", IptablesFamily.apply_payload(chain_specs(fp), FilterSnapshot()))


def test_reapply_in_place_only_replaces_the_body() -> None:
    (fp,) = build_policy("wg0", CASES["full-tunnel"], None, families=(4,)).families
    snap = parse_save(
        "*filter\n:OUTPUT ACCEPT [0:0]\n:wgkill-wg0 - [0:0]\n"
        '-A OUTPUT -m comment --comment "wgkill:wg0" -j wgkill-wg0\n'
        "-A OUTPUT -j ufw-before-output\nCOMMIT\n"
    )
    payload = IptablesFamily.apply_payload(chain_specs(fp), snap)
    assert "OUTPUT" not in payload
    _check("apply-in-place.ipv4", payload)


def test_reapply_moves_a_displaced_jump_back_to_the_top() -> None:
    (fp,) = build_policy("wg0", CASES["full-tunnel"], None, families=(4,)).families
    snap = parse_save(
        "*filter\n:OUTPUT ACCEPT [0:0]\n:wgkill-wg0 - [0:0]\n-A OUTPUT -j ACCEPT\n"
        '-A OUTPUT -m comment --comment "wgkill:wg0" -j wgkill-wg0\n'
        '-A OUTPUT -m comment --comment "wgkill:wg0" -j wgkill-wg0\nCOMMIT\n'
    )
    _check("apply-displaced.ipv4", IptablesFamily.apply_payload(chain_specs(fp), snap))


def test_remove_payload() -> None:
    text = render("restore-remove.j2", chains=[{
        "chain": "wgkill-wg0", "hook": "OUTPUT", "present": True,
        "delete_jumps": ['-m comment --comment "wgkill:wg0" -j wgkill-wg0'],
    }])
    _check("remove.ipv4", text)


def test_hostile_looking_but_valid_interface_is_quoted() -> None:
    facts = TunnelFacts("-j", None, None, ())
    (fp,) = build_policy("-j", facts, None, families=(4,)).families
    assert '-A wgkill--j -o "-j" -j RETURN' in render_body(fp)


def test_config_only_policy_uses_literal_endpoints_and_fwmark() -> None:
    config = parse_config(
        "[Interface]\nFwMark = 51820\n[Peer]\nPublicKey = key0\nEndpoint = vpn.example.com:51820\n"
        "[Peer]\nPublicKey = key1\nEndpoint = 198.51.100.2:51820\nAllowedIPs = 192.0.2.0/24\n"
    )
    policy = build_policy("wg0", None, config)
    assert policy.fwmark == 51820
    assert [(e.address, e.port) for e in policy.endpoints] == [("198.51.100.2", 51820)]
    assert policy.allowed_ips == ("192.0.2.0/24",)


def test_hostname_endpoint_is_named_in_the_record() -> None:
    config = parse_config("[Peer]\nPublicKey = key0\nEndpoint = vpn.example.com:51820\n")
    policy = build_policy("wg0", facts(None, Endpoint("198.51.100.2", 51820)), config)
    assert policy.endpoints[0].name == "vpn.example.com"


def test_hostname_endpoint_allows_only_its_own_lookup() -> None:
    config = parse_config(
        "[Peer]\nPublicKey = key0\nEndpoint = VPN.Example.com.:51820\n"
        "[Peer]\nPublicKey = key1\nEndpoint = vpn.example.com:51821\n"
    )
    live = facts(51820, Endpoint("198.51.100.2", 51820), Endpoint("198.51.100.2", 51821))
    policy = build_policy("wg0", live, config)
    for fp in policy.families:
        _check(f"hostname-endpoint.ipv{fp.family}.rules", render_body(fp))
    assert dns_qname_hex("vpn.example.com") == "0376706e076578616d706c6503636f6d00"
    assert dns_qname_hex("bücher.example") == dns_qname_hex("xn--bcher-kva.example")


@pytest.mark.parametrize("name", ["a..b", "x" * 64 + ".com"])
def test_invalid_endpoint_names(name: str) -> None:
    with pytest.raises(ConfigError):
        dns_qname_hex(name)


@pytest.mark.parametrize("case", sorted(FEATURES))
def test_feature_bodies(case: str) -> None:
    policy = build_policy("wg0", CASES["full-tunnel"], None, **FEATURES[case])  # type: ignore[arg-type]
    for fp in policy.families:
        _check(f"{case}.ipv{fp.family}.rules", render_body(fp))


def test_split_tunnel_body_rejects_only_the_set() -> None:
    from wgkill.prefixes import parse_allowed_ips

    split = decide_split(parse_allowed_ips("203.0.113.0/24, 2001:db8:80::/64"))
    assert split is not None and split.v4 == ("203.0.113.0/24",)
    policy = build_policy("wg0", CASES["fwmark-off"], None, split=split, gateway=True)
    for fp in policy.families:
        _check(f"split.ipv{fp.family}.rules", render_body(fp))
    assert decide_split(parse_allowed_ips("0.0.0.0/0")) is None  # any default route: full
    assert decide_split(parse_allowed_ips("203.0.113.0/24"), block_all=True) is None


def test_recorded_policy_round_trips_and_tampering_is_refused() -> None:
    from wgkill.errors import StateError

    policy = build_policy("wg0", CASES["multiple-peers"], None, **FEATURES["beside"])  # type: ignore[arg-type]
    for fp in policy.families:
        assert fp.peer_interfaces == ("wg1", "wg2")  # itself never, sorted, once
        assert fp.allow_interfaces == ("docker0", "br-+")
        assert policy_from_json(json.loads(json.dumps(asdict(fp)))) == fp
    data = asdict(policy.families[0])
    for key, value in (("peer_interfaces", ["wg1; reboot"]), ("allow_interfaces", ["+"]),
                       ("peer_endpoints", [{"address": "1.2.3.4; accept", "port": 1, "fwmark": None}]),
                       ("peer_endpoints", [{"address": "192.0.2.1", "port": "1 accept", "fwmark": None}]),
                       ("allow_marks", ["0x1/0x0"]), ("chain", "OUTPUT"), ("endpoints", [{"x": 1}])):
        with pytest.raises(StateError):
            policy_from_json({**data, key: value})


@pytest.mark.parametrize(("given", "canonical"), [
    ("0x80000/0xff0000", "0x80000/0xff0000"), ("524288/16711680", "0x80000/0xff0000"),
    ("0x1", "0x1/0xffffffff"), ("010/0X0F", "0x8/0xf"), ("0/0xff", "0x0/0xff")])  # strtoul base 0: octal
def test_allow_mark_is_written_as_iptables_prints_it(given: str, canonical: str) -> None:
    from wgkill.records import parse_mark

    assert parse_mark(given) == canonical


@pytest.mark.parametrize("bad", ["0x80000/0x10000", "x/0xff", "0x1/0", "0x100000000/0xffff", "-1/0xf", "",
                                 "0b1/0xff", "0o7/0xff", "1_000", "08", "0x", " 1", "+1", "\u0661"])
def test_allow_mark_refuses_what_cannot_match(bad: str) -> None:
    """Python's own number forms (0b, 0o, underscores, other digits) are not what iptables reads."""
    from wgkill.errors import UsageError
    from wgkill.records import parse_mark

    with pytest.raises(UsageError):
        parse_mark(bad)


def test_fwmark_overlaps_name_the_well_known_users_that_are_present() -> None:
    from wgkill.policy import mark_overlaps

    # wg-quick's default 51820 has 0x4000 and 0x8000 set: named only where Kubernetes' links exist
    assert mark_overlaps(51820, ["lo", "eth0"]) == []
    assert mark_overlaps(51820, ["lo", "eth0", "cni0"]) == ["Kubernetes (0xc000)"]
    both = ["Tailscale (0xff0000)", "Calico (0xffff0000)"]
    assert mark_overlaps(0x80000, ["tailscale0", "cali1a2b"]) == both
    assert mark_overlaps(0x80000, ["tailscale0"]) == ["Tailscale (0xff0000)"]
    assert mark_overlaps(0x1, ["cni0", "tailscale0"]) == [] and mark_overlaps(None, ["cni0"]) == []
