"""Reading a wg-quick config the way wg-quick reads it.

Only what wgkill decides on is kept: addresses, DNS, Table, FwMark and each
peer's endpoint and allowed IPs. Keys are case-insensitive, ``#`` starts a
comment anywhere on a line, and list values are split on commas and blanks,
as in wg-quick's ``parse_options``.
"""

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

_DNS_ADDRESS = re.compile(r"(^[0-9.]+$)|(^.*:.*$)")  # wg-quick's own test
_ENDPOINT = re.compile(r"^\[?([^\[\]]+?)\]?:([0-9]{1,5})$")


@dataclass(frozen=True)
class Endpoint:
    """A peer endpoint: ``host`` is an IP literal or a hostname."""

    host: str
    port: int

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``host:port`` or ``[v6]:port``; raise ConfigError if it is neither."""
    match = _ENDPOINT.match(text.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"invalid Endpoint {text!r}: expected HOST:PORT or [IPv6]:PORT")
    host = match.group(1)
    if ":" in host and not text.strip().startswith("["):
        raise ConfigError(f"invalid Endpoint {text!r}: IPv6 addresses need brackets")
    return Endpoint(host, int(match.group(2)))


@dataclass(frozen=True)
class Peer:
    public_key: str | None = None
    endpoint: Endpoint | None = None
    allowed_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class WgQuickConfig:
    path: str
    addresses: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    table: str | None = None
    fwmark: str | None = None
    peers: tuple[Peer, ...] = field(default_factory=tuple)

    @property
    def routes_off(self) -> bool:
        """``Table = off``: wg-quick adds no routes and sets no fwmark."""
        return (self.table or "").lower() == "off"


def _split_list(value: str) -> list[str]:
    return value.replace(",", " ").split()


def parse_config(text: str, path: str = "<config>") -> WgQuickConfig:
    """Parse the text of a wg-quick config; raise ConfigError on a malformed line."""
    section = None
    iface: dict[str, list[str]] = {}
    peers: list[dict[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        if stripped.startswith("["):
            section = stripped.lower()
            if section == "[peer]":
                peers.append({})
            elif section != "[interface]":
                raise ConfigError(f"{path}:{number}: unknown section {stripped}")
            continue
        if "=" not in stripped or section is None:
            raise ConfigError(f"{path}:{number}: expected 'Key = value' inside a section")
        key, value = (part.strip() for part in stripped.split("=", 1))
        target = iface if section == "[interface]" else peers[-1]
        target.setdefault(key.lower(), []).append(value)

    dns_servers, dns_search = [], []
    for value in iface.get("dns", []):
        for item in _split_list(value):
            (dns_servers if _DNS_ADDRESS.match(item) else dns_search).append(item)
    parsed_peers = []
    for peer in peers:
        endpoint = peer.get("endpoint", [None])[-1]
        parsed_peers.append(
            Peer(
                public_key=peer.get("publickey", [None])[-1],
                endpoint=parse_endpoint(endpoint) if endpoint else None,
                allowed_ips=tuple(ip for v in peer.get("allowedips", []) for ip in _split_list(v)),
            )
        )
    return WgQuickConfig(
        path=path,
        addresses=tuple(a for v in iface.get("address", []) for a in _split_list(v)),
        dns_servers=tuple(dns_servers),
        dns_search=tuple(dns_search),
        table=iface.get("table", [None])[-1],
        fwmark=iface.get("fwmark", [None])[-1],
        peers=tuple(parsed_peers),
    )


def load_config(path: str | Path) -> WgQuickConfig:
    """Read and parse ``path``; a missing or unreadable file is a ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read wg-quick config {path}: {reason}") from exc
    return parse_config(text, str(path))
