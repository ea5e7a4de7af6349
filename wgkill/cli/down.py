"""wgkill-down IFACE: release the kill switch (``PreDown = wgkill-down %i``).

Exit 0 when nothing is recorded: a failing PreDown would stop ``wg-quick down``.
"""

from collections.abc import Sequence

from ..guardlink import follow as guard_follows
from ..release import release
from . import entry, say
from .args import Parser

PROG = "wgkill-down"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Remove exactly the rules wgkill-up recorded for IFACE.")
    parser.add_argument("interface", metavar="IFACE")
    parser.add_argument(
        "--force",
        action="store_true",
        help="state corrupt or lost: remove wgkill's own chains for IFACE, found by name",
    )
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    result = release(args.interface, force=args.force)
    result.warnings += guard_follows()
    for warning in result.warnings:
        say(PROG, f"warning: {warning}")
    if result.kept_for_lockdown:
        say(PROG, f"{args.interface}: lockdown: the block stays (wgkill-release {args.interface} lifts it)")
    elif not result.recorded and not any(r.anything for r in result.removed):
        say(PROG, f"nothing recorded for {args.interface}: nothing to remove")
    elif result.recorded and not all(r.anything for r in result.removed):
        say(PROG, f"{args.interface}: some recorded rules were already gone; removed the rest")
    return 0


main = entry(PROG, run)
