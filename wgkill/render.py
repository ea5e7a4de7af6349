"""wgkill-render's decisions: validate every value, then build a config, an upgrade or a snippet.

Everything is checked before anything is produced, so a bad value never
reaches stdout (``> wg0.conf`` has already truncated the file by the time we
run: half a config there would be worse than none). Values that end up in a
hook line are shell-quoted, because wg-quick runs hooks with ``eval``; and
none may hold ``#``, ``%``, a control character or a line or paragraph
separator, which wg-quick's own parser would cut or substitute before the
shell ever sees the quotes, or which would break the line for the next reader.
"""

import base64
import ipaddress
import os
import re
import shlex
import socket
import stat
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from . import confedit, wgconf
from .errors import ConfigError, UsageError
from .fileio import write_atomic
from .names import validate_interface
from .prefixes import load_file
from .recordclass import dataclass, field
from .runner import run, which
from .templating import render
from .wgconf import Endpoint

FULL_TUNNEL = ("0.0.0.0/0", "::/0")
SNIPPETS = ("resolved", "dnscrypt", "systemd")
DNSCRYPT_BOOTSTRAP = ("1.1.1.1:53", "8.8.8.8:53")  # the article's fallback_resolvers
SYSTEMD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
MTU_RANGE = (68, 65455)  # ETH_MIN_MTU .. 65535 minus WireGuard's 80 bytes of overhead
IPV6_MIN_MTU = 1280
BACKUP_SUFFIX = ".bak"

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PREFIX = re.compile(r"[^/]+(/[0-9]{1,3})?")
_HOOK_UNSAFE_CHARS = frozenset("#%")
# C0/C1 controls and DEL (Cc, U+0085 included), invisible format characters (Cf), lone surrogates
# (undecodable argv bytes, Cs), and the line and paragraph separators U+2028/U+2029 (Zl, Zp).
_HOOK_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

EndpointLookup = Callable[[str, int], str]  # (host, port) -> the address wg would use
T = TypeVar("T")


class Invalid(ValueError):
    """A value failed a check; the caller names the flag or the config line."""


# ---- validators: one value in, the text to write out ----------------------------------------

def wg_key(value: str) -> str:
    """A WireGuard key: 32 bytes in canonical base64 (44 characters), as ``wg`` prints them."""
    text = value.strip(wgconf.BLANKS)  # ASCII blanks, as wg: str.strip() would eat U+00A0, U+2028 too
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise Invalid("not base64") from exc
    if len(raw) != 32 or base64.b64encode(raw).decode() != text:
        raise Invalid("not a WireGuard key (32 bytes of base64, 44 characters)")
    return text


def address(value: str) -> str:
    """An interface address, ``IP`` or ``IP/prefix``, as ``ip address add`` takes it."""
    if not _PREFIX.fullmatch(value) or "%" in value:
        raise Invalid("expected an IP address with an optional /prefix")
    try:
        ipaddress.ip_interface(value)
    except ValueError as exc:
        raise Invalid("expected an IP address with an optional /prefix") from exc
    return value


def cidr(value: str) -> str:
    """An AllowedIPs entry: a network in CIDR notation (host bits allowed, as ``wg`` allows)."""
    if not _PREFIX.fullmatch(value) or "%" in value:
        raise Invalid("expected a CIDR such as 10.0.0.0/8 or ::/0")
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise Invalid("expected a CIDR such as 10.0.0.0/8 or ::/0") from exc
    return value


def domain(value: str) -> str:
    """A DNS name (search or routing domain): dot-separated labels of letters, digits, hyphens."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise Invalid("expected a domain name such as corp.example")
    if wgconf.is_dns_address(value):
        raise Invalid("wg-quick would read it as a server address, and it is not one")
    return value


def dns_entry(value: str) -> str:
    """A ``DNS =`` item: a server address, or a search domain, told apart as wg-quick does."""
    if wgconf.is_dns_address(value):
        try:
            return wgconf.dns_address(value)
        except ValueError as exc:
            raise Invalid("expected a DNS server address or a search domain") from exc
    try:
        return domain(value)
    except Invalid as exc:
        raise Invalid("expected a DNS server address or a search domain") from exc


def endpoint(value: str) -> Endpoint:
    """``HOST:PORT`` or ``[IPv6]:PORT``, read as wg reads it (``wgconf.read_endpoint``, shared with
    the config reader)."""
    try:
        return wgconf.read_endpoint(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def keepalive(value: str) -> int:
    """Seconds, or ``off`` in any case (wg compares it with strcasecmp)."""
    if value.lower() == "off":
        return 0
    if not value.isdigit() or int(value) > 65535:
        raise Invalid("expected seconds (0-65535) or off")
    return int(value)


def mtu(value: str) -> int:
    low, high = MTU_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        raise Invalid(f"expected {low}-{high}")
    return int(value)


def listen_port(value: str) -> int:
    """``ListenPort``: what ``wg`` takes, a port or service name resolved by getaddrinfo (0: any)."""
    try:
        answers = socket.getaddrinfo(None, value, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError, ValueError) as exc:
        raise Invalid("expected a port 0-65535") from exc
    return int(answers[0][4][1])


def fwmark(value: str) -> int:
    """``FwMark``, read as ``wg`` reads it (``wgconf.parse_fwmark``, shared with the config reader)."""
    try:
        return wgconf.parse_fwmark(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def save_config(value: str) -> str:
    """wg-quick's read_bool, which runs under ``nocasematch``: true or false in any case."""
    if value.lower() not in ("true", "false"):
        raise Invalid("SaveConfig must be true or false")
    return value


def hook_argument(value: str) -> str:
    """A value bound for a hook line: wg-quick cuts at ``#`` and rewrites ``%i`` before eval,
    and a control character or line separator would break the line for the next reader."""
    if not value:
        raise Invalid("must not be empty")
    for char in value:
        if char in _HOOK_UNSAFE_CHARS:
            raise Invalid(f"must not contain {char!r} (wg-quick would cut or rewrite the hook line there)")
        if unicodedata.category(char) in _HOOK_UNSAFE_CATEGORIES:
            raise Invalid(f"must not contain the control or separator character U+{ord(char):04X} "
                          "(it would break the hook line)")
    return value


def _shown(value: str) -> str:
    text = value if len(value) <= 200 else value[:197] + "..."
    return repr(text)


def validate_flag(flag: str, value: str, validator: Callable[[str], T], secret: bool = False) -> T:
    """Run ``validator``; on failure one UsageError line naming the flag and the value."""
    try:
        return validator(value)
    except Invalid as exc:
        shown = "(value not shown: it is a secret)" if secret else _shown(value)
        raise UsageError(f"invalid {flag} {shown}: {exc}") from None


def _items(flag: str, values: Sequence[str], validator: Callable[[str], str]) -> tuple[str, ...]:
    """Repeatable flags also take comma-separated lists, as wg-quick's list keys do."""
    found: list[str] = []
    for value in values:
        parts = [p.strip() for p in value.split(",")]
        if not all(parts):
            raise UsageError(f"invalid {flag} {_shown(value)}: empty item in the list")
        found.extend(validate_flag(flag, p, validator) for p in parts)
    return tuple(found)


# ---- what the user asked for -------------------------------------------------------------------

@dataclass
class Request:
    """The raw command line, one field per flag (``None`` / empty / False when not given)."""

    private_key: str | None = None
    private_key_file: str | None = None
    genkey: bool = False
    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    public_key: str | None = None
    preshared_key_file: str | None = None
    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    persistent_keepalive: str | None = None
    mtu: str | None = None
    split: list[str] = field(default_factory=list)
    split_file: str | None = None
    allow_lan: bool = False
    dns_domains: list[str] = field(default_factory=list)
    no_dns_lock: bool = False
    config: str | None = None
    pin_endpoint: bool = False
    source: str | None = None  # --from
    in_place: bool = False
    output: str | None = None
    snippet: str | None = None
    interface: str | None = None
    backend: str = "auto"


_NEW_ONLY = {
    "private_key": "--private-key", "private_key_file": "--private-key-file", "genkey": "--genkey",
    "addresses": "--address", "public_key": "--public-key", "preshared_key_file": "--preshared-key-file",
    "endpoint": "--endpoint", "allowed_ips": "--allowed-ips",
    "persistent_keepalive": "--persistent-keepalive", "mtu": "--mtu", "split": "--split",
    "split_file": "--split-file",
}
_HOOK_FLAGS = {"allow_lan": "--allow-lan", "dns_domains": "--dns-domain", "no_dns_lock": "--no-dns-lock",
               "config": "--config", "pin_endpoint": "--pin-endpoint"}


@dataclass(frozen=True)
class HookOptions:
    """The options passed through to ``wgkill-up``, under the same flag names."""

    allow_lan: bool = False
    dns_domains: tuple[str, ...] = ()
    dns_lock: bool = True
    config: str | None = None
    allowed_ips_file: str | None = None  # with --routes: a large split tunnel, Table = off
    backend: str = "auto"

    def up_arguments(self) -> list[str]:
        args = ["--allow-lan"] if self.allow_lan else []
        if self.backend != "auto":
            args += ["--backend", self.backend]
        if self.allowed_ips_file is not None:
            args += ["--allowed-ips-file", self.allowed_ips_file, "--routes"]
        for name in self.dns_domains:
            args += ["--dns-domain", name]
        if not self.dns_lock:
            args.append("--no-dns-lock")
        if self.config is not None:
            args += ["--config", self.config]
        return args


@dataclass(frozen=True)
class Rendered:
    """What to print or write: ``text``, plus lines for stderr and the generated public key."""

    text: str
    warnings: tuple[str, ...] = ()
    public_key: str | None = None
    private: bool = False  # holds a PrivateKey: written 0600, never world-readable
    source: str | None = None  # the --from file, for --in-place

    @property
    def data(self) -> bytes:
        """The bytes to write: a --from file's bytes that are not UTF-8 go back exactly as they came."""
        return wgconf.encode(self.text)


def hook_block(options: HookOptions) -> str:
    """The comment block and the PostUp/PreDown lines, shared by new configs and --from."""
    up_args = "".join(" " + shlex.quote(arg) for arg in options.up_arguments())
    return render(
        "hooks.conf.j2",
        up_args=up_args,
        allow_lan=options.allow_lan,
        dns_domains=options.dns_domains,
        dns_lock=options.dns_lock,
        config=options.config,
        split_file=options.allowed_ips_file,
    )


def _hook_options(req: Request) -> HookOptions:
    return HookOptions(
        allow_lan=req.allow_lan,
        dns_domains=tuple(validate_flag("--dns-domain", d, lambda v: hook_argument(domain(v)))
                          for d in req.dns_domains),
        dns_lock=not req.no_dns_lock,
        config=None if req.config is None else validate_flag("--config", req.config, hook_argument),
        allowed_ips_file=None if req.split_file is None else _split_file(req.split_file),
        backend=req.backend,
    )


def _split_file(path: str) -> str:
    """The prefix file must parse now: a list wgkill-up would refuse is refused here, before output."""
    checked = validate_flag("--split-file", os.path.abspath(path), hook_argument)
    try:
        load_file(checked)
    except ConfigError as exc:
        raise UsageError(f"--split-file: {exc}") from exc
    return checked


def _given(req: Request, names: dict[str, str]) -> list[str]:
    return [flag for name, flag in names.items() if getattr(req, name) not in (None, False, [], "")]


def _read_secret(flag: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise UsageError(f"cannot read {flag} {_shown(path)}: {reason}") from None
    return validate_flag(flag, text.strip(), wg_key, secret=True)


def resolve_endpoint(host: str, number: int) -> str:
    """The address ``wg`` would use for ``host`` now: getaddrinfo's first UDP answer."""
    try:
        answers = socket.getaddrinfo(host, number, type=socket.SOCK_DGRAM)
    except OSError as exc:
        said = exc.strerror or str(exc)
        raise ConfigError(f"cannot resolve endpoint {host} for --pin-endpoint: {said}") from exc
    return str(answers[0][4][0])


def _hostname_warning(where: str, ep: Endpoint) -> str:
    return (f"{where}: Endpoint {ep} is a hostname: it cannot be resolved while the kill switch blocks, "
            "so reconnecting after a drop can hang; --pin-endpoint writes its address now")


def _genkey() -> tuple[str, str]:
    wg = which("wg")
    private = run([wg, "genkey"]).strip()
    return private, run([wg, "pubkey"], stdin=private + "\n").strip()


# ---- the three modes -----------------------------------------------------------------------------

def new_config(req: Request, resolve: EndpointLookup = resolve_endpoint,
               genkey: Callable[[], tuple[str, str]] = _genkey) -> Rendered:
    """A complete wg-quick config from flags; every flag is checked before the first key is made."""
    _check_new_flags(req)
    private_key = None
    if req.private_key is not None:
        private_key = validate_flag("--private-key", req.private_key, wg_key, secret=True)
    elif req.private_key_file is not None:
        private_key = _read_secret("--private-key-file", req.private_key_file)
    addresses = _items("--address", req.addresses, address)
    dns = _items("--dns", req.dns, dns_entry)
    public_key = validate_flag("--public-key", req.public_key or "", wg_key)
    preshared = None
    if req.preshared_key_file is not None:
        preshared = _read_secret("--preshared-key-file", req.preshared_key_file)
    peer = validate_flag("--endpoint", req.endpoint or "", endpoint)
    split = _items("--split", req.split, cidr)
    allowed = split or _items("--allowed-ips", req.allowed_ips, cidr) or FULL_TUNNEL
    keep = None if req.persistent_keepalive is None else validate_flag(
        "--persistent-keepalive", req.persistent_keepalive, keepalive)
    link_mtu = None if req.mtu is None else validate_flag("--mtu", req.mtu, mtu)
    if link_mtu is not None and link_mtu < IPV6_MIN_MTU and any(":" in a for a in addresses):
        raise UsageError(f"invalid --mtu {req.mtu!r}: an IPv6 --address needs at least {IPV6_MIN_MTU}")
    hooks = _hook_options(req)

    peer, pinned_from, warnings = _new_endpoint(peer, req.pin_endpoint, split, resolve)
    public_of_ours = None
    if private_key is None:
        private_key, public_of_ours = genkey()
    text = render(
        "config.conf.j2",
        private_key=private_key,
        addresses=addresses,
        dns=dns,
        mtu=link_mtu,
        hooks=hook_block(hooks),
        public_key=public_key,
        preshared_key=preshared,
        endpoint=str(peer),
        pinned_from=pinned_from,
        split=bool(split),
        table_off=hooks.allowed_ips_file is not None,
        allowed_ips=allowed,
        persistent_keepalive=keep or None,
    )
    return Rendered(text, tuple(warnings), public_of_ours, private=True)


def _check_new_flags(req: Request) -> None:
    """The flags a new config needs, and those that exclude each other."""
    sources = [f for f in ("--private-key", "--private-key-file", "--genkey")
               if f in _given(req, _NEW_ONLY)]
    if len(sources) != 1:
        raise UsageError("give exactly one of --private-key, --private-key-file, --genkey"
                         + (f" (got {', '.join(sources)})" if sources else ""))
    for needed, flag in ((req.addresses, "--address"), (req.public_key, "--public-key"),
                         (req.endpoint, "--endpoint")):
        if not needed:
            raise UsageError(f"a new config needs {flag} (or use --from to upgrade an existing one)")
    if sum(bool(x) for x in (req.split, req.allowed_ips, req.split_file)) > 1:
        raise UsageError("--split, --split-file and --allowed-ips all set the destinations: give one")


def _new_endpoint(peer: Endpoint, pin: bool, split: Sequence[str],
                  resolve: EndpointLookup) -> tuple[Endpoint, str | None, list[str]]:
    """The endpoint to write (pinned to an address with --pin-endpoint), what it was pinned from,
    and the warnings it earns (a hostname; an address inside --split)."""
    warnings = []
    pinned_from = None
    if not peer.is_address:
        if pin:
            pinned_from = str(peer)
            peer = Endpoint(resolve(peer.host, peer.port), peer.port)
        else:
            warnings.append(_hostname_warning("--endpoint", peer))
    if split and peer.is_address:
        host = ipaddress.ip_address(peer.host)
        inside = [c for c in split if host in ipaddress.ip_network(c, strict=False)]
        if inside:
            warnings.append(f"--endpoint {peer} is inside --split {inside[0]}: its packets would be "
                            "routed into the tunnel itself")
    return peer, pinned_from, warnings


def _read_config(path: str) -> str:
    try:
        return wgconf.decode(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read --from {_shown(path)}: {exc.strerror}") from exc


_LINE_CHECKS: dict[tuple[str, str], Callable[[str], object]] = {
    ("[interface]", "privatekey"): wg_key,
    ("[interface]", "mtu"): mtu,
    ("[interface]", "listenport"): listen_port,
    ("[interface]", "fwmark"): fwmark,
    ("[interface]", "saveconfig"): save_config,
    ("[peer]", "publickey"): wg_key,
    ("[peer]", "presharedkey"): wg_key,
    ("[peer]", "endpoint"): endpoint,
    ("[peer]", "persistentkeepalive"): keepalive,
}
_LIST_CHECKS: dict[tuple[str, str], Callable[[str], object]] = {
    ("[interface]", "address"): address,
    ("[interface]", "dns"): dns_entry,
    ("[peer]", "allowedips"): cidr,  # no "+"/"-" entries: only wg v1.0.20250521+ takes them
}
_SECRET_KEYS = {"privatekey", "presharedkey"}


def _validate_lines(path: str, lines: list[wgconf.Line]) -> None:
    """The same checks as for flags, on the config's own values: upgrade nothing broken."""
    for line in lines:
        if line.key is None or line.section is None:
            continue
        where = (line.section, line.key)
        validators = [_LINE_CHECKS[where]] if where in _LINE_CHECKS else []
        items = [line.value]
        if where in _LIST_CHECKS:
            validators = [_LIST_CHECKS[where]]
            items = wgconf.split_list(line.value)
        if where == ("[peer]", "allowedips"):
            items = line.value.split(",")  # wg's own split: the blanks are gone, an empty entry is refused
        for item in items:
            for validator in validators:
                try:
                    validator(item)
                except Invalid as exc:
                    shown = "(value not shown: it is a secret)" if line.key in _SECRET_KEYS else _shown(item)
                    where_shown = wgconf.place(path, line.number)
                    raise ConfigError(f"{where_shown}: invalid {line.key} {shown}: {exc}") from None


def upgrade(req: Request, resolve: EndpointLookup = resolve_endpoint) -> Rendered:
    """``--from``: the same config with wgkill's hooks added or replaced, every other byte kept."""
    misplaced = _given(req, _NEW_ONLY) + (["--dns"] if req.dns else [])
    if misplaced:
        raise UsageError(f"{misplaced[0]} cannot be used with --from: it only adds or replaces the hooks")
    path = req.source or ""
    hooks = _hook_options(req)
    text = _read_config(path)
    lines = wgconf.read_lines(text, path)
    _validate_lines(path, lines)
    block = hook_block(hooks)
    edit = confedit.replace_hooks(text, block, path)
    warnings = []
    new_values = {ln.value for ln in wgconf.read_lines("[Interface]\n" + block) if ln.key is not None}
    for line in edit.removed:
        if confedit.runs_wgkill(line.value) and line.value not in new_values:
            old = f"{line.key_text} = {line.value}"
            shown = f"`{old}`" if old.isprintable() else repr(old)
            warnings.append(f"{wgconf.place(path, line.number)}: replaced {shown}: the new "
                            "hook lines carry only the options given on this command line")
    edited = wgconf.read_lines(edit.text, path)
    newline = confedit.newline_of(edited)
    replacements: dict[int, list[str]] = {}
    for before, line in zip(confedit.peer_values(lines, "endpoint"), confedit.peer_values(edited, "endpoint"),
                            strict=True):
        peer = endpoint(line.value)
        if peer.is_address:
            continue
        if not req.pin_endpoint:
            warnings.append(_hostname_warning(wgconf.place(path, before.number), peer))
            continue
        indent = line.text[: len(line.text) - len(line.text.lstrip())]
        pinned = Endpoint(resolve(peer.host, peer.port), peer.port)
        replacements[line.index] = [
            f"{indent}# Endpoint pinned by wgkill-render; it was {peer}{newline}",
            confedit.with_value(line, str(pinned)),
        ]
    result = confedit.rewrite(edited, replacements)
    private = any(ln.key == "privatekey" for ln in lines)
    return Rendered(result, tuple(warnings), private=private, source=path)


def snippet(req: Request, bin_dir: str) -> Rendered:
    """A companion file from ``templates/snippet-KIND.j2``."""
    if req.snippet not in SNIPPETS:
        raise UsageError(f"invalid --snippet {_shown(str(req.snippet))}: "
                         f"expected one of {', '.join(SNIPPETS)}")
    extra = _given(req, _NEW_ONLY) + _given(req, _HOOK_FLAGS) + (["--in-place"] if req.in_place else [])
    if extra:
        raise UsageError(f"{extra[0]} cannot be used with --snippet")
    servers = _snippet_servers(req)
    interface = validate_interface(req.interface or _interface_from(req.source) or "wg0")
    if req.snippet == "resolved":
        if not servers:
            raise UsageError("--snippet resolved needs DNS server addresses: --dns, or --from a config "
                             "with a DNS = line")
        text = render("snippet-resolved.j2", servers=servers)
    elif req.snippet == "dnscrypt":
        bootstrap = [f"[{s}]:53" if ":" in s else f"{s}:53" for s in servers] or list(DNSCRYPT_BOOTSTRAP)
        text = render("snippet-dnscrypt.j2", bootstrap=bootstrap, from_config=bool(servers))
    else:
        on_default_path = os.path.normpath(bin_dir) in SYSTEMD_PATH
        path = ":".join([bin_dir, *SYSTEMD_PATH])
        text = render("snippet-systemd.j2", interface=interface, bin_dir=bin_dir,
                      on_default_path=on_default_path, path=path)
    return Rendered(text)


def _snippet_servers(req: Request) -> list[str]:
    """The DNS server addresses a snippet names: --dns, else the DNS = lines of --from."""
    servers = [s for s in _items("--dns", req.dns, dns_entry) if wgconf.is_dns_address(s)]
    if not req.dns and req.source and req.snippet != "systemd":
        for line in wgconf.read_lines(_read_config(req.source), req.source):
            if line.section == "[interface]" and line.key == "dns":
                servers += [v for v in wgconf.split_list(line.value) if wgconf.is_dns_address(v)]
    return servers


def _interface_from(source: str | None) -> str | None:
    """wg0 for /etc/wireguard/wg0.conf, as wg-quick names the interface after the file."""
    if source is None:
        return None
    name = os.path.basename(source)
    return name[: -len(".conf")] if name.endswith(".conf") else None


def build(req: Request, bin_dir: str, resolve: EndpointLookup = resolve_endpoint,
          genkey: Callable[[], tuple[str, str]] = _genkey) -> Rendered:
    """Dispatch on the mode; raises before returning anything if any value is invalid.

    Modes: a snippet, ``--from`` (upgrade), a new config from flags, or, with
    none of the new-config flags, only the hook block to paste into a config.
    """
    if req.in_place and not req.source:
        raise UsageError("--in-place needs --from FILE")
    if req.in_place and req.output:
        raise UsageError("--in-place and --output both name where to write: give one of them")
    if req.snippet is not None:
        return snippet(req, bin_dir)
    if req.interface is not None:
        raise UsageError("--interface only names the interface in --snippet output")
    if req.source is not None:
        return upgrade(req, resolve)
    if not _given(req, _NEW_ONLY) and not req.dns:
        if req.pin_endpoint:
            raise UsageError("--pin-endpoint needs --endpoint or --from")
        return Rendered(hook_block(_hook_options(req)))  # just the lines to paste into a config
    return new_config(req, resolve, genkey)


# ---- writing files ---------------------------------------------------------------------------

def _world_accessible(mode: int) -> bool:
    return bool(mode & 0o007)


def write_config(path: str | Path, data: bytes, *, private: bool, backup: Path | None = None) -> None:
    """Replace ``path`` (through a symlink) so a reader sees the old file or the new one, never half.

    An existing file keeps its mode and owner; a new one gets 0600 if it holds a
    private key (else 0644). A private key is never written world-accessible:
    that is refused, and nothing is changed. ``backup``: keep the old file there first.
    """
    target = Path(os.path.realpath(path))
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    mode = stat.S_IMODE(old.st_mode) if old else (0o600 if private else 0o644)
    if private and _world_accessible(mode):
        raise ConfigError(
            f"refusing to write {path}: it holds a PrivateKey and would be world-accessible "
            f"(mode {mode:04o}); run `chmod 600 {shlex.quote(str(path))}` first"
        )
    try:
        write_atomic(target, data, mode, owner=(old.st_uid, old.st_gid) if old else None, backup=backup)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def write_in_place(rendered: Rendered) -> Path | None:
    """Write ``--from``'s result back, keeping ``FILE.bak``; None when nothing changed."""
    if rendered.source is None:
        raise UsageError("--in-place needs --from FILE")
    source = Path(os.path.realpath(rendered.source))
    original = source.read_bytes()
    new = rendered.data
    if new == original:
        return None
    status = source.stat()
    mode = stat.S_IMODE(status.st_mode)
    if rendered.private and _world_accessible(mode):
        raise ConfigError(
            f"refusing to write {rendered.source}: it holds a PrivateKey and is world-accessible "
            f"(mode {mode:04o}); run `chmod 600 {shlex.quote(rendered.source)}` first"
        )
    backup = source.with_name(source.name + BACKUP_SUFFIX)
    write_config(source, new, private=rendered.private, backup=backup)
    return backup
