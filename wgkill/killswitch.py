"""Engage the kill switch for one interface, and re-apply recorded blocks at boot: the PostUp library.

Order matters and is the contract: validate, resolve every binary, read the
tunnel and render both payloads *before* the first change; then, under the
state lock, record the intent, apply IPv4, apply IPv6. A failure after the
first family leaves that family blocking (the safe side) and is reported.
Release lives in ``wgkill.release``, which the PreDown hook imports alone.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import dns, hostpins, ipset, prefixes, rendercache
from . import state as statefile
from .errors import FirewallError, StateError, UsageError, WgkillError
from .firewall.iptables import (
    ChainSpec,
    FilterSnapshot,
    IptablesFamily,
    body_hash,
    chain_specs,
    removal_payload,
)
from .kernel import ipv6_available, require_root
from .names import jump_comment, validate_interface
from .policy import KillSwitchPolicy, build_policy, decide_split, hostname_endpoints, lan_ranges
from .runner import which
from .tunnel import read_tunnel
from .wgconf import WgQuickConfig, load_config

if TYPE_CHECKING:
    from .exclude import ExclusionRecord
    from .routes import RouteRecord

DEFAULT_CONFIG_DIR = "/etc/wireguard"


@dataclass
class Engaged:
    interface: str
    policy: KillSwitchPolicy
    payloads: dict[int, str]
    warnings: list[str] = field(default_factory=list)
    state_path: Path | None = None


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
    allow_exclude: bool = False


def _state_record(
    interface: str,
    policy: KillSwitchPolicy,
    specs: dict[int, list[ChainSpec]],
    removals: dict[int, str],
    variant: str,
    config: WgQuickConfig | None,
    options: UpOptions,
    dns_backend: str,
) -> statefile.State:
    plan = policy.dns
    families = {}
    for fp in policy.families:
        chains = specs[fp.family]
        text = "".join(spec.body for spec in chains)
        families[f"ipv{fp.family}"] = statefile.FamilyRecord(
            table="filter",
            chains=[spec.chain for spec in chains],
            jumps=[{"chain": spec.hook, "target": spec.chain, "spec": spec.jump} for spec in chains],
            payload_sha256=body_hash(text),
            rules=text.count("\n"),
            sets=[fp.split_set] if fp.split_set else [],
            bodies={spec.chain: spec.body for spec in chains},
            remove_payload=removals[fp.family],
        )
    return statefile.State(
        interface=interface,
        applied_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        iptables_variant=variant,
        fwmark=policy.fwmark,
        config=config.path if config else None,
        endpoints=[{"address": e.address, "port": e.port, "name": e.name} for e in policy.endpoints],
        allowed_ips=list(policy.allowed_ips),
        families=families,
        dns={
            "servers": list(plan.servers),
            "domains": list(plan.domains),
            "lock": plan.lock,
            "backend": dns_backend if plan.active else "none",
            "record": None,
        },
        lockdown=options.lockdown,
        allowed_ips_file=options.allowed_ips_file,
    )


def _previous(interface: str) -> statefile.State | None:
    """An earlier run's state (None if absent or unreadable): re-running builds on it."""
    try:
        return statefile.load(interface)
    except StateError:
        return None


def engage(interface: str, options: UpOptions | None = None) -> Engaged:
    """Apply (or, with ``dry_run``, only render) the kill switch and DNS for ``interface``.

    May be called again at any time: the result is the same as calling it once.
    """
    options = options or UpOptions()
    validate_interface(interface)
    families = (4, 6) if ipv6_available() else (4,)
    backends = {family: IptablesFamily(family) for family in families}  # binaries, before any change
    if not options.dry_run:
        require_root()
    config = _load_config(interface, options.config_path)
    if options.dry_run:
        return _engage(interface, options, backends, config)
    with statefile.lock():  # planning too: a routing slot is picked from what is free
        return _engage(interface, options, backends, config)


def _engage(
    interface: str, options: UpOptions, backends: dict[int, IptablesFamily], config: WgQuickConfig | None
) -> Engaged:
    families = tuple(backends)
    previous = _previous(interface)
    previous_dns = (previous.dns or {}).get("record") if previous else None
    dns_plan = dns.plan(
        config, options.dns, options.dns_domains, options.no_dns_lock, options.lock_resolv_conf,
        options.dns_backend,
    )
    dns_backend = dns.detect_backend(dns_plan.backend)
    warnings = dns.preflight(dns_plan, dns_backend, previous_dns)
    lan = lan_ranges(options.lan, defaults=options.allow_lan) if options.allow_lan or options.lan else ()
    facts = read_tunnel(interface)
    listed = prefixes.load_file(options.allowed_ips_file) if options.allowed_ips_file else None
    allowed = prefixes.parse_allowed_ips([ip for peer in facts.peers for ip in peer.allowed_ips])
    split = decide_split(allowed, listed, options.block_all)
    if split is not None:
        which("ipset")
    route_families = tuple(f for f in families if split is not None and split.family(f))
    if options.routes and not route_families:
        raise UsageError("--routes needs a split tunnel: Table = off with --allowed-ips-file, "
                         "or AllowedIPs without a default route")
    previous_routes = _route_record(previous)
    planned = None
    if options.routes or previous_routes is not None:
        from . import routes  # only tunnels that route their own prefixes pay for this import
    if options.routes:
        which("sysctl")
        reuse = previous_routes and {int(n[-1]) for n in previous_routes.families} == set(route_families)
        planned = previous_routes if reuse else routes.plan(interface, route_families, wg_fwmark=facts.fwmark)
    route_mark = f"0x{planned.mark:x}/0x{planned.mask:x}" if planned else None
    excluding = None
    if options.allow_exclude:
        from . import exclude  # only tunnels that allow exclusion pay for this import

        mark = exclude.check_tunnel(facts.fwmark, split is None, bool(config and config.routes_off))
        excluding = exclude.plan(interface, mark, families)
    policy = build_policy(
        interface, facts, config, families, dns_plan, split, lan, options.gateway, route_mark,
        excluding.cgroup if excluding else None,
    )
    cache_key = rendercache.cache_key(policy)
    cached = rendercache.load(interface, cache_key)
    if cached is not None:
        specs = {int(f): [ChainSpec(**c) for c in chains] for f, chains in cached["specs"].items()}
        prerendered = {int(f): p for f, p in cached["payloads"].items()}
        removals = {int(f): p for f, p in cached["removals"].items()}
    else:
        specs = {fp.family: chain_specs(fp) for fp in policy.families}
        prerendered = {f: backends[f].prerender(chains) for f, chains in specs.items()}
        removals = {f: removal_payload(chains) for f, chains in specs.items()}
        if not options.dry_run:
            rendercache.save(interface, {
                "key": cache_key,
                "specs": {f: [vars(c) for c in chains] for f, chains in specs.items()},
                "payloads": prerendered,
                "removals": removals,
            })
    warnings += [
        f"endpoint {name} is a hostname: while the block holds, only lookups of this one name "
        "may leave (see README, 'Hostname endpoints')"
        for name in hostname_endpoints(config)
    ]
    if options.routes and config is not None and not config.routes_off:
        warnings.append("--routes without Table = off: wg-quick also adds one route per prefix")
    if 6 not in families:
        warnings.append("IPv6 is disabled in this kernel: no IPv6 rules needed")
    if dns_plan.active and not dns_plan.lock:
        warnings.append("DNS lock is off (--no-dns-lock): queries may reach resolvers outside the tunnel")
    result = Engaged(interface, policy, {}, warnings)
    if options.dry_run:
        for family, chains in specs.items():
            snap = backends[family].snapshot() if os.geteuid() == 0 else FilterSnapshot()
            result.payloads[family] = backends[family].apply_payload(chains, snap)
            if excluding is not None:
                from .exclude import iptables as exclude_rules

                snaps = (exclude_rules.snapshots(backends[family]) if os.geteuid() == 0
                         else {"mangle": FilterSnapshot(), "nat": FilterSnapshot()})
                result.payloads[family] += exclude_rules.apply_payload(excluding, snaps)
        return result

    had_record = statefile.path_for(interface).exists()
    record = _state_record(
        interface, policy, specs, removals, backends[4].variant, config, options, dns_backend
    )
    record.dns["record"] = previous_dns  # until this run's resolver change is done
    if excluding is not None:
        record.exclude = excluding.to_dict()
    result.state_path = statefile.save(record)  # intent first: a crash mid-way stays removable
    made_cgroup = excluding is not None and exclude.cgroup_of_record(excluding).create()
    done: list[str] = []
    for fp in policy.families:
        try:
            if fp.split_set and split is not None:  # the set exists before any rule names it
                ipset.sync(fp.split_set, fp.family, split.family(fp.family))
            backends[fp.family].apply(specs[fp.family], prerendered[fp.family])
            record.families[f"ipv{fp.family}"].saved_sha256 = (
                backends[fp.family].snapshot().chain_sha256(fp.chain)
            )
        except FirewallError as exc:
            if not done and not had_record:
                statefile.remove(interface)  # nothing applied, nothing to record
                if made_cgroup and excluding is not None:
                    exclude.release_cgroup(excluding.cgroup, interface)
            kept = f"; the {', '.join(done)} block stays in place" if done else ""
            raise FirewallError(f"{exc}{kept}") from exc
        done.append(f"ipv{fp.family}")
    _drop_stale(previous, record, backends)
    if excluding is not None:
        exclude.apply_rules(excluding, backends)  # the kill switch lets them out: now mark them
    elif previous is not None and previous.exclude:
        _drop_exclusion(interface, previous, backends)
    if planned is not None:
        record.routes = planned.to_dict()
        statefile.save(record)  # intent before any route moves
        done_routes = routes.setup(
            interface, route_families, previous=planned, wg_fwmark=policy.fwmark,
            endpoints=[(e.address, e.port) for e in policy.endpoints],
        )
        record.routes = done_routes.to_dict()
    if previous_routes is not None and previous_routes is not planned:
        routes.teardown(previous_routes)  # routed differently (or not at all) last time
    record.dns["record"] = dns.apply(dns_plan, dns_backend, interface, previous_dns)
    statefile.save(record)
    hostpins.unpin(interface)  # the tunnel is up: the PreUp pins have done their job
    return result


def _drop_exclusion(interface: str, previous: statefile.State,
                    backends: dict[int, IptablesFamily]) -> None:
    """The last run allowed exclusion and this one does not: its chains go, and its cgroup
    unless another tunnel still allows exclusion (its processes back to the root cgroup)."""
    from . import exclude

    exclude.remove_rules(interface, backends)
    try:
        name = exclude.ExclusionRecord.from_dict(previous.exclude).cgroup
    except StateError:
        return
    exclude.release_cgroup(name, interface)


def _route_record(recorded: statefile.State | None) -> "RouteRecord | None":
    if recorded is None or not recorded.routes:
        return None
    from .routes import RouteRecord

    return RouteRecord.from_dict(recorded.routes)


def _drop_stale(
    previous: statefile.State | None, record: statefile.State, backends: dict[int, IptablesFamily]
) -> None:
    """What an earlier run applied and this one does not (a gateway chain, a split set)."""
    if previous is None:
        return
    for name, old in previous.families.items():
        new = record.families.get(name)
        family = int(name[-1])
        if family not in backends:
            continue
        gone = [(j["chain"], j.get("target", old.chains[0])) for j in old.jumps
                if new is None or j.get("target", old.chains[0]) not in new.chains]
        if gone:
            backends[family].remove(gone)
        for set_ in set(old.sets) - set(new.sets if new else ()):
            ipset.destroy(set_)


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
    if recorded is None or not all(rec.bodies for rec in recorded.families.values()) or why:
        policy = build_policy(interface, None, None, families)
        for fp in policy.families:
            IptablesFamily(fp.family).apply(chain_specs(fp))
        return f"{why or 'state unreadable'}: full block applied"
    listed = prefixes.load_file(recorded.allowed_ips_file) if recorded.allowed_ips_file else None
    allowed = prefixes.parse_allowed_ips(recorded.allowed_ips)
    split = decide_split(allowed, listed) if any(rec.sets for rec in recorded.families.values()) else None
    for name, rec in sorted(recorded.families.items()):
        family = int(name[-1])
        if family not in families:
            continue
        for set_ in rec.sets:
            ipset.sync(set_, family, split.family(family) if split else ())
        specs = [
            ChainSpec(j.get("target", rec.chains[0]), j["chain"], jump_comment(interface),
                      rec.bodies[j.get("target", rec.chains[0])])
            for j in rec.jumps
        ]
        IptablesFamily(family, recorded.iptables_variant).apply(specs)
    if excluding is not None:
        from . import exclude

        exclude.apply_rules(excluding, {f: IptablesFamily(f, recorded.iptables_variant) for f in families})
    return "recorded block re-applied" + (" (lockdown)" if recorded.lockdown else "")


def _boot_exclusion(recorded: statefile.State | None) -> "tuple[ExclusionRecord | None, str | None]":
    """A recorded exclusion's cgroup, made again (empty) so the recorded rules that name it load;
    (None, why) when it cannot be: the tunnel then gets a full block instead, never none."""
    if recorded is None or not recorded.exclude:
        return None, None
    from . import exclude

    try:
        excluding = exclude.ExclusionRecord.from_dict(recorded.exclude)
        exclude.cgroup_of_record(excluding).create()
    except WgkillError as exc:
        return None, f"exclusion cannot be restored ({exc})"
    return excluding, None
