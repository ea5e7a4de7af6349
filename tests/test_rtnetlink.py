"""wgkill's rtnetlink reader (status, the guard, --routes), fed answers captured from a lab namespace.

tests/samples/rtnetlink-lab.json holds the kernel's replies to the very requests the reader sends;
the facts expected here are what pyroute2 read from the same namespace, so the reader is a drop-in
for the import it replaces (issue 21). The live reading is covered by the status lab tests.
"""

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill import rtnetlink
from wgkill.status import netlink
from wgkill.status.facts import LinkFacts

SAMPLE = Path(__file__).parent / "samples" / "rtnetlink-lab.json"
TARGETS = {4: "203.0.113.1", 6: "2001:db8::1"}
TUNNEL = "wk7e9ac0"


class Replay(rtnetlink.Rtnetlink):
    """Answers each request with the captured datagrams for exactly that request."""

    def __init__(self) -> None:
        self.answers = json.loads(SAMPLE.read_text())["answers"]

    def request(self, kind: int, body: bytes, flags: int = rtnetlink.NLM_F_DUMP) -> list[bytes]:
        datagrams = [bytes.fromhex(d) for d in self.answers[f"{kind}:{body.hex()}"]]
        return rtnetlink.answer(datagrams, dump=bool(flags & rtnetlink.NLM_F_DUMP))


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    (tmp_path / f"{TUNNEL}.sock").touch()  # wireguard-go's socket: the tun link is a WireGuard one
    monkeypatch.setattr(netlink, "WG_SOCKETS", tmp_path)
    yield Replay()


def test_links_and_addresses_as_pyroute2_read_them(replay: Replay) -> None:
    links = netlink._link_facts(replay)
    assert links == {
        "lo": LinkFacts("lo", 1, None, True, "UNKNOWN", ["127.0.0.1/8", "::1/128"]),
        "uplink0": LinkFacts("uplink0", 2, "veth", True, "UP",
                             ["192.0.2.2/28", "2001:db8:c::2/64", "fe80::453:78ff:fe47:6656/64"]),
        TUNNEL: LinkFacts(TUNNEL, 3, "tun", True, "UNKNOWN",
                          ["192.0.2.130/32", "2001:db8:7::2/128", "fe80::cf78:a8f6:f2f5:5ba0/64"], True),
    }


def test_uplink_is_the_main_default_route_and_plain_packets_go_into_the_tunnel(replay: Replay) -> None:
    uplinks, routes = netlink._route_facts(replay, netlink._link_facts(replay), TARGETS)
    assert uplinks == {"ipv4": "uplink0", "ipv6": "uplink0"}
    assert routes == {"ipv4": TUNNEL, "ipv6": TUNNEL}


def test_policy_rules_are_wg_quicks_without_the_defaults(replay: Replay) -> None:
    assert netlink._policy_rules(replay) == [
        "ipv4 32764: lookup 254 suppress_prefixlength 0", "ipv4 32765: not fwmark 0xca6c lookup 51820",
        "ipv6 32764: lookup 254 suppress_prefixlength 0", "ipv6 32765: not fwmark 0xca6c lookup 51820"]


def test_default_rules_read_raw_have_no_suppression_and_priority_0_is_absent(replay: Replay) -> None:
    rules = replay.rules(socket.AF_INET)
    local = rules[0]  # "0: from all lookup local"
    assert (local.priority, local.table, local.fwmark, local.suppress_prefixlen) == \
        (None, 255, None, netlink.NO_SUPPRESS)
    assert [r.table for r in rules] == [255, 254, 51820, 254, 253]


def _error(code: int) -> bytes:
    return rtnetlink.HEADER.pack(36, rtnetlink.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -code) + bytes(16)


def test_an_error_answer_raises_and_a_route_lookup_reads_it_as_no_route() -> None:
    with pytest.raises(rtnetlink.KernelError) as raised:
        rtnetlink.answer([_error(101)], dump=False)
    assert raised.value.errno == 101  # ENETUNREACH

    class Unreachable(rtnetlink.Rtnetlink):
        def __init__(self) -> None:
            pass

        def request(self, kind: int, body: bytes, flags: int = rtnetlink.NLM_F_DUMP) -> list[bytes]:
            return rtnetlink.answer([_error(101)], dump=False)

    assert Unreachable().route_to("203.0.113.1") is None


def test_a_message_cut_short_is_an_unreadable_answer_not_a_kernel_refusal() -> None:
    """A refusal (KernelError) reads as "no IPv6 here"; a truncated reply must not: status says UNKNOWN."""
    replay = Replay()
    datagram = bytes.fromhex(replay.answers[f"{rtnetlink.RTM_GETLINK}:{bytes(16).hex()}"][0])
    with pytest.raises(OSError) as raised:
        rtnetlink.answer([datagram[:100]], dump=True)
    assert not isinstance(raised.value, rtnetlink.KernelError)


def test_a_dump_spans_datagrams_until_done() -> None:
    replay = Replay()
    datagrams = [bytes.fromhex(d) for d in replay.answers[f"{rtnetlink.RTM_GETLINK}:{bytes(16).hex()}"]]
    assert len(datagrams) > 1 and len(rtnetlink.answer(datagrams, dump=True)) == 3
    assert rtnetlink.answer(datagrams[:1], dump=True) == rtnetlink.answer(datagrams, dump=True)[:2]
