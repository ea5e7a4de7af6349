"""Links, addresses, routes and policy rules, read over netlink (pyroute2): the uplink and the tunnels.

Only status pays for pyroute2's import, never the hooks.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from ..errors import WgkillError
from .facts import LinkFacts, family_name

WG_SOCKETS = Path("/var/run/wireguard")
MAIN_TABLE = 254
IFF_UP = 0x1
FIB_RULE_INVERT = 0x2


def _link_facts(ipr: Any) -> dict[str, LinkFacts]:
    links: dict[str, LinkFacts] = {}
    by_index: dict[int, LinkFacts] = {}
    for msg in ipr.get_links():
        name = msg.get("ifname")
        kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        link = LinkFacts(name=name, index=msg["index"], kind=kind, up=bool(msg["flags"] & IFF_UP),
                         operstate=msg.get("operstate"))
        link.wireguard = kind == "wireguard" or (kind == "tun" and (WG_SOCKETS / f"{name}.sock").exists())
        links[name] = by_index[msg["index"]] = link
    for msg in ipr.get_addr():
        owner = by_index.get(msg["index"])
        if owner is not None:
            owner.addresses.append(f"{msg.get('address')}/{msg['prefixlen']}")
    return links


def _route_facts(ipr: Any, links: dict[str, LinkFacts], targets: dict[int, str]
                 ) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The uplink (main-table default route's device, not a tunnel) and where a plain packet goes."""
    names = {link.index: name for name, link in links.items()}
    uplinks: dict[str, str | None] = {}
    routes: dict[str, str | None] = {}
    for family, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        best: tuple[int, str] | None = None
        try:
            table = ipr.get_routes(family=af, table=MAIN_TABLE)
        except Exception:  # noqa: BLE001 - no IPv6 in this kernel, or netlink refuses: no uplink
            table = []
        for route in table:
            if route["dst_len"] != 0 or route.get("type", 1) != 1:  # RTN_UNICAST defaults only
                continue
            oif = route.get("oif")
            if oif is None and route.get("multipath"):
                oif = route.get("multipath")[0]["oif"]
            name = names.get(oif)
            if name is None or links[name].wireguard:
                continue
            metric = route.get("priority") or 0
            if best is None or metric < best[0]:
                best = (metric, name)
        uplinks[family_name(family)] = best[1] if best else None
        try:
            got = ipr.route("get", dst=targets[family])
            routes[family_name(family)] = names.get(got[0].get("oif")) if got else None
        except Exception:  # noqa: BLE001 - "network unreachable" is an answer: no route
            routes[family_name(family)] = None
    return uplinks, routes


def _rule_text(msg: Any) -> str:
    parts = [f"{msg.get('priority') or 0}:"]
    if msg["flags"] & FIB_RULE_INVERT:
        parts.append("not")
    if msg.get("fwmark") is not None:
        parts.append(f"fwmark {msg.get('fwmark'):#x}")
    parts.append(f"lookup {msg.get('table')}")
    if msg.get("suppress_prefixlen") not in (None, 0xFFFFFFFF, -1):
        parts.append(f"suppress_prefixlength {msg.get('suppress_prefixlen')}")
    return " ".join(parts)


def _policy_rules(ipr: Any) -> list[str]:
    """Non-default policy routing rules (wg-quick's fwmark rules, typically)."""
    out = []
    for af in (socket.AF_INET, socket.AF_INET6):
        try:
            rules = ipr.get_rules(family=af)
        except Exception:  # noqa: BLE001, S112 - a kernel without IPv6: no IPv6 rules
            continue
        for msg in rules:
            default = msg.get("table") in (253, 254, 255) and not msg.get("fwmark")
            if default and msg.get("suppress_prefixlen") in (None, 0xFFFFFFFF, -1):
                continue
            text = ("ipv4 " if af == socket.AF_INET else "ipv6 ") + _rule_text(msg)
            out.append(text)
    return out


def read_netlink(targets: dict[int, str]) -> tuple[dict[str, LinkFacts], dict[str, str | None],
                                                     dict[str, str | None], list[str]]:
    """Links by name, the uplink per family, the device a packet to ``targets`` leaves by, policy rules."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            links = _link_facts(ipr)
            uplinks, routes = _route_facts(ipr, links, targets)
            return links, uplinks, routes, _policy_rules(ipr)
    except (OSError, NetlinkError) as exc:
        raise WgkillError(f"cannot read links and routes over netlink: {exc}") from exc
