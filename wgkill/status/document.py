"""The ``--json`` document (docs/status.schema.json), version ``SCHEMA_VERSION``.

The text report is read from it too, so the two always agree.
"""

from __future__ import annotations

import time

from ..firewall.facts import ChainFacts
from .facts import HostFacts, InterfaceFacts, handshake_age
from .verdicts import InterfaceStatus, Problem, Report

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a check pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

    from .probing import ProbeResult

SCHEMA_VERSION = 1


def parse_utc(text: str) -> float | None:
    """``applied_at`` (``YYYY-MM-DDTHH:MM:SSZ``, as wgkill writes it) as unix time; None if it is not
    in that form. By hand, not ``time.strptime``: its imports (``_strptime``, ``calendar``,
    ``datetime``, ``locale``) would be paid on every check (issue 21)."""
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if len(text) != 20 or text[4::3] != "--T::Z" or not all(f.isascii() and f.isdigit() for f in fields):
        return None
    year, month, day, hour, minute, second = map(int, fields)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or not 1 <= day <= _MONTH_DAYS[month - 1] + (leap and month == 2):
        return None
    if hour > 23 or minute > 59 or second > 61:
        return None
    return float(_days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60 + second)


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's ``days_from_civil``)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468


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
            "backend": state.backend,
            "iptables_variant": {f"ipv{k}": v.variant for k, v in sorted(state.families.items())} or None,
            "lockdown": state.lockdown,
            "ipv6_covered": 6 in state.families_covered() or not host.ipv6,
            "chains": [{
                "family": c.family, "chain": c.chain, "hook": c.hook, "present": c.present, "rules": c.rules,
                "jump_position": c.jump_positions[0] if c.jump_positions else None,
                "drifted": _drifted(c),
            } for c in f.chains],
            "sets": [{"name": x.name, "entries": x.entries} for x in f.sets],
        }
        endpoints = [{"address": e.address, "port": e.port, "name": e.name, "pinned": e.name is None}
                     for e in state.endpoints]
        dns = {"servers": list(state.dns.servers), "lock": state.dns.lock,
               "backend": state.dns.backend or "none", "outside": list(s.dns_outside)}
    return {
        "interface": f.interface, "verdict": s.verdict.name, "summary": s.summary,
        "recorded": state is not None, "link": link, "handshake": handshake, "killswitch": killswitch,
        "endpoints": endpoints, "dns": dns, "exclusion": _exclusion_dict(f),
        "guard_holding": _holding(f, host),
    }


def _holding(f: InterfaceFacts, host: HostFacts) -> bool | None:
    """Whether wgkill-guard holds this block in a table of its own; None when unknown (not root,
    tables unreadable) or when nothing is recorded to hold."""
    if host.guard is None or not host.guard.tables_read or f.state is None:
        return None
    return f.interface in host.guard.holding


def _guard_dict(host: HostFacts) -> dict[str, Any] | None:
    g = host.guard
    if g is None:
        return None
    return {"running": g.running, "pid": g.pid, "repairs": g.repairs, "last_repair": g.last_repair,
            "last_repair_interface": g.last_repair_interface, "holding": list(g.holding)}


def _exclusion_dict(f: InterfaceFacts) -> dict[str, Any] | None:
    x = f.exclusion
    if x is None:
        return None
    return {"cgroup": x.cgroup, "path": x.path, "present": x.present, "processes": len(x.members),
            "members": [{"pid": pid, "command": command} for pid, command in x.members],
            "rules": dict(x.rules), "error": x.error}


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
            "guard": _guard_dict(host),
        },
        "probe": _probes(report.probes),
        "probe_excluded": _probes(report.excluded_probes),
    }


def _probes(probes: list[ProbeResult] | None) -> list[dict[str, Any]] | None:
    return None if probes is None else [
        {"name": p.name, "protocol": p.protocol, "family": p.family, "target": p.target, "port": p.port,
         "device": p.device, "outcome": p.outcome, "detail": p.detail} for p in probes
    ]


def _drifted(c: ChainFacts) -> bool | None:
    """Whether the chain differs from what was applied: by fingerprint (iptables) or by rule
    count (nft, and iptables records without one); None when nothing can tell."""
    if c.saved_sha256 is not None and c.live_sha256 is not None:
        return c.saved_sha256 != c.live_sha256
    if c.recorded_rules is not None and c.rules is not None:
        return c.rules != c.recorded_rules
    return None
