"""wgkill-release IFACE: the one explicit way out of ``--lockdown``; says what it releases."""

from collections.abc import Sequence

from ..guardlink import follow as guard_follows
from ..release import release
from . import entry, say
from .args import Parser

PROG = "wgkill-release"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Lift IFACE's block, lockdown included.")
    parser.add_argument("interface", metavar="IFACE")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    result = release(args.interface, lift_lockdown=True)
    result.warnings += guard_follows()
    for warning in result.warnings:
        say(PROG, f"warning: {warning}")
    if not result.recorded:
        say(PROG, f"nothing recorded for {args.interface}: nothing to release")
        return 0
    chains = sum(r.chain_removed for r in result.removed)
    jumps = sum(r.jumps_removed for r in result.removed)
    say(PROG, f"released {args.interface}: {jumps} jump(s) and the chains of {chains} "
              "family/families removed; traffic flows without the tunnel now")
    return 0


main = entry(PROG, run)
