"""wgkill-up IFACE: engage the kill switch (``PostUp = wgkill-up %i``)."""

import sys
from collections.abc import Sequence

from ..dns import BACKENDS
from ..firewall import CHOICES
from ..guardlink import follow as guard_follows
from ..killswitch import UpOptions, engage
from . import entry, say
from .args import Parser

PROG = "wgkill-up"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Block every packet that does not go through IFACE.")
    parser.add_argument("interface", metavar="IFACE")
    parser.add_argument(
        "--config", metavar="PATH", help="wg-quick config (default /etc/wireguard/IFACE.conf)"
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="print the payloads (nft -f or iptables-restore), change nothing",
    )
    parser.add_argument(
        "--backend", default="auto", choices=CHOICES,
        help="firewall backend (default: the recorded one, else nft where it works, else iptables)",
    )
    split = parser.add_argument_group("split tunnels")
    split.add_argument("--allowed-ips-file", metavar="PATH",
                       help="the tunnel's destinations, one CIDR per line (split tunnel)")
    split.add_argument("--routes", action="store_true",
                       help="route the split tunnel's destinations through it (use with Table = off)")
    split.add_argument("--block-all", action="store_true",
                       help="block everything outside the tunnel even for a split tunnel")
    more = parser.add_argument_group("beyond the tunnel")
    more.add_argument("--allow-lan", action="store_true",
                      help="keep private and link-local ranges reachable while blocked (not their DNS)")
    more.add_argument("--lan", metavar="CIDR", action="append", default=[],
                      help="a LAN range to keep reachable (repeatable; with or instead of --allow-lan)")
    more.add_argument("--gateway", action="store_true",
                      help="also hold traffic routed through this box (FORWARD) to the tunnel")
    more.add_argument("--lockdown", action="store_true",
                      help="a clean wg-quick down keeps blocking; wgkill-release IFACE lifts it")
    more.add_argument("--allow-iface", metavar="IFACE", action="append", default=[],
                      help="traffic out IFACE passes the block (repeatable; br-+ for every name "
                           "starting br-): container and VM bridges, Tailscale (README, 'Beside the tunnel')")
    more.add_argument("--allow-mark", metavar="VALUE/MASK", action="append", default=[],
                      help="packets whose mark & MASK == VALUE pass the block (repeatable; "
                           "Tailscale's own: 0x80000/0xff0000)")
    more.add_argument("--allow-exclude", action="store_true",
                      help="let programs started with wgkill-exclude (in its cgroup v2) leave by the "
                           "uplink, around this full tunnel and its block; needs cgroup v2")
    dns = parser.add_argument_group("DNS")
    dns.add_argument("--dns", metavar="ADDR[:PORT]", action="append", default=[],
                     help="the tunnel's resolver (repeatable; a port, or [v6]:port, only with "
                          "systemd-resolved); replaces the config's DNS = servers")
    dns.add_argument("--dns-domain", metavar="DOMAIN", action="append", default=[],
                     help="split DNS: only DOMAIN goes to the tunnel's resolvers (repeatable)")
    dns.add_argument("--no-dns-lock", action="store_true",
                     help="do not restrict ports 53/853 to the tunnel's resolvers")
    dns.add_argument("--lock-resolv-conf", action="store_true",
                     help="make /etc/resolv.conf immutable while up (fights NetworkManager/DHCP)")
    dns.add_argument("--dns-backend", default="auto", choices=BACKENDS,
                     help="how to point the host at the tunnel's resolvers (default: detect)")
    return parser


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    options = UpOptions(
        config_path=args.config,
        dry_run=args.dry_run,
        dns=tuple(args.dns),
        dns_domains=tuple(args.dns_domain),
        no_dns_lock=args.no_dns_lock,
        lock_resolv_conf=args.lock_resolv_conf,
        dns_backend=args.dns_backend,
        allowed_ips_file=args.allowed_ips_file,
        block_all=args.block_all,
        allow_lan=args.allow_lan,
        lan=tuple(args.lan),
        gateway=args.gateway,
        lockdown=args.lockdown,
        routes=args.routes,
        allow_interfaces=tuple(args.allow_iface),
        allow_marks=tuple(args.allow_mark),
        allow_exclude=args.allow_exclude,
        backend=args.backend,
    )
    result = engage(args.interface, options)
    if not options.dry_run:
        result.warnings += guard_follows()
    for warning in result.warnings:
        say(PROG, f"warning: {warning}")
    for command, payload in result.payloads.items():
        sys.stdout.write(f"# {command}\n")
        sys.stdout.write(payload)
    return 0


main = entry(PROG, run)
