"""Engage the kill switch for one interface, and re-apply recorded blocks at boot: the PostUp library.

Order matters and is the contract: validate, choose the backend and resolve
every binary, read the tunnel and *plan* the payload before the first change
(``--dry-run`` stops there and prints it); then, under the state lock, record
the intent and *apply*. With nft both families are one transaction; with
iptables a failure after the first family leaves that family blocking (the
safe side) and is reported. Release lives in ``wgkill.release``, which the
PreDown hook imports alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import compose, dns, hostpins, prefixes
from . import state as statefile
from .errors import ApplyFailed, FirewallError, StateError, UsageError, WgkillError
from .firewall import backend as make_backend
from .firewall import choose
from .kernel import ipv6_available, require_root
from .names import pattern_matches, validate_interface
from .policy import (
    KillSwitchPolicy,
    build_policy,
    decide_split,
    hostname_endpoints,
    lan_ranges,
    mark_overlaps,
)
from .recordclass import dataclass, field
from .replay import replay, replayable
from .runner import run, which
from .tunnel import read_tunnel
from .wgconf import WgQuickConfig, load_config

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

    from .exclude import ExclusionRecord
    from .firewall.base import Backend, Plan
    from .routes import RouteRecord

DEFAULT_CONFIG_DIR = "/etc/wireguard"


@dataclass
class Engaged:
    """What one wgkill-up did (or, with --dry-run, would do): the CLI prints it."""

    interface: str
    policy: KillSwitchPolicy
    payloads: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _load_config(interface: str, config_path: str | None) -> WgQuickConfig | None:
    """The explicit config, or /etc/wireguard/IFACE.conf if it exists (wg-quick may use a path)."""
    if config_path is not None:
        return load_config(config_path)
    default = Path(DEFAULT_CONFIG_DIR) / f"{interface}.conf"
    return load_config(default) if default.exists() else None


@dataclass(frozen=True)
class UpOptions:
    """What ``wgkill-up`` was asked to do, beyond the interface name."""

    config_path: str | None = None
    dry_run: bool = False
    dns: tuple[str, ...] = ()
    dns_domains: tuple[str, ...] = ()
    no_dns_lock: bool = False
    lock_resolv_conf: bool = False
    dns_backend: str = "auto"
    allowed_ips_file: str | None = None
    block_all: bool = False
    allow_lan: bool = False
    lan: tuple[str, ...] = ()
    gateway: bool = False
    lockdown: bool = False
    routes: bool = False
    allow_interfaces: tuple[str, ...] = ()
    allow_marks: tuple[str, ...] = ()
    backend: str = "auto"
    allow_exclude: bool = False


def _state_record(
    interface: str, policy: KillSwitchPolicy, config: WgQuickConfig | None, options: UpOptions,
    dns_backend: str, dns_record: dict[str, Any] | None,
) -> statefile.State:
    plan = policy.dns
    return statefile.State(
        interface=interface,
        applied_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        fwmark=policy.fwmark,
        config=config.path if config else None,
        endpoints=policy.endpoints,
        allowed_ips=list(policy.allowed_ips),
        dns=statefile.DnsState(
            servers=plan.servers,
            domains=plan.domains,
            lock=plan.lock,
            backend=dns_backend if plan.active else "none",
            record=dns_record,  # the resolver's undo, replaced once this run's change is done
        ),
        lockdown=options.lockdown,
        allowed_ips_file=options.allowed_ips_file,
        policies=policy.families,
    )


def _previous(interface: str) -> statefile.State | None:
    """An earlier run's state (None if absent or unreadable): re-running builds on it."""
    try:
        return statefile.load(interface)
    except StateError:
        return None


def engage(interface: str, options: UpOptions | None = None) -> Engaged:
    """Apply (or, with ``dry_run``, only plan) the kill switch and DNS for ``interface``.

    May be called again at any time: the result is the same as calling it once.
    """
    options = options or UpOptions()
    validate_interface(interface)
    families = (4, 6) if ipv6_available() else (4,)
    firewall = make_backend(choose(options.backend, _previous(interface)))  # binaries, before any change
    if not options.dry_run:
        require_root()
    config = _load_config(interface, options.config_path)
    if options.dry_run:
        return _engage(interface, options, families, config, firewall)
    with statefile.lock():  # planning too: a routing slot is picked from what is free
        return _engage(interface, options, families, config, firewall)


@dataclass
class _Decision:
    """Everything a run decided before its first change (``_decide``): what ``_commit`` applies."""

    previous: statefile.State | None
    previous_dns: dict[str, Any] | None
    dns_plan: dns.DnsPlan
    dns_backend: str
    split: prefixes.PrefixList | None
    route_families: tuple[int, ...]
    previous_routes: RouteRecord | None
    planned: RouteRecord | None  # --routes: the record setup will write
    excluding: ExclusionRecord | None
    policy: KillSwitchPolicy
    plan: Plan
    warnings: list[str]
    recorded: compose.Recorded  # every tunnel's state, read once under this run's lock hold


def _engage(
    interface: str, options: UpOptions, families: tuple[int, ...], config: WgQuickConfig | None,
    firewall: Backend,
) -> Engaged:
    """Decide (nothing changes), warn, then commit: intent recorded first, each step undone on failure
    only as far as ``_apply_block`` says."""
    decision = _decide(interface, options, families, config, firewall)
    result = Engaged(interface, decision.policy, {}, decision.warnings
                     + _warnings(interface, options, families, config, decision))
    if options.dry_run:
        result.payloads = firewall.preview(decision.plan)
        if decision.excluding is not None:
            result.payloads.update(firewall.exclusion_payloads(decision.excluding))
        return result
    result.warnings += _commit(interface, options, config, firewall, decision)
    return result


def _decide(
    interface: str, options: UpOptions, families: tuple[int, ...], config: WgQuickConfig | None,
    firewall: Backend,
) -> _Decision:
    """Read the tunnel, the resolver and the earlier state, and plan every piece; changes nothing."""
    previous = _previous(interface)
    previous_dns = previous.dns.record if previous else None
    dns_plan = dns.plan(
        config, options.dns, options.dns_domains, options.no_dns_lock, options.lock_resolv_conf,
        options.dns_backend,
    )
    dns_backend = dns.detect_backend(dns_plan.backend)
    warnings = dns.preflight(dns_plan, dns_backend, previous_dns)
    lan = lan_ranges(options.lan, defaults=options.allow_lan) if options.allow_lan or options.lan else ()
    facts = read_tunnel(interface)
    listed = _listed(options)
    allowed = prefixes.parse_allowed_ips([ip for peer in facts.peers for ip in peer.allowed_ips])
    split = decide_split(allowed, listed, options.block_all)
    if split is not None:
        firewall.check_split_tools()
    route_families = tuple(f for f in families if split is not None and split.family(f))
    _check_routes(options, split, allowed, route_families)
    previous_routes = _route_record(previous)
    planned = _plan_routes(interface, options, firewall, route_families, previous_routes, facts.fwmark)
    excluding = None
    if options.allow_exclude:
        from . import exclude  # only tunnels that allow exclusion pay for this import

        mark = exclude.check_tunnel(facts.fwmark, split is None, bool(config and config.routes_off))
        excluding = exclude.plan(interface, mark, families)
    route_mark = f"0x{planned.mark:x}/0x{planned.mask:x}" if planned else None
    recorded = compose.Recorded.load(skip=interface)  # its own state is `previous`
    others = compose.peers(interface, recorded)
    policy = build_policy(
        interface, facts, config, families, dns_plan, split, lan, options.gateway, route_mark,
        allow_interfaces=options.allow_interfaces, allow_marks=options.allow_marks,
        peer_interfaces=others.interfaces, peer_endpoints=others.endpoints,
        exclude_cgroup=excluding.cgroup if excluding else None,
    )
    plan = firewall.plan(policy, split, cache=not options.dry_run)
    return _Decision(previous, previous_dns, dns_plan, dns_backend, split, route_families, previous_routes,
                     planned, excluding, policy, plan, warnings, recorded)


def _listed(options: UpOptions) -> prefixes.PrefixList | None:
    """--allowed-ips-file's list, read once (through the cache of parsed lists)."""
    if not options.allowed_ips_file:
        return None
    from . import rendercache  # only split tunnels with a list file pay for this import here

    return rendercache.prefix_list(options.allowed_ips_file, save_new=not options.dry_run)


def _check_routes(options: UpOptions, split: prefixes.PrefixList | None, allowed: prefixes.PrefixList,
                  route_families: tuple[int, ...]) -> None:
    """--routes needs a split tunnel whose every listed destination some peer may receive."""
    if options.routes and not route_families:
        raise UsageError("--routes needs a split tunnel: Table = off with --allowed-ips-file, "
                         "or AllowedIPs without a default route")
    if options.routes and split is not None:
        missing = prefixes.uncovered(split, allowed)
        if missing:  # WireGuard drops what no peer may receive: every listed destination, silently
            raise UsageError(
                f"--routes: {missing} listed prefix{'es' if missing != 1 else ''} not covered by the "
                "peers' AllowedIPs, WireGuard would drop their traffic; use "
                "`AllowedIPs = 0.0.0.0/0, ::/0` with `Table = off`")


def _plan_routes(interface: str, options: UpOptions, firewall: Backend, route_families: tuple[int, ...],
                 previous_routes: RouteRecord | None, wg_fwmark: int | None) -> RouteRecord | None:
    """--routes: the record setup will write; the earlier run's slot when it fits (an idempotent re-run)."""
    if not options.routes:
        return None
    from . import routes  # only tunnels that route their own prefixes pay for this import

    which("sysctl")
    if (previous_routes is not None and previous_routes.backend == firewall.name
            and previous_routes.version == routes.RECORD_VERSION
            and {int(n[-1]) for n in previous_routes.families} == set(route_families)):
        return previous_routes
    return routes.plan(interface, route_families, wg_fwmark=wg_fwmark, backend=firewall.name)


def _warnings(interface: str, options: UpOptions, families: tuple[int, ...], config: WgQuickConfig | None,
              decision: _Decision) -> list[str]:
    """What the user should know about this run; none of it stops it."""
    policy, dns_plan = decision.policy, decision.dns_plan
    warnings = [
        f"endpoint {name} is a hostname: while the block holds, only lookups of this one name "
        "may leave (see README, 'Hostname endpoints')"
        for name in hostname_endpoints(config)
    ]
    if options.routes and config is not None and not config.routes_off:
        warnings.append("--routes without Table = off: wg-quick also adds one route per prefix")
    if 6 not in families:
        warnings.append("IPv6 is disabled in this kernel: no IPv6 rules needed")
    opened = [f"{pattern} ({', '.join(devs)})" for pattern in policy.families[0].allow_interfaces
              if (devs := [d for d in _uplinks() if pattern_matches(pattern, d) and d != interface])]
    if opened:
        warnings.append(f"--allow-iface {'; '.join(opened)} matches the uplink: traffic leaves there "
                        "whatever the tunnel does, the block is lifted for it")
    overlaps = mark_overlaps(policy.fwmark, _links())
    if overlaps:
        warnings.append(f"the tunnel's fwmark {policy.fwmark:#x} shares bits with {', '.join(overlaps)}: "
                        "their rules may treat its packets as their own (set FwMark = to clear bits)")
    if dns_plan.active and not dns_plan.lock:
        warnings.append("DNS lock is off (--no-dns-lock): queries may reach resolvers outside the tunnel")
    return warnings


def _commit(interface: str, options: UpOptions, config: WgQuickConfig | None, firewall: Backend,
            d: _Decision) -> list[str]:
    """Apply what ``_decide`` planned, in the contract's order; returns composition's warnings."""
    record = _apply_block(interface, options, config, firewall, d)
    previous = d.previous
    if previous is not None and previous.exclude and (
            d.excluding is None or previous.backend != firewall.name):
        _drop_exclusion(interface, previous, keep_cgroup=d.excluding is not None)
    if d.excluding is not None:
        firewall.apply_exclusion(d.excluding, record)  # the kill switch lets them out: now mark them
    if d.planned is not None:
        from . import routes

        record.routes = d.planned
        statefile.save(record)  # intent before any route moves
        done_routes = routes.setup(
            interface, d.route_families, previous=d.planned, wg_fwmark=d.policy.fwmark,
            endpoints=[(e.address, e.port) for e in d.policy.endpoints],
        )
        record.routes = done_routes
    if d.previous_routes is not None and d.previous_routes is not d.planned:
        from . import routes

        routes.teardown(d.previous_routes)  # routed differently (or not at all) last time
    if previous is not None and previous.backend != firewall.name:
        _switch_backend(previous)  # the new block holds: remove the old one, exactly as recorded
    record.dns = record.dns.holding(dns.apply(d.dns_plan, d.dns_backend, interface, d.previous_dns))
    statefile.save(record)
    hostpins.unpin(interface)  # the tunnel is up: the PreUp pins have done their job
    return compose.recompose(interface, d.recorded)  # the other blocks now let this tunnel out


def _apply_block(interface: str, options: UpOptions, config: WgQuickConfig | None, firewall: Backend,
                 d: _Decision) -> statefile.State:
    """Record the intent, make the exclusion's cgroup (rules name it), apply the block. The undo of a
    failure: when nothing was applied and no earlier run had a record, the record and the cgroup
    made here go; otherwise both stay (the record is what wgkill-down removes by)."""
    had_record = statefile.path_for(interface).exists()
    record = _state_record(interface, d.policy, config, options, d.dns_backend, d.previous_dns)
    firewall.record(d.plan, record)
    if d.excluding is not None:
        record.exclude = d.excluding
    statefile.save(record)  # intent first: a crash mid-way stays removable
    made_cgroup = False
    if d.excluding is not None:
        from . import exclude  # only tunnels that allow exclusion pay for this import

        made_cgroup = exclude.cgroup_of_record(d.excluding).create()  # before the rules that name it
    try:
        firewall.apply(d.plan, record, d.previous)
    except FirewallError as exc:
        applied = exc.applied if isinstance(exc, ApplyFailed) else []
        if not applied and not had_record:
            statefile.remove(interface)  # nothing applied, nothing to record
            if made_cgroup and d.excluding is not None:
                exclude.release_cgroup(d.excluding.cgroup, interface)
        raise
    return record


def _links() -> list[str]:
    """This namespace's interface names (for a warning only; sysfs, no child process)."""
    try:
        return os.listdir("/sys/class/net")
    except OSError:
        return []


def _uplinks() -> set[str]:
    """The devices of the main table's default routes, both families (for a warning only)."""
    devices = set()
    for flag in ("-4", "-6"):
        try:
            routes = json.loads(run([which("ip"), "-j", flag, "route", "show", "default"]) or "[]")
        except (WgkillError, ValueError):
            continue
        devices |= {r["dev"] for r in routes if isinstance(r, dict) and isinstance(r.get("dev"), str)}
    return devices


def _drop_exclusion(interface: str, previous: statefile.State, keep_cgroup: bool) -> None:
    """The last run's exclusion rules outside the kill switch go (this run allows none, or another
    backend holds the block now); its cgroup too unless kept, or another tunnel still allows
    exclusion (its processes back to the root cgroup)."""
    from . import exclude

    exclude.remove_rules(interface, previous)
    if keep_cgroup:
        return
    if previous.exclude is not None:
        exclude.release_cgroup(previous.exclude.cgroup, interface)


def _switch_backend(previous: statefile.State) -> None:
    """Another backend applied the previous block: the new one holds now, remove the old exactly."""
    make_backend(previous.backend).remove(previous)


def _route_record(recorded: statefile.State | None) -> RouteRecord | None:
    return recorded.routes if recorded is not None else None


def boot() -> list[tuple[str, str]]:
    """Re-apply every recorded block, exactly as recorded, before the network comes up.

    A state file exists only while a block is engaged (an unclean drop, or
    lockdown), so each one is re-applied. A state that cannot be read gets a
    full block by name (lo, local and link upkeep only): Mullvad treats an
    unreadable state as "secured", and so do we. Returns (interface, what was
    done) pairs; raises only when nothing could be applied at all.
    """
    require_root()
    done: list[tuple[str, str]] = []
    failures: list[str] = []
    with statefile.lock():
        for interface in statefile.recorded_interfaces():
            try:
                validate_interface(interface)
            except WgkillError:
                failures.append(f"{interface}.json: not an interface name, ignored")
                continue
            try:
                recorded = statefile.load(interface)
            except StateError:
                recorded = None
            try:
                done.append((interface, _boot_one(interface, recorded)))
            except WgkillError as exc:
                failures.append(f"{interface}: {exc}")
    if failures and not done:
        raise FirewallError("; ".join(failures))
    done += [("-", failure) for failure in failures]
    return done


def _boot_one(interface: str, recorded: statefile.State | None) -> str:
    families = (4, 6) if ipv6_available() else (4,)
    excluding, why = _boot_exclusion(recorded)
    if recorded is None or not replayable(recorded):
        make_backend(choose("auto")).block_all(interface, families)
        return "state unreadable: full block applied"
    if why:  # by the recorded backend, so that wgkill-down removes it as recorded
        make_backend(recorded.backend).block_all(interface, families)
        return f"{why}: full block applied"
    replay(recorded, excluding=excluding)
    return "recorded block re-applied" + (" (lockdown)" if recorded.lockdown else "")


def _boot_exclusion(recorded: statefile.State | None) -> tuple[ExclusionRecord | None, str | None]:
    """A recorded exclusion's cgroup, made again (empty) so the recorded rules that name it load;
    (None, why) when it cannot be: the tunnel then gets a full block instead, never none."""
    if recorded is None or recorded.exclude is None:
        return None, None
    from . import exclude

    excluding = recorded.exclude
    try:
        exclude.cgroup_of_record(excluding).create()
    except WgkillError as exc:
        return None, f"exclusion cannot be restored ({exc})"
    return excluding, None
