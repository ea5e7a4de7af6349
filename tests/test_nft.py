"""The nft backend's payloads (golden files), its exact name match and its one text reader.

Regenerate after an intended change with WGKILL_UPDATE_GOLDEN=1 and review the diff.
That each payload loads into a kernel is proven in the lab (tests/lab/test_nft_lab.py).
"""


import goldenfiles
import pytest
from payload_cases import CASES, FEATURES, facts

from wgkill.firewall import nft, nft_render
from wgkill.names import nft_table_name
from wgkill.policy import build_policy, decide_split, dns_qname_hex
from wgkill.prefixes import parse_allowed_ips
from wgkill.wgconf import Endpoint, parse_config

_check = goldenfiles.checker("nft")


def _payload(policy, split=None) -> str:  # type: ignore[no-untyped-def]
    return nft.NftBackend.render(policy, split).payload


@pytest.mark.parametrize("case", sorted(CASES))
def test_tables(case: str) -> None:
    _check(f"{case}.nft", _payload(build_policy("wg0", CASES[case], None)))


@pytest.mark.parametrize("case", sorted(FEATURES))
def test_feature_tables(case: str) -> None:
    policy = build_policy("wg0", CASES["full-tunnel"], None, **FEATURES[case])  # type: ignore[arg-type]
    _check(f"{case}.nft", _payload(policy))


def test_split_table_holds_the_set_and_rejects_only_it() -> None:
    split = decide_split(parse_allowed_ips("203.0.113.0/24, 198.51.100.0/25, 2001:db8:80::/64"))
    policy = build_policy("wg0", CASES["fwmark-off"], None, split=split, gateway=True)
    text = _payload(policy, split)
    _check("split.nft", text)
    assert "ip daddr @dst4 reject with icmp port-unreachable" in text


def test_hostname_endpoint_table() -> None:
    config = parse_config("[Interface]\nPrivateKey = k\n[Peer]\nPublicKey = key0\n"
                          "Endpoint = vpn.lab.test:51820\n")
    policy = build_policy("wg0", facts(51820, Endpoint("198.51.100.2", 51820)), config)
    _check("hostname-endpoint.nft", _payload(policy))


def test_one_transaction_creates_deletes_and_defines_the_table() -> None:
    lines = _payload(build_policy("wg0", CASES["full-tunnel"], None)).splitlines()
    assert lines[:3] == ["add table inet wgkill-wg0", "delete table inet wgkill-wg0",
                         "table inet wgkill-wg0 {"]


def _wire(name: str) -> bytes:
    return bytes.fromhex(dns_qname_hex(name))


def _matches(expr: str, question: bytes) -> bool:
    """Evaluate our raw payload comparisons against a UDP datagram carrying ``question``."""
    packet = bytes(8) + bytes(12) + question  # UDP header, DNS header, the question
    for part in expr.split(" @th,")[0:]:
        part = part.removeprefix("@th,")
        where, _, rest = part.partition(" ")
        offset, length = (int(x) for x in where.split(","))
        mask = None
        if rest.startswith("& "):
            mask_text, _, rest = rest[2:].partition(" ")
            mask = int(mask_text, 16)
        value = int(rest.removeprefix("== "), 16)
        chunk = packet[offset // 8:(offset + length) // 8]
        if len(chunk) * 8 != length:
            return False
        got = int.from_bytes(chunk, "big")
        if (got & mask if mask is not None else got) != value:
            return False
    return True


def test_endpoint_lookup_matches_the_exact_name_in_any_case_only() -> None:
    expr = nft_render.wire_match(_wire("vpn.lab.test"))
    assert _matches(expr, _wire("vpn.lab.test") + b"\x00\x01\x00\x01")
    assert _matches(expr, _wire("VPN.Lab.TEST") + b"\x00\x01\x00\x01")
    for other in ("x.vpn.lab.test", "xvpn.lab.test", "vpn.lab.test.evil", "vpn.lab.tes", "vpn.lab.testx"):
        assert not _matches(expr, _wire(other) + b"\x00\x01\x00\x01"), other


def test_long_names_are_chained_in_128_bit_chunks() -> None:
    name = "a-very-long-endpoint-name.example-provider.test"
    expr = nft_render.wire_match(_wire(name))
    assert expr.count("@th,") == -(-len(_wire(name)) // 16)
    assert _matches(expr, _wire(name.upper()))
    assert not _matches(expr, _wire(name.replace("provider", "provideR2")))


def test_private_domain_matches_itself_and_every_subdomain() -> None:
    exprs = nft_render.suffix_matches(_wire("company.internal"))
    for name in ("company.internal", "host.company.internal", "a.b.Company.Internal"):
        assert any(_matches(e, _wire(name)) for e in exprs), name
    assert not any(_matches(e, _wire(n)) for e in exprs for n in ("company.internal.example", "example.com"))


def test_parse_listing_reads_what_nft_lists() -> None:
    text = _payload(build_policy("wg0", CASES["full-tunnel"], None, gateway=True))
    tables = nft.parse_listing(text)
    chains = tables["wgkill-wg0"]
    assert set(chains) == {"output", "ipv4", "ipv6", "forward", "forward_ipv4", "forward_ipv6"}
    assert chains["output"] == ["meta nfproto ipv4 jump ipv4", "meta nfproto ipv6 jump ipv6"]
    assert chains["ipv4"][-1] == "reject with icmp port-unreachable"


def test_table_names_are_one_to_one_and_valid_for_nft() -> None:
    names = ["wg0", "wg_0", "a=b", "x+y", "9lives", "a.b-c", "__=+", "a_eb", "x_py", "wg__0", "_e", "="]
    tables = [nft_table_name(name) for name in names]
    assert all(c.isalnum() or c in "-_." for table in tables for c in table)
    assert len(set(tables)) == len(names)


def test_parse_listing_skips_a_sets_elements_and_reads_the_chains_after_it() -> None:
    elements = ",\n\t\t\t     ".join(f"10.{i >> 8}.{i & 255}.0/24" for i in range(1000))
    text = (f"table inet wgkill-wg0 {{\n\tset dst4 {{\n\t\ttype ipv4_addr\n\t\tflags interval\n"
            f"\t\telements = {{ {elements} }}\n\t}}\n\n\tchain output {{\n"
            "\t\ttype filter hook output priority filter; policy accept;\n"
            "\t\tip daddr @dst4 jump ipv4\n\t}\n\n\tchain ipv4 {\n\t\toifname \"wg0\" accept\n"
            "\t\treject with icmp port-unreachable\n\t}\n}\n"
            "table inet other {\n\tchain x {\n\t\taccept\n\t}\n}\n")
    assert nft.parse_listing(text) == {
        "wgkill-wg0": {"output": ["ip daddr @dst4 jump ipv4"],
                       "ipv4": ['oifname "wg0" accept', "reject with icmp port-unreachable"]},
        "other": {"x": ["accept"]},
    }
