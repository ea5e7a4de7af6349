"""wgkill-pin IFACE: ``PreUp`` step for hostname endpoints while a block holds (see ``hostpins``)."""

from collections.abc import Sequence

from .. import state as statefile
from ..hostpins import pin
from ..names import validate_interface
from . import entry, say
from .args import Parser

PROG = "wgkill-pin"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Pin IFACE's recorded endpoint addresses in /etc/hosts.")
    parser.add_argument("interface", metavar="IFACE")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    validate_interface(args.interface)
    with statefile.lock():
        for line in pin(args.interface):
            say(PROG, f"pinned {line.split(' #')[0]} until wgkill-up runs")
    return 0


main = entry(PROG, run)
