"""wgkill-up IFACE: engage the kill switch (``PostUp = wgkill-up %i``)."""

import sys
from collections.abc import Sequence

from ..killswitch import engage
from . import entry, say
from .args import Parser

PROG = "wgkill-up"


def run(argv: Sequence[str]) -> int:
    parser = Parser(prog=PROG, description="Block every packet that does not go through IFACE.")
    parser.add_argument("interface", metavar="IFACE")
    parser.add_argument(
        "--config", metavar="PATH", help="wg-quick config (default /etc/wireguard/IFACE.conf)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the iptables-restore payloads, change nothing"
    )
    args = parser.parse_args(argv)
    result = engage(args.interface, config_path=args.config, dry_run=args.dry_run)
    for warning in result.warnings:
        say(PROG, f"warning: {warning}")
    for family, payload in sorted(result.payloads.items()):
        sys.stdout.write(f"# ipv{family}: {'ip6tables' if family == 6 else 'iptables'}-restore -w -n\n")
        sys.stdout.write(payload)
    return 0


main = entry(PROG, run)
