"""Judging the facts: a verdict per interface and overall, each problem with the command that fixes it.

Monitoring-plugin convention: OK, WARNING (down, the block holds: safe but
offline), CRITICAL (traffic or DNS can leak), UNKNOWN (cannot tell). Reads
nothing, so unit tests feed it synthetic facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum

from ..recordclass import dataclass, field
from .facts import (
    RESOLVED_STUBS,
    HostFacts,
    InterfaceFacts,
    Nameserver,
    canonical,
    handshake_age,
    is_loopback,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a check pays ~4 ms)
if TYPE_CHECKING:
    from .probing import ProbeResult  # only a probing check imports probing


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
    """One interface's verdict, its one-line summary and the problems behind it."""

    facts: InterfaceFacts
    verdict: Verdict
    summary: str
    problems: list[Problem]
    dns_outside: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A whole check: the overall verdict (the exit code), per-interface statuses and any probes."""

    host: HostFacts
    verdict: Verdict
    summary: str
    interfaces: list[InterfaceStatus]
    problems: list[Problem]  # every problem, host-level and per interface
    probes: list[ProbeResult] | None = None
    excluded_probes: list[ProbeResult] | None = None  # --probe-excluded: "left" is the point


def ago(seconds: float) -> str:
    """A duration as the reports show it: 42s, 5m, 3h, 2d."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _reapply_fix(facts: InterfaceFacts) -> str:
    """The command that puts the recorded block back, as exactly as we can name it."""
    iface = facts.interface
    if facts.link is None:
        return "wgkill-boot (re-applies every recorded block as recorded; the tunnel is gone)"
    return facts.postup or f"wgkill-up {iface}"


def chain_problems(facts: InterfaceFacts) -> list[Problem]:
    """What of the recorded block is missing or altered (chains, jumps, sets, --routes pieces)."""
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
    return out + _set_problems(facts, fix) + _route_problems(facts, fix)


def _set_problems(facts: InterfaceFacts, fix: str) -> list[Problem]:
    out, iface = [], facts.interface
    for s in facts.sets:
        if s.entries is None:
            out.append(Problem(Verdict.CRITICAL, "set-missing",
                               f"ipset {s.name} (the tunnel's destinations) is gone", fix, iface))
        elif s.entries == 0 and s.expected != 0:  # empty by design when the list has no such prefix
            out.append(Problem(Verdict.CRITICAL, "set-empty",
                               f"ipset {s.name} is empty: no destination is held to the tunnel", fix, iface))
        elif s.expected is not None and s.entries != s.expected:
            out.append(Problem(Verdict.CRITICAL, "set-altered",
                               f"ipset {s.name} holds {s.entries} entries, {s.expected} were applied",
                               fix, iface))
    return out


def _route_problems(facts: InterfaceFacts, fix: str) -> list[Problem]:
    out, iface = [], facts.interface
    up = facts.link is not None and facts.link.up
    for gap in facts.route_gaps:
        if gap.kind == "rule":
            out.append(Problem(Verdict.CRITICAL, "route-rule-missing",
                               f"{gap.family} policy rule `{gap.what}` is gone: the listed destinations "
                               "are not routed into the tunnel", fix, iface))
        elif gap.kind == "dev-route" and up:
            out.append(Problem(Verdict.WARNING, "route-missing",
                               f"{gap.family} route `{gap.what}` is gone: the listed destinations are "
                               "refused while the tunnel is up", fix, iface))
        elif gap.kind in ("route", "chain"):
            out.append(Problem(Verdict.CRITICAL, f"routes-{gap.kind}-missing",
                               f"{gap.family} {gap.what} (--routes) is gone", fix, iface))
    return out


def _exclusion_problems(facts: InterfaceFacts) -> list[Problem]:
    """A broken exclusion fails closed (excluded programs meet the tunnel or the block), so it is a
    WARNING, never better: an exclusion can only add problems, never turn one into OK."""
    x = facts.exclusion
    if x is None:
        return []
    fix = _reapply_fix(facts)
    if x.error is not None:
        return [Problem(Verdict.WARNING, "exclusion-broken", f"exclusion: {x.error}", fix, facts.interface)]
    missing = [family for family, ok in sorted(x.rules.items()) if not ok]
    if not x.present or missing:
        what = f"cgroup {x.path} is gone" if not x.present else f"{', '.join(missing)} marking rules missing"
        return [Problem(Verdict.WARNING, "exclusion-broken",
                        f"exclusion: {what}: excluded programs go through the tunnel (or are blocked)",
                        fix, facts.interface)]
    return []


def dns_outside(facts: InterfaceFacts, resolvers: Sequence[Nameserver]) -> list[str]:
    """Configured resolvers that are neither the tunnel's nor on loopback nor on the tunnel link."""
    tunnel = {canonical(s) for s in (facts.state.dns.servers if facts.state else ())}
    outside = []
    for r in resolvers:
        address = canonical(r.address)
        if address in tunnel or r.link == facts.interface or is_loopback(address):
            continue
        if r.source == "resolv.conf" and address in RESOLVED_STUBS:
            continue
        if address not in outside:
            outside.append(address)
    return outside


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
    problems += chain_problems(facts)
    for family in (4, 6) if host.ipv6 else (4,):
        if family not in facts.state.families_covered():
            problems.append(Problem(Verdict.CRITICAL, f"ipv{family}-uncovered",
                                    f"no ipv{family} rules were recorded, and this kernel has ipv{family}: "
                                    "it can leak",
                                    _reapply_fix(facts), iface))
    problems += _exclusion_problems(facts)
    dns = facts.state.dns
    outside = dns_outside(facts, host.resolvers)
    if dns.servers and not dns.lock and outside:
        fix = (facts.postup or f"wgkill-up {iface}").replace(" --no-dns-lock", "")
        problems.append(Problem(Verdict.CRITICAL, "dns-unlocked",
                                f"DNS lock is off and the system also uses {', '.join(outside)}, "
                                "not a resolver of the tunnel: queries can reach it", fix, iface))
    problems += _link_problems(facts)
    verdict = worst(p.verdict for p in problems)
    return InterfaceStatus(facts, verdict, _summary(verdict, problems, facts, host.now), problems, outside)


def _link_problems(facts: InterfaceFacts) -> list[Problem]:
    """A recorded tunnel that is gone or down: the block holds, which is a WARNING, not a leak."""
    iface, link = facts.interface, facts.link
    if link is None:
        hint = (f"wgkill-release {iface}" if facts.state is not None and facts.state.lockdown
                else f"wgkill-down {iface}")
        return [Problem(Verdict.WARNING, "tunnel-gone",
                        f"{iface} is gone (daemon killed or interface deleted); the block holds",
                        f"wg-quick up {iface} (reconnects with the block held), or {hint} to go "
                        "online without the tunnel", iface)]
    if not link.up:
        return [Problem(Verdict.WARNING, "tunnel-down", f"{iface} is down; the block holds",
                        f"ip link set {iface} up, or wg-quick down {iface} to release the block", iface)]
    return []


_SHORT = {
    "chain-missing": "rules missing", "jump-missing": "jump missing", "jump-altered": "jump altered",
    "jump-displaced": "jump not first", "drifted": "rules drifted", "set-missing": "ipset missing",
    "set-empty": "ipset empty", "set-altered": "ipset altered",
    "route-rule-missing": "routing rule missing", "route-missing": "route missing",
    "routes-route-missing": "fallback route missing", "routes-chain-missing": "routing marks missing",
    "ipv6-uncovered": "IPv6 uncovered", "ipv4-uncovered": "IPv4 uncovered",
    "dns-unlocked": "DNS can leak", "exclusion-broken": "exclusion broken",
    "rules-unreadable": "rules unreadable",
}


def _summary(verdict: Verdict, problems: list[Problem], facts: InterfaceFacts, now: float) -> str:
    excluded = ""
    if facts.exclusion is not None and facts.exclusion.members:
        excluded = f", {len(facts.exclusion.members)} process(es) excluded"
    if verdict is Verdict.OK:
        age = handshake_age(facts, now)
        return "protected" + (f" (handshake {ago(age)} ago)" if age is not None
                              else " (no handshake yet)") + excluded
    codes = {p.code for p in problems}
    if verdict is Verdict.WARNING and codes & {"tunnel-gone", "tunnel-down"}:
        gone = "tunnel-gone" in codes
        return f"{'gone' if gone else 'down'}, block holding (safe, offline){excluded}"
    words = [_SHORT.get(p.code, p.code) for p in problems if p.verdict is verdict]
    return ", ".join(dict.fromkeys(words)) + (": can leak" if verdict is Verdict.CRITICAL else "")


def judge(host: HostFacts, probes: list[ProbeResult] | None = None,
          excluded_probes: list[ProbeResult] | None = None) -> Report:
    """The overall verdict: the worst of every interface's, the host's and the probe's.

    ``excluded_probes`` went out of the exclusion cgroup on purpose: their getting out is
    the exclusion working, never a leak; their being stopped is a WARNING (it fails closed)."""
    if host.uid != 0:
        problem = Problem(Verdict.UNKNOWN, "not-root",
                          f"running as uid {host.uid}: the firewall and the state can only be read as root",
                          "sudo wgkill-status")
        return Report(host, Verdict.UNKNOWN, "must be run as root", [], [problem], probes, excluded_probes)
    statuses = [judge_interface(f, host) for f in host.interfaces]
    problems = [Problem(Verdict.UNKNOWN, "unreadable", e) for e in host.errors]
    for s in statuses:
        problems += s.problems
    problems += _probe_problems(statuses, probes, excluded_probes)
    verdict = worst(p.verdict for p in problems)
    if not statuses and not host.errors:
        verdict = worst([verdict, Verdict.UNKNOWN])
        summary = "no WireGuard interface and no wgkill state: nothing to check"
    else:
        summary = _summary_line(statuses, probes, excluded_probes)
    return Report(host, verdict, summary, statuses, problems, probes, excluded_probes)


def _probe_problems(statuses: list[InterfaceStatus], probes: list[ProbeResult] | None,
                    excluded_probes: list[ProbeResult] | None) -> list[Problem]:
    """A probe that got out is a leak; an excluded probe that did not is a broken exclusion."""
    problems = []
    left = [p for p in probes or [] if p.outcome == "left"]
    if left:
        recorded = [s.facts for s in statuses if s.facts.state is not None]
        fix = _reapply_fix(recorded[0]) if len(recorded) == 1 else "wgkill-up IFACE for each tunnel"
        problems.append(Problem(
            Verdict.CRITICAL, "probe-leaked",
            "probe: " + ", ".join(f"{p.name} to {p.target} got out via {p.device} ({p.detail})"
                                  for p in left),
            fix))
    stopped = [p for p in excluded_probes or [] if p.outcome != "left"]
    if stopped:
        problems.append(Problem(
            Verdict.WARNING, "exclusion-broken",
            "probe-excluded: " + ", ".join(f"{p.name} to {p.target} {p.outcome} ({p.detail})"
                                           for p in stopped)
            + ": excluded programs do not get out by the uplink",
            "wgkill-up IFACE --allow-exclude"))
    return problems


def _summary_line(statuses: list[InterfaceStatus], probes: list[ProbeResult] | None,
                  excluded_probes: list[ProbeResult] | None) -> str:
    summary = "; ".join(f"{s.facts.interface} {s.summary}" for s in statuses) or "cannot read"
    if probes is not None:
        got_out = sum(p.outcome == "left" for p in probes)
        tried = sum(p.outcome != "skipped" for p in probes)
        summary += f"; probe: {got_out} of {tried} got out" if got_out else f"; probe: {tried} refused"
    if excluded_probes is not None:
        out = sum(p.outcome == "left" for p in excluded_probes)
        summary += f"; excluded probe: {out} of {len(excluded_probes)} left by the uplink"
    return summary
