"""The typed records a state holds below its top level, parsed from JSON once, at load.

``wgkill.state.load`` builds them (each family's policy, the peers' endpoints,
the ``--routes`` record); every other module gets them typed, never as dicts.
Anything in them that turns into a command or rule text is checked here
against what wgkill writes, so a corrupt record refuses at load (exit 4),
before anything changed. They live below ``policy`` and ``routes``, which
decide them, so that ``state`` can parse them.
"""

from __future__ import annotations

import ipaddress

from .errors import StateError, UsageError, WgkillError
from .names import chain_name, route_chain_names, validate_interface, validate_interface_pattern
from .recordclass import dataclass, field, replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

BACKENDS = ("iptables", "nft")
DNS_RECORD_BACKENDS = ("file", "resolved", "resolvconf")  # wgkill.dns' modules, by the name they record
ROUTE_RECORD_VERSION = 2
# 1: wgkill 0.1 (marks in bits 24-27, no postrouting guard): removed as recorded
ROUTE_READABLE_VERSIONS = (1, 2)
UNREACHABLE_METRIC = 4294967295
# Written by earlier versions into a route family and read by none: skipped at load.
_RETIRED_ROUTE_FIELDS = frozenset({"set_name", "jumps"})


def _c_number(text: str) -> int:
    """A number as iptables' ``--mark`` reads it (C's ``strtoul`` with base 0): ``0x`` hex, a
    leading ``0`` octal, else decimal; not Python's ``0b``, ``0o`` or ``1_000``."""
    if text[:2] in ("0x", "0X") and text[2:] and all(c in "0123456789abcdefABCDEF" for c in text[2:]):
        return int(text[2:], 16)
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text, 8) if text.startswith("0") else int(text)


def parse_mark(text: str) -> str:
    """``--allow-mark VALUE/MASK`` (or a bare VALUE, mask 0xffffffff) in one canonical form,
    ``0xV/0xM`` as iptables-save prints it; a value with bits outside its mask is refused."""
    value_text, _, mask_text = text.partition("/")
    try:
        value = _c_number(value_text)
        mask = _c_number(mask_text) if mask_text else 0xFFFFFFFF
    except ValueError as exc:
        raise UsageError(f"--allow-mark {text!r}: expected VALUE/MASK, e.g. 0x80000/0xff0000") from exc
    if not (0 <= value < 2**32 and 0 < mask < 2**32) or value & ~mask:
        raise UsageError(f"--allow-mark {text!r}: VALUE and MASK are 32-bit, MASK non-zero, "
                         "VALUE only within MASK")
    return f"{value:#x}/{mask:#x}"


@dataclass(frozen=True)
class EndpointRule:
    """A peer endpoint the block lets UDP reach; ``name`` is its hostname, if it had one."""

    address: str
    port: int
    name: str | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class PeerEndpoint:
    """Another protected tunnel's endpoint, with that tunnel's fwmark: this block lets out its
    WireGuard packets as that tunnel's own block does, whatever route they take (an on-link
    endpoint leaves by the uplink, not through this tunnel)."""

    address: str
    port: int
    fwmark: int | None = None

    def __post_init__(self) -> None:
        """Read back from other tunnels' state files into rule text: only what a rule can hold."""
        _check_endpoint(self.address, self.port)
        if self.fwmark is not None and (type(self.fwmark) is not int or not 0 < self.fwmark < 2**32):
            raise ValueError(f"fwmark {self.fwmark!r}")

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


def _check_endpoint(address: str, port: int) -> None:
    ipaddress.ip_address(address)
    if type(port) is not int or not 0 <= port < 65536:  # wg takes port 0
        raise ValueError(f"endpoint port {port!r}")


@dataclass(frozen=True)
class FamilyPolicy:
    """Inputs for one family's restore payload."""

    family: int
    interface: str
    chain: str
    comment: str
    fwmark: int | None
    endpoints: tuple[EndpointRule, ...]
    reject_with: str
    host_prefix: int
    endpoint_lookups: tuple[str, ...] = ()
    dns_lock: bool = False
    dns_servers: tuple[str, ...] = ()
    dns_any_via_tunnel: bool = False
    dns_private_names: tuple[str, ...] = ()
    split_set: str | None = None
    lan: tuple[str, ...] = ()
    forward_chain: str | None = None
    route_mark: str | None = None  # --routes: packets so marked are routed into the tunnel
    uplink_upkeep: bool = True
    allow_interfaces: tuple[str, ...] = ()  # --allow-iface: out these (iptables patterns, br-+) passes
    allow_marks: tuple[str, ...] = ()  # --allow-mark: packets carrying VALUE/MASK pass
    peer_interfaces: tuple[str, ...] = ()  # the other tunnels wgkill protects: their outer packets are judged
    peer_endpoints: tuple[PeerEndpoint, ...] = ()  # theirs, of this family: their own UDP passes
    exclude_cgroup: str | None = None  # --allow-exclude: its sockets carrying ``fwmark`` pass


def endpoints_from_json(data: Any) -> tuple[EndpointRule, ...]:
    """The recorded endpoints (``{"address", "port", "name"}`` each); StateError if malformed."""
    try:
        if not isinstance(data, list):
            raise TypeError("not a list")
        rules = tuple(EndpointRule(**e) for e in data)
        for rule in rules:
            _check_endpoint(rule.address, rule.port)
            if rule.name is not None and not isinstance(rule.name, str):
                raise TypeError(f"endpoint name {rule.name!r}")
    except (TypeError, ValueError) as exc:
        raise StateError(f"corrupt endpoints: {exc}") from exc
    return rules


def policy_from_json(data: Any) -> FamilyPolicy:
    """One family's policy as the state wrote it; anything else is a StateError (never a guess)."""
    try:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        fields: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list) else value for name, value in data.items()
        }
        fields["endpoints"] = endpoints_from_json(data["endpoints"])
        fields["peer_endpoints"] = tuple(PeerEndpoint(**e) for e in data.get("peer_endpoints", ()))
        policy = FamilyPolicy(**fields)
        validate_interface(policy.interface)
        for name in policy.peer_interfaces:
            validate_interface(name)
        for pattern in policy.allow_interfaces:
            validate_interface_pattern(pattern)
        for mark in policy.allow_marks:
            parse_mark(mark)
    except (TypeError, KeyError, ValueError, WgkillError) as exc:
        raise StateError(f"corrupt recorded policy: {exc}") from exc
    if policy.chain != chain_name(policy.interface) or policy.family not in (4, 6):
        raise StateError(f"corrupt recorded policy for {policy.interface}")
    return policy


@dataclass(frozen=True)
class DnsState:
    """The DNS plan as applied, and ``record``: the resolver backend's own undo, which only
    ``wgkill.dns`` reads (checked here only for naming a backend, so revert never guesses)."""

    servers: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    lock: bool = False
    backend: str = "none"  # the resolver backend changed, "none" when the plan changed nothing
    record: dict[str, Any] | None = None

    def holding(self, record: dict[str, Any] | None) -> DnsState:
        """The same state, with the resolver's undo as it is now."""
        return replace(self, record=record)


def dns_state_from_json(data: Any) -> DnsState:
    """The ``dns`` object as the state wrote it (every version); StateError if malformed."""
    if not isinstance(data, dict):
        raise StateError("corrupt dns record: not an object")
    servers, domains = data.get("servers", []), data.get("domains", [])
    record, backend = data.get("record"), data.get("backend", "none")
    try:
        if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in (servers, domains)):
            raise TypeError("servers and domains must be lists of names")
        for server in servers:
            ipaddress.ip_address(server)
    except (TypeError, ValueError) as exc:
        raise StateError(f"corrupt dns record: {exc}") from exc
    if record is not None and not (isinstance(record, dict) and record.get("backend") in DNS_RECORD_BACKENDS):
        raise StateError("corrupt dns record: the resolver's undo names no backend wgkill has")
    if not isinstance(backend, str) or not isinstance(data.get("lock", False), bool):
        raise StateError("corrupt dns record: bad backend or lock")
    return DnsState(tuple(servers), tuple(domains), data.get("lock", False), backend, record)


@dataclass(frozen=True)
class FamilyRoutes:
    """What ``wgkill.routes.setup`` put in place for one family."""

    family: int
    rule: str  # as given to `ip rule add/del`
    routes: list[str]  # as given to `ip route replace/del`
    chains: dict[str, str]  # key (mangle, nat, guard) -> our chain (none where the block's table holds them)


@dataclass(frozen=True)
class RouteRecord:
    """Exactly what ``wgkill.routes.setup`` added, for the state."""

    interface: str
    mark: int
    mask: int
    table: int
    priority: int
    iptables_variant: str  # "" with the nft backend
    families: dict[str, FamilyRoutes] = field(default_factory=dict)
    sysctls: list[dict[str, str]] = field(default_factory=list)  # {"key", "old", "new"}
    version: int = ROUTE_RECORD_VERSION
    backend: str = "iptables"  # "nft": the marks live in the kill switch's table


def route_rule(mark: int, mask: int, table: int, priority: int) -> str:
    """The one ``ip rule`` of a family (as given to ``ip rule add/del``)."""
    return f"fwmark {mark:#x}/{mask:#x} lookup {table} priority {priority}"


def route_routes(interface: str, table: int) -> list[str]:
    """The two routes in the table: into the tunnel, and unreachable when it is gone."""
    return [f"default dev {interface} table {table}",
            f"unreachable default metric {UNREACHABLE_METRIC} table {table}"]


def rp_filter_key(interface: str) -> str:
    """The rp_filter key for ``interface`` in sysctl's slash form (names may contain dots)."""
    return f"net/ipv4/conf/{validate_interface(interface)}/rp_filter"


def route_record_from_json(data: Any) -> RouteRecord:
    """The ``--routes`` record as the state wrote it; anything malformed is a StateError.

    Commands are rebuilt from its numbers, never taken from the file: a rule, a
    route or a chain that is not what setup writes for them is refused.
    """
    try:
        if not isinstance(data, dict) or data.get("version") not in ROUTE_READABLE_VERSIONS:
            raise StateError(f"route record of unknown version {_get(data, 'version')!r}")
        families = {
            name: FamilyRoutes(**{k: v for k, v in dict(value).items() if k not in _RETIRED_ROUTE_FIELDS})
            for name, value in dict(data["families"]).items()
        }
        record = RouteRecord(**{**data, "families": families})
        validate_interface(record.interface)
    except StateError:
        raise
    except (TypeError, KeyError, ValueError, AttributeError, WgkillError) as exc:
        raise StateError(f"corrupt route record: {exc}") from exc
    if record.backend not in BACKENDS:
        raise StateError(f"route record of unknown backend {record.backend!r}")
    numbers = (record.mark, record.mask, record.table, record.priority)
    if not all(type(v) is int and 0 < v < 2**32 for v in numbers) or record.mark & ~record.mask:
        raise StateError("corrupt route record: bad mark, mask, table or priority")
    for name, fam in record.families.items():
        if fam != _family_routes(record, name):
            raise StateError(f"route record for {record.interface}: {name} is not what wgkill writes")
    if not all(_ours(change, record.interface) for change in record.sysctls):
        raise StateError(f"route record for {record.interface}: a sysctl wgkill does not change")
    return record


def _ours(change: Any, interface: str) -> bool:
    """A sysctl change teardown may write back: only our one key, only digits."""
    return (isinstance(change, dict) and set(change) == {"key", "old", "new"}
            and change["key"] == rp_filter_key(interface)
            and all(isinstance(change[k], str) and change[k].isdigit() for k in ("old", "new")))


def _family_routes(record: RouteRecord, name: str) -> FamilyRoutes | None:
    """What setup writes for family ``name`` (``ipv4``/``ipv6``), its chains as recorded when they
    are the backend's (none: the block's table holds them; else ``wgkill.names``' for the version)."""
    family = {"ipv4": 4, "ipv6": 6}.get(name)
    if family is None:
        return None
    chains = record.families[name].chains
    ours = route_chain_names(record.interface, guard=record.version >= 2)
    rule = route_rule(record.mark, record.mask, record.table, record.priority)
    return FamilyRoutes(family, rule, route_routes(record.interface, record.table),
                        chains if chains in ({}, ours) else ours)


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None
