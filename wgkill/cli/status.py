"""wgkill-status [IFACE]: protected, blocking, or leaking — for people and for monitors.

The first line is the verdict in the monitoring-plugin format; the exit code
follows that convention: 0 OK (tunnel up, protected), 1 WARNING (tunnel down,
block holding), 2 CRITICAL (traffic or DNS can leak), 3 UNKNOWN (cannot tell,
and every usage or internal error: one line, ``WGKILL UNKNOWN - ...``).
Everything is decided and formatted in ``wgkill.status``; this module reads
the options and picks the format. A monitor runs it every few seconds: what only an option uses
(JSON, the textfile writer, address parsing) is imported when that option is given.
"""

import os
import sys
from collections.abc import Sequence

from .. import status
from ..errors import UsageError, WgkillError
from ..status import Verdict
from . import entry
from .args import Parser

PROG = "wgkill-status"



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
    parser.add_argument("--probe-excluded", action="store_true",
                        help="also send TCP and UDP probes from the exclusion cgroup, on purpose: they must "
                             "leave by the uplink (proves wgkill-exclude works; never counted as a leak)")
    parser.add_argument("--probe-target", metavar="ADDR", action="append", default=[],
                        help="where probes go, once per family (default 203.0.113.1 and 2001:db8::1)")
    parser.add_argument("--probe-port", metavar="PORT", type=int, default=status.DEFAULT_PROBE_PORT)
    parser.add_argument("--probe-timeout", metavar="SECONDS", type=float,
                        default=status.DEFAULT_PROBE_TIMEOUT,
                        help="how long a probe may go unanswered before it counts as gone out (default 2)")
    return parser


def _targets(values: Sequence[str]) -> dict[int, str]:
    targets = dict(status.DEFAULT_TARGETS)
    if not values:
        return targets
    import ipaddress

    for value in values:
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise UsageError(f"--probe-target {value!r} is not an IP address") from exc
        targets[address.version] = str(address)
    return targets


def _write_textfile(path: str, text: str) -> None:
    """Readers (the textfile collector) see the old file or the new one, never half of one."""
    from pathlib import Path

    from ..fileio import write_atomic

    try:
        write_atomic(Path(path), text.encode(), 0o644, in_place=True)
    except OSError as exc:
        raise WgkillError(f"cannot write {path}: {exc.strerror}") from exc


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    targets = _targets(args.probe_target)
    if not 0 < args.probe_port < 65536:
        raise UsageError("--probe-port must be 1-65535")
    if not 0 < args.probe_timeout <= 60:
        raise UsageError("--probe-timeout must be more than 0 and at most 60 seconds")
    try:
        report = status.check_protection(args.interface, probe_targets=targets, probe_port=args.probe_port,
                                         probe_timeout=args.probe_timeout if args.probe else None,
                                         probe_excluded=args.probe_excluded)
    except UsageError:
        raise
    except WgkillError as exc:  # anything we cannot read is UNKNOWN, in the plugin's own format
        print(f"WGKILL UNKNOWN - {exc}")
        return int(Verdict.UNKNOWN)
    if args.prometheus_file:
        _write_textfile(args.prometheus_file, status.prometheus(report))
    if args.json:
        import json

        sys.stdout.write(json.dumps(status.report_dict(report), indent=2) + "\n")
    elif args.prometheus:
        sys.stdout.write(status.prometheus(report))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        sys.stdout.write(status.human(report, colour))
    return int(report.verdict)


def _unknown(line: str) -> int:
    """Usage and internal errors, in the plugin's format: a monitor must not read them as a verdict."""
    print(f"WGKILL UNKNOWN - {PROG}: {line}", flush=True)
    return int(Verdict.UNKNOWN)


main = entry(PROG, run, failure=_unknown)
