"""The resolvers the system will use: /etc/resolv.conf, and systemd-resolved behind its stub."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import WgkillError
from ..runner import run
from .facts import RESOLVED_STUBS, Nameserver, canonical

RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_SOCKET = Path("/run/systemd/resolve/io.systemd.Resolve")


def parse_resolv_conf(text: str) -> list[str]:
    """``nameserver`` addresses in order (an IPv6 zone like ``%eth0`` is kept off)."""
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and not line.lstrip().startswith(("#", ";")):
            servers.append(canonical(fields[1]))
    return servers


_RESOLVECTL_LINE = re.compile(r"^(Global|Link \d+ \(([^)]+)\)):\s*(.*)$")


def parse_resolvectl_dns(text: str) -> list[Nameserver]:
    """``resolvectl dns`` output: ``Global: a b`` and ``Link 2 (eth0): a b`` lines.

    Servers may carry ``:port``, ``%ifindex`` or ``#name`` suffixes (newer systemd); only the address is kept.
    """
    out = []
    for line in text.splitlines():
        match = _RESOLVECTL_LINE.match(line.strip())
        if not match:
            continue
        link = match.group(2)
        for token in match.group(3).split():
            address = token.split("#")[0]
            if address.startswith("["):  # [2001:db8::1]:53
                address = address[1:].split("]")[0]
            elif address.count(":") == 1:  # 192.0.2.1:53
                address = address.split(":")[0]
            out.append(Nameserver(canonical(address), f"resolved:{link or 'global'}", link))
    return out


def read_nameservers(resolv_conf: Path) -> tuple[list[Nameserver], list[str]]:
    """The nameservers configured, and the read failures (as lines for the report)."""
    try:
        servers = parse_resolv_conf(resolv_conf.read_text(errors="replace"))
    except FileNotFoundError:
        servers = []
    except OSError as exc:
        return [], [f"cannot read {resolv_conf}: {exc.strerror}"]
    resolvers = [Nameserver(s, "resolv.conf") for s in servers]
    if any(s in RESOLVED_STUBS for s in servers) and RESOLVED_SOCKET.exists():
        try:
            resolvers += parse_resolvectl_dns(run(["resolvectl", "dns"]))
        except WgkillError as exc:
            return resolvers, [f"cannot ask systemd-resolved which servers it uses: {exc}"]
    return resolvers, []
