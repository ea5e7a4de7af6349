"""wgkill-render: print the wg-quick lines that wire wgkill into a config.

Starts small (the hook lines for the [Interface] section); full configs,
``--from`` upgrades and snippets come with their own issue.
"""

import shlex
import sys
from collections.abc import Sequence

from ..templating import render
from ..wgconf import load_config
from . import entry
from .args import Parser

PROG = "wgkill-render"


def run(argv: Sequence[str]) -> int:
    parser = Parser(prog=PROG, description="Print wgkill's PostUp/PreDown lines for a wg-quick config.")
    parser.add_argument("--config", metavar="PATH", help="pass --config PATH to wgkill-up")
    args = parser.parse_args(argv)
    options = ""
    if args.config:
        load_config(args.config)  # refuse to wire in a config we cannot read
        options = f" --config {shlex.quote(args.config)}"
    sys.stdout.write(render("hooks.conf.j2", up_options=options))
    return 0


main = entry(PROG, run)
