"""Reading the machine for wgkill-status: every fact the verdict needs, and nothing decided.

The state files, the links, addresses, routes and policy rules (``netlink``),
the live chains (``chains``), the last handshake (``wg show IFACE dump``, read
by ``wgkill.tunnel``) and the resolvers the system will use (``nameservers``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .. import state as statefile
from ..errors import StateError, WgkillError
from ..exclusion import ExclusionRecord
from ..firewall.facts import SetFacts
from ..kernel import ipv6_available
from ..names import validate_interface
from ..tunnel import read_tunnel
from .chains import Snapshots
from .facts import (
    DEFAULT_TARGETS,
    ExclusionFacts,
    GuardFacts,
    HostFacts,
    InterfaceFacts,
    LinkFacts,
    RouteGap,
    WgFacts,
)
from .nameservers import RESOLV_CONF, read_nameservers
from .netlink import read_netlink


def postup_command(config_text: str, interface: str) -> str | None:
    """The ``wgkill-up`` command of the config's PostUp line, with ``%i`` filled in."""
    for line in config_text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.strip().lower() != "postup" or "wgkill-up" not in value:
            continue
        command = value[value.index("wgkill-up"):]
        command = re.split(r"\s*(?:;|&&|\|\||\|)\s*", command)[0].strip()
        return command.replace("%i", interface)
    return None


def _read_interface(name: str, links: dict[str, LinkFacts], ipv6: bool, snaps: Snapshots) -> InterfaceFacts:
    facts = InterfaceFacts(name, link=links.get(name))
    try:
        facts.state = statefile.load(name)
    except StateError as exc:
        facts.state_error = str(exc)
        return facts
    if facts.link is not None and (facts.link.wireguard or facts.state is not None):
        try:
            facts.wg = WgFacts.of(read_tunnel(name))
        except WgkillError:
            facts.wg = None  # a link that wg cannot read: no handshake to report
    if facts.state is not None:
        read_rules(facts, ipv6, snaps)
        facts.postup = _read_postup(facts.state.config, name)  # for the fix lines: the hook's own options
        if facts.state.exclude is not None:
            facts.exclusion = _read_exclusion(facts.state, facts.state.exclude, ipv6)
    return facts


def read_rules(facts: InterfaceFacts, ipv6: bool, snaps: Snapshots) -> None:
    """Fill ``facts`` (whose ``state`` is set) with the live chains, sets and --routes gaps."""
    state = facts.state
    if state is None:
        return
    try:
        firewall = snaps.get(state.backend)
    except WgkillError as exc:
        facts.read_errors.append(f"cannot read the {state.backend} rules: {exc}")
    else:
        chains, sets, errors = firewall.inspect(state, ipv6)
        facts.chains += chains
        facts.sets += [SetFacts(s.name, s.entries, _expected_entries(state, s.name)) for s in sets]
        facts.read_errors += errors
    if state.routes:
        from .. import routes

        try:
            facts.route_gaps = [RouteGap(*gap) for gap in routes.missing(state.routes)]
        except WgkillError as exc:
            facts.read_errors.append(f"cannot read the --routes rules and routes: {exc}")


def _expected_entries(state: statefile.State, set_name: str) -> int | None:
    """What split set ``set_name`` held when applied, where that is known exactly: recorded
    (iptables), 0 for a family the list does not use (both backends: nft merges adjacent
    intervals, so only "empty" is comparable there), or counted from AllowedIPs (older states)."""
    if state.nft is not None:  # named "TABLE SET" by NftBackend.inspect
        family = next((f for f, name in state.nft.sets.items() if set_name == f"{state.nft.table} {name}"),
                      None)
        return 0 if family is not None and state.nft.set_entries.get(family) == 0 else None
    family = next((f for f, rec in state.families.items() if set_name in rec.sets), None)
    if family is None:
        return None
    if state.families[family].set_entries is not None:
        return state.families[family].set_entries
    if state.allowed_ips_file:
        return None  # the list was a file: not re-read here
    from .. import ipset, prefixes

    try:
        listed = prefixes.parse_allowed_ips(state.allowed_ips).family(family)
    except WgkillError:
        return None
    return len(ipset.entries(family, listed))


def _read_exclusion(state: statefile.State, record: ExclusionRecord, ipv6: bool) -> ExclusionFacts:
    """The exclusion's cgroup and members, and whether its marking rules are in place."""
    from ..cgroups import Cgroup, unified_root
    from ..exclude import rules_present

    found = ExclusionFacts(record.cgroup)
    try:
        cgroup = Cgroup(unified_root(), record.cgroup)
        found.path = str(cgroup.path)
        found.present = cgroup.exists()
        found.members = [(m.pid, m.command) for m in cgroup.members()]
        found.rules = rules_present(state, record, ipv6)
    except WgkillError as exc:
        found.error = str(exc)
    return found


def _read_postup(config: str | None, interface: str) -> str | None:
    if not config:
        return None
    try:
        return postup_command(Path(config).read_text(errors="replace"), interface)
    except OSError:
        return None


def gather(interface: str | None = None, *, resolv_conf: Path = RESOLV_CONF,
           targets: dict[int, str] | None = None) -> HostFacts:
    """Read everything the verdict needs; reads only, changes nothing.

    With ``interface``, only that one; otherwise every interface with a state
    file and every WireGuard interface in this network namespace.
    """
    host = HostFacts(uid=os.geteuid(), now=time.time(), ipv6=ipv6_available())
    if interface is not None:
        validate_interface(interface)
    if host.uid != 0:
        return host
    links, host.uplinks, host.routes, host.policy_rules = read_netlink(targets or DEFAULT_TARGETS)
    if interface is not None:
        names = [interface]
    else:
        recorded = []
        for name in statefile.recorded_interfaces():
            try:
                recorded.append(validate_interface(name))
            except WgkillError:
                host.errors.append(f"{statefile.state_dir()}/{name}.json: not an interface name")
        names = sorted(set(recorded) | {n for n, link in links.items() if link.wireguard})
    snaps = Snapshots()
    host.interfaces = [_read_interface(name, links, host.ipv6, snaps) for name in names]
    host.guard = read_guard(names)
    host.resolvers, errors = read_nameservers(resolv_conf)
    host.errors += errors
    return host


def read_guard(names: list[str]) -> GuardFacts:
    """Whether wgkill-guard runs (its record in the state directory, its pid alive), its repairs,
    and which of ``names`` it holds: their owned table present (``wgkill.owned``)."""
    from ..names import guard_table_name
    from ..owned import GuardRecord, held_tables

    facts = GuardFacts()
    record = GuardRecord.load()
    if record is not None:
        facts.running = record.running()
        facts.pid = record.pid
        facts.repairs = record.repairs
        facts.last_repair = record.last_repair
        facts.last_repair_interface = record.last_repair_interface
    tables = held_tables()
    if tables is None:
        facts.tables_read = False
        return facts
    facts.holding = [name for name in names if guard_table_name(name) in tables]
    return facts
