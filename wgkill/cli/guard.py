"""wgkill-guard: watch every engaged block and put back what other software removes
(``hooks/wgkill-guard.service``; optional)."""

import signal
import sys
from collections.abc import Sequence
from types import FrameType

from .. import guard
from . import entry
from .args import Parser

PROG = "wgkill-guard"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Watch the firewall and the routing rules (netlink events) "
                    "and re-apply any engaged wgkill block, or --routes rule or route, that is missing or "
                    "altered, from its state. Runs in the foreground; one log line per repair.")
    parser.add_argument("--interval", metavar="SECONDS", type=float, default=guard.DEFAULT_INTERVAL,
                        help="check this often while a block uses what sends no event: iptables-legacy, "
                             f"ipset, systemd-resolved (default {guard.DEFAULT_INTERVAL:g})")
    parser.add_argument("--verbose", action="store_true",
                        help="also log one line per check of every recorded block: how many so far, "
                             "and what woke it (start, event, poll)")
    parser.add_argument("--no-hold", action="store_true",
                        help="only repair: do not also hold each block in an nft table of the guard's own "
                             "(flags owner), which no other process can flush or delete")
    return parser


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # through the finally blocks: the socket file is removed too


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    guard.run(lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True), args.interval,
              verbose=args.verbose, hold=not args.no_hold)
    return 0


main = entry(PROG, run)
