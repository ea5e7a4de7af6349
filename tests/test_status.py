"""wgkill-status without a machine: verdicts from synthetic facts, the JSON schema, the metrics.

The facts are built by hand the way ``gather`` would read them, so every rule
of the verdict is checked here; tests/lab/test_status_lab.py reaches each
verdict for real.
"""

import calendar
import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wgkill import status
from wgkill.cli import status as cli
from wgkill.errors import UsageError
from wgkill.firewall.iptables import chain_facts, is_wgkill_jump
from wgkill.recordclass import replace
from wgkill.records import DnsState, EndpointRule
from wgkill.state import FamilyRecord, State
from wgkill.status import (
    ChainFacts,
    HostFacts,
    InterfaceFacts,
    LinkFacts,
    Nameserver,
    ProbeResult,
    RouteGap,
    SetFacts,
    Verdict,
    WgFacts,
    document,
    gathering,
    nameservers,
    probing,
)
from wgkill.status.facts import ExclusionFacts, GuardFacts
from wgkill.tunnel import parse_dump

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "status.schema.json").read_text())
NOW = 1_800_000_000.0
JUMP = '-m comment --comment "wgkill:wg0" -j wgkill-wg0'
SHA = "a" * 64


def _state(**kw: object) -> State:
    families = {
        name: FamilyRecord(table="filter", chains=["wgkill-wg0"],
                           jumps=[{"chain": "OUTPUT", "target": "wgkill-wg0", "spec": JUMP}],
                           rules=8, saved_sha256=SHA)
        for name in (4, 6)
    }
    base = {"interface": "wg0", "applied_at": "2027-01-15T08:00:00Z", "backend": "iptables",
            "fwmark": 51820, "endpoints": (EndpointRule("198.51.100.2", 51820),),
            "allowed_ips": ["0.0.0.0/0", "::/0"], "families": families,
            "dns": DnsState()}
    base.update(kw)
    return State(**base)  # type: ignore[arg-type]


def _chain(family: str = "ipv4", **kw: object) -> ChainFacts:
    base = {"family": family, "chain": "wgkill-wg0", "hook": "OUTPUT", "jump_spec": JUMP, "present": True,
            "rules": 8, "jump_positions": [0], "jump_specs": [JUMP], "saved_sha256": SHA, "live_sha256": SHA}
    base.update(kw)
    return ChainFacts(**base)  # type: ignore[arg-type]


def _link(**kw: object) -> LinkFacts:
    base = {"name": "wg0", "index": 5, "kind": "wireguard", "up": True, "operstate": "UNKNOWN",
            "addresses": ["10.0.0.2/32"], "wireguard": True}
    base.update(kw)
    return LinkFacts(**base)  # type: ignore[arg-type]


def _iface(**kw: object) -> InterfaceFacts:
    base = {"interface": "wg0", "state": _state(), "link": _link(),
            "wg": WgFacts(peers=1, latest_handshake=int(NOW) - 12),
            "chains": [_chain("ipv4"), _chain("ipv6")]}
    base.update(kw)
    return InterfaceFacts(**base)  # type: ignore[arg-type]


def _host(*interfaces: InterfaceFacts, **kw: object) -> HostFacts:
    base = {"uid": 0, "now": NOW, "ipv6": True, "interfaces": list(interfaces),
            "resolvers": [Nameserver("203.0.113.53", "resolv.conf")],
            "uplinks": {"ipv4": "eth0", "ipv6": "eth0"}, "routes": {"ipv4": "wg0", "ipv6": "wg0"},
            "policy_rules": ["ipv4 32765: not fwmark 0xca6c lookup 51820"]}
    base.update(kw)
    return HostFacts(**base)  # type: ignore[arg-type]


def _codes(report: status.Report) -> list[str]:
    return [p.code for p in report.problems]


def _valid(report: status.Report) -> dict:
    doc = status.report_dict(report)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, nothing Python-only in it
    return doc


# ---- verdicts ---------------------------------------------------------------------------------


def test_up_and_protected_is_ok() -> None:
    report = status.judge(_host(_iface()))
    assert report.verdict is Verdict.OK and report.problems == []
    assert report.summary == "wg0 protected (handshake 12s ago)"
    assert status.human(report).splitlines()[0] == "WGKILL OK - wg0 protected (handshake 12s ago)"


def test_link_down_is_warning_with_the_command_that_brings_it_up() -> None:
    report = status.judge(_host(_iface(link=_link(up=False))))
    assert report.verdict is Verdict.WARNING and _codes(report) == ["tunnel-down"]
    assert report.summary == "wg0 down, block holding (safe, offline)"
    assert report.problems[0].fix is not None and report.problems[0].fix.startswith("ip link set wg0 up")


@pytest.mark.parametrize(("lockdown", "release"), [(False, "wgkill-down wg0"), (True, "wgkill-release wg0")])
def test_interface_gone_is_warning(lockdown: bool, release: str) -> None:
    report = status.judge(_host(_iface(link=None, wg=None, state=_state(lockdown=lockdown))))
    assert report.verdict is Verdict.WARNING and _codes(report) == ["tunnel-gone"]
    fix = report.problems[0].fix or ""
    assert "wg-quick up wg0" in fix and release in fix


@pytest.mark.parametrize(("chain", "code"), [
    ({"present": False, "rules": None, "live_sha256": None, "jump_positions": [], "jump_specs": []},
     "chain-missing"),
    ({"jump_positions": [], "jump_specs": []}, "jump-missing"),
    ({"jump_specs": ['-p tcp -m comment --comment "wgkill:wg0" -j wgkill-wg0']}, "jump-altered"),
    ({"jump_positions": [1], "above": ["-j ACCEPT"]}, "jump-displaced"),
    ({"live_sha256": "b" * 64, "rules": 0}, "drifted"),
    ({"saved_sha256": None, "recorded_rules": 8, "rules": 7}, "drifted"),
])
def test_rules_that_can_leak_are_critical_and_reapplied_with_the_hooks_own_command(
        chain: dict, code: str) -> None:
    facts = _iface(chains=[_chain("ipv4", **chain), _chain("ipv6")], postup="wgkill-up wg0 --allow-lan")
    report = status.judge(_host(facts))
    assert report.verdict is Verdict.CRITICAL and _codes(report) == [code]
    assert report.problems[0].fix == "wgkill-up wg0 --allow-lan"
    assert report.summary.startswith("wg0 ") and report.summary.endswith(": can leak")
    _valid(report)


def test_without_the_hook_line_the_fix_is_plain_wgkill_up_and_without_the_link_wgkill_boot() -> None:
    missing = _chain("ipv4", jump_positions=[], jump_specs=[])
    assert status.judge(_host(_iface(chains=[missing]))).problems[0].fix == "wgkill-up wg0"
    gone = status.judge(_host(_iface(chains=[missing], link=None, wg=None)))
    assert gone.verdict is Verdict.CRITICAL  # a leak outranks "offline"
    assert [p.code for p in gone.problems] == ["jump-missing", "tunnel-gone"]
    assert (gone.problems[0].fix or "").startswith("wgkill-boot")


def test_another_tunnels_jump_above_ours_is_fine() -> None:
    """Two tunnels: a packet must pass both chains, so their order does not matter."""
    assert is_wgkill_jump('-m comment --comment "wgkill:wg1" -j wgkill-wg1')
    assert not is_wgkill_jump('-m comment --comment "other" -j wgkill-wg1')
    assert not is_wgkill_jump("-j ACCEPT")
    report = status.judge(_host(_iface(chains=[_chain(jump_positions=[1], above=[]), _chain("ipv6")])))
    assert report.verdict is Verdict.OK


@pytest.mark.parametrize(("entries", "code"), [(None, "set-missing"), (0, "set-empty")])
def test_split_tunnel_set_gone_or_emptied_is_critical(entries: int | None, code: str) -> None:
    report = status.judge(_host(_iface(sets=[SetFacts("wgkill-wg0-4", entries)])))
    assert report.verdict is Verdict.CRITICAL and _codes(report) == [code]
    assert status.judge(_host(_iface(sets=[SetFacts("wgkill-wg0-4", 12)]))).verdict is Verdict.OK


def test_a_set_empty_by_design_is_ok_and_one_changed_is_critical() -> None:
    """An IPv4-only list leaves the IPv6 set empty: that is what was applied, not a leak."""
    by_design = [SetFacts("wgkill-wg0-4", 12, 12), SetFacts("wgkill-wg0-6", 0, 0)]
    assert status.judge(_host(_iface(sets=by_design))).verdict is Verdict.OK
    for sets, code in (([SetFacts("wgkill-wg0-4", 0, 12)], "set-empty"),
                       ([SetFacts("wgkill-wg0-4", 3, 12)], "set-altered"),
                       ([SetFacts("wgkill-wg0-6", None, 0)], "set-missing")):
        report = status.judge(_host(_iface(sets=sets)))
        assert report.verdict is Verdict.CRITICAL and _codes(report) == [code]


def test_expected_entries_of_older_states_come_from_allowed_ips() -> None:
    state = _state(allowed_ips=["203.0.113.0/24", "192.0.2.129/32"])
    state.families[4].sets, state.families[6].sets = ["wgkill-wg0-4"], ["wgkill-wg0-6"]
    assert gathering._expected_entries(state, "wgkill-wg0-4") == 2
    assert gathering._expected_entries(state, "wgkill-wg0-6") == 0
    state.families[6].set_entries = 7  # recorded: wins
    assert gathering._expected_entries(state, "wgkill-wg0-6") == 7
    assert gathering._expected_entries(state, "someone-elses") is None
    from_file = _state(allowed_ips_file="/x")
    from_file.families[4].sets = ["wgkill-wg0-4"]
    assert gathering._expected_entries(from_file, "wgkill-wg0-4") is None


def test_expected_entries_with_nft_are_known_only_for_an_empty_family() -> None:
    from wgkill.state import NftRecord

    nft = NftRecord("wgkill-wg0", "", sets={4: "dst4", 6: "dst6"}, set_entries={4: 12, 6: 0})
    state = _state(backend="nft", families={}, nft=nft)
    assert gathering._expected_entries(state, "wgkill-wg0 dst6") == 0  # as NftBackend.inspect names it
    assert gathering._expected_entries(state, "wgkill-wg0 dst4") is None  # nft merges adjacent intervals


RULE = "fwmark 0x100/0xf00 lookup 52821 priority 32001"


@pytest.mark.parametrize(("gaps", "up", "verdict", "codes"), [
    ([RouteGap("ipv4", "rule", RULE), RouteGap("ipv6", "rule", RULE)], True, Verdict.CRITICAL,
     ["route-rule-missing", "route-rule-missing"]),
    ([RouteGap("ipv4", "rule", RULE)], False, Verdict.CRITICAL, ["route-rule-missing", "tunnel-down"]),
    ([RouteGap("ipv6", "route", "unreachable default metric 4294967295 table 52821")], True,
     Verdict.CRITICAL, ["routes-route-missing"]),
    ([RouteGap("ipv4", "chain", "mangle chain wgkill-wg0-out")], True, Verdict.CRITICAL,
     ["routes-chain-missing"]),
    ([RouteGap("ipv4", "dev-route", "default dev wg0 table 52821")], True, Verdict.WARNING,
     ["route-missing"]),
    ([RouteGap("ipv4", "dev-route", "default dev wg0 table 52821")], False, Verdict.WARNING, ["tunnel-down"]),
])
def test_routes_gaps_name_what_is_missing(gaps: list, up: bool, verdict: Verdict, codes: list[str]) -> None:
    report = status.judge(_host(_iface(route_gaps=gaps, link=_link(up=up))))
    assert report.verdict is verdict and _codes(report) == codes
    for problem, gap in zip(report.problems, gaps, strict=False):
        if problem.code.startswith("route"):
            assert gap.what in problem.message and gap.family in problem.message


def test_ipv6_not_covered_is_critical_only_when_the_kernel_has_ipv6() -> None:
    state = _state()
    del state.families[6]
    facts = _iface(state=state, chains=[_chain("ipv4")])
    assert _codes(status.judge(_host(facts))) == ["ipv6-uncovered"]
    assert status.judge(_host(facts, ipv6=False)).verdict is Verdict.OK


def test_wireguard_interface_without_state_is_critical() -> None:
    facts = InterfaceFacts("wg1", link=_link(name="wg1", kind="tun"), wg=WgFacts(1, None))
    report = status.judge(_host(_iface(), facts))
    assert report.verdict is Verdict.CRITICAL and _codes(report) == ["unprotected"]
    assert report.problems[0].interface == "wg1" and report.problems[0].fix == "wgkill-up wg1"
    assert report.summary == "wg0 protected (handshake 12s ago); wg1 up without wgkill"


def test_named_interface_with_nothing_at_all_is_unknown() -> None:
    report = status.judge(_host(InterfaceFacts("wg9")))
    assert report.verdict is Verdict.UNKNOWN and _codes(report) == ["not-recorded"]


@pytest.mark.parametrize(("link", "fix"), [(True, "wgkill-up wg0"), (False, "wgkill-down --force wg0")])
def test_corrupt_state_is_unknown(link: bool, fix: str) -> None:
    facts = InterfaceFacts("wg0", state_error="corrupt state file /x/wg0.json: not valid JSON",
                           link=_link() if link else None)
    report = status.judge(_host(facts))
    assert report.verdict is Verdict.UNKNOWN and _codes(report) == ["state-unreadable"]
    assert (report.problems[0].fix or "").startswith(fix)
    _valid(report)


def test_not_root_is_unknown_and_reads_nothing() -> None:
    report = status.judge(HostFacts(uid=65534, now=NOW))
    assert report.verdict is Verdict.UNKNOWN and _codes(report) == ["not-root"]
    assert status.human(report).splitlines()[0] == "WGKILL UNKNOWN - must be run as root"
    _valid(report)


def test_nothing_to_check_is_unknown() -> None:
    report = status.judge(_host())
    assert report.verdict is Verdict.UNKNOWN and "nothing to check" in report.summary


def test_worst_verdict_wins_and_a_known_leak_outranks_unknown() -> None:
    assert status.worst([Verdict.OK, Verdict.WARNING]) is Verdict.WARNING
    assert status.worst([Verdict.WARNING, Verdict.UNKNOWN]) is Verdict.UNKNOWN
    assert status.worst([Verdict.UNKNOWN, Verdict.CRITICAL]) is Verdict.CRITICAL
    assert status.worst([]) is Verdict.OK
    unknown = InterfaceFacts("wg1", state_error="corrupt")
    leaking = _iface(chains=[_chain(jump_positions=[], jump_specs=[])])
    assert status.judge(_host(leaking, unknown)).verdict is Verdict.CRITICAL


# ---- DNS --------------------------------------------------------------------------------------


def _dns(lock: bool, servers: tuple[str, ...] = ("10.64.0.1",)) -> DnsState:
    return DnsState(servers=servers, lock=lock, backend="file")


def test_dns_lock_off_with_a_lan_resolver_is_critical_and_the_fix_drops_no_dns_lock() -> None:
    facts = _iface(state=_state(dns=_dns(False)), postup="wgkill-up wg0 --dns 10.64.0.1 --no-dns-lock")
    lan, tunnel = Nameserver("192.168.1.1", "resolv.conf"), Nameserver("10.64.0.1", "resolv.conf")
    host = _host(facts, resolvers=[lan, tunnel])
    report = status.judge(host)
    assert report.verdict is Verdict.CRITICAL and _codes(report) == ["dns-unlocked"]
    assert "192.168.1.1" in report.problems[0].message
    assert report.problems[0].fix == "wgkill-up wg0 --dns 10.64.0.1"
    assert _valid(report)["interfaces"][0]["dns"]["outside"] == ["192.168.1.1"]


@pytest.mark.parametrize(("lock", "resolvers"), [
    (True, [Nameserver("192.168.1.1", "resolv.conf")]),  # the lock refuses it
    (False, [Nameserver("10.64.0.1", "resolv.conf")]),  # only the tunnel's own
    (False, [Nameserver("127.0.0.1", "resolv.conf")]),  # a local stub
    (False, [Nameserver("127.0.0.53", "resolv.conf"), Nameserver("10.64.0.9", "resolved:wg0", "wg0")]),
])
def test_dns_that_cannot_leak_is_ok(lock: bool, resolvers: list[Nameserver]) -> None:
    report = status.judge(_host(_iface(state=_state(dns=_dns(lock))), resolvers=resolvers))
    assert report.verdict is Verdict.OK, report.problems


def test_resolved_uplink_server_counts_as_outside() -> None:
    resolvers = [Nameserver("127.0.0.53", "resolv.conf"), *nameservers.parse_resolvectl_dns(
        "Global:\nLink 2 (eth0): 192.168.1.1\nLink 5 (wg0): 10.64.0.1\n")]
    report = status.judge(_host(_iface(state=_state(dns=_dns(False))), resolvers=resolvers))
    assert _codes(report) == ["dns-unlocked"]


def test_tunnel_without_dns_is_not_a_dns_problem() -> None:
    """No DNS = and no --dns: wgkill promised nothing about DNS (the kill switch still holds)."""
    assert status.judge(_host(_iface())).verdict is Verdict.OK


# ---- the probe in the verdict ----------------------------------------------------------------


def _probes(outcome_tcp4: str) -> list[ProbeResult]:
    out = []
    for family, target in ((4, "203.0.113.1"), (6, "2001:db8::1")):
        for proto in ("tcp", "udp", "dns"):
            name = f"{proto}{family}"
            outcome = outcome_tcp4 if name == "tcp4" else "refused"
            out.append(ProbeResult(name, proto, family, target, 53 if proto == "dns" else 443, "eth0",
                                   outcome, "ECONNREFUSED" if outcome == "refused" else "connected"))
    return out


def test_probe_all_refused_keeps_the_verdict() -> None:
    report = status.judge(_host(_iface()), _probes("refused"))
    assert report.verdict is Verdict.OK and report.summary.endswith("; probe: 6 refused")
    assert len(_valid(report)["probe"]) == 6


def test_probe_that_got_out_is_critical_even_when_the_rules_look_right() -> None:
    report = status.judge(_host(_iface(postup="wgkill-up wg0")), _probes("left"))
    assert report.verdict is Verdict.CRITICAL and _codes(report) == ["probe-leaked"]
    assert "tcp4 to 203.0.113.1 got out via eth0" in report.problems[0].message
    assert report.problems[0].fix == "wgkill-up wg0"
    assert report.summary.endswith("; probe: 1 of 6 got out")
    _valid(report)


def test_plan_probes_asks_a_resolver_outside_the_tunnel_or_the_target() -> None:
    host = _host(_iface(state=_state(dns=_dns(True))), uplinks={"ipv4": "eth0", "ipv6": None},
                 resolvers=[Nameserver("10.64.0.1", "resolv.conf"), Nameserver("192.168.1.1", "resolv.conf")])
    specs = {s.name: s for s in status.plan_probes(host)}
    assert sorted(specs) == ["dns4", "dns6", "tcp4", "tcp6", "udp4", "udp6"]
    assert specs["dns4"].target == "192.168.1.1" and specs["dns4"].port == 53
    assert specs["dns6"].target == "2001:db8::1" and specs["tcp6"].device is None
    assert specs["tcp4"].target == "203.0.113.1" and specs["tcp4"].device == "eth0"
    skipped = status.probe([specs["tcp6"]])
    assert skipped[0].outcome == "skipped"  # no uplink: nothing is sent


# ---- parsers ----------------------------------------------------------------------------------


def test_handshake_facts_take_the_latest_handshake_and_never_the_key() -> None:
    dump = ("PRIVATEKEY=\tPUB=\t51820\t0xca6c\n"
            "PEER1=\t(none)\t198.51.100.2:51820\t0.0.0.0/0\t1799999990\t10\t20\t25\n"
            "PEER2=\t(none)\t(none)\t10.0.0.0/8\t0\t0\t0\toff\n")
    facts = WgFacts.of(parse_dump("wg0", dump))
    assert facts == WgFacts(peers=2, latest_handshake=1799999990)
    assert WgFacts.of(parse_dump("wg0", "K\tP\t1\toff\n")) == WgFacts(peers=0, latest_handshake=None)
    assert status.handshake_age(_iface(wg=facts), NOW) == 10
    assert status.handshake_age(_iface(wg=WgFacts(1, None)), NOW) is None


def test_parse_resolv_conf() -> None:
    text = ("# nameserver 9.9.9.9\nsearch lan\nnameserver 192.168.1.1\n"
            "nameserver  fe80::1%eth0\noptions edns0\n")
    assert nameservers.parse_resolv_conf(text) == ["192.168.1.1", "fe80::1"]


def test_parse_resolvectl_dns_with_ports_and_names() -> None:
    text = ("Global: 1.1.1.1#cloudflare-dns.com\n"
            "Link 2 (eth0): 192.168.1.1:53 [2001:db8::53]:53\n"
            "Link 7 (wg0): 10.64.0.1\nLink 9 (docker0):\n")
    assert [(r.address, r.source, r.link) for r in nameservers.parse_resolvectl_dns(text)] == [
        ("1.1.1.1", "resolved:global", None), ("192.168.1.1", "resolved:eth0", "eth0"),
        ("2001:db8::53", "resolved:eth0", "eth0"), ("10.64.0.1", "resolved:wg0", "wg0")]


def test_postup_command_is_the_hooks_own_wgkill_up() -> None:
    config = ("[Interface]\nPostUp = iptables -A x; wgkill-up %i --dns 10.64.0.1 --no-dns-lock && true\n"
              "PreDown = wgkill-down %i\n")
    assert gathering.postup_command(config, "wg0") == "wgkill-up wg0 --dns 10.64.0.1 --no-dns-lock"
    assert gathering.postup_command("[Interface]\nPostUp = echo hi\n", "wg0") is None


def test_parse_utc() -> None:
    assert document.parse_utc("1970-01-02T00:00:00Z") == 86400.0
    assert document.parse_utc("yesterday") is None


@pytest.mark.parametrize("text", ["2024-02-29T23:59:59Z", "2000-03-01T00:00:00Z", "1900-02-28T12:00:00Z",
                                  "2026-12-03T15:21:21Z", "1969-12-31T23:59:59Z", "2100-12-31T00:00:60Z"])
def test_parse_utc_agrees_with_strptime(text: str) -> None:
    """The hand parse (no _strptime import on each check) reads what time.strptime reads."""
    assert document.parse_utc(text) == calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01T24:00:00Z",
                                  "2023-01-01 00:00:00Z", "2023-01-01T00:00:00", "2023-01-01T00:00:00Z\n",
                                  "+023-01-01T00:00:00Z", "2023-0\u0661-01T00:00:00Z"])
def test_parse_utc_refuses_what_is_not_a_time_wgkill_wrote(text: str) -> None:
    assert document.parse_utc(text) is None


def test_dns_query_is_a_wellformed_question() -> None:
    packet = probing.dns_query("wgkill-probe-ab.invalid", 0x1234)
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", packet[:12])
    assert (ident, flags, qd, an, ns, ar) == (0x1234, 0x0100, 1, 0, 0, 0)
    assert packet[12:] == b"\x0fwgkill-probe-ab\x07invalid\x00\x00\x01\x00\x01"


def test_parse_packet_reads_destination_protocol_and_source_port() -> None:
    udp = struct.pack("!HHHH", 40000, 53, 8, 0)
    v4 = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, 0]) + socket.inet_aton(
        "192.0.2.2") + socket.inet_aton("203.0.113.1") + udp
    assert probing.parse_packet(v4) == (4, "203.0.113.1", socket.IPPROTO_UDP, 40000)
    tcp = struct.pack("!HH", 40001, 443) + bytes(16)
    v6 = (bytes([0x60, 0, 0, 0]) + struct.pack("!HBB", len(tcp), socket.IPPROTO_TCP, 64)
          + socket.inet_pton(socket.AF_INET6, "2001:db8:c::2")
          + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + tcp)
    assert probing.parse_packet(v6) == (6, "2001:db8::1", socket.IPPROTO_TCP, 40001)
    icmp = v4[:9] + bytes([socket.IPPROTO_ICMP]) + v4[10:]
    assert probing.parse_packet(icmp) is None
    assert probing.parse_packet(b"\x00") is None


# ---- output formats ---------------------------------------------------------------------------


def test_schema_is_itself_valid_and_versioned() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema_version"]["const"] == status.SCHEMA_VERSION


def test_full_json_document_validates() -> None:
    split = _iface(interface="wg1", link=_link(name="wg1", up=False), sets=[SetFacts("wgkill-wg1-4", None)],
                   state=replace(_state(interface="wg1"), lockdown=True))
    report = status.judge(_host(_iface(), split, InterfaceFacts("wg2", link=_link(name="wg2"))),
                          _probes("refused"))
    doc = _valid(report)
    assert doc["schema_version"] == 1 and doc["verdict"] == "CRITICAL" and doc["exit_code"] == 2
    wg0 = doc["interfaces"][0]
    assert wg0["handshake"] == {"peers": 1, "latest": int(NOW) - 12, "age_seconds": 12.0}
    assert wg0["killswitch"]["chains"][0] == {"family": "ipv4", "chain": "wgkill-wg0", "hook": "OUTPUT",
                                              "present": True, "rules": 8, "jump_position": 0,
                                              "drifted": False}
    assert wg0["endpoints"] == [{"address": "198.51.100.2", "port": 51820, "name": None, "pinned": True}]
    assert doc["interfaces"][2]["recorded"] is False and doc["interfaces"][2]["killswitch"] is None
    assert {p["code"] for p in doc["problems"]} == {"set-missing", "tunnel-down", "unprotected"}


def _metrics(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_prometheus_textfile_parses_with_the_real_parser() -> None:
    down = _iface(interface="wg1", link=_link(name="wg1", up=False), state=_state(interface="wg1"))
    drifted = _iface(interface="wg2", chains=[_chain(live_sha256="b" * 64)], state=_state(interface="wg2"))
    text = status.prometheus(status.judge(_host(_iface(), down, drifted), _probes("left")))
    assert "# HELP wgkill_protected " in text and "# TYPE wgkill_protected gauge" in text
    m = _metrics(text)
    assert m["wgkill_status"] == {(): 2.0}
    assert m["wgkill_protected"] == {(("interface", "wg0"),): 1.0, (("interface", "wg1"),): 0.0,
                                     (("interface", "wg2"),): 0.0}
    assert m["wgkill_blocking"][(("interface", "wg1"),)] == 1.0
    assert m["wgkill_interface_status"] == {(("interface", "wg0"),): 0.0, (("interface", "wg1"),): 1.0,
                                            (("interface", "wg2"),): 2.0}  # what alerts name
    assert m["wgkill_drifted"] == {(("interface", "wg0"),): 0.0, (("interface", "wg1"),): 0.0,
                                   (("interface", "wg2"),): 1.0}
    assert m["wgkill_handshake_age_seconds"][(("interface", "wg0"),)] == 12.0
    assert m["wgkill_probe_leaked"][(("probe", "tcp4"),)] == 1.0
    assert m["wgkill_probe_leaked"][(("probe", "dns6"),)] == 0.0


def test_prometheus_without_handshake_or_probe_leaves_those_samples_out() -> None:
    m = _metrics(status.prometheus(status.judge(_host(_iface(wg=None)))))
    assert "wgkill_handshake_age_seconds" not in m and "wgkill_probe_leaked" not in m
    assert m["wgkill_protected"] == {(("interface", "wg0"),): 1.0}


def test_human_output_one_line_per_problem_with_its_fix_and_colour_only_when_asked() -> None:
    facts = _iface(chains=[_chain(live_sha256="b" * 64, rules=0), _chain("ipv6")], postup="wgkill-up wg0")
    report = status.judge(_host(facts))
    plain = status.human(report).splitlines()
    assert plain[0] == "WGKILL CRITICAL - wg0 rules drifted: can leak"
    assert plain[1].startswith("CRITICAL wg0: chain wgkill-wg0 (ipv4) differs") and plain[1].endswith(
        "— fix: wgkill-up wg0")
    assert "\033[" not in "\n".join(plain)
    assert any(line.startswith("  kill switch  engaged 2027-01-15T08:00:00Z") for line in plain)
    coloured = status.human(report, colour=True)
    assert coloured.startswith("WGKILL \033[31mCRITICAL\033[0m - ")


# ---- the command line -------------------------------------------------------------------------


@pytest.fixture
def fake_check(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def check_protection(interface: str | None = None, **kw: object) -> status.Report:
        calls.append({"interface": interface, **kw})
        return status.judge(_host(_iface(link=_link(up=False))))

    monkeypatch.setattr(status, "check_protection", check_protection)
    return calls


def test_cli_exit_code_is_the_verdict_and_json_is_one_document(
        fake_check: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--json", "wg0"]) == 1
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert doc["verdict"] == "WARNING" and fake_check[0]["interface"] == "wg0"
    assert fake_check[0]["probe_timeout"] is None


def test_cli_probe_options_reach_the_library(fake_check: list[dict]) -> None:
    cli.run(["--probe", "--probe-target", "192.0.2.99", "--probe-port", "8443", "--probe-timeout", "0.5"])
    assert fake_check[0]["probe_targets"] == {4: "192.0.2.99", 6: "2001:db8::1"}
    assert fake_check[0]["probe_port"] == 8443 and fake_check[0]["probe_timeout"] == 0.5


@pytest.mark.parametrize("argv", [["--probe-target", "vpn.example"], ["--probe-port", "0"],
                                  ["--json", "--prometheus"], ["--probe-timeout", "-1"]])
def test_cli_bad_options_are_usage_errors(fake_check: list[dict], argv: list[str]) -> None:
    with pytest.raises(UsageError):
        cli.run(argv)
    assert fake_check == []


def test_cli_prometheus_file_is_replaced_atomically(
        fake_check: list[dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "wgkill.prom"
    target.write_text("old\n")
    assert cli.run(["--prometheus-file", str(target)]) == 1
    assert _metrics(target.read_text())["wgkill_blocking"] == {(("interface", "wg0"),): 1.0}
    assert capsys.readouterr().out.startswith("WGKILL WARNING - wg0 down")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wgkill.prom"]  # no temporary left behind
    assert target.stat().st_mode & 0o777 == 0o644


# ---- from iptables-save text to facts --------------------------------------------------------

SAVE = """# Generated by iptables-save
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:wgkill-wg0 - [0:0]
-A OUTPUT -m comment --comment "wgkill:wg1" -j wgkill-wg1
-A OUTPUT -m comment --comment "wgkill:wg0" -j wgkill-wg0
-A wgkill-wg0 -o lo -j RETURN
-A wgkill-wg0 -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""


def test_chain_facts_from_iptables_save_text() -> None:
    from wgkill.firewall.iptables import parse_save

    snap = parse_save(SAVE)
    record = _state().families[4]
    record.saved_sha256 = snap.chain_sha256("wgkill-wg0")
    (facts,) = chain_facts("wg0", "ipv4", record, snap)
    assert (facts.present, facts.rules, facts.jump_positions, facts.above) == (True, 2, [1], [])
    assert status.judge(_host(_iface(chains=[facts, _chain("ipv6")]))).verdict is Verdict.OK
    record.jumps = []  # a record that lost its jumps is checked against the jump it must have had
    (fallback,) = chain_facts("wg0", "ipv4", record, snap)
    assert fallback.jump_spec == JUMP and fallback.jump_positions == [1]
    flushed = parse_save(SAVE.replace("-A wgkill-wg0 -o lo -j RETURN\n", ""))
    (drift,) = chain_facts("wg0", "ipv4", record, flushed)
    assert _codes(status.judge(_host(_iface(chains=[drift, _chain("ipv6")])))) == ["drifted"]


def test_state_recording_no_family_is_critical_for_each_missing_one() -> None:
    report = status.judge(_host(_iface(state=_state(families={}), chains=[])))
    assert _codes(report) == ["ipv4-uncovered", "ipv6-uncovered"]
    assert report.verdict is Verdict.CRITICAL
    _valid(report)


# ---- the exclusion (wgkill-exclude) -------------------------------------------------------------


def _excluded(**kw: object) -> ExclusionFacts:
    base = {"cgroup": "wgkill-exclude", "path": "/sys/fs/cgroup/unified/wgkill-exclude", "present": True,
            "members": [(4242, "curl -s https://example.org/")], "rules": {"ipv4": True, "ipv6": True}}
    base.update(kw)
    return ExclusionFacts(**base)  # type: ignore[arg-type]


def test_exclusion_is_a_line_of_its_own_and_stays_ok() -> None:
    report = status.judge(_host(_iface(exclusion=_excluded())))
    assert report.verdict is Verdict.OK
    assert report.summary == "wg0 protected (handshake 12s ago), 1 process(es) excluded"
    [line] = [ln for ln in status.human(report).splitlines() if ln.startswith("  exclusion")]
    assert line == ("  exclusion    /sys/fs/cgroup/unified/wgkill-exclude (ipv4 marked, ipv6 marked): "
                    "1 process(es) leave by the uplink: 4242 curl -s https://example.org/")
    doc = _valid(report)
    assert doc["interfaces"][0]["exclusion"]["processes"] == 1
    assert 'wgkill_excluded_processes{interface="wg0"} 1' in status.prometheus(report)


def test_an_exclusion_never_turns_critical_into_ok() -> None:
    flushed = _iface(exclusion=_excluded(), chains=[_chain("ipv4", live_sha256="b" * 64), _chain("ipv6")])
    left = status.ProbeResult("tcp4-excluded", "tcp", 4, "203.0.113.1", 443, "eth0", "left", "connected")
    report = status.judge(_host(flushed), None, [left])
    assert report.verdict is Verdict.CRITICAL and "drifted" in _codes(report)
    assert "probe-leaked" not in _codes(report)  # the excluded probe getting out is no leak
    _valid(report)


def test_a_broken_exclusion_fails_closed_so_it_is_a_warning() -> None:
    for broken in (_excluded(present=False), _excluded(rules={"ipv4": True, "ipv6": False}),
                   _excluded(error="cgroup v2 is not mounted")):
        report = status.judge(_host(_iface(exclusion=broken)))
        assert report.verdict is Verdict.WARNING and _codes(report) == ["exclusion-broken"]
        assert report.summary.startswith("wg0 exclusion broken")
        _valid(report)
    stopped = status.ProbeResult("udp6-excluded", "udp", 6, "2001:db8::1", 443, "eth0", "refused", "EPERM")
    report = status.judge(_host(_iface(exclusion=_excluded())), None, [stopped])
    assert report.verdict is Verdict.WARNING and _codes(report) == ["exclusion-broken"]
    assert _valid(report)["probe_excluded"][0]["outcome"] == "refused"


def test_the_guard_holding_and_its_repairs_are_shown_and_exported() -> None:
    guard = GuardFacts(running=True, pid=812, repairs=2, last_repair=NOW - 180, last_repair_interface="wg0",
                       holding=["wg0"])
    report = status.judge(_host(_iface(), _iface(interface="wg1"), guard=guard))
    assert report.verdict is Verdict.OK  # holding or not never changes a verdict
    text = status.human(report)
    assert "  guard        holds the block in a table of its own (flush-proof)" in text
    assert "  guard        does not hold the block" in text
    assert "  guard      running (pid 812), 2 repair(s), the last 3m ago (wg0)" in text
    doc = _valid(report)
    assert [i["guard_holding"] for i in doc["interfaces"]] == [True, False]
    assert doc["host"]["guard"]["repairs"] == 2
    metrics = status.prometheus(report)
    assert 'wgkill_guard_holding{interface="wg0"} 1' in metrics
    assert 'wgkill_guard_holding{interface="wg1"} 0' in metrics
    assert "# TYPE wgkill_repairs_total counter\nwgkill_repairs_total 2\n" in metrics
    assert f"wgkill_last_repair_timestamp_seconds {int(NOW - 180)}\n" in metrics


def test_no_guard_running_says_so_and_exports_zero_repairs() -> None:
    report = status.judge(_host(_iface(), guard=GuardFacts()))
    assert "  guard      not running" in status.human(report)
    assert _valid(report)["interfaces"][0]["guard_holding"] is False
    metrics = status.prometheus(report)
    assert "wgkill_repairs_total 0\n" in metrics and "wgkill_last_repair_timestamp_seconds" not in metrics


def test_a_plain_check_imports_no_netlink_library_and_no_probing() -> None:
    """A monitor runs wgkill-status every few seconds (issue 21): pyroute2 alone cost four rule cycles;
    probing, the metrics writer and time.strptime's imports load only when an option needs them."""
    code = ("import sys, wgkill.cli.status; print(sorted(m for m in ('pyroute2', 'wgkill.status.probing', "
            "'wgkill.status.metrics', '_strptime', 'calendar') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
