"""Links, addresses, routes and policy rules, read over rtnetlink: the uplink and the tunnels."""

from __future__ import annotations

from pathlib import Path

from ..errors import WgkillError
from ..rtnetlink import AF_INET, AF_INET6, IFF_UP, KernelError, Rtnetlink, Rule
from .facts import LinkFacts, family_name

WG_SOCKETS = Path("/var/run/wireguard")
MAIN_TABLE = 254
FIB_RULE_INVERT = 0x2
RTN_UNICAST = 1
NO_SUPPRESS = 0xFFFFFFFF


def _link_facts(nl: Rtnetlink) -> dict[str, LinkFacts]:
    links: dict[str, LinkFacts] = {}
    by_index: dict[int, LinkFacts] = {}
    for msg in nl.links():
        link = LinkFacts(name=msg.name, index=msg.ifindex, kind=msg.kind, up=bool(msg.flags & IFF_UP),
                         operstate=msg.operstate)
        userspace = msg.kind == "tun" and (WG_SOCKETS / f"{msg.name}.sock").exists()  # wireguard-go
        link.wireguard = msg.kind == "wireguard" or userspace
        links[msg.name] = by_index[msg.ifindex] = link
    for address in nl.addresses():
        owner = by_index.get(address.ifindex)
        if owner is not None:
            owner.addresses.append(f"{address.address}/{address.prefixlen}")
    return links


def _route_facts(nl: Rtnetlink, links: dict[str, LinkFacts], targets: dict[int, str]
                 ) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The uplink (main-table default route's device, not a tunnel) and where a plain packet goes."""
    names = {link.index: name for name, link in links.items()}
    uplinks: dict[str, str | None] = {}
    routes: dict[str, str | None] = {}
    for family, af in ((4, AF_INET), (6, AF_INET6)):
        best: tuple[int, str] | None = None
        try:
            table = nl.routes(af)
        except KernelError:  # no IPv6 in this kernel, or netlink refuses: no uplink
            table = []
        for route in table:
            if route.table != MAIN_TABLE or route.dst_len != 0 or route.type != RTN_UNICAST:
                continue
            name = names.get(route.oif) if route.oif is not None else None
            if name is None or links[name].wireguard:
                continue
            metric = route.priority or 0
            if best is None or metric < best[0]:
                best = (metric, name)
        uplinks[family_name(family)] = best[1] if best else None
        oif = nl.route_to(targets[family])  # "network unreachable" is an answer: no route
        routes[family_name(family)] = names.get(oif) if oif is not None else None
    return uplinks, routes


def _rule_text(rule: Rule) -> str:
    parts = [f"{rule.priority or 0}:"]
    if rule.flags & FIB_RULE_INVERT:
        parts.append("not")
    if rule.fwmark is not None:
        parts.append(f"fwmark {rule.fwmark:#x}")
    parts.append(f"lookup {rule.table}")
    if rule.suppress_prefixlen not in (None, NO_SUPPRESS):
        parts.append(f"suppress_prefixlength {rule.suppress_prefixlen}")
    return " ".join(parts)


def _policy_rules(nl: Rtnetlink) -> list[str]:
    """Non-default policy routing rules (wg-quick's fwmark rules, typically)."""
    out = []
    for af in (AF_INET, AF_INET6):
        try:
            rules = nl.rules(af)
        except KernelError:  # a kernel without IPv6: no IPv6 rules
            continue
        for rule in rules:
            default = rule.table in (253, 254, 255) and not rule.fwmark
            if default and rule.suppress_prefixlen in (None, NO_SUPPRESS):
                continue
            out.append(("ipv4 " if af == AF_INET else "ipv6 ") + _rule_text(rule))
    return out


def read_netlink(targets: dict[int, str]) -> tuple[dict[str, LinkFacts], dict[str, str | None],
                                                     dict[str, str | None], list[str]]:
    """Links by name, the uplink per family, the device a packet to ``targets`` leaves by, policy rules."""
    try:
        with Rtnetlink() as nl:
            links = _link_facts(nl)
            uplinks, routes = _route_facts(nl, links, targets)
            return links, uplinks, routes, _policy_rules(nl)
    except OSError as exc:
        raise WgkillError(f"cannot read links and routes over netlink: {exc}") from exc
