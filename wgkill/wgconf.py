"""Reading a wg-quick config the way wg-quick and ``wg`` read it.

One reader, :func:`read_lines`, for every caller: ``wgkill-up`` (through
:func:`parse_config`) and ``wgkill-render --from`` (through ``confedit``).
It follows the two programs a config passes through:

- wg-quick's ``parse_options`` reads lines split at ``\\n`` only (``while read
  -r line``), cuts each at the first ``#``, trims ``[[:space:]]`` (space, tab,
  ``\\n \\v \\f \\r`` under ``LC_ALL=C``, so a CRLF file reads like an LF one)
  around the key and the value, and keeps its own keys (Address, MTU, DNS,
  Table, Pre/PostUp, Pre/PostDown, SaveConfig) when, and only when, they follow
  a line whose key is exactly ``[Interface]`` (case-insensitive). Every other
  line goes to ``wg setconf``.
- ``wg`` (wireguard-tools ``src/config.c``, ``config_read_line`` and
  ``process_line``) cuts at ``#``, removes every blank (``char_is_space``)
  anywhere in the line, and accepts only ``[Interface]``, ``[Peer]``,
  ListenPort, FwMark and PrivateKey in the first, Endpoint, PublicKey,
  AllowedIPs, PersistentKeepalive and PresharedKey in the second, each with a
  non-empty value; anything else is "Line unrecognized", and
  ``config_read_finish`` refuses a peer without a PublicKey.

A config one of them would refuse is a ConfigError naming the line, so nothing
is built on a config that cannot come up. Only what wgkill decides on is kept
by :func:`parse_config`: addresses, DNS, Table, FwMark and each peer's
endpoint and allowed IPs.
"""

import ipaddress
import re
from pathlib import Path

from .errors import ConfigError
from .recordclass import dataclass, field

INTERFACE = "[interface]"
PEER = "[peer]"
BLANKS = " \t\n\v\f\r"  # wireguard-tools' char_is_space; bash's [[:space:]] under LC_ALL=C
WG_QUICK_KEYS = frozenset({"address", "mtu", "dns", "table", "preup", "predown", "postup", "postdown",
                           "saveconfig"})
WG_KEYS = {INTERFACE: frozenset({"listenport", "fwmark", "privatekey"}),
           PEER: frozenset({"endpoint", "publickey", "allowedips", "persistentkeepalive", "presharedkey"})}
_SPELLING = {"[interface]": "[Interface]", "[peer]": "[Peer]"}
_IFS = re.compile(r"[ \t\n]+")  # bash's default IFS: how wg-quick splits ${value//,/ }
_DNS_ADDRESS = re.compile(r"(^[0-9.]+$)|(^.*:.*$)")  # wg-quick's own test
_HOST_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")  # a hostname's label (getaddrinfo takes _ too)


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
    """``Endpoint`` as wg reads it (``read_endpoint``); ConfigError, one line, if not."""
    try:
        return read_endpoint(text)
    except ValueError as exc:
        raise ConfigError(f"invalid Endpoint {_shown(text)}: {exc}") from None


def read_endpoint(text: str) -> Endpoint:
    """``Endpoint`` as wg reads it; ValueError (the reason) if wg would not, or wgkill cannot.

    The one parser for the config reader, ``wg show`` output and wgkill-render. It splits as
    ``parse_endpoint`` in wireguard-tools' src/config.c: after a leading ``[`` the host runs to the
    first ``]``, which a ``:`` and a non-empty port must follow; else the host is everything before
    the *last* ``:`` (so ``2001:db8::1:51820`` is host 2001:db8::1, port 51820, as wg reads it).
    The port then goes to getaddrinfo as a service: decimal digits read as strtoul would, 0-65535
    (glibc would also take a sign and wrap above 65535: both refused), or a UDP service name. The
    host is an IP literal or a hostname (dot-separated labels of letters, digits, ``-``, ``_``).
    """
    value = text.strip(BLANKS)
    if value.startswith("["):
        host, close, rest = value[1:].partition("]")
        if not close:
            raise ValueError("no ] after [")
        if not rest.startswith(":") or len(rest) == 1:
            raise ValueError("no port after ]")
        service = rest[1:]
    else:
        host, colon, service = value.rpartition(":")
        if not colon or not service:
            raise ValueError("expected HOST:PORT or [IPv6]:PORT")
    return Endpoint(_endpoint_host(host), _endpoint_port(service))


def _endpoint_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError("the host is neither an IP address nor a hostname")
    return host


def _endpoint_port(service: str) -> int:
    if service.isascii() and service.isdecimal():
        if int(service) > 0xFFFF:
            raise ValueError("port above 65535")
        return int(service)
    import socket  # only for a service name: wgconf is on the hook path

    try:
        return socket.getservbyname(service, "udp")
    except (OSError, UnicodeError) as exc:
        raise ValueError("port neither 0-65535 nor a UDP service name") from exc


# ---- lines ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """One line as both readers see it; ``text`` is exact, its ``\\n`` included.

    ``section`` is the section the line is in (or opens); ``key`` is the
    lower-cased key of a setting, None for headers, comments and blank lines;
    ``value`` is what the key's reader gets: wg-quick's trimmed value for its own
    keys, ``wg``'s (every blank removed) for the others.
    """

    index: int
    text: str
    section: str | None
    key: str | None
    value: str
    is_header: bool = False

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def is_comment(self) -> bool:
        return self.text.lstrip(BLANKS).startswith("#")

    @property
    def key_text(self) -> str:
        """The key as written (``PostUp``, ``postup``...), for messages."""
        return self.text.split("#", 1)[0].split("=", 1)[0].strip(BLANKS)

    @property
    def ending(self) -> str:
        """``\\r\\n`` or ``\\n`` (or nothing on a last line without one): what new lines copy."""
        for ending in ("\r\n", "\n"):
            if self.text.endswith(ending):
                return ending
        return ""


def place(path: str, number: int | None = None) -> str:
    """``path:number`` for a message, the path escaped if it holds anything that would break the line."""
    shown = path if path.isprintable() else repr(path)
    return shown if number is None else f"{shown}:{number}"


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def decode(data: bytes) -> str:
    """A config's text. wg-quick and wg read bytes: a byte that is not UTF-8 (a Latin-1 comment)
    is kept as a lone surrogate, refused by every value check, and written back by :func:`encode`."""
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def physical_lines(text: str) -> list[str]:
    """``text`` cut after every ``\\n`` and nowhere else, as ``read -r`` and getline(3) cut it."""
    pieces = text.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


class _Reader:
    """The state of both readers while walking the lines: wg-quick's section flag and wg's section."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.quick_interface = False  # wg-quick's interface_section
        self.section: str | None = None  # config.c's is_device_section / is_peer_section
        self.peer_header: Line | None = None
        self.peer_has_key = False

    def fail(self, index: int, body: str, message: str) -> ConfigError:
        if "\r" in body.rstrip("\r"):
            message += " (a carriage return inside a line: wg-quick splits lines at \\n only)"
        if index == 0 and body.startswith("\ufeff"):
            message += " (a UTF-8 byte-order mark starts the file, and wg-quick reads it as text: remove it)"
        return ConfigError(f"{place(self.path, index + 1)}: {message}")

    def close_peer(self) -> None:
        if self.peer_header is not None and not self.peer_has_key:
            raise ConfigError(f"{place(self.path, self.peer_header.number)}: this [Peer] has no PublicKey, "
                              "and wg refuses a peer without one")
        self.peer_header, self.peer_has_key = None, False

    def read(self, index: int, text: str) -> Line:
        body = text[:-1] if text.endswith("\n") else text
        if "\0" in body:
            raise self.fail(index, body, "a NUL byte: wg-quick and wg would each read this line differently")
        code = body.split("#", 1)[0]
        quick_key, equals, quick_value = code.partition("=")
        quick_key = quick_key.strip(BLANKS)
        quick_value = (quick_value if equals else code).strip(BLANKS)
        if quick_key.startswith("["):
            self.quick_interface = quick_key.lower() == INTERFACE
        if self.quick_interface and quick_key.lower() in WG_QUICK_KEYS:
            if not equals:
                raise self.fail(index, body, f"expected '{quick_key} = value'")
            return Line(index, text, INTERFACE, quick_key.lower(), quick_value)
        # Every other line is wg's: cut at '#', every blank removed (config_read_line).
        wg_line = "".join(c for c in code if c not in BLANKS)
        if not wg_line:
            return Line(index, text, self.section, None, "")
        if wg_line.lower() in (INTERFACE, PEER):
            return self.header(index, text, wg_line.lower())
        if wg_line.startswith("["):
            raise self.fail(index, body, f"unknown section {_shown(quick_key)}: wg knows only [Interface] "
                                         "and [Peer]")
        key, equals, value = wg_line.partition("=")
        if self.section is None:
            raise self.fail(index, body, f"{_shown(key)} before any section: wg refuses it")
        lowered = key.lower()
        if not equals:
            raise self.fail(index, body, f"expected 'Key = value', not {_shown(key)}")
        if lowered in WG_KEYS[self.section]:
            if not value:
                raise self.fail(index, body, f"{key} has no value: wg refuses it")
            if lowered == "publickey":
                self.peer_has_key = True
            return Line(index, text, self.section, lowered, value)
        here = _SPELLING[self.section]
        if lowered in WG_QUICK_KEYS and self.section == PEER:
            raise self.fail(index, body, f"{key} belongs in [Interface]: in [Peer] wg-quick passes it to "
                                         "wg, which refuses it")
        if lowered in WG_QUICK_KEYS:
            raise self.fail(index, body, f"wg-quick reads {key} only after a header written exactly "
                                         "[Interface] (blanks around it only); here it passes it to wg, "
                                         "which refuses it")
        other = PEER if self.section == INTERFACE else INTERFACE
        if lowered in WG_KEYS[other]:
            raise self.fail(index, body, f"{key} belongs in {_SPELLING[other]}, not in {here}")
        raise self.fail(index, body, f"unknown key {_shown(key)} in {here}: wg refuses it")

    def header(self, index: int, text: str, section: str) -> Line:
        self.close_peer()
        self.section = section
        line = Line(index, text, section, None, "", is_header=True)
        if section == PEER:
            self.peer_header = line
        return line


def read_lines(text: str, path: str = "<config>") -> list[Line]:
    """Every line of ``text``, read as wg-quick and ``wg`` read it; ConfigError where either refuses."""
    reader = _Reader(path)
    lines = [reader.read(index, raw) for index, raw in enumerate(physical_lines(text))]
    reader.close_peer()
    return lines


def split_list(value: str) -> list[str]:
    """A list value (Address, DNS) split as wg-quick splits it: commas and IFS blanks."""
    return [item for item in _IFS.split(value.replace(",", " ")) if item]


# ---- what wgkill decides on ----------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """One [Peer] section, as wg reads it."""

    public_key: str | None = None
    endpoint: Endpoint | None = None
    allowed_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class WgQuickConfig:
    """A wg-quick config, read as wg-quick and wg read it: what wgkill plans from."""

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


def is_dns_address(value: str) -> bool:
    """Whether a ``DNS =`` item is a server address (else a search domain), by wg-quick's own test:
    digits and dots, or anything with a colon. wgkill-render and the config reader share it."""
    return _DNS_ADDRESS.match(value) is not None


def dns_address(value: str) -> str:
    """A ``DNS =`` server item (``is_dns_address``): an IP address, as it is, else ValueError.
    wg-quick hands it to resolvconf as a ``nameserver`` line, which names no port (``ADDR:PORT``
    is ``--dns``'s, for resolved). wgkill-render and ``wgkill-up``'s DNS plan share it."""
    ipaddress.ip_address(value)
    return value


def parse_fwmark(value: str) -> int:
    """``FwMark``: ``off`` (0), or 0-0xffffffff in decimal or 0x hex, as wg's parse_fwmark reads it
    (a digit first, then strtoul in base 16 after ``0x`` else 10, all of it): no ``0b``, ``0o``
    or ``_`` as Python's ``int(x, 0)`` would take. ValueError otherwise."""
    if value.lower() == "off":
        return 0
    digits, base = (value[2:], 16) if len(value) > 2 and value.startswith("0x") else (value, 10)
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if value[:1] not in "0123456789" or not digits or any(c not in allowed for c in digits):
        raise ValueError("expected off or 0-0xffffffff")
    mark = int(digits, base)
    if mark > 0xFFFFFFFF:
        raise ValueError("expected off or 0-0xffffffff")
    return mark


def parse_config(text: str, path: str = "<config>") -> WgQuickConfig:
    """Parse the text of a wg-quick config; ConfigError on a line wg-quick or wg would refuse."""
    iface: dict[str, list[str]] = {}
    peers: list[dict[str, list[str]]] = []
    for line in read_lines(text, path):
        if line.is_header and line.section == PEER:
            peers.append({})
        if line.key is None:
            continue
        target = iface if line.section == INTERFACE else peers[-1]
        target.setdefault(line.key, []).append(line.value)

    dns_servers: list[str] = []
    dns_search: list[str] = []
    for value in iface.get("dns", []):
        for item in split_list(value):
            (dns_servers if is_dns_address(item) else dns_search).append(item)
    parsed_peers = []
    for peer in peers:
        endpoint = peer.get("endpoint", [None])[-1]
        parsed_peers.append(
            Peer(
                public_key=peer.get("publickey", [None])[-1],
                endpoint=parse_endpoint(endpoint) if endpoint else None,
                allowed_ips=tuple(ip for v in peer.get("allowedips", []) for ip in v.split(",") if ip),
            )
        )
    return WgQuickConfig(
        path=path,
        addresses=tuple(a for v in iface.get("address", []) for a in split_list(v)),
        dns_servers=tuple(dns_servers),
        dns_search=tuple(dns_search),
        table=iface.get("table", [None])[-1],
        fwmark=iface.get("fwmark", [None])[-1],
        peers=tuple(parsed_peers),
    )


def load_config(path: str | Path) -> WgQuickConfig:
    """Read and parse ``path``; a missing or unreadable file is a ConfigError."""
    try:
        text = decode(Path(path).read_bytes())  # bytes: read_text() would turn a lone CR into \n
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read wg-quick config {place(str(path))}: {reason}") from exc
    return parse_config(text, str(path))
