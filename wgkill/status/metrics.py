"""The report for node_exporter's textfile collector: one gauge per fact a dashboard or alert needs."""

from __future__ import annotations

from .facts import handshake_age
from .verdicts import Report, Verdict

_DRIFT = {"chain-missing", "jump-missing", "jump-altered", "jump-displaced", "drifted", "set-missing",
          "set-empty"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(report: Report) -> str:
    """node_exporter textfile-collector format: HELP and TYPE, then one sample per interface."""
    per_iface: dict[str, list[tuple[str, float]]] = {"interface_status": [], "protected": [], "blocking": [],
                                                     "drifted": [], "handshake_age_seconds": [],
                                                     "excluded_processes": [], "guard_holding": []}
    guard = report.host.guard
    for s in report.interfaces:
        name = s.facts.interface
        codes = {p.code for p in s.problems}
        per_iface["interface_status"].append((name, float(int(s.verdict))))
        per_iface["protected"].append((name, float(s.verdict is Verdict.OK)))
        per_iface["blocking"].append((name, float(s.verdict is Verdict.WARNING)))
        per_iface["drifted"].append((name, float(bool(codes & _DRIFT))))
        if guard is not None and guard.tables_read and s.facts.state is not None:
            per_iface["guard_holding"].append((name, float(name in guard.holding)))
        if s.facts.exclusion is not None:
            per_iface["excluded_processes"].append((name, float(len(s.facts.exclusion.members))))
        age = handshake_age(s.facts, report.host.now)
        if age is not None:
            per_iface["handshake_age_seconds"].append((name, age))
    helps = {
        "interface_status": "This interface's verdict as a monitoring-plugin code: 0 OK, 1 WARNING, "
                            "2 CRITICAL (can leak), 3 UNKNOWN; alerts name the interface from it.",
        "protected": "1 if the tunnel is up and its kill switch holds exactly as applied.",
        "blocking": "1 if the tunnel is down and the kill switch blocks (safe, offline).",
        "drifted": "1 if a kill-switch chain, jump or set is missing or differs from what was applied.",
        "handshake_age_seconds": "Seconds since the latest WireGuard handshake of any peer.",
        "excluded_processes": "Processes in the exclusion cgroup (wgkill-exclude): they leave by the uplink.",
        "guard_holding": "1 if wgkill-guard holds this block in an nft table of its own (no other process "
                         "can flush or delete it).",
    }
    out = ["# HELP wgkill_status Verdict as a monitoring-plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, "
           "3 UNKNOWN.", "# TYPE wgkill_status gauge", f"wgkill_status {int(report.verdict)}"]
    for metric, samples in per_iface.items():
        out += [f"# HELP wgkill_{metric} {helps[metric]}", f"# TYPE wgkill_{metric} gauge"]
        out += [f'wgkill_{metric}{{interface="{_label(n)}"}} {_number(v)}' for n, v in samples]
    if guard is not None:
        out += ["# HELP wgkill_repairs_total Blocks wgkill-guard put back since it started.",
                "# TYPE wgkill_repairs_total counter", f"wgkill_repairs_total {guard.repairs}"]
        if guard.last_repair is not None:
            out += ["# HELP wgkill_last_repair_timestamp_seconds When wgkill-guard last put a block back "
                    "(unix time).", "# TYPE wgkill_last_repair_timestamp_seconds gauge",
                    f"wgkill_last_repair_timestamp_seconds {_number(guard.last_repair)}"]
    if report.probes is not None:
        out += ["# HELP wgkill_probe_leaked 1 if this probe's packet got out of the uplink.",
                "# TYPE wgkill_probe_leaked gauge"]
        out += [f'wgkill_probe_leaked{{probe="{_label(p.name)}"}} {int(p.outcome == "left")}'
                for p in report.probes if p.outcome != "skipped"]
    if report.excluded_probes is not None:
        out += ["# HELP wgkill_probe_excluded_left 1 if this probe, sent from the exclusion cgroup on "
                "purpose, left by the uplink (the exclusion works; not a leak).",
                "# TYPE wgkill_probe_excluded_left gauge"]
        out += [f'wgkill_probe_excluded_left{{probe="{_label(p.name)}"}} {int(p.outcome == "left")}'
                for p in report.excluded_probes if p.outcome != "skipped"]
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
