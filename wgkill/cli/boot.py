"""wgkill-boot: re-apply every recorded block at boot, before the network (hooks/wgkill-boot.service)."""

from collections.abc import Sequence

from ..killswitch import boot
from . import entry, say
from .args import Parser

PROG = "wgkill-boot"


def build_parser() -> Parser:
    return Parser(prog=PROG, description="Re-apply every engaged wgkill block (run at boot).")


def run(argv: Sequence[str]) -> int:
    build_parser().parse_args(argv)
    for interface, what in boot():
        say(PROG, f"{interface}: {what}")
    return 0


main = entry(PROG, run)
