"""Route a split tunnel's whole prefix set through the tunnel with one rule per family.

wg-quick adds one route per AllowedIPs prefix, one process each (16-24 s for
1,000 prefixes, quadratic). Here the kernel set built by ``wgkill.ipset``
drives routing instead, so the cost does not depend on the list:

* mangle ``OUTPUT`` jumps (first) to our chain ``wgkill-IFACE-rt``, which marks
  packets whose destination is in ``wgkill-IFACE-4``/``-6`` with ``MARK/MASK``
  (a 4-bit field, bits 8-11, one value per interface: clear of Kubernetes'
  0x4000/0x8000, Tailscale's 0xff0000 and Calico's 0xffff0000; version-1
  records, from wgkill 0.1, used bits 24-27 and are still removed). The tunnel's own
  encrypted packets are exempt (by endpoint address and port, and by the
  tunnel's fwmark if it has one), or a list that contains the VPN server would
  route the tunnel into itself.
* one ``ip rule``: ``fwmark MARK/MASK lookup TABLE`` at ``PRIORITY``, and in
  TABLE ``default dev IFACE`` plus ``unreachable default`` at the highest
  metric: when the interface vanishes (or goes down) the kernel drops the
  first, and marked packets are then dropped at the re-route instead of
  falling through to main and the uplink — without it they leak (seen in the
  lab). Dropped silently: refusing fast is the kill switch's job.
* the source address: a socket picks its source from the unmarked route (the
  uplink's), and the mark re-routes the packet after that. WireGuard's peer
  would drop a packet whose source is not in its AllowedIPs, so nat
  ``POSTROUTING`` jumps to ``wgkill-IFACE-nat``: ``-o IFACE`` and marked ->
  ``MASQUERADE`` (the tunnel's own address). Replies arrive on IFACE from
  sources that the unmarked main table routes via the uplink, which a strict
  IPv4 reverse-path filter drops; when ``rp_filter`` is strict (1) for IFACE,
  IFACE's own setting is raised to loose (2), recorded, and put back.
* fail closed without any of the above: mangle ``POSTROUTING`` jumps to
  ``wgkill-IFACE-out``, which drops a packet carrying the mark that is about to
  leave by anything but IFACE. Only there is the real output device known: when
  the rule is deleted (systemd-networkd removes "foreign" rules) marked packets
  are routed by main to the uplink, and the kill switch's chain, which judged
  them in OUTPUT before the re-route, let them through on the mark.

With the nft backend the marks and the source NAT are two base chains in the
kill switch's own table (``route``: type route at the output hook, mangle
priority; ``route_nat``: nat at postrouting), applied in the same transaction
as the block; ``setup`` and ``teardown`` then only touch routes, rules and the
sysctl, and the record says ``backend: nft`` with no iptables chains.

``ip`` is used rather than pyroute2: two rule reads and two ``ip -batch``
processes take 9-20 ms, pyroute2 165-200 ms of which 150-190 ms is its import
(bench/split_scale.py); whether a link is up is one dump of wgkill's own
``rtnetlink`` reader. iptables goes through one ``iptables-restore -w -n``
per family.

Order (the caller syncs the set and engages the kill switch first): routes in
TABLE, then the mangle/nat chains, then the rp_filter setting, and the rules
last — the rule is the one step that moves traffic, per family. ``teardown``
goes the other way round: rules first.

``setup`` may be called again with the ``previous`` record (same mark and
table; iptables-save and the routing tables come out identical); ``teardown``
may be called twice and with pieces already gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import FirewallError, PrerequisiteError, StateError
from .firewall import backend as make_backend
from .firewall import backend_class
from .names import validate_interface
from .recordclass import replace
from .records import (
    ROUTE_RECORD_VERSION,
    UNREACHABLE_METRIC,
    FamilyRoutes,
    route_routes,
    route_rule,
    rp_filter_key,
)
from .records import RouteRecord as RouteRecord
from .runner import CommandError, find, run

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

RECORD_VERSION = ROUTE_RECORD_VERSION  # what setup writes (wgkill.records reads 1 and 2)
MARK_SHIFT = 8
MARK_MASK = 0x00000F00  # bits 8-11: clear of k8s (0xc000), tailscale (0xff0000), calico (0xffff0000)
# wg-quick's fwmarks (51820 + n = 0xca6c...) hold 0xa in this field: that value is never ours.
SLOTS = tuple(slot for slot in range(1, 16) if slot != (51820 & MARK_MASK) >> MARK_SHIFT)
TABLE_BASE = 52820  # tables 52821..52835: clear of wg-quick's 51820 + n
PRIORITY_BASE = 32000  # 32001..32015: before main (32766) and wg-quick's auto rules (32765, 32764)
_FAMILY_FLAG = {4: "-4", 6: "-6"}


def _family_records(interface: str, families: Sequence[int], mark: int, table: int, priority: int,
                    backend: str) -> dict[str, FamilyRoutes]:
    return {f"ipv{family}": _family_record(interface, family, mark, MARK_MASK, table, priority, backend)
            for family in families}


def _family_record(interface: str, family: int, mark: int, mask: int, table: int,
                   priority: int, backend: str = "iptables", version: int = RECORD_VERSION) -> FamilyRoutes:
    """One family's part of the record; its chains are the backend's (no binary needed)."""
    return FamilyRoutes(
        family=family,
        rule=route_rule(mark, mask, table, priority),
        routes=route_routes(interface, table),
        chains=backend_class(backend).route_chains(interface, version),
    )


# ---- reading what is there ------------------------------------------------------------------


def _ip() -> str:
    path = find("ip")
    if path is None:
        raise PrerequisiteError("ip not found on PATH: install iproute2")
    return path


def _read_json(argv: list[str]) -> list[dict[str, Any]]:
    """``ip -j ... show`` output; a table that does not exist yet reads as empty."""
    try:
        text = run(argv)
    except CommandError as exc:
        if "does not exist" in exc.stderr:
            return []
        raise FirewallError(f"cannot read routing state: {exc}") from exc
    return json.loads(text) if text.strip() else []


def _rules(family: int) -> list[dict[str, Any]]:
    return _read_json([_ip(), "-j", _FAMILY_FLAG[family], "rule", "show"])


def link_up(interface: str) -> bool:
    """Whether ``interface`` exists and is administratively up (IFF_UP), from one rtnetlink dump:
    the guard asks on every check, where an ``ip`` child per block cost a process each time."""
    from .rtnetlink import IFF_UP, Rtnetlink

    validate_interface(interface)
    with Rtnetlink() as netlink:
        return any(link.name == interface and link.flags & IFF_UP for link in netlink.links())


def _table_routes(family: int, table: int) -> list[dict[str, Any]]:
    return _read_json([_ip(), "-j", _FAMILY_FLAG[family], "route", "show", "table", str(table)])


def _rule_matches(rule: dict[str, Any], mark: int, mask: int, table: int, priority: int) -> bool:
    return (
        rule.get("priority") == priority
        and str(rule.get("table")) == str(table)
        and int(str(rule.get("fwmark", "0")), 0) == mark
        and int(str(rule.get("fwmask", "0xffffffff")), 0) == mask
        and rule.get("src", "all") == "all"
        and not rule.get("not")
    )


def _ours(route: dict[str, Any], interface: str) -> str | None:
    """Which of our two routes ``route`` (from ``ip -j route show table T``) is, if either."""
    if route.get("dst") != "default":
        return None
    if route.get("type") == "unreachable" and route.get("metric") == UNREACHABLE_METRIC:
        return "unreachable"
    if "type" not in route and route.get("dev") == interface:
        return "dev"
    return None


def _slot_in_use(slot: int, rules: Iterable[dict[str, Any]], wg_fwmark: int | None) -> bool:
    mark, table, priority = slot << MARK_SHIFT, TABLE_BASE + slot, PRIORITY_BASE + slot
    if wg_fwmark is not None and wg_fwmark & MARK_MASK == mark:
        return True
    for rule in rules:
        if rule.get("priority") == priority or str(rule.get("table")) == str(table):
            return True
        if "fwmark" in rule and int(str(rule["fwmark"]), 0) & MARK_MASK == mark:
            return True
    return any(_table_routes(family, table) for family in (4, 6))


def allocate(wg_fwmark: int | None = None) -> int:
    """The first slot whose mark, table and priority nobody uses (rules of both families,
    routes in the table); FirewallError if all 15 are taken."""
    rules = _rules(4) + _rules(6)
    for slot in SLOTS:
        if not _slot_in_use(slot, rules, wg_fwmark):
            return slot
    raise FirewallError(
        f"no free routing slot: fwmarks {MARK_MASK:#x}, tables {TABLE_BASE + 1}-{TABLE_BASE + 15} "
        f"and rule priorities {PRIORITY_BASE + 1}-{PRIORITY_BASE + 15} are all in use"
    )


# ---- sysctl ---------------------------------------------------------------------------------


def _read_sysctl(key: str) -> str | None:
    try:
        return (Path("/proc/sys") / key).read_text().strip()
    except OSError:
        return None


def _write_sysctl(key: str, value: str) -> None:
    try:
        run(["sysctl", "-q", "-w", f"{key}={value}"], change=True)
    except CommandError as exc:
        raise FirewallError(f"cannot set {key}: {exc}") from exc


def _loosen_rp_filter(interface: str) -> list[dict[str, str]]:
    """If IPv4 rp_filter is strict for ``interface`` (max of all and the interface), make the
    interface loose: replies from listed destinations arrive on it unmarked."""
    key = rp_filter_key(interface)
    own, every = _read_sysctl(key), _read_sysctl("net/ipv4/conf/all/rp_filter")
    if own is None or every is None or max(int(own), int(every)) != 1:
        return []
    _write_sysctl(key, "2")
    return [{"key": key, "old": own, "new": "2"}]


# ---- the two entry points -------------------------------------------------------------------


def plan(interface: str, families: Sequence[int] = (4, 6), *, wg_fwmark: int | None = None,
         backend: str = "iptables") -> RouteRecord:
    """The record ``setup`` would write, changing nothing: a free slot and the iptables variant.

    Save it as intent before ``setup(..., previous=planned)`` so an interrupted run
    stays removable; save the record ``setup`` returns afterwards (it adds the sysctl).
    """
    validate_interface(interface)
    slot = allocate(wg_fwmark)
    mark, table, priority = slot << MARK_SHIFT, TABLE_BASE + slot, PRIORITY_BASE + slot
    variant = backend_class(backend).route_variant()
    return RouteRecord(interface, mark, MARK_MASK, table, priority, variant,
                       _family_records(interface, families, mark, table, priority, backend), backend=backend)


def setup(
    interface: str,
    families: Sequence[int] = (4, 6),
    *,
    endpoints: Sequence[tuple[str, int]] = (),
    wg_fwmark: int | None = None,
    previous: RouteRecord | None = None,
) -> RouteRecord:
    """Route every destination in the interface's ipsets through ``interface``.

    ``endpoints``: the peers' (address, port), exempt from marking; ``wg_fwmark``:
    the tunnel's fwmark, if any, exempt too. ``previous``: the record of an
    earlier ``setup`` or ``plan`` for this interface, whose slot is reused
    (idempotent re-run); without it a free slot is allocated.
    The sets must exist (``wgkill.ipset.sync``) — iptables refuses a rule
    naming a missing set, and nothing moves then.
    """
    validate_interface(interface)
    ip = _ip()
    if previous is None:
        previous = plan(interface, families, wg_fwmark=wg_fwmark)
    elif previous.interface != interface:
        raise StateError(f"route record is for {previous.interface}, not {interface}")
    mark, table, priority = previous.mark, previous.table, previous.priority
    variant = previous.iptables_variant
    firewall = make_backend(previous.backend)
    record = RouteRecord(interface, mark, MARK_MASK, table, priority, variant,
                         _family_records(interface, families, mark, table, priority, previous.backend),
                         backend=previous.backend)

    # 1. routes in our table: nothing uses the table before the rule exists. Into the tunnel
    #    only while it is up (the guard repairs a dropped tunnel's rule: the fallback suffices).
    up = link_up(interface)
    for family in families:
        wanted = record.families[f"ipv{family}"].routes[0 if up else 1:]
        _batch(ip, family, "".join(f"route replace {route}\n" for route in wanted))
    # 2. marks and source NAT, one transaction per family (nft: already in the kill switch's table).
    for family in families:
        endpoints_here = [(a, p) for a, p in endpoints if (":" in a) == (family == 6)]
        firewall.apply_route_marks(interface, family, variant, mark, MARK_MASK, endpoints_here, wg_fwmark)
    # 3. replies on the tunnel must pass the IPv4 reverse-path filter.
    if 4 in families:
        record = replace(record, sysctls=_loosen_rp_filter(interface) or [
            change for change in (previous.sysctls if previous else [])
            if change["key"] == rp_filter_key(interface) and _read_sysctl(change["key"]) == change["new"]
        ])  # already loosened by the previous run: keep its "old" for teardown
    # 4. the rules: this is where traffic moves, one family at a time.
    for family in families:
        present = any(_rule_matches(r, mark, MARK_MASK, table, priority) for r in _rules(family))
        if not present:
            _batch(ip, family, f"rule add {record.families[f'ipv{family}'].rule}\n")
    return record


def restore_routing(record: RouteRecord) -> list[str]:
    """Put back ``record``'s policy rules and routes that are gone (the guard: systemd-networkd
    deletes "foreign" rules), leaving everything present alone; returns what was added.
    The route into the tunnel only while the tunnel is up. May be called any number of times."""
    ip = _ip()
    up = link_up(record.interface)
    added = []
    for name, fam in sorted(record.families.items()):
        kinds = {_ours(r, record.interface) for r in _table_routes(fam.family, record.table)}
        dev, unreachable = fam.routes
        wanted = [route for route, kind in ((dev, "dev"), (unreachable, "unreachable"))
                  if kind not in kinds and (up or kind != "dev")]
        if not any(_rule_matches(r, record.mark, record.mask, record.table, record.priority)
                   for r in _rules(fam.family)):
            wanted.append(f"rule {fam.rule}")
        if wanted:  # routes before the rule: the rule is what moves traffic
            batch = "".join(f"route replace {w}\n" for w in wanted if not w.startswith("rule "))
            batch += "".join(f"rule add {w[5:]}\n" for w in wanted if w.startswith("rule "))
            _batch(ip, fam.family, batch)
            added += [f"{name} {w}" for w in wanted]
    return added


def teardown(record: RouteRecord) -> list[str]:
    """Remove exactly what ``record`` says, rules first; pieces already gone are fine.

    Returns what was removed, one phrase each. Raises FirewallError if something
    recorded could not be removed or read (every other piece is still removed).
    """
    validate_interface(record.interface)
    ip = _ip()
    removed: list[str] = []
    failures: list[str] = []
    families = sorted(fam.family for fam in record.families.values())

    def rule(family: int) -> None:
        fam = record.families[f"ipv{family}"]
        if any(_rule_matches(r, record.mark, record.mask, record.table, record.priority)
               for r in _rules(family)):
            _batch(ip, family, f"rule del {fam.rule}\n")
            removed.append(f"ipv{family} rule {fam.rule}")

    def chains(family: int) -> None:
        fam = record.families[f"ipv{family}"]
        if not fam.chains:
            return  # nft: in the kill switch's table, removed with it
        removed.extend(make_backend(record.backend).remove_route_marks(
            record.interface, family, record.iptables_variant, fam.chains))

    def table(family: int) -> None:
        kinds = {_ours(r, record.interface) for r in _table_routes(family, record.table)}
        gone = [
            route for route in record.families[f"ipv{family}"].routes
            if ("unreachable" if route.startswith("unreachable") else "dev") in kinds
        ]
        if gone:
            _batch(ip, family, "".join(f"route del {route}\n" for route in gone))
            removed.extend(f"ipv{family} route {route}" for route in gone)

    for step in (rule, chains, table):
        for family in families:
            try:
                step(family)
            except (FirewallError, PrerequisiteError) as exc:
                failures.append(str(exc))
    for change in record.sysctls:
        if _read_sysctl(change["key"]) == change["new"]:
            try:
                _write_sysctl(change["key"], change["old"])
                removed.append(f"{change['key']}={change['new']} (back to {change['old']})")
            except FirewallError as exc:
                failures.append(str(exc))
    if failures:
        raise FirewallError("; ".join(failures))
    return removed


def _batch(ip: str, family: int, commands: str) -> None:
    try:
        run([ip, _FAMILY_FLAG[family], "-batch", "-"], stdin=commands, change=True)
    except CommandError as exc:
        raise FirewallError(f"ipv{family}: {exc}") from exc


def missing(record: RouteRecord) -> list[tuple[str, str, str]]:
    """What of ``record`` is missing now, as (family, kind, what): kind ``rule``, ``route`` (the
    unreachable fallback), ``dev-route`` (into the tunnel: gone too when the tunnel is down)
    or ``chain``. Empty when everything is in place; for status and the guard."""
    missing = []
    for name, fam in sorted(record.families.items()):
        if not any(_rule_matches(r, record.mark, record.mask, record.table, record.priority)
                   for r in _rules(fam.family)):
            missing.append((name, "rule", fam.rule))
        kinds = {_ours(r, record.interface) for r in _table_routes(fam.family, record.table)}
        dev, unreachable = fam.routes
        if "unreachable" not in kinds:
            missing.append((name, "route", unreachable))
        if "dev" not in kinds:
            missing.append((name, "dev-route", dev))
        if not fam.chains:
            continue  # nft: the marks are in the kill switch's table, which status reads on its own
        firewall = make_backend(record.backend)
        gone = firewall.missing_route_marks(fam.family, record.iptables_variant, fam.chains)
        missing += [(name, "chain", what) for what in gone]
    return missing
