"""The alert rules' test series (contrib/prometheus), taken from the lab, never written by hand.

``capture`` brings a real tunnel up in a Lab and keeps what ``wgkill-status
--prometheus`` prints in each state: healthy (up, protected), blocking (daemon
killed, block holding), leaking (then ``nft flush ruleset``: the block is gone)
and probe-leak (the same with ``--probe``: packets really got out). Only the
interface's random lab name is renamed ``wg0``. ``rule_tests`` turns those
captures into a ``promtool test rules`` file: each state's samples, as node_exporter
would serve them for one host, after ten healthy minutes; stale is the healthy
capture with ``node_textfile_mtime_seconds`` no longer advancing (or gone). The
expected alerts are written here: they are the specification of the rules.

    unshare --net -- python -m wgkill_lab.alerting capture tests/golden/prometheus
    python -m wgkill_lab.alerting tests tests/golden/prometheus > contrib/prometheus/wgkill.rules.test.yml
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .netns import Lab, LabError

STATES = ("healthy", "blocking", "leaking", "probe-leak")
EXIT_CODES = {"healthy": 0, "blocking": 1, "leaking": 2, "probe-leak": 2}
IFACE = "wg0"
HOST = {"instance": "gw1.example:9100", "job": "node"}
TEXTFILE = "wgkill.prom"
ALERTS = ("WgkillLeak", "WgkillProbeLeak", "WgkillBlockHeld", "WgkillTextfileStale")
HEALTHY_MINUTES = 10  # every scenario starts healthy: the alerts fire on a change, not at start-up
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


# ---- from the lab ------------------------------------------------------------------------


def capture(lab: Lab) -> dict[str, str]:
    """Each state's ``wgkill-status --prometheus`` output, in order, from one tunnel."""
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    out = {"healthy": _status(lab, "healthy")}
    lab.kill_daemon(tunnel)
    out["blocking"] = _status(lab, "blocking")
    lab.client("nft", "flush", "ruleset")
    out["leaking"] = _status(lab, "leaking")
    out["probe-leak"] = _status(lab, "probe-leak", "--probe", "--probe-timeout", "1")
    return {state: normalise(text, tunnel.iface) for state, text in out.items()}


def _status(lab: Lab, state: str, *argv: str) -> str:
    done = lab.client("wgkill-status", "--prometheus", *argv, check=False, timeout=60)
    if done.returncode != EXIT_CODES[state]:
        raise LabError(f"{state}: wgkill-status exited {done.returncode}, not {EXIT_CODES[state]}: "
                       f"{done.stdout.strip()[:300]}")
    return done.stdout


def normalise(text: str, iface: str) -> str:
    """The lab's random interface name becomes ``wg0``; nothing else changes."""
    return text.replace(f'interface="{iface}"', f'interface="{IFACE}"')


def comparable(text: str) -> list[str]:
    """The lines of a capture that must not change between runs: the handshake's age is a clock."""
    return [re.sub(r"^(wgkill_handshake_age_seconds\{[^}]*\}) \S+$", r"\1 AGE", line)
            for line in text.splitlines()]


def load(directory: Path) -> dict[str, str]:
    return {state: (directory / f"{state}.prom").read_text() for state in STATES}


# ---- to promtool -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: str  # as printed, without braces ("" for none)
    value: str

    def series(self) -> str:
        extra = ", ".join(f'{k}="{v}"' for k, v in HOST.items())
        return f"{self.name}{{{self.labels + ', ' if self.labels else ''}{extra}}}"


def samples(text: str) -> list[Sample]:
    """The samples of a textfile, in its order (HELP and TYPE lines skipped)."""
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        found.append(Sample(match["name"], match["labels"] or "", match["value"]))
    return found


def _values(before: dict[str, str], after: dict[str, str], key: str, minutes: int) -> str:
    """promtool's notation: HEALTHY_MINUTES samples of ``before``, then ``minutes + 1`` of ``after``
    (``_``: no sample, the series is not in that textfile)."""
    return f"{before.get(key, '_')}x{HEALTHY_MINUTES - 1} {after.get(key, '_')}x{minutes}"


def _transition(first: str, then: str | None, minutes: int, *, fresh: bool = True) -> list[tuple[str, str]]:
    """Input series: ``first``'s samples, then ``then``'s (None: the file is gone), and the textfile's
    mtime, advancing with the clock when ``fresh``, else frozen at the change (or gone with the file)."""
    before = {s.series(): s.value for s in samples(first)}
    after = {s.series(): s.value for s in samples(then)} if then is not None else {}
    series = [(key, _values(before, after, key, minutes)) for key in dict.fromkeys([*before, *after])]
    mtime = f'node_textfile_mtime_seconds{{file="{TEXTFILE}", instance="{HOST["instance"]}", job="node"}}'
    stop = 60 * (HEALTHY_MINUTES - 1)
    if fresh:
        series.append((mtime, f"0+60x{HEALTHY_MINUTES + minutes}"))
    else:
        frozen = f"{stop}x{minutes}" if then is not None else f"_x{minutes}"
        series.append((mtime, f"0+60x{HEALTHY_MINUTES - 1} {frozen}"))
    return series


def _firing(alert: str, **values: str) -> dict[str, dict[str, str]]:
    """The alert as it fires for HOST (``interface``, ``file``, ``value``: what it names)."""
    host = HOST["instance"]
    iface, file, value = values.get("interface", IFACE), values.get("file", TEXTFILE), values.get("value", "")
    spec = {
        "WgkillLeak": ({"severity": "critical", "interface": iface}, {
            "summary": f"{host}: {iface} can leak (wgkill-status CRITICAL)",
            "description": f"Traffic or DNS of {iface} can leave outside the tunnel; the command prints "
                           "each problem and its fix.",
            "command": f"sudo wgkill-status {iface}"}),
        "WgkillProbeLeak": ({"severity": "critical"}, {
            "summary": f"{host}: {value} wgkill probe(s) got out of the uplink",
            "description": f"Packets that must be refused left by the uplink of {host}, outside every "
                           "tunnel.",
            "command": "sudo wgkill-status --probe"}),
        "WgkillBlockHeld": ({"severity": "warning", "interface": iface}, {
            "summary": f"{host}: {iface} down for 15 minutes, block holding",
            "description": f"{iface} is down and wgkill blocks its traffic: no leak, but offline; the "
                           "command says how to bring it back.",
            "command": f"sudo wgkill-status {iface}"}),
        "WgkillTextfileStale": ({"severity": "warning", "file": file}, {
            "summary": f"{host}: wgkill textfile not updated for {value}",
            "description": f"{file} is not updated: wgkill's state on {host} is unknown.",
            "command": "sudo systemctl status wgkill-textfile.timer wgkill-textfile.service"}),
    }
    labels, annotations = spec[alert]
    return {"exp_labels": {**labels, **HOST},
            "exp_annotations": {**annotations, "runbook": f"docs/fleet.md, {alert}"}}


def _checks(minute: int, firing: dict[str, list[dict[str, dict[str, str]]]]) -> list[dict[str, object]]:
    """At ``minute``, every alert: those in ``firing`` as given, all others not firing."""
    return [{"eval_time": f"{minute}m", "alertname": a, "exp_alerts": firing.get(a, [])} for a in ALERTS]


def scenarios(captured: dict[str, str]) -> list[tuple[str, dict[str, object]]]:
    """(comment, promtool test group) for each state; minutes count from the start of the series."""
    healthy, change = captured["healthy"], HEALTHY_MINUTES
    groups = [
        ("healthy for three hours, the textfile fresh: nothing fires, ever",
         _transition(healthy, healthy, 180),
         [c for m in (1, 16, 60, 180) for c in _checks(m, {})]),
        ("blocking from minute 10: a warning once the block has held 15 minutes, nothing else",
         _transition(healthy, captured["blocking"], 40),
         [*_checks(change + 14, {}),
          *_checks(change + 16, {"WgkillBlockHeld": [_firing("WgkillBlockHeld")]})]),
        ("leaking from minute 10 (the block flushed): critical within 5 minutes, never the block warning",
         _transition(healthy, captured["leaking"], 30),
         [*_checks(change, {}),
          *_checks(change + 5, {"WgkillLeak": [_firing("WgkillLeak")]}),
          *_checks(change + 30, {"WgkillLeak": [_firing("WgkillLeak")]})]),
        ("probes got out from minute 10: both critical alerts within 5 minutes",
         _transition(healthy, captured["probe-leak"], 30),
         [*_checks(change + 5, {"WgkillLeak": [_firing("WgkillLeak")],
                                "WgkillProbeLeak": [_firing("WgkillProbeLeak", value=_left(captured))]})]),
        ("stale: the last (healthy) textfile, written at minute 9, served unchanged: a warning once it is"
         " more than 15 minutes old",
         _transition(healthy, healthy, 40, fresh=False), _stale_checks()),
        ("stale: the textfile gone at minute 10 (node_exporter serves nothing of it): the same warning",
         _transition(healthy, None, 40, fresh=False), _stale_checks()),
    ]
    return [(comment, {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
                       "alert_rule_test": checks}) for comment, series, checks in groups]


def _stale_checks() -> list[dict[str, object]]:
    """Written last at minute HEALTHY_MINUTES - 1: 15 minutes old (not yet) and 16 (firing)."""
    written = HEALTHY_MINUTES - 1
    return [*_checks(written + 15, {}),
            *_checks(written + 16, {"WgkillTextfileStale": [_firing("WgkillTextfileStale", value="16m 0s")]})]


def _left(captured: dict[str, str]) -> str:
    leaked = [s for s in samples(captured["probe-leak"]) if s.name == "wgkill_probe_leaked"]
    return str(sum(s.value == "1" for s in leaked))


def rule_tests(captured: dict[str, str], rules: str = "wgkill.rules.yml") -> str:
    """The promtool test file for ``rules`` (a path relative to the test file, or absolute)."""
    lines = ["# Generated by `python -m wgkill_lab.alerting tests` from the series the lab captured",
             "# (tests/golden/prometheus/*.prom: `wgkill-status --prometheus` in each state). Do not edit:",
             "# change the rules' expectations in lab/wgkill_lab/alerting.py and regenerate.",
             "# Run: promtool test rules wgkill.rules.test.yml",
             f"rule_files: [{json.dumps(rules)}]", "evaluation_interval: 1m", "tests:"]
    for comment, group in scenarios(captured):
        lines += [f"  # {comment}", *_yaml(group, 2, first="- ")]
    return "\n".join(lines) + "\n"


def _yaml(value: object, indent: int, first: str = "") -> list[str]:
    """Block-style YAML of dicts, lists and strings (single-quoted, or JSON-quoted: valid YAML)."""
    if isinstance(value, dict):
        out: list[str] = []
        col = indent + len(first)
        for i, (key, item) in enumerate(value.items()):
            lead = " " * indent + first if i == 0 else " " * col
            if isinstance(item, (dict, list)) and item:
                out.append(f"{lead}{key}:")
                out += _yaml(item, col + 2)
            else:
                out.append(f"{lead}{key}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        return [line for item in value for line in _yaml(item, indent, first="- ")]
    return [f"{' ' * indent}{first}{_scalar(value)}"]


def _scalar(value: object) -> str:
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    text = str(value)
    return f"'{text}'" if "'" not in text else json.dumps(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgkill_lab.alerting")
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="run the lab states, write STATE.prom into DIR (unshare --net)")
    cap.add_argument("directory", type=Path)
    gen = sub.add_parser("tests", help="print the promtool test file built from DIR's captures")
    gen.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "capture":
        with Lab() as lab:
            for state, text in capture(lab).items():
                (args.directory / f"{state}.prom").write_text(text)
        return 0
    sys.stdout.write(rule_tests(load(args.directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
