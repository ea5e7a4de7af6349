"""wgkill-render: a ready-to-use wg-quick config with wgkill's hooks, an upgrade, or a snippet.

Thin on purpose: every check and decision is in ``wgkill.render``, which
raises before anything is produced, so a bad value leaves stdout empty.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from .. import render
from ..firewall import CHOICES
from . import entry, say
from .args import Parser

PROG = "wgkill-render"
EPILOG = """\
`wgkill-render ... > wg0.conf`: the shell empties wg0.conf before wgkill-render
runs, so an error leaves it empty, and `--from wg0.conf > wg0.conf` loses the
config. Prefer --output FILE (written atomically) or --from FILE --in-place."""


def build_parser() -> Parser:
    parser = Parser(prog=PROG, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                    description=(
        "Print a wg-quick config with wgkill's kill-switch hooks (new from flags, or\n"
        "--from an existing config), or a companion snippet."))
    new = parser.add_argument_group("a new config (flags named after the wg-quick keys they fill)")
    new.add_argument("--private-key", metavar="KEY", help="visible to other users in `ps`: prefer the file")
    new.add_argument("--private-key-file", metavar="PATH")
    new.add_argument("--genkey", action="store_true", help="run `wg genkey`; the public key goes to stderr")
    new.add_argument("--address", dest="addresses", action="append", default=[], metavar="IP[/PREFIX]")
    new.add_argument("--dns", action="append", default=[], metavar="ADDRESS|DOMAIN")
    new.add_argument("--mtu", metavar="BYTES")
    new.add_argument("--public-key", metavar="KEY", help="the server's (peer's) public key")
    new.add_argument("--preshared-key-file", metavar="PATH")
    new.add_argument("--endpoint", metavar="HOST:PORT", help="an IPv6 address as [ADDR]:PORT")
    new.add_argument("--allowed-ips", action="append", default=[], metavar="CIDR,...",
                     help="default 0.0.0.0/0, ::/0 (full tunnel)")
    new.add_argument("--split", action="append", default=[], metavar="CIDR,...",
                     help="split tunnel: only these destinations go through the tunnel")
    new.add_argument("--split-file", metavar="PATH",
                     help="large split tunnel: destinations from PATH (one CIDR a line), routed by "
                          "wgkill-up --routes with Table = off")
    new.add_argument("--persistent-keepalive", metavar="SECONDS")
    hooks = parser.add_argument_group("options passed to wgkill-up")
    hooks.add_argument("--allow-lan", action="store_true", help="keep the local network reachable")
    hooks.add_argument("--dns-domain", dest="dns_domains", action="append", default=[], metavar="DOMAIN",
                       help="split DNS: resolve only DOMAIN through the tunnel (repeatable)")
    hooks.add_argument("--no-dns-lock", action="store_true", help="do not lock DNS to the tunnel")
    hooks.add_argument("--config", metavar="PATH", help="wgkill-up reads PATH, not /etc/wireguard/IFACE.conf")
    hooks.add_argument("--backend", default="auto", choices=CHOICES,
                       help="wgkill-up --backend (default auto: nft where it works, else iptables)")
    parser.add_argument("--pin-endpoint", action="store_true",
                        help="resolve hostname endpoints now and write their addresses")
    parser.add_argument("--from", dest="source", metavar="FILE",
                        help="upgrade FILE: add or replace the hooks, keep every other line")
    parser.add_argument("--in-place", action="store_true", help="with --from: write back, keep FILE.bak")
    parser.add_argument("--output", metavar="PATH", help="write PATH atomically instead of printing")
    parser.add_argument("--snippet", choices=render.SNIPPETS,
                        help="a systemd-resolved drop-in, a dnscrypt-proxy fragment, or systemd notes")
    parser.add_argument("--interface", metavar="IFACE", help="the interface named in --snippet output")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    request = render.Request(**vars(args))
    bin_dir = os.path.dirname(os.path.abspath(sys.argv[0]))
    result = render.build(request, bin_dir)
    if request.in_place:
        backup = render.write_in_place(result)
        say(PROG, f"{request.source}: unchanged" if backup is None
            else f"wrote {request.source} (previous version in {backup})")
    elif request.output:
        render.write_config(request.output, result.data, private=result.private)
    else:
        sys.stdout.buffer.write(result.data)
        sys.stdout.flush()
    if result.public_key:
        say(PROG, f"public key: {result.public_key}")
    for warning in result.warnings:
        say(PROG, f"warning: {warning}")
    return 0


main = entry(PROG, run)
