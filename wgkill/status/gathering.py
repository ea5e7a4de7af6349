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
from ..kernel import ipv6_available
from ..names import validate_interface
from ..tunnel import read_tunnel
from .chains import Snapshots
from .facts import ExclusionFacts, HostFacts, InterfaceFacts, LinkFacts, WgFacts
from .nameservers import RESOLV_CONF, read_nameservers
from .netlink import read_netlink
from .probing import DEFAULT_TARGETS


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
    state = facts.state
    if state is None:
        return facts
    try:
        firewall = snaps.get(state.backend)
    except WgkillError as exc:
        facts.read_errors.append(f"cannot read the {state.backend} rules: {exc}")
    else:
        chains, sets, errors = firewall.inspect(state, ipv6)
        facts.chains += chains
        facts.sets += sets
        facts.read_errors += errors
    facts.postup = _read_postup(state.config, name)  # for the fix lines: the hook's own options
    if state.exclude:
        facts.exclusion = _read_exclusion(state, ipv6)
    return facts


def _read_exclusion(state: statefile.State, ipv6: bool) -> ExclusionFacts:
    """The exclusion's cgroup and members, and whether its marking rules are in place."""
    from ..cgroups import Cgroup, unified_root
    from ..exclude import ExclusionRecord, rules_present

    try:
        record = ExclusionRecord.from_dict(state.exclude)
    except WgkillError as exc:
        return ExclusionFacts("?", error=str(exc))
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
    host = HostFacts(uid=os.geteuid(), now=time.time(), ipv6=ipv6_available(), named=interface)
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
    host.resolvers, errors = read_nameservers(resolv_conf)
    host.errors += errors
    return host
