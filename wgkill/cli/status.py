"""wgkill-status [IFACE]: protected, blocking, or leaking — for people and for monitors.

The first line is the verdict in the monitoring-plugin format; the exit code
follows that convention: 0 OK (tunnel up, protected), 1 WARNING (tunnel down,
block holding), 2 CRITICAL (traffic or DNS can leak), 3 UNKNOWN (cannot tell).
Everything is decided in ``wgkill.status``; this module only formats.
"""

import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import status
from ..errors import UsageError, WgkillError
from ..fileio import replace_file
from ..status import Report, Verdict
from . import entry
from .args import Parser

PROG = "wgkill-status"
_COLOURS = {Verdict.OK: "32", Verdict.WARNING: "33", Verdict.CRITICAL: "31", Verdict.UNKNOWN: "35"}
_DRIFT = {"chain-missing", "jump-missing", "jump-altered", "jump-displaced", "drifted", "set-missing",
          "set-empty"}


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Report whether WireGuard tunnels are protected, blocking or "
                    "leaking (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).")
    parser.add_argument("interface", metavar="IFACE", nargs="?",
                        help="only this interface (default: every recorded or WireGuard interface)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON document (docs/status.schema.json)")
    out.add_argument("--prometheus", action="store_true",
                     help="node_exporter textfile-collector metrics on stdout")
    parser.add_argument("--prometheus-file", metavar="PATH",
                        help="also write the metrics to PATH atomically (e.g. .../textfile/wgkill.prom)")
    parser.add_argument("--probe", action="store_true",
                        help="send real TCP, UDP and DNS packets out the uplink: each must be refused")
    parser.add_argument("--probe-target", metavar="ADDR", action="append", default=[],
                        help="where probes go, once per family (default 203.0.113.1 and 2001:db8::1)")
    parser.add_argument("--probe-port", metavar="PORT", type=int, default=status.DEFAULT_PROBE_PORT)
    parser.add_argument("--probe-timeout", metavar="SECONDS", type=float,
                        default=status.DEFAULT_PROBE_TIMEOUT,
                        help="how long a probe may go unanswered before it counts as gone out (default 2)")
    return parser


def _targets(values: Sequence[str]) -> dict[int, str]:
    targets = dict(status.DEFAULT_TARGETS)
    for value in values:
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise UsageError(f"--probe-target {value!r} is not an IP address") from exc
        targets[address.version] = str(address)
    return targets


# ---- human ------------------------------------------------------------------------------


def _paint(text: str, verdict: Verdict, colour: bool) -> str:
    return f"\033[{_COLOURS[verdict]}m{text}\033[0m" if colour else text


def human(report: Report, colour: bool = False) -> str:
    """The plugin line, one line per problem with its fix, then the facts."""
    lines = [f"WGKILL {_paint(report.verdict.name, report.verdict, colour)} - {report.summary}"]
    for p in report.problems:
        where = f"{p.interface}: " if p.interface else ""
        fix = f" — fix: {p.fix}" if p.fix else ""
        lines.append(f"{_paint(p.verdict.name, p.verdict, colour)} {where}{p.message}{fix}")
    doc = status.report_dict(report)
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
    for p in doc["probe"] or []:
        target = f"[{p['target']}]" if ":" in p["target"] else p["target"]
        lines.append(f"probe {p['name']}: {target}:{p['port']} via {p['device'] or '-'}: "
                     f"{p['outcome']} ({p['detail']})")
    return "\n".join(lines) + "\n"


def _interface_lines(item: dict) -> list[str]:
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
                                                f"handshake {status.ago(age)} ago")
    lines = [head]
    ks = item["killswitch"]
    if ks is not None:
        ago = ks["engaged_seconds_ago"]
        chains = ", ".join(
            f"{c['family']} {c['chain']} " + (f"{c['rules']} rules" if c["present"] else "missing")
            + (" (drifted)" if c["drifted"] else "") for c in ks["chains"])
        lines.append(f"  kill switch  engaged {ks['engaged_at']}"
                     + (f" ({status.ago(ago)} ago)" if ago is not None else "")
                     + f", {ks['iptables_variant']}{', lockdown' if ks['lockdown'] else ''}"
                     + f"; {chains or 'no chains'}"
                     + ("" if ks["ipv6_covered"] else "; IPv6 NOT covered"))
        for s in ks["sets"]:
            lines.append(f"  ipset        {s['name']}: "
                         + ("missing" if s["entries"] is None else f"{s['entries']} entries"))
    if item["endpoints"]:
        lines.append("  endpoints    " + ", ".join(
            f"{e['address']}:{e['port']}" + (" (address)" if e["pinned"] else f" (hostname {e['name']})")
            for e in item["endpoints"]))
    dns = item["dns"]
    if dns is not None:
        if dns["servers"]:
            lock = "on" if dns["lock"] else "OFF"
            text = f"tunnel {' '.join(dns['servers'])}, lock {lock}, {dns['backend']}"
            if dns["outside"]:
                text += f"; also configured, outside the tunnel: {' '.join(dns['outside'])}"
        else:
            text = "not set by wgkill (no DNS = in the config, no --dns)"
        lines.append(f"  dns          {text}")
    return lines


# ---- prometheus -------------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(report: Report) -> str:
    """node_exporter textfile-collector format: HELP and TYPE, then one sample per interface."""
    per_iface: dict[str, list[tuple[str, float]]] = {"protected": [], "blocking": [], "drifted": [],
                                                     "handshake_age_seconds": []}
    for s in report.interfaces:
        name = s.facts.interface
        codes = {p.code for p in s.problems}
        per_iface["protected"].append((name, float(s.verdict is Verdict.OK)))
        per_iface["blocking"].append((name, float(s.verdict is Verdict.WARNING)))
        per_iface["drifted"].append((name, float(bool(codes & _DRIFT))))
        age = status.handshake_age(s.facts, report.host.now)
        if age is not None:
            per_iface["handshake_age_seconds"].append((name, age))
    helps = {
        "protected": "1 if the tunnel is up and its kill switch holds exactly as applied.",
        "blocking": "1 if the tunnel is down and the kill switch blocks (safe, offline).",
        "drifted": "1 if a kill-switch chain, jump or set is missing or differs from what was applied.",
        "handshake_age_seconds": "Seconds since the latest WireGuard handshake of any peer.",
    }
    out = ["# HELP wgkill_status Verdict as a monitoring-plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, "
           "3 UNKNOWN.", "# TYPE wgkill_status gauge", f"wgkill_status {int(report.verdict)}"]
    for metric, samples in per_iface.items():
        out += [f"# HELP wgkill_{metric} {helps[metric]}", f"# TYPE wgkill_{metric} gauge"]
        out += [f'wgkill_{metric}{{interface="{_label(n)}"}} {_number(v)}' for n, v in samples]
    if report.probes is not None:
        out += ["# HELP wgkill_probe_leaked 1 if this probe's packet got out of the uplink.",
                "# TYPE wgkill_probe_leaked gauge"]
        out += [f'wgkill_probe_leaked{{probe="{_label(p.name)}"}} {int(p.outcome == "left")}'
                for p in report.probes if p.outcome != "skipped"]
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_atomic(path: str, text: str) -> None:
    """Readers (the textfile collector) see the old file or the new one, never half of one."""
    try:
        replace_file(Path(path), text.encode(), 0o644)
    except OSError as exc:
        raise WgkillError(f"cannot write {path}: {exc.strerror}") from exc


# ---- entry ------------------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    targets = _targets(args.probe_target)
    if not 0 < args.probe_port < 65536:
        raise UsageError("--probe-port must be 1-65535")
    if not 0 < args.probe_timeout <= 60:
        raise UsageError("--probe-timeout must be more than 0 and at most 60 seconds")
    try:
        report = status.check(args.interface, probe_targets=targets, probe_port=args.probe_port,
                              probe_timeout=args.probe_timeout if args.probe else None)
    except UsageError:
        raise
    except WgkillError as exc:  # anything we cannot read is UNKNOWN, in the plugin's own format
        print(f"WGKILL UNKNOWN - {exc}")
        return int(Verdict.UNKNOWN)
    if args.prometheus_file:
        write_atomic(args.prometheus_file, prometheus(report))
    if args.json:
        sys.stdout.write(json.dumps(status.report_dict(report), indent=2) + "\n")
    elif args.prometheus:
        sys.stdout.write(prometheus(report))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        sys.stdout.write(human(report, colour))
    return int(report.verdict)


main = entry(PROG, run)
