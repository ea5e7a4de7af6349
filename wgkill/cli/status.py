"""wgkill-status [IFACE]: is each recorded interface protected, blocking, or leaking?

The first line is the verdict in the monitoring-plugin format and the exit
code follows that convention: 0 OK, 1 WARNING (tunnel down, block holding),
2 CRITICAL (rules missing: traffic can leak), 3 UNKNOWN (cannot tell).
"""

import os
from collections.abc import Sequence

from .. import state as statefile
from ..errors import PrerequisiteError, StateError, WgkillError
from ..firewall.iptables import IptablesFamily
from ..ifname import chain_name, validate_interface
from ..killswitch import ipv6_available
from . import entry
from .args import Parser

PROG = "wgkill-status"
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
_WORD = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def _check(interface: str) -> tuple[int, str]:
    try:
        recorded = statefile.load(interface)
    except StateError as exc:
        return UNKNOWN, str(exc)
    if recorded is None:
        return UNKNOWN, f"{interface}: nothing recorded"
    chain = chain_name(interface)
    missing = []
    for name in sorted(recorded.families):
        family = int(name[-1])
        if family == 6 and not ipv6_available():
            continue
        snap = IptablesFamily(family, recorded.iptables_variant).snapshot()
        if chain not in snap.chains or [i for i, _ in snap.jumps_to(chain)] != [0]:
            missing.append(name)
    if missing:
        return CRITICAL, f"{interface} rules missing or moved ({', '.join(missing)}): traffic can leak"
    if os.path.exists(f"/sys/class/net/{interface}/flags"):
        flags = int(open(f"/sys/class/net/{interface}/flags").read(), 16)
        if flags & 0x1:  # IFF_UP
            return OK, f"{interface} protected"
    return WARNING, f"{interface} down, block holding (safe, offline)"


def run(argv: Sequence[str]) -> int:
    parser = Parser(prog=PROG, description="Report whether recorded tunnels are protected.")
    parser.add_argument("interface", metavar="IFACE", nargs="?")
    args = parser.parse_args(argv)
    if args.interface is not None:
        validate_interface(args.interface)
    if os.geteuid() != 0:
        print("WGKILL UNKNOWN - must be run as root to read the firewall")
        return UNKNOWN
    names = [args.interface] if args.interface is not None else statefile.recorded_interfaces()
    if not names:
        print("WGKILL UNKNOWN - no interface has wgkill state")
        return UNKNOWN
    results = []
    for name in names:
        try:
            results.append(_check(name))
        except (PrerequisiteError, WgkillError) as exc:
            results.append((UNKNOWN, f"{name}: {exc}"))
    worst = max(code for code, _ in results)
    print(f"WGKILL {_WORD[worst]} - " + "; ".join(text for _, text in results))
    return worst


main = entry(PROG, run)
