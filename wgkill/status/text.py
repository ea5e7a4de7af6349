"""The report for people: the monitoring-plugin line, one line per problem with its fix, then the facts.

Read from the ``--json`` document, so both always say the same.
"""

from __future__ import annotations

from ..firewall import backend_class
from .document import report_dict
from .verdicts import Report, Verdict, ago

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a check pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

_COLOURS = {Verdict.OK: "32", Verdict.WARNING: "33", Verdict.CRITICAL: "31", Verdict.UNKNOWN: "35"}


def _paint(text: str, verdict: Verdict, colour: bool) -> str:
    return f"\033[{_COLOURS[verdict]}m{text}\033[0m" if colour else text


def human(report: Report, colour: bool = False) -> str:
    """The plugin line, one line per problem with its fix, then the facts."""
    lines = [f"WGKILL {_paint(report.verdict.name, report.verdict, colour)} - {report.summary}"]
    for p in report.problems:
        where = f"{p.interface}: " if p.interface else ""
        fix = f" — fix: {p.fix}" if p.fix else ""
        lines.append(f"{_paint(p.verdict.name, p.verdict, colour)} {where}{p.message}{fix}")
    doc = report_dict(report)
    for item in doc["interfaces"]:
        lines += _interface_lines(item)
    host = doc["host"]
    if host["root"]:
        up = ", ".join(f"{k} {v or 'none'}" for k, v in host["uplinks"].items())
        via = ", ".join(f"{k} {v or 'no route'}" for k, v in host["routes"].items())
        lines.append(f"host: uplink {up}; plain packets leave via {via}")
        if host["resolvers"]:
            lines.append("  resolvers  "
                         + ", ".join(f"{r['address']} ({r['source']})" for r in host["resolvers"]))
        if host["policy_rules"]:
            lines.append("  policy     " + "; ".join(host["policy_rules"]))
        lines.append(_guard_line(host["guard"], doc["generated_at"]))
    for p in (doc["probe"] or []) + (doc["probe_excluded"] or []):
        target = f"[{p['target']}]" if ":" in p["target"] else p["target"]
        lines.append(f"probe {p['name']}: {target}:{p['port']} via {p['device'] or '-'}: "
                     f"{p['outcome']} ({p['detail']})")
    return "\n".join(lines) + "\n"


def _interface_lines(item: dict[str, Any]) -> list[str]:
    lines = [_head(item)]
    if item["killswitch"] is not None:
        lines += _killswitch_lines(item["killswitch"])
    if item["endpoints"]:
        lines.append("  endpoints    " + ", ".join(
            f"{e['address']}:{e['port']}" + (" (address)" if e["pinned"] else f" (hostname {e['name']})")
            for e in item["endpoints"]))
    if item["dns"] is not None:
        lines.append(f"  dns          {_dns_text(item['dns'])}")
    if item["guard_holding"] is not None:
        lines.append("  guard        " + ("holds the block in a table of its own (flush-proof)"
                                          if item["guard_holding"] else "does not hold the block"))
    if item["exclusion"] is not None:
        lines.append(f"  exclusion    {_exclusion_text(item['exclusion'])}")
    return lines


def _guard_line(guard: dict[str, Any] | None, now: str) -> str:
    """``guard: running (pid N), 3 repairs, the last 2m ago (wg0)``, or ``guard: not running``."""
    if guard is None or not guard["running"]:
        return "  guard      not running"
    text = f"  guard      running (pid {guard['pid']}), {guard['repairs']} repair(s)"
    if guard["last_repair"] is not None:
        from .document import parse_utc

        age = max(0.0, (parse_utc(now) or guard["last_repair"]) - guard["last_repair"])
        text += f", the last {ago(age)} ago ({guard['last_repair_interface']})"
    return text


def _head(item: dict[str, Any]) -> str:
    head = f"{item['interface']}: {item['verdict']}"
    link = item["link"]
    if link is None:
        head += ", interface gone"
    else:
        head += f", {'up' if link['up'] else 'down'}"
        if link["addresses"]:
            head += " " + " ".join(link["addresses"])
    hs = item["handshake"]
    if hs is not None:
        age = hs["age_seconds"]
        head += f", {hs['peers']} peer(s), " + ("no handshake yet" if age is None else
                                                f"handshake {ago(age)} ago")
    return head


def _killswitch_lines(ks: dict[str, Any]) -> list[str]:
    engaged = ks["engaged_seconds_ago"]
    chains = ", ".join(
        f"{c['family']} {c['chain']} " + (f"{c['rules']} rules" if c["present"] else "missing")
        + (" (drifted)" if c["drifted"] else "") for c in ks["chains"])
    lines = [f"  kill switch  engaged {ks['engaged_at']}"
             + (f" ({ago(engaged)} ago)" if engaged is not None else "")
             + f", {_backend_words(ks)}{', lockdown' if ks['lockdown'] else ''}"
             + f"; {chains or 'no chains'}"
             + ("" if ks["ipv6_covered"] else "; IPv6 NOT covered")]
    for s in ks["sets"]:
        lines.append(f"  {backend_class(ks['backend']).set_word:<12} {s['name']}: "
                     + ("missing" if s["entries"] is None else f"{s['entries']} entries"))
    return lines


def _dns_text(dns: dict[str, Any]) -> str:
    if not dns["servers"]:
        return "not set by wgkill (no DNS = in the config, no --dns)"
    text = f"tunnel {' '.join(dns['servers'])}, lock {'on' if dns['lock'] else 'OFF'}, {dns['backend']}"
    if dns["outside"]:
        text += f"; also configured, outside the tunnel: {' '.join(dns['outside'])}"
    return text


def _exclusion_text(x: dict[str, Any]) -> str:
    if x["error"]:
        return f"{x['cgroup']}: {x['error']}"
    rules = ", ".join(f"{k} {'marked' if v else 'MISSING'}" for k, v in x["rules"].items())
    where = x["path"] if x["present"] else f"{x['path']} MISSING"
    who = "; ".join(f"{m['pid']} {m['command']}" for m in x["members"]) or "no process"
    return f"{where} ({rules}): {x['processes']} process(es) leave by the uplink: {who}"


def _backend_words(ks: dict[str, Any]) -> str:
    """``nft``, or ``iptables nf_tables`` (``ipv4 legacy, ipv6 nf_tables`` when the families differ)."""
    variants = ks.get("iptables_variant") or {}
    backend = str(ks["backend"])
    if not variants:
        return backend
    if len(set(variants.values())) == 1:
        return f"{backend} {next(iter(variants.values()))}"
    return f"{backend} " + ", ".join(f"{f} {v}" for f, v in sorted(variants.items()))
