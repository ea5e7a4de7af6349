"""What the kill switch allows, decided from the live tunnel and its config.

Everything here is a decision; the rule text lives in ``templates/``. The
policy for a tunnel is the same whether it is a full or a split tunnel, and
whether or not it has an fwmark: out the tunnel, its own encrypted packets
(by fwmark when there is one, by endpoint always, so a reconnect works while
the block holds), loopback and local destinations, and the few packets that
keep the uplink itself alive (DHCP, IPv6 neighbour discovery). Everything
else is rejected, in IPv6 too even when the tunnel carries none.
"""

import ipaddress
from collections.abc import Iterable

from .dns import DnsPlan
from .errors import ConfigError, UsageError
from .names import (
    chain_name,
    forward_chain_name,
    jump_comment,
    pattern_matches,
    set_name,
    validate_interface,
    validate_interface_pattern,
)
from .prefixes import PrefixList, merge
from .recordclass import dataclass
from .records import EndpointRule as EndpointRule
from .records import FamilyPolicy as FamilyPolicy
from .records import PeerEndpoint as PeerEndpoint
from .records import parse_mark as parse_mark
from .tunnel import TunnelFacts
from .wgconf import WgQuickConfig, parse_fwmark


@dataclass(frozen=True)
class KillSwitchPolicy:
    """Everything a block lets out, decided once from the tunnel and the options: both backends
    render it, the state records it, and composition re-renders from it."""

    interface: str
    fwmark: int | None
    endpoints: tuple[EndpointRule, ...]
    allowed_ips: tuple[str, ...]
    families: tuple[FamilyPolicy, ...]
    dns: DnsPlan
    split: PrefixList | None = None


_REJECT = {4: "icmp-port-unreachable", 6: "icmp6-port-unreachable"}

# --allow-lan: private, link-local, and their (link- and site-scoped) multicast.
LAN_RANGES = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "224.0.0.0/24", "239.0.0.0/8", "255.255.255.255/32",
    "fe80::/10", "fc00::/7", "ff02::/16", "ff05::/16",
)


def lan_ranges(extra: tuple[str, ...] = (), defaults: bool = True) -> tuple[str, ...]:
    """The LAN ranges --allow-lan opens: the private defaults, plus any ``--lan CIDR``."""
    nets = []
    for text in (LAN_RANGES if defaults else ()) + tuple(extra):
        try:
            nets.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError as exc:
            raise UsageError(f"--lan {text!r} is not a CIDR") from exc
    return tuple(dict.fromkeys(nets))


# Mark bits other software on the same host sets and matches: a tunnel fwmark overlapping them
# makes its packets look like theirs (kube-proxy drops packets with 0x8000 set). Each user is
# recognised by the links it creates, so the warning names only software that is really there:
# wg-quick's default fwmark 51820 (0xca6c) has Kubernetes' two bits set on every host.
@dataclass(frozen=True)
class MarkUser:
    """Another program's packet-mark bits, known by its links: the fwmark warning names it."""

    name: str
    bits: int
    links: tuple[str, ...]  # interface patterns, ``+`` as iptables writes it


WELL_KNOWN_MARKS = (
    MarkUser("Kubernetes", 0x0000C000,  # kube-proxy: 0x4000 masquerade, 0x8000 drop
             ("kube-ipvs0", "kube-bridge", "cni0", "flannel.1", "cilium_host", "weave", "cali+")),
    MarkUser("Tailscale", 0x00FF0000, ("tailscale0",)),
    MarkUser("Calico", 0xFFFF0000, ("cali+", "vxlan.calico")),
)


def mark_overlaps(fwmark: int | None, links: Iterable[str]) -> list[str]:
    """The well-known mark users present (one of their ``links`` exists) whose bits ``fwmark``
    shares, as ``name (0xbits)``."""
    if not fwmark:
        return []
    present = tuple(links)
    return [f"{user.name} ({user.bits:#x})" for user in WELL_KNOWN_MARKS
            if fwmark & user.bits and any(pattern_matches(p, link) for p in user.links for link in present)]


def _config_fwmark(config: WgQuickConfig | None) -> int | None:
    if config is None or config.fwmark is None:
        return None
    try:
        mark = parse_fwmark(config.fwmark)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: invalid FwMark {config.fwmark!r}") from exc
    return mark or None


def _endpoints(facts: TunnelFacts | None, config: WgQuickConfig | None) -> list[EndpointRule]:
    names: dict[str, str] = {}
    if config is not None:
        for peer in config.peers:
            if peer.public_key and peer.endpoint and not peer.endpoint.is_address:
                names[peer.public_key] = peer.endpoint.host
    found: list[EndpointRule] = []
    if facts is not None:
        for live in facts.peers:
            if live.endpoint is not None:
                found.append(
                    EndpointRule(live.endpoint.host, live.endpoint.port, names.get(live.public_key))
                )
    elif config is not None:
        for peer in config.peers:
            if peer.endpoint is not None and peer.endpoint.is_address:
                found.append(EndpointRule(peer.endpoint.host, peer.endpoint.port))
    unique = {(str(ipaddress.ip_address(e.address)), e.port): e for e in found}
    return [
        EndpointRule(address, port, unique[(address, port)].name)
        for address, port in sorted(unique, key=lambda k: (ipaddress.ip_address(k[0]).version, k))
    ]


def hostname_endpoints(config: WgQuickConfig | None) -> list[str]:
    """Endpoint hostnames, in config order, each once."""
    if config is None:
        return []
    names = (p.endpoint.host.lower().rstrip(".") for p in config.peers if p.endpoint)
    return list(dict.fromkeys(n for n in names if not _is_address(n)))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def dns_qname_hex(name: str) -> str:
    """``name`` in DNS wire format as hex, the way iptables-save prints a --hex-string.

    The block lets out UDP port 53 only when the query carries this exact
    name, so ``wg-quick up`` can re-resolve a hostname endpoint while the
    block holds and no other lookup leaves.
    """
    wire = b""
    for label in name.lower().rstrip(".").split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ConfigError(f"endpoint name {name!r} is not a valid DNS name")
        wire += bytes([len(raw)]) + raw
    return (wire + b"\0").hex()


def decide_split(
    allowed: PrefixList, listed: PrefixList | None = None, block_all: bool = False
) -> PrefixList | None:
    """Full or split: None means block everything outside the tunnel.

    A tunnel whose AllowedIPs hold a default route (``/0``) of either family is
    a full tunnel: both families are blocked, IPv6 too when only IPv4 goes
    through it. Otherwise only the tunnel's destinations are held to it and the
    rest flows normally. A prefix file (``--allowed-ips-file``) always means
    split, its list (plus any non-default AllowedIPs) being the destinations.
    """
    if block_all:
        return None
    defaults = {"0.0.0.0/0", "::/0"}
    has_default = bool(defaults & set(allowed.v4 + allowed.v6))
    if listed is None:
        return None if has_default else allowed
    rest = PrefixList(
        tuple(p for p in allowed.v4 if p not in defaults), tuple(p for p in allowed.v6 if p not in defaults)
    )
    return merge(listed, rest) if rest else listed  # the file is collapsed already: no second pass


def build_policy(
    interface: str,
    facts: TunnelFacts | None,
    config: WgQuickConfig | None,
    families: tuple[int, ...] = (4, 6),
    dns: DnsPlan | None = None,
    split: PrefixList | None = None,
    lan: tuple[str, ...] = (),
    gateway: bool = False,
    route_mark: str | None = None,
    allow_interfaces: tuple[str, ...] = (),
    allow_marks: tuple[str, ...] = (),
    peer_interfaces: tuple[str, ...] = (),
    exclude_cgroup: str | None = None,
    peer_endpoints: tuple[PeerEndpoint, ...] = (),
) -> KillSwitchPolicy:
    """Decide the rules for ``interface`` from what the tunnel and its config say.

    The DNS lock (when ``dns.lock``): ports 53 and 853 may reach only the
    tunnel's resolvers and only out the tunnel; a loopback resolver (a local
    stub) lets its upstream use any resolver, but still only out the tunnel.
    With split DNS (``dns.domains``) other names may use the uplink's resolver,
    but a query carrying one of those domains never leaves except to the
    tunnel's resolvers, and encrypted DNS (853) only goes through the tunnel.

    ``allow_interfaces`` and ``allow_marks`` (validated here) pass the block, after
    the DNS lock; ``peer_interfaces`` are the other tunnels wgkill protects: what
    leaves through them is encrypted, and its outer packets meet every block again;
    ``peer_endpoints`` are theirs: their own UDP to them passes as their blocks pass it.
    """
    allow_interfaces = tuple(dict.fromkeys(validate_interface_pattern(p) for p in allow_interfaces))
    allow_marks = tuple(dict.fromkeys(parse_mark(m) for m in allow_marks))
    peer_interfaces = tuple(sorted({validate_interface(n) for n in peer_interfaces} - {interface}))
    dns = dns or DnsPlan()
    fwmark = facts.fwmark if facts is not None else _config_fwmark(config)
    endpoints = tuple(_endpoints(facts, config))
    lookups = tuple(dns_qname_hex(name) for name in hostname_endpoints(config))
    if facts is not None:
        allowed = tuple(ip for peer in facts.peers for ip in peer.allowed_ips)
    else:
        allowed = tuple(ip for peer in (config.peers if config else ()) for ip in peer.allowed_ips)
    per_family = tuple(
        FamilyPolicy(
            family=family,
            interface=interface,
            chain=chain_name(interface),
            comment=jump_comment(interface),
            fwmark=fwmark,
            endpoints=tuple(e for e in endpoints if e.family == family),
            reject_with=_REJECT[family],
            host_prefix=32 if family == 4 else 128,
            endpoint_lookups=lookups,
            dns_lock=dns.lock,
            dns_servers=tuple(s for s in dns.servers_of(family) if not ipaddress.ip_address(s).is_loopback),
            dns_any_via_tunnel=dns.local_stub,
            dns_private_names=tuple(dns_qname_hex(d) for d in dns.domains),
            split_set=set_name(interface, family) if split is not None else None,
            lan=tuple(n for n in lan if ipaddress.ip_network(n).version == family),
            forward_chain=forward_chain_name(interface) if gateway else None,
            route_mark=route_mark,
            allow_interfaces=allow_interfaces,
            allow_marks=allow_marks,
            peer_interfaces=peer_interfaces,
            peer_endpoints=tuple(e for e in peer_endpoints if e.family == family),
            exclude_cgroup=exclude_cgroup if fwmark else None,
        )
        for family in families
    )
    return KillSwitchPolicy(interface, fwmark, endpoints, allowed, per_family, dns, split)
