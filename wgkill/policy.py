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
from dataclasses import dataclass

from .errors import ConfigError
from .ifname import chain_name, jump_comment
from .tunnel import TunnelFacts
from .wgconf import WgQuickConfig


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
    uplink_upkeep: bool = True


@dataclass(frozen=True)
class KillSwitchPolicy:
    interface: str
    fwmark: int | None
    endpoints: tuple[EndpointRule, ...]
    allowed_ips: tuple[str, ...]
    families: tuple[FamilyPolicy, ...]


_REJECT = {4: "icmp-port-unreachable", 6: "icmp6-port-unreachable"}


def _config_fwmark(config: WgQuickConfig | None) -> int | None:
    if config is None or config.fwmark is None or config.fwmark.lower() == "off":
        return None
    try:
        mark = int(config.fwmark, 0)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: invalid FwMark {config.fwmark!r}") from exc
    return mark or None


def _endpoints(facts: TunnelFacts | None, config: WgQuickConfig | None) -> list[EndpointRule]:
    names = {}
    if config is not None:
        for peer in config.peers:
            if peer.public_key and peer.endpoint and not peer.endpoint.is_address:
                names[peer.public_key] = peer.endpoint.host
    found: list[EndpointRule] = []
    if facts is not None:
        for peer in facts.peers:
            if peer.endpoint is not None:
                found.append(
                    EndpointRule(peer.endpoint.host, peer.endpoint.port, names.get(peer.public_key))
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
    """Endpoints given by name: they cannot be re-resolved while the block holds."""
    if config is None:
        return []
    return [str(p.endpoint) for p in config.peers if p.endpoint and not p.endpoint.is_address]


def build_policy(
    interface: str,
    facts: TunnelFacts | None,
    config: WgQuickConfig | None,
    families: tuple[int, ...] = (4, 6),
) -> KillSwitchPolicy:
    """Decide the rules for ``interface`` from what the tunnel and its config say."""
    fwmark = facts.fwmark if facts is not None else _config_fwmark(config)
    endpoints = tuple(_endpoints(facts, config))
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
        )
        for family in families
    )
    return KillSwitchPolicy(interface, fwmark, endpoints, allowed, per_family)
