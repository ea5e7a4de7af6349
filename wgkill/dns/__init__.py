"""DNS leak prevention: which resolvers the tunnel uses, and pointing the host at them.

The firewall half (the DNS lock) is decided in ``policy`` from a ``DnsPlan``;
this package owns the other half: the host's resolver configuration, through
one of three backends chosen by what the host runs — systemd-resolved (per-link
settings over D-Bus via ``resolvectl``), resolvconf (as wg-quick itself uses
it), or a plain /etc/resolv.conf that is kept byte for byte and put back.
Every backend checks what it needs *before* the first change (``preflight``),
records what it did as a JSON-able dict, and reverts exactly that.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from types import ModuleType

from ..errors import ConfigError, UsageError
from ..recordclass import dataclass
from ..runner import find
from ..wgconf import WgQuickConfig, dns_address

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve"
BACKENDS = ("auto", "resolved", "resolvconf", "file", "none")
GLIBC_MAX_NAMESERVERS = 3


@dataclass(frozen=True)
class DnsPlan:
    """What the tunnel's DNS should be, decided once from the config and the options."""

    servers: tuple[str, ...] = ()  # addresses only: what the firewall's DNS lock names
    resolvers: tuple[str, ...] = ()  # as the backend is told them: ADDR, ADDR:PORT or [V6]:PORT
    search: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()  # split DNS: only these go to the tunnel
    lock: bool = False
    lock_resolv_conf: bool = False
    backend: str = "auto"
    from_config: bool = False  # wg-quick already handed DNS = to resolvconf

    @property
    def active(self) -> bool:
        return bool(self.servers)

    def servers_of(self, family: int) -> tuple[str, ...]:
        return tuple(s for s in self.servers if ipaddress.ip_address(s).version == family)

    @property
    def ports(self) -> bool:
        """A resolver on a port other than 53 (a local stub on 5300): resolv.conf cannot say that."""
        return any(r not in self.servers for r in self.resolvers)

    @property
    def local_stub(self) -> bool:
        """A resolver on loopback (systemd-resolved, dnscrypt-proxy, stubby): its upstream is
        held to the tunnel, whatever address it uses there."""
        return any(ipaddress.ip_address(s).is_loopback for s in self.servers)


_BRACKETED = re.compile(r"^\[([^\[\]]+)\](?::([0-9]{1,5}))?$")
_V4_PORT = re.compile(r"^([0-9.]+):([0-9]{1,5})$")


def parse_resolver(text: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT`` or ``[V6]:PORT`` (as resolvectl takes them) -> (address, port).

    A port lets systemd-resolved forward to a local stub on 127.0.0.1:5300;
    raises ValueError for anything else.
    """
    text = text.strip()
    match = _BRACKETED.match(text) or _V4_PORT.match(text)
    address, port = (match.group(1), match.group(2)) if match else (text, None)
    number = int(port) if port is not None else 53
    if not 0 < number < 65536:
        raise ValueError(f"port {number} out of range")
    return str(ipaddress.ip_address(address)), number


def _resolver_text(address: str, port: int) -> str:
    if port == 53:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _valid_domain(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or any(not 0 < len(label) < 64 for label in labels) or len(name) > 253:
        raise UsageError(f"invalid DNS domain {name!r}")
    return name


def plan(
    config: WgQuickConfig | None,
    dns: Sequence[str] = (),
    domains: Sequence[str] = (),
    no_lock: bool = False,
    lock_resolv_conf: bool = False,
    backend: str = "auto",
) -> DnsPlan:
    """Decide the DNS plan: ``--dns`` replaces the config's ``DNS =`` servers."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown DNS backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    source = "--dns" if dns else "DNS ="
    servers = list(dns) if dns else list(config.dns_servers if config else ())
    checked, resolvers = [], []
    for server in servers:
        try:
            address, port = parse_resolver(server if dns else dns_address(server))
        except ValueError as exc:
            if not dns:  # DNS = goes to resolvconf as a nameserver line: an address, no port
                raise ConfigError(f"{source} entry {server!r} is not an IP address") from exc
            raise UsageError(
                f"{source} entry {server!r} is not an IP address (or ADDR:PORT, [V6]:PORT)") from exc
        checked.append(address)
        resolvers.append(_resolver_text(address, port))
    search = tuple(_valid_domain(d) for d in (config.dns_search if config else ()))
    return DnsPlan(
        servers=tuple(dict.fromkeys(checked)),
        resolvers=tuple(dict.fromkeys(resolvers)),
        search=search,
        domains=tuple(dict.fromkeys(_valid_domain(d) for d in domains)),
        lock=bool(checked) and not no_lock,
        lock_resolv_conf=lock_resolv_conf,
        backend=backend,
        from_config=not dns and bool(checked),
    )


def resolved_running() -> bool:
    """Whether systemd-resolved answers on its socket (a stale socket file left by a stopped
    resolved refuses the connection), without asking it anything."""
    if not os.path.exists(RESOLVED_SOCKET):
        return False
    import socket  # only where resolved may run: the hooks' path pays for what it uses

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(RESOLVED_SOCKET)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def detect_backend(requested: str = "auto") -> str:
    """resolved if it runs, else resolvconf if installed, else the plain file."""
    if requested != "auto":
        return requested
    if find("resolvectl") and resolved_running():
        return "resolved"
    if find("resolvconf"):
        return "resolvconf"
    return "file"


def _module(backend: str) -> ModuleType:
    from . import resolvconf, resolved, resolvfile

    return {"resolved": resolved, "resolvconf": resolvconf, "file": resolvfile}[backend]


def preflight(dns_plan: DnsPlan, backend: str, previous: dict[str, Any] | None = None) -> list[str]:
    """Everything that can be checked before the first change; returns warnings."""
    if not dns_plan.active or backend == "none":
        return []
    if backend in ("file", "resolvconf"):
        _refuse_what_resolv_conf_cannot_say(dns_plan, backend)
    same = previous if previous and previous.get("backend") == backend else None
    warnings: list[str] = _module(backend).preflight(dns_plan, same)
    return warnings


def _refuse_what_resolv_conf_cannot_say(dns_plan: DnsPlan, backend: str) -> None:
    """resolv.conf (written directly or by resolvconf) has no per-domain routing and no ports.

    Writing it anyway would quietly send every name to the tunnel (split DNS)
    or to port 53 where no stub listens: refuse before any change instead.
    """
    if dns_plan.domains:
        raise UsageError(
            f"--dns-domain needs per-domain DNS routing, which the {backend} backend (resolv.conf) "
            "cannot do: use systemd-resolved (--dns-backend resolved), or run a split forwarder "
            "yourself and pass --dns-backend none (docs/dns.md)"
        )
    if dns_plan.ports:
        ported = ", ".join(r for r in dns_plan.resolvers if r not in dns_plan.servers)
        raise UsageError(
            f"resolver {ported} has a port, which the {backend} backend (resolv.conf) cannot name: "
            "use systemd-resolved (--dns-backend resolved), or have the stub listen on port 53 (docs/dns.md)"
        )


def apply(
    dns_plan: DnsPlan, backend: str, interface: str, previous: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Point the host's resolver at the tunnel; the returned record says how to undo it.

    ``previous`` is the record of an earlier run for the same interface: what
    it saved as the original is kept, never replaced by our own earlier output.
    """
    if not dns_plan.active or backend == "none":
        return None
    module = _module(backend)
    if previous is not None and previous.get("backend") != backend:
        module_prev = _module(previous["backend"])
        module_prev.revert(previous)
        previous = None
    record: dict[str, Any] = (module.apply(dns_plan, interface, previous) if backend == "file"
                              else module.apply(dns_plan, interface))
    return record


def hold(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """Put back what ``apply`` set where another program changed it since (a plain resolv.conf,
    or resolved's settings for the tunnel's link): the record to save, or None when nothing was
    changed. resolvconf merges what others add, so it keeps nothing to put back."""
    if not record or record.get("backend") not in ("file", "resolved"):
        return None
    module = _module(record["backend"])
    held: dict[str, Any] | None = module.hold(record)
    return held


def held_what(record: dict[str, Any]) -> str:
    """What ``hold`` found, for the guard's line."""
    if record.get("backend") == "resolved":
        return f"systemd-resolved's settings for {record.get('link')} changed by another program"
    return f"{record.get('path')} rewritten by another program"


def revert(record: dict[str, Any] | None) -> list[str]:
    """Undo what ``apply`` recorded; returns warnings for what was deliberately left alone."""
    if not record:
        return []
    warnings: list[str] = _module(record["backend"]).revert(record)
    return warnings
