"""Is each tunnel protected, blocking, or leaking? Facts, verdicts, and a probe that tries to leak.

Three layers, so each can be tested on its own:

* ``gather`` reads the machine: the state files, the links, addresses, routes
  and policy rules (pyroute2, netlink), the live chains (``iptables-save`` of
  the recorded variant), the last handshake (``wg show IFACE dump``) and the
  resolvers the system will use (/etc/resolv.conf, systemd-resolved). It
  decides nothing.
* ``judge`` turns those facts into a verdict per interface and overall, in the
  monitoring-plugin convention, each problem with the command that fixes it.
  It reads nothing, so unit tests feed it synthetic facts.
* ``probe`` sends real packets the way a leak would (bound to the uplink with
  ``SO_BINDTODEVICE``) and watches the uplink itself (``AF_PACKET``) to see
  which got out: the rules can look right and still not hold.

``report_dict`` is the ``--json`` document (docs/status.schema.json); the CLI
only formats. Nothing here prints or exits.
"""

from __future__ import annotations

import calendar
import errno
import ipaddress
import os
import re
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from . import state as statefile
from .errors import StateError, WgkillError
from .ifname import CHAIN_PREFIX, chain_name, jump_comment, validate_interface
from .runner import run

SCHEMA_VERSION = 1
RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_SOCKET = Path("/run/systemd/resolve/io.systemd.Resolve")
RESOLVED_STUBS = frozenset({"127.0.0.53", "127.0.0.54"})
WG_SOCKETS = Path("/var/run/wireguard")
IPV6_PROC = Path("/proc/sys/net/ipv6")
MAIN_TABLE = 254
IFF_UP = 0x1
FIB_RULE_INVERT = 0x2
DEFAULT_TARGETS = {4: "203.0.113.1", 6: "2001:db8::1"}  # TEST-NET-3 / documentation: routed nowhere
DEFAULT_PROBE_PORT = 443
DEFAULT_PROBE_TIMEOUT = 2.0


class Verdict(IntEnum):
    """Monitoring-plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# Worst first when combining: a known leak outranks not knowing, which outranks "safe but offline".
_SEVERITY = {Verdict.OK: 0, Verdict.WARNING: 1, Verdict.UNKNOWN: 2, Verdict.CRITICAL: 3}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.OK)


# ---- facts --------------------------------------------------------------------------------


@dataclass
class LinkFacts:
    """One network interface as netlink reports it."""

    name: str
    index: int
    kind: str | None = None  # "wireguard" (kernel), "tun" (wireguard-go), "veth", ...
    up: bool = False  # IFF_UP: administratively up
    operstate: str | None = None
    addresses: list[str] = field(default_factory=list)  # "10.0.0.2/32"
    wireguard: bool = False


@dataclass
class WgFacts:
    """What ``wg show IFACE dump`` says: peers and their latest handshakes (unix time, 0 = never)."""

    peers: int = 0
    latest_handshake: int | None = None  # the most recent over all peers; None if never


@dataclass
class ChainFacts:
    """One recorded chain and its jump, as they are now."""

    family: str  # "ipv4" / "ipv6"
    chain: str
    hook: str  # OUTPUT, or FORWARD in gateway mode
    jump_spec: str  # the jump as recorded
    present: bool = False
    rules: int | None = None  # live rule count
    jump_positions: list[int] = field(default_factory=list)  # positions of rules in hook targeting us
    jump_specs: list[str] = field(default_factory=list)
    above: list[str] = field(default_factory=list)  # hook rules above our first jump
    saved_sha256: str | None = None
    live_sha256: str | None = None
    recorded_rules: int | None = None  # from the state, when there is no saved_sha256 to compare


@dataclass
class SetFacts:
    name: str
    entries: int | None  # None: the set does not exist


@dataclass
class Resolver:
    """A nameserver the system will use, and where it is configured."""

    address: str
    source: str  # "resolv.conf", "resolved:global", "resolved:LINK"
    link: str | None = None


@dataclass
class InterfaceFacts:
    interface: str
    state: statefile.State | None = None
    state_error: str | None = None
    link: LinkFacts | None = None
    wg: WgFacts | None = None
    chains: list[ChainFacts] = field(default_factory=list)
    sets: list[SetFacts] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)  # rules that could not be read
    postup: str | None = None  # the PostUp wgkill-up command, from the recorded config


@dataclass
class HostFacts:
    uid: int
    now: float
    ipv6: bool = True
    interfaces: list[InterfaceFacts] = field(default_factory=list)
    resolvers: list[Resolver] = field(default_factory=list)
    routes: dict[str, str | None] = field(default_factory=dict)  # family -> interface to the probe target
    uplinks: dict[str, str | None] = field(default_factory=dict)  # family -> main-table default route's dev
    policy_rules: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # host-level read failures
    named: str | None = None  # the interface asked for, if one was


# ---- verdicts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason the verdict is not OK, in one line, with the command that fixes it."""

    verdict: Verdict
    code: str
    message: str
    fix: str | None = None
    interface: str | None = None


@dataclass
class InterfaceStatus:
    facts: InterfaceFacts
    verdict: Verdict
    summary: str
    problems: list[Problem]
    dns_outside: list[str] = field(default_factory=list)


@dataclass
class ProbeResult:
    name: str  # "tcp4", "udp6", "dns4", ...
    protocol: str  # tcp / udp / dns
    family: int
    target: str
    port: int
    device: str | None
    outcome: str  # "refused" (stopped on this host), "left" (got out), "skipped"
    detail: str


@dataclass
class Report:
    host: HostFacts
    verdict: Verdict
    summary: str
    interfaces: list[InterfaceStatus]
    problems: list[Problem]  # every problem, host-level and per interface
    probes: list[ProbeResult] | None = None


def _family_name(family: int) -> str:
    return f"ipv{family}"


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def parse_utc(text: str) -> float | None:
    """``applied_at`` (``YYYY-MM-DDTHH:MM:SSZ``) as unix time; None if it is not in that form."""
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        return None


def handshake_age(facts: InterfaceFacts, now: float) -> float | None:
    if facts.wg is None or not facts.wg.latest_handshake:
        return None
    return max(0.0, now - facts.wg.latest_handshake)


def _reapply_fix(facts: InterfaceFacts) -> str:
    """The command that puts the recorded block back, as exactly as we can name it."""
    iface = facts.interface
    if facts.link is None:
        return "wgkill-boot (re-applies every recorded block as recorded; the tunnel is gone)"
    return facts.postup or f"wgkill-up {iface}"


def _chain_problems(facts: InterfaceFacts) -> list[Problem]:
    iface, fix, out = facts.interface, _reapply_fix(facts), []
    for c in facts.chains:
        where = f"{c.chain} ({c.family})"
        if not c.present:
            out.append(Problem(Verdict.CRITICAL, "chain-missing",
                               f"chain {where} is gone: nothing holds traffic to the tunnel", fix, iface))
            continue
        if not c.jump_positions:
            out.append(Problem(Verdict.CRITICAL, "jump-missing",
                               f"{c.hook} no longer jumps to {where}: its rules are bypassed", fix, iface))
        elif c.jump_spec not in c.jump_specs:
            out.append(Problem(Verdict.CRITICAL, "jump-altered",
                               f"the {c.hook} jump to {where} was changed: it no longer catches every packet",
                               fix, iface))
        elif c.above:
            out.append(Problem(Verdict.CRITICAL, "jump-displaced",
                               f"{len(c.above)} rule(s) in {c.hook} now come before the jump to {where}, "
                               f"first `{c.above[0]}`: packets they accept bypass the kill switch",
                               fix, iface))
        if c.saved_sha256 is not None and c.live_sha256 is not None and c.saved_sha256 != c.live_sha256:
            out.append(Problem(Verdict.CRITICAL, "drifted",
                               f"chain {where} differs from what wgkill-up applied ({c.rules} rules now): "
                               "flushed or rewritten", fix, iface))
        elif c.saved_sha256 is None and c.recorded_rules is not None and c.rules != c.recorded_rules:
            out.append(Problem(Verdict.CRITICAL, "drifted",
                               f"chain {where} has {c.rules} rules, {c.recorded_rules} were applied",
                               fix, iface))
    for s in facts.sets:
        if s.entries is None:
            out.append(Problem(Verdict.CRITICAL, "set-missing",
                               f"ipset {s.name} (the tunnel's destinations) is gone", fix, iface))
        elif s.entries == 0:
            out.append(Problem(Verdict.CRITICAL, "set-empty",
                               f"ipset {s.name} is empty: no destination is held to the tunnel", fix, iface))
    return out


def dns_outside(facts: InterfaceFacts, resolvers: Sequence[Resolver]) -> list[str]:
    """Configured resolvers that are neither the tunnel's nor on loopback nor on the tunnel link."""
    dns = (facts.state.dns if facts.state else None) or {}
    tunnel = {_canon(s) for s in dns.get("servers", []) if isinstance(s, str)}
    outside = []
    for r in resolvers:
        address = _canon(r.address)
        if address in tunnel or r.link == facts.interface or _is_loopback(address):
            continue
        if r.source == "resolv.conf" and address in RESOLVED_STUBS:
            continue
        if address not in outside:
            outside.append(address)
    return outside


def _canon(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def judge_interface(facts: InterfaceFacts, host: HostFacts) -> InterfaceStatus:
    """The verdict for one interface from its facts alone."""
    iface = facts.interface
    link = facts.link
    if facts.state_error is not None:
        fix = (f"wgkill-up {iface} (rewrites the state; the rules stay meanwhile)" if link is not None
               else f"wgkill-down --force {iface}")
        return InterfaceStatus(facts, Verdict.UNKNOWN, "state unreadable",
                               [Problem(Verdict.UNKNOWN, "state-unreadable", facts.state_error, fix, iface)])
    if facts.state is None:
        if link is not None and link.wireguard:
            up = "up" if link.up else "present (down)"
            problem = Problem(Verdict.CRITICAL, "unprotected",
                              f"WireGuard interface {iface} is {up} without a wgkill kill switch: "
                              "when it drops, traffic falls back to the uplink "
                              "(add `PostUp = wgkill-up %i` / `PreDown = wgkill-down %i`; "
                              "wgkill-render prints them)",
                              f"wgkill-up {iface}", iface)
            return InterfaceStatus(facts, Verdict.CRITICAL, "up without wgkill", [problem])
        what = "no such interface" if link is None else "not a WireGuard interface"
        return InterfaceStatus(facts, Verdict.UNKNOWN, "nothing recorded",
                               [Problem(Verdict.UNKNOWN, "not-recorded",
                                        f"nothing recorded for {iface} and {what}", None, iface)])

    problems = [Problem(Verdict.UNKNOWN, "rules-unreadable", e, None, iface) for e in facts.read_errors]
    problems += _chain_problems(facts)
    for family in ("ipv4", "ipv6") if host.ipv6 else ("ipv4",):
        if family not in facts.state.families:
            problems.append(Problem(Verdict.CRITICAL, f"{family}-uncovered",
                                    f"no {family} rules were recorded, and this kernel has {family}: "
                                    "it can leak",
                                    _reapply_fix(facts), iface))
    dns = facts.state.dns or {}
    outside = dns_outside(facts, host.resolvers)
    if dns.get("servers") and not dns.get("lock") and outside:
        fix = (facts.postup or f"wgkill-up {iface}").replace(" --no-dns-lock", "")
        problems.append(Problem(Verdict.CRITICAL, "dns-unlocked",
                                f"DNS lock is off and the system also uses {', '.join(outside)}, "
                                "not a resolver of the tunnel: queries can reach it", fix, iface))
    if link is None:
        hint = f"wgkill-release {iface}" if facts.state.lockdown else f"wgkill-down {iface}"
        problems.append(Problem(Verdict.WARNING, "tunnel-gone",
                                f"{iface} is gone (daemon killed or interface deleted); the block holds",
                                f"wg-quick up {iface} (reconnects with the block held), or {hint} to go "
                                "online without the tunnel", iface))
    elif not link.up:
        problems.append(Problem(Verdict.WARNING, "tunnel-down", f"{iface} is down; the block holds",
                                f"ip link set {iface} up, or wg-quick down {iface} to release the block",
                                iface))
    verdict = worst(p.verdict for p in problems)
    return InterfaceStatus(facts, verdict, _summary(verdict, problems, facts, host.now), problems, outside)


_SHORT = {
    "chain-missing": "rules missing", "jump-missing": "jump missing", "jump-altered": "jump altered",
    "jump-displaced": "jump not first", "drifted": "rules drifted", "set-missing": "ipset missing",
    "set-empty": "ipset empty", "ipv6-uncovered": "IPv6 uncovered", "ipv4-uncovered": "IPv4 uncovered",
    "dns-unlocked": "DNS can leak",
    "rules-unreadable": "rules unreadable",
}


def _summary(verdict: Verdict, problems: list[Problem], facts: InterfaceFacts, now: float) -> str:
    if verdict is Verdict.OK:
        age = handshake_age(facts, now)
        return "protected" + (f" (handshake {ago(age)} ago)" if age is not None else " (no handshake yet)")
    if verdict is Verdict.WARNING:
        gone = any(p.code == "tunnel-gone" for p in problems)
        return f"{'gone' if gone else 'down'}, block holding (safe, offline)"
    words = [_SHORT.get(p.code, p.code) for p in problems if p.verdict is verdict]
    return ", ".join(dict.fromkeys(words)) + (": can leak" if verdict is Verdict.CRITICAL else "")


def judge(host: HostFacts, probes: list[ProbeResult] | None = None) -> Report:
    """The overall verdict: the worst of every interface's, the host's and the probe's."""
    if host.uid != 0:
        problem = Problem(Verdict.UNKNOWN, "not-root",
                          f"running as uid {host.uid}: the firewall and the state can only be read as root",
                          "sudo wgkill-status")
        return Report(host, Verdict.UNKNOWN, "must be run as root", [], [problem], probes)
    statuses = [judge_interface(f, host) for f in host.interfaces]
    problems = [Problem(Verdict.UNKNOWN, "unreadable", e) for e in host.errors]
    for s in statuses:
        problems += s.problems
    if probes:
        left = [p for p in probes if p.outcome == "left"]
        if left:
            recorded = [s.facts for s in statuses if s.facts.state is not None]
            fix = _reapply_fix(recorded[0]) if len(recorded) == 1 else "wgkill-up IFACE for each tunnel"
            problems.append(Problem(
                Verdict.CRITICAL, "probe-leaked",
                "probe: " + ", ".join(f"{p.name} to {p.target} got out via {p.device} ({p.detail})"
                                      for p in left),
                fix))
    verdict = worst(p.verdict for p in problems)
    if not statuses and not host.errors:
        verdict = worst([verdict, Verdict.UNKNOWN])
        summary = "no WireGuard interface and no wgkill state: nothing to check"
    else:
        summary = "; ".join(f"{s.facts.interface} {s.summary}" for s in statuses) or "cannot read"
        if probes is not None:
            left = sum(p.outcome == "left" for p in probes)
            tried = sum(p.outcome != "skipped" for p in probes)
            summary += f"; probe: {left} of {tried} got out" if left else f"; probe: {tried} refused"
    return Report(host, verdict, summary, statuses, problems, probes)


# ---- reading the machine ------------------------------------------------------------------


def parse_resolv_conf(text: str) -> list[str]:
    """``nameserver`` addresses in order (an IPv6 zone like ``%eth0`` is kept off)."""
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and not line.lstrip().startswith(("#", ";")):
            servers.append(_canon(fields[1]))
    return servers


_RESOLVECTL_LINE = re.compile(r"^(Global|Link \d+ \(([^)]+)\)):\s*(.*)$")


def parse_resolvectl_dns(text: str) -> list[Resolver]:
    """``resolvectl dns`` output: ``Global: a b`` and ``Link 2 (eth0): a b`` lines.

    Servers may carry ``:port``, ``%ifindex`` or ``#name`` suffixes (newer systemd); only the address is kept.
    """
    out = []
    for line in text.splitlines():
        match = _RESOLVECTL_LINE.match(line.strip())
        if not match:
            continue
        link = match.group(2)
        for token in match.group(3).split():
            address = token.split("#")[0]
            if address.startswith("["):  # [2001:db8::1]:53
                address = address[1:].split("]")[0]
            elif address.count(":") == 1:  # 192.0.2.1:53
                address = address.split(":")[0]
            out.append(Resolver(_canon(address), f"resolved:{link or 'global'}", link))
    return out


def parse_wg_dump(text: str) -> WgFacts:
    """Peers and the latest handshake from ``wg show IFACE dump`` (the private key line is skipped)."""
    lines = [line.split("\t") for line in text.splitlines() if line.strip()]
    latest = 0
    peers = 0
    for fields in lines[1:]:
        if len(fields) >= 5 and fields[4].isdigit():
            peers += 1
            latest = max(latest, int(fields[4]))
    return WgFacts(peers=peers, latest_handshake=latest or None)


def postup_command(config_text: str, interface: str) -> str | None:
    """The ``wgkill-up`` command of the config's PostUp line, with ``%i`` filled in."""
    for line in config_text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.strip().lower() != "postup" or "wgkill-up" not in value:
            continue
        command = value[value.index("wgkill-up"):]
        command = re.split(r"\s*(?:;|&&|\|\||\|)\s*", command)[0].strip()
        return command.replace("%i", interface)
    return None


def _link_facts(ipr: Any) -> dict[str, LinkFacts]:
    links: dict[str, LinkFacts] = {}
    by_index: dict[int, LinkFacts] = {}
    for msg in ipr.get_links():
        name = msg.get("ifname")
        kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        link = LinkFacts(name=name, index=msg["index"], kind=kind, up=bool(msg["flags"] & IFF_UP),
                         operstate=msg.get("operstate"))
        link.wireguard = kind == "wireguard" or (kind == "tun" and (WG_SOCKETS / f"{name}.sock").exists())
        links[name] = by_index[msg["index"]] = link
    for msg in ipr.get_addr():
        link = by_index.get(msg["index"])
        if link is not None:
            link.addresses.append(f"{msg.get('address')}/{msg['prefixlen']}")
    return links


def _route_facts(ipr: Any, links: dict[str, LinkFacts], targets: dict[int, str]) -> tuple[dict, dict]:
    """The uplink (main-table default route's device, not a tunnel) and where a plain packet goes."""
    names = {link.index: name for name, link in links.items()}
    uplinks: dict[str, str | None] = {}
    routes: dict[str, str | None] = {}
    for family, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        best: tuple[int, str] | None = None
        try:
            table = ipr.get_routes(family=af, table=MAIN_TABLE)
        except Exception:  # noqa: BLE001 - no IPv6 in this kernel, or netlink refuses: no uplink
            table = []
        for route in table:
            if route["dst_len"] != 0 or route.get("type", 1) != 1:  # RTN_UNICAST defaults only
                continue
            oif = route.get("oif")
            if oif is None and route.get("multipath"):
                oif = route.get("multipath")[0]["oif"]
            name = names.get(oif)
            if name is None or links[name].wireguard:
                continue
            metric = route.get("priority") or 0
            if best is None or metric < best[0]:
                best = (metric, name)
        uplinks[_family_name(family)] = best[1] if best else None
        try:
            got = ipr.route("get", dst=targets[family])
            routes[_family_name(family)] = names.get(got[0].get("oif")) if got else None
        except Exception:  # noqa: BLE001 - "network unreachable" is an answer: no route
            routes[_family_name(family)] = None
    return uplinks, routes


def _rule_text(msg: Any) -> str:
    parts = [f"{msg.get('priority') or 0}:"]
    if msg["flags"] & FIB_RULE_INVERT:
        parts.append("not")
    if msg.get("fwmark") is not None:
        parts.append(f"fwmark {msg.get('fwmark'):#x}")
    parts.append(f"lookup {msg.get('table')}")
    if msg.get("suppress_prefixlen") not in (None, 0xFFFFFFFF, -1):
        parts.append(f"suppress_prefixlength {msg.get('suppress_prefixlen')}")
    return " ".join(parts)


def _policy_rules(ipr: Any) -> list[str]:
    """Non-default policy routing rules (wg-quick's fwmark rules, typically)."""
    out = []
    for af in (socket.AF_INET, socket.AF_INET6):
        try:
            rules = ipr.get_rules(family=af)
        except Exception:  # noqa: BLE001, S112 - a kernel without IPv6: no IPv6 rules
            continue
        for msg in rules:
            default = msg.get("table") in (253, 254, 255) and not msg.get("fwmark")
            if default and msg.get("suppress_prefixlen") in (None, 0xFFFFFFFF, -1):
                continue
            text = ("ipv4 " if af == socket.AF_INET else "ipv6 ") + _rule_text(msg)
            out.append(text)
    return out


def _read_resolvers(resolv_conf: Path) -> tuple[list[Resolver], list[str]]:
    try:
        servers = parse_resolv_conf(resolv_conf.read_text(errors="replace"))
    except FileNotFoundError:
        servers = []
    except OSError as exc:
        return [], [f"cannot read {resolv_conf}: {exc.strerror}"]
    resolvers = [Resolver(s, "resolv.conf") for s in servers]
    if any(s in RESOLVED_STUBS for s in servers) and RESOLVED_SOCKET.exists():
        try:
            resolvers += parse_resolvectl_dns(run(["resolvectl", "dns"]))
        except WgkillError as exc:
            return resolvers, [f"cannot ask systemd-resolved which servers it uses: {exc}"]
    return resolvers, []


class _Snapshots:
    """One ``iptables-save`` per (family, variant), however many interfaces need it."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], Any] = {}

    def get(self, family: int, variant: str) -> Any:
        key = (family, variant)
        if key not in self._cache:
            from .firewall.iptables import IptablesFamily

            self._cache[key] = IptablesFamily(family, variant).snapshot()
        return self._cache[key]


def _chain_facts(interface: str, family_name: str, record: statefile.FamilyRecord,
                 snap: Any) -> list[ChainFacts]:
    own = record.chains[0] if record.chains else chain_name(interface)
    # A record without jumps still promised the OUTPUT jump: check that one rather than nothing.
    spec = f'-m comment --comment "{jump_comment(interface)}" -j {own}'
    default = {"chain": "OUTPUT", "target": own, "spec": spec}
    out = []
    for jump in record.jumps or [default]:
        chain = jump.get("target", own)
        hook = jump.get("chain", "OUTPUT")
        facts = ChainFacts(family_name, chain, hook, jump.get("spec", ""), present=chain in snap.chains)
        if facts.present:
            facts.rules = len(snap.rules.get(chain, []))
            facts.live_sha256 = snap.chain_sha256(chain)
        jumps = snap.jumps_to(chain, hook)
        facts.jump_positions = [i for i, _ in jumps]
        facts.jump_specs = [s for _, s in jumps]
        if jumps:
            facts.above = [r for r in snap.rules.get(hook, [])[: jumps[0][0]] if not _is_wgkill_jump(r)]
        if hook == "OUTPUT" and chain == own:
            facts.saved_sha256 = record.saved_sha256
            if record.saved_sha256 is None and len(record.jumps) == 1:
                facts.recorded_rules = record.rules
        out.append(facts)
    return out


def _is_wgkill_jump(spec: str) -> bool:
    """Another tunnel's jump: every chain must pass a packet, so its order does not matter."""
    words = spec.split()
    return (words[-2:-1] == ["-j"] and words[-1].startswith(CHAIN_PREFIX)
            and f'"wgkill:{words[-1][len(CHAIN_PREFIX):].removesuffix("-fwd")}"' in spec)


def _read_interface(name: str, links: dict[str, LinkFacts], ipv6: bool, snaps: _Snapshots) -> InterfaceFacts:
    facts = InterfaceFacts(name, link=links.get(name))
    try:
        facts.state = statefile.load(name)
    except StateError as exc:
        facts.state_error = str(exc)
        return facts
    if facts.link is not None and (facts.link.wireguard or facts.state is not None):
        try:
            facts.wg = parse_wg_dump(run(["wg", "show", name, "dump"]))
        except WgkillError:
            facts.wg = None  # a link that wg cannot read: no handshake to report
    state = facts.state
    if state is None:
        return facts
    for family_name, record in sorted(state.families.items()):
        family = int(family_name[-1])
        if family == 6 and not ipv6:
            continue
        try:
            snap = snaps.get(family, state.iptables_variant)
        except WgkillError as exc:
            facts.read_errors.append(f"cannot read {family_name} rules: {exc}")
            continue
        facts.chains += _chain_facts(name, family_name, record, snap)
        for set_name in record.sets:
            from . import ipset

            try:
                facts.sets.append(SetFacts(set_name, ipset.members_count(set_name)))
            except WgkillError as exc:
                facts.read_errors.append(f"cannot read ipset {set_name}: {exc}")
    facts.postup = _read_postup(state.config, name)  # for the fix lines: the hook's own options
    return facts


def _read_postup(config: str | None, interface: str) -> str | None:
    if not config:
        return None
    try:
        return postup_command(Path(config).read_text(errors="replace"), interface)
    except OSError:
        return None


def gather(interface: str | None = None, *, resolv_conf: Path = RESOLV_CONF,
           targets: dict[int, str] | None = None) -> HostFacts:
    """Read everything the verdict needs; reads only, changes nothing.

    With ``interface``, only that one; otherwise every interface with a state
    file and every WireGuard interface in this network namespace.
    """
    host = HostFacts(uid=os.geteuid(), now=time.time(), ipv6=IPV6_PROC.is_dir(), named=interface)
    if interface is not None:
        validate_interface(interface)
    if host.uid != 0:
        return host
    from pyroute2 import IPRoute  # only status pays for pyroute2's import, never the hooks
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            links = _link_facts(ipr)
            host.uplinks, host.routes = _route_facts(ipr, links, targets or DEFAULT_TARGETS)
            host.policy_rules = _policy_rules(ipr)
    except (OSError, NetlinkError) as exc:
        raise WgkillError(f"cannot read links and routes over netlink: {exc}") from exc
    if interface is not None:
        names = [interface]
    else:
        recorded = []
        for name in statefile.recorded_interfaces():
            try:
                recorded.append(validate_interface(name))
            except WgkillError:
                host.errors.append(f"{statefile.state_dir()}/{name}.json: not an interface name")
        names = sorted(set(recorded) | {n for n, link in links.items() if link.wireguard})
    snaps = _Snapshots()
    host.interfaces = [_read_interface(name, links, host.ipv6, snaps) for name in names]
    host.resolvers, errors = _read_resolvers(resolv_conf)
    host.errors += errors
    return host


# ---- the probe ----------------------------------------------------------------------------


def dns_query(name: str, query_id: int) -> bytes:
    """A minimal DNS query (A, IN, recursion desired), built by hand: no resolver library involved."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split("."))
    return header + labels + b"\0" + struct.pack("!HH", 1, 1)


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    protocol: str  # tcp / udp / dns
    family: int
    target: str
    port: int
    device: str | None


def plan_probes(host: HostFacts, targets: dict[int, str] | None = None, port: int = DEFAULT_PROBE_PORT,
                dns_servers: Sequence[str] | None = None) -> list[ProbeSpec]:
    """TCP, UDP and DNS per family, out the uplink; DNS goes to a resolver outside the tunnel if one is
    configured, else to the target."""
    targets = targets or DEFAULT_TARGETS
    if dns_servers is None:
        tunnel = {_canon(s) for f in host.interfaces if f.state and f.state.dns
                  for s in f.state.dns.get("servers", [])}
        dns_servers = [r.address for r in host.resolvers
                       if r.address not in tunnel and not _is_loopback(r.address)]
    specs = []
    for family in (4, 6):
        device = host.uplinks.get(_family_name(family))
        resolver = next((s for s in dns_servers if ipaddress.ip_address(s).version == family),
                        targets[family])
        specs += [
            ProbeSpec(f"tcp{family}", "tcp", family, targets[family], port, device),
            ProbeSpec(f"udp{family}", "udp", family, targets[family], port, device),
            ProbeSpec(f"dns{family}", "dns", family, resolver, 53, device),
        ]
    return specs


class _Capture:
    """Outgoing packets on the uplinks (``AF_PACKET``), the witness for "it got out"."""

    ETH_P_ALL = 0x0003
    PACKET_OUTGOING = 4

    def __init__(self, devices: Iterable[str]) -> None:
        self.sockets: list[socket.socket] = []
        self.error: str | None = None
        for device in sorted(set(devices)):
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(self.ETH_P_ALL))
                sock.bind((device, self.ETH_P_ALL))
                sock.setblocking(False)
                self.sockets.append(sock)
            except OSError as exc:
                self.error = f"cannot watch {device}: {exc.strerror}"

    def seen(self) -> set[tuple[int, str, int, int]]:
        """(family, destination, IP protocol, source port) of every outgoing packet so far."""
        out = set()
        for sock in self.sockets:
            while True:
                try:
                    data, address = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if address[2] == self.PACKET_OUTGOING:
                    parsed = parse_packet(data)
                    if parsed is not None:
                        out.add(parsed)
            sock.close()
        return out


def parse_packet(data: bytes) -> tuple[int, str, int, int] | None:
    """(family, destination, protocol, source port) of an IPv4/IPv6 packet carrying TCP or UDP."""
    if len(data) >= 20 and data[0] >> 4 == 4:
        ihl = (data[0] & 0x0F) * 4
        proto = data[9]
        dst = socket.inet_ntop(socket.AF_INET, data[16:20])
        offset, family = ihl, 4
    elif len(data) >= 40 and data[0] >> 4 == 6:
        proto = data[6]
        dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
        offset, family = 40, 6
    else:
        return None
    if proto not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) or len(data) < offset + 4:
        return None
    return family, dst, proto, struct.unpack("!H", data[offset:offset + 2])[0]


_REFUSALS = {errno.ECONNREFUSED, errno.EPERM, errno.EACCES, errno.ECONNRESET, errno.EHOSTUNREACH,
             errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def probe(specs: Sequence[ProbeSpec], timeout: float = DEFAULT_PROBE_TIMEOUT) -> list[ProbeResult]:
    """Try each leak at once; each must be refused on this host within ``timeout``.

    "left" means the packet got out: a connection or an answer, no error
    within ``timeout`` (no local refusal is that slow), or the packet seen
    leaving the uplink. "refused" means an immediate local error and nothing
    seen on the uplink.
    """
    results: dict[str, ProbeResult] = {}
    ports: dict[str, int] = {}
    selector = selectors.DefaultSelector()
    capture = _Capture(s.device for s in specs if s.device)
    socks: list[socket.socket] = []
    try:
        for spec in specs:
            if spec.device is None:
                results[spec.name] = _result(
                    spec, "skipped", "no uplink: no default route outside the tunnel in the main table")
                continue
            af = socket.AF_INET if spec.family == 4 else socket.AF_INET6
            kind = socket.SOCK_STREAM if spec.protocol == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(af, kind)
            socks.append(sock)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, spec.device.encode())
                sock.bind(("0.0.0.0" if spec.family == 4 else "::", 0))  # noqa: S104 - the device binds it
                ports[spec.name] = sock.getsockname()[1]
                sock.setblocking(False)
                if spec.protocol == "tcp":
                    code = sock.connect_ex((spec.target, spec.port))
                    if code not in (0, errno.EINPROGRESS):
                        raise OSError(code, os.strerror(code))
                    selector.register(sock, selectors.EVENT_WRITE, spec)
                else:
                    sock.connect((spec.target, spec.port))
                    payload = (dns_query(f"wgkill-probe-{os.urandom(4).hex()}.invalid",
                                         int.from_bytes(os.urandom(2), "big"))
                               if spec.protocol == "dns" else b"wgkill-status probe\n")
                    sock.send(payload)
                    selector.register(sock, selectors.EVENT_READ, spec)
            except OSError as exc:
                results[spec.name] = _error_result(spec, exc.errno)
        deadline = time.monotonic() + timeout
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _events in selector.select(left):
                spec, sock = key.data, key.fileobj
                selector.unregister(sock)
                if spec.protocol == "tcp":
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    results[spec.name] = (_result(spec, "left", "connected") if code == 0
                                          else _error_result(spec, code))
                else:
                    try:
                        sock.recv(4096)
                        results[spec.name] = _result(spec, "left", "answered")
                    except OSError as exc:
                        results[spec.name] = _error_result(spec, exc.errno)
        for key in list(selector.get_map().values()):
            results[key.data.name] = _result(key.data, "left", f"no refusal within {timeout:g}s")
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    seen = capture.seen()
    for spec in specs:
        result = results[spec.name]
        proto = socket.IPPROTO_TCP if spec.protocol == "tcp" else socket.IPPROTO_UDP
        if (spec.family, _canon(spec.target), proto, ports.get(spec.name)) in seen:
            result.outcome = "left"
            result.detail += f"; seen leaving {spec.device}"
        elif capture.error and result.outcome == "refused":
            result.detail += f" ({capture.error})"
    return [results[s.name] for s in specs]


def _result(spec: ProbeSpec, outcome: str, detail: str) -> ProbeResult:
    return ProbeResult(spec.name, spec.protocol, spec.family, spec.target, spec.port, spec.device,
                       outcome, detail)


def _error_result(spec: ProbeSpec, code: int | None) -> ProbeResult:
    if code in _REFUSALS:
        return _result(spec, "refused", _errname(code))
    return _result(spec, "left", f"unexpected error {_errname(code or 0)}: treated as not refused")


# ---- the --json document ------------------------------------------------------------------


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {"severity": p.verdict.name, "code": p.code, "interface": p.interface, "message": p.message,
            "fix": p.fix}


def _interface_dict(s: InterfaceStatus, host: HostFacts) -> dict[str, Any]:
    f = s.facts
    state = f.state
    link = None if f.link is None else {
        "kind": f.link.kind, "up": f.link.up, "operstate": f.link.operstate,
        "addresses": list(f.link.addresses), "wireguard": f.link.wireguard,
    }
    handshake = None if f.wg is None else {
        "peers": f.wg.peers, "latest": f.wg.latest_handshake, "age_seconds": handshake_age(f, host.now),
    }
    killswitch = None
    dns = None
    endpoints: list[dict[str, Any]] = []
    if state is not None:
        applied = parse_utc(state.applied_at)
        killswitch = {
            "engaged_at": state.applied_at,
            "engaged_seconds_ago": None if applied is None else max(0.0, host.now - applied),
            "iptables_variant": state.iptables_variant,
            "lockdown": state.lockdown,
            "ipv6_covered": "ipv6" in state.families or not host.ipv6,
            "chains": [{
                "family": c.family, "chain": c.chain, "hook": c.hook, "present": c.present, "rules": c.rules,
                "jump_position": c.jump_positions[0] if c.jump_positions else None,
                "drifted": None if c.saved_sha256 is None or c.live_sha256 is None
                else c.saved_sha256 != c.live_sha256,
            } for c in f.chains],
            "sets": [{"name": x.name, "entries": x.entries} for x in f.sets],
        }
        endpoints = [{"address": str(e.get("address")), "port": e.get("port"),
                      "name": e.get("name"), "pinned": e.get("name") is None}
                     for e in state.endpoints if isinstance(e, dict)]
        d = state.dns or {}
        dns = {"servers": list(d.get("servers", [])), "lock": bool(d.get("lock")),
               "backend": d.get("backend") or "none", "outside": list(s.dns_outside)}
    return {
        "interface": f.interface, "verdict": s.verdict.name, "summary": s.summary,
        "recorded": state is not None, "link": link, "handshake": handshake, "killswitch": killswitch,
        "endpoints": endpoints, "dns": dns,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The ``--json`` document, version ``SCHEMA_VERSION`` (docs/status.schema.json)."""
    host = report.host
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(host.now)),
        "verdict": report.verdict.name,
        "exit_code": int(report.verdict),
        "summary": report.summary,
        "problems": [_problem_dict(p) for p in report.problems],
        "interfaces": [_interface_dict(s, host) for s in report.interfaces],
        "host": {
            "root": host.uid == 0, "ipv6": host.ipv6,
            "resolvers": [{"address": r.address, "source": r.source} for r in host.resolvers],
            "uplinks": dict(host.uplinks), "routes": dict(host.routes),
            "policy_rules": list(host.policy_rules),
        },
        "probe": None if report.probes is None else [
            {"name": p.name, "protocol": p.protocol, "family": p.family, "target": p.target, "port": p.port,
             "device": p.device, "outcome": p.outcome, "detail": p.detail} for p in report.probes
        ],
    }


def check(interface: str | None = None, *, probe_targets: dict[int, str] | None = None,
          probe_port: int = DEFAULT_PROBE_PORT, probe_timeout: float | None = None) -> Report:
    """Gather, optionally probe (``probe_timeout`` set), and judge: what the CLI calls."""
    host = gather(interface, targets=probe_targets)
    probes = None
    if probe_timeout is not None and host.uid == 0:
        probes = probe(plan_probes(host, probe_targets, probe_port), probe_timeout)
    return judge(host, probes)
