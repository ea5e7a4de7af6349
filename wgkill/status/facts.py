"""What wgkill-status knows about the machine: plain records, filled by ``gathering``, read by ``verdicts``.

They hold facts only (what netlink, ``iptables-save``, ``wg show`` and the
resolver configuration say), never a judgement, so unit tests can build any
situation by hand.
"""

from __future__ import annotations

import ipaddress

from .. import state as statefile
from ..firewall.facts import ChainFacts, SetFacts
from ..recordclass import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a check pays ~4 ms)
if TYPE_CHECKING:
    from ..tunnel import TunnelFacts

RESOLVED_STUBS = frozenset({"127.0.0.53", "127.0.0.54"})
# Where probes go and where gathering asks the kernel a plain packet would leave by: TEST-NET-3 and
# the IPv6 documentation prefix, routed nowhere. Here, not in ``probing``: a plain check sends no probe.
DEFAULT_TARGETS = {4: "203.0.113.1", 6: "2001:db8::1"}
DEFAULT_PROBE_PORT = 443
DEFAULT_PROBE_TIMEOUT = 2.0


@dataclass
class LinkFacts:
    """One network interface as netlink reports it."""

    name: str
    index: int
    kind: str | None = None  # "wireguard" (kernel), "tun" (wireguard-go), "veth", ...
    up: bool = False  # IFF_UP: administratively up
    operstate: str | None = None
    addresses: list[str] = field(default_factory=list)  # "10.0.0.2/32"
    wireguard: bool = False


@dataclass
class WgFacts:
    """What ``wg show IFACE dump`` says: how many peers, and the latest handshake of any."""

    peers: int = 0
    latest_handshake: int | None = None  # unix time, the most recent over all peers; None if never

    @classmethod
    def of(cls, tunnel: TunnelFacts) -> WgFacts:
        """The digest of the live tunnel as ``wgkill.tunnel`` parsed it."""
        latest = max((peer.latest_handshake for peer in tunnel.peers), default=0)
        return cls(peers=len(tunnel.peers), latest_handshake=latest or None)


@dataclass(frozen=True)
class RouteGap:
    """A piece of a ``--routes`` setup that is not there now (``wgkill.routes.missing``)."""

    family: str
    kind: str  # "rule", "route" (the unreachable fallback), "dev-route" (into the tunnel), "chain"
    what: str  # as ip / iptables would name it


@dataclass
class Nameserver:
    """A nameserver the system will use, and where it is configured."""

    address: str
    source: str  # "resolv.conf", "resolved:global", "resolved:LINK"
    link: str | None = None


@dataclass
class ExclusionFacts:
    """A tunnel's exclusion (``--allow-exclude``) as it is now: the cgroup, who is in it, its rules."""

    cgroup: str  # the recorded name, under the cgroup v2 root
    path: str | None = None  # where it is mounted now; None without cgroup v2
    present: bool = False
    members: list[tuple[int, str]] = field(default_factory=list)  # (pid, command)
    rules: dict[str, bool] = field(default_factory=dict)  # family -> mark, restore and nat chains all there
    error: str | None = None


@dataclass
class InterfaceFacts:
    """Everything read about one interface: its state file, link, tunnel, rules, DNS and exclusion."""

    interface: str
    state: statefile.State | None = None
    state_error: str | None = None
    link: LinkFacts | None = None
    wg: WgFacts | None = None
    chains: list[ChainFacts] = field(default_factory=list)
    sets: list[SetFacts] = field(default_factory=list)
    route_gaps: list[RouteGap] = field(default_factory=list)  # --routes pieces missing now
    read_errors: list[str] = field(default_factory=list)  # rules that could not be read
    postup: str | None = None  # the PostUp wgkill-up command, from the recorded config
    exclusion: ExclusionFacts | None = None


@dataclass
class GuardFacts:
    """wgkill-guard as it is now: whether it runs, its repairs, and which blocks it holds in a table
    of its own (read from the live tables, not from what it says)."""

    running: bool = False
    pid: int | None = None
    repairs: int = 0
    last_repair: float | None = None  # unix time
    last_repair_interface: str | None = None
    holding: list[str] = field(default_factory=list)  # interfaces whose owned table is present
    tables_read: bool = True  # False: the tables could not be listed


@dataclass
class HostFacts:
    """Everything one check read: the host (uplinks, routes, rules, resolvers, guard), its interfaces."""

    uid: int
    now: float
    ipv6: bool = True
    interfaces: list[InterfaceFacts] = field(default_factory=list)
    resolvers: list[Nameserver] = field(default_factory=list)
    routes: dict[str, str | None] = field(default_factory=dict)  # family -> interface to the probe target
    uplinks: dict[str, str | None] = field(default_factory=dict)  # family -> main-table default route's dev
    policy_rules: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # host-level read failures
    guard: GuardFacts | None = None  # None: not root


def family_name(family: int) -> str:
    """4 -> "ipv4", as the state and the reports name families."""
    return f"ipv{family}"


def canonical(address: str) -> str:
    """An address in the one form every comparison uses (compressed, no ``%zone``); text kept if not one."""
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def handshake_age(facts: InterfaceFacts, now: float) -> float | None:
    """Seconds since the latest handshake of any peer; None if there was none."""
    if facts.wg is None or not facts.wg.latest_handshake:
        return None
    return max(0.0, now - facts.wg.latest_handshake)
