"""Engage and release the kill switch for one interface: the library behind the hooks.

Order matters and is the contract: validate, resolve every binary, read the
tunnel and render both payloads *before* the first change; then, under the
state lock, record the intent, apply IPv4, apply IPv6. A failure after the
first family leaves that family blocking (the safe side) and is reported.
Release removes only what the state names, and keeps the state if anything
could not be removed.
"""

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import dns, hostspin, ipset, prefixes
from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError
from .firewall import Removed
from .firewall.iptables import (
    FilterSnapshot,
    IptablesFamily,
    body_hash,
    detect_variant,
    jump_spec,
    render_body,
)
from .ifname import chain_name, validate_interface
from .ipset import set_name
from .policy import KillSwitchPolicy, build_policy, decide_split, hostname_endpoints
from .runner import which
from .tunnel import read_tunnel
from .wgconf import WgQuickConfig, load_config

DEFAULT_CONFIG_DIR = "/etc/wireguard"
IPV6_PROC = "/proc/sys/net/ipv6"


@dataclass
class Engaged:
    interface: str
    policy: KillSwitchPolicy
    payloads: dict[int, str]
    warnings: list[str] = field(default_factory=list)
    state_path: Path | None = None


@dataclass
class Released:
    interface: str
    recorded: bool
    removed: list[Removed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ipv6_available() -> bool:
    """Whether this kernel has an IPv6 stack at all (``ipv6.disable=1`` removes it)."""
    return os.path.isdir(IPV6_PROC)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("must be run as root (it changes the firewall)")


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


def _state_record(
    interface: str,
    policy: KillSwitchPolicy,
    bodies: dict[int, str],
    variant: str,
    config: WgQuickConfig | None,
    dns_record: dict | None,
    backend: str,
) -> statefile.State:
    plan = policy.dns
    return statefile.State(
        interface=interface,
        applied_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        iptables_variant=variant,
        fwmark=policy.fwmark,
        config=config.path if config else None,
        endpoints=[{"address": e.address, "port": e.port, "name": e.name} for e in policy.endpoints],
        allowed_ips=list(policy.allowed_ips),
        families={
            f"ipv{fp.family}": statefile.FamilyRecord(
                table="filter",
                chains=[fp.chain],
                jumps=[{"chain": "OUTPUT", "spec": jump_spec(fp.chain, fp.comment)}],
                payload_sha256=body_hash(bodies[fp.family]),
                rules=bodies[fp.family].count("\n"),
                sets=[fp.split_set] if fp.split_set else [],
            )
            for fp in policy.families
        },
        dns={
            "servers": list(plan.servers),
            "domains": list(plan.domains),
            "lock": plan.lock,
            "backend": backend if plan.active else "none",
            "record": dns_record,
        },
    )


def _previous_dns_record(interface: str) -> dict | None:
    """The DNS record of an earlier run, so re-running never mistakes our own file for the original."""
    try:
        previous = statefile.load(interface)
    except StateError:
        return None
    return (previous.dns or {}).get("record") if previous else None


def _previous_sets(interface: str) -> set[str]:
    try:
        previous = statefile.load(interface)
    except StateError:
        return set()
    return {name for rec in (previous.families.values() if previous else ()) for name in rec.sets}


def engage(interface: str, options: UpOptions | None = None) -> Engaged:
    """Apply (or, with ``dry_run``, only render) the kill switch and DNS for ``interface``.

    May be called again at any time: the result is the same as calling it once.
    """
    options = options or UpOptions()
    validate_interface(interface)
    families = (4, 6) if ipv6_available() else (4,)
    backends = {family: IptablesFamily(family) for family in families}
    if not options.dry_run:
        _require_root()
    config = _load_config(interface, options.config_path)
    dns_plan = dns.plan(
        config, options.dns, options.dns_domains, options.no_dns_lock, options.lock_resolv_conf,
        options.dns_backend,
    )
    dns_backend = dns.detect_backend(dns_plan.backend)
    warnings = dns.preflight(dns_plan, dns_backend, _previous_dns_record(interface))
    facts = read_tunnel(interface)
    listed = prefixes.load_file(options.allowed_ips_file) if options.allowed_ips_file else None
    allowed = prefixes.parse_allowed_ips([ip for peer in facts.peers for ip in peer.allowed_ips])
    split = decide_split(allowed, listed, options.block_all)
    if split is not None:
        which("ipset")
    policy = build_policy(interface, facts, config, families, dns_plan, split)
    bodies = {fp.family: render_body(fp) for fp in policy.families}
    warnings += [
        f"endpoint {name} is a hostname: while the block holds, only lookups of this one name "
        "may leave (see README, 'Hostname endpoints')"
        for name in hostname_endpoints(config)
    ]
    if 6 not in families:
        warnings.append("IPv6 is disabled in this kernel: no IPv6 rules needed")
    if dns_plan.active and not dns_plan.lock:
        warnings.append("DNS lock is off (--no-dns-lock): queries may reach resolvers outside the tunnel")
    result = Engaged(interface, policy, {}, warnings)
    if options.dry_run:
        for fp in policy.families:
            snap = backends[fp.family].snapshot() if os.geteuid() == 0 else None
            result.payloads[fp.family] = backends[fp.family].apply_payload(
                fp, bodies[fp.family], snap or FilterSnapshot()
            )
        return result

    with statefile.lock():
        previous_dns = _previous_dns_record(interface)
        previous_sets = _previous_sets(interface)
        had_record = statefile.path_for(interface).exists()
        record = _state_record(
            interface, policy, bodies, backends[4].variant, config, previous_dns, dns_backend
        )
        result.state_path = statefile.save(record)  # intent first: a crash mid-way stays removable
        done: list[str] = []
        for fp in policy.families:
            try:
                if fp.split_set and split is not None:  # the set exists before any rule names it
                    ipset.sync(fp.split_set, fp.family, split.family(fp.family))
                backends[fp.family].apply(fp, bodies[fp.family])
                record.families[f"ipv{fp.family}"].saved_sha256 = (
                    backends[fp.family].snapshot().chain_sha256(fp.chain)
                )
            except FirewallError as exc:
                if not done and not had_record:
                    statefile.remove(interface)  # nothing applied, nothing to record
                kept = f"; the {', '.join(done)} block stays in place" if done else ""
                raise FirewallError(f"{exc}{kept}") from exc
            done.append(f"ipv{fp.family}")
        for name in previous_sets - {fp.split_set for fp in policy.families}:
            ipset.destroy(name)  # the tunnel was split last time and is full now
        record.dns["record"] = dns.apply(dns_plan, dns_backend, interface, previous_dns)
        statefile.save(record)
        hostspin.unpin(interface)  # the tunnel is up: the PreUp pins have done their job
    return result


def release(interface: str, force: bool = False) -> Released:
    """Remove what the state records for ``interface``; with ``force``, find our chains by name.

    Safe to call twice: a second call finds nothing recorded. Rules already
    partly gone are not an error; a rule that cannot be removed keeps the state.
    """
    validate_interface(interface)
    _require_root()
    own = chain_name(interface)
    with statefile.lock():
        try:
            recorded = statefile.load(interface)
        except StateError:
            if not force:
                raise
            recorded = None
        if recorded is None and not force:
            return Released(interface, recorded=False)
        if recorded is not None:
            variant = recorded.iptables_variant
            targets = {int(name[-1]): rec.chains for name, rec in recorded.families.items()}
            sets = {int(name[-1]): rec.sets for name, rec in recorded.families.items()}
        else:
            variant = detect_variant(4)
            targets = {4: [own], 6: [own]}
            sets = {f: [set_name(interface, f)] if shutil.which("ipset") else [] for f in (4, 6)}
        if any(not name.startswith(own + "-") for names in sets.values() for name in names):
            raise StateError(f"state for {interface} names a set that is not {own}-4/6: refusing")
        if any(chain != own for chains in targets.values() for chain in chains):
            raise StateError(f"state for {interface} names a chain other than {own}: refusing")
        result = Released(interface, recorded=recorded is not None)
        if recorded is not None and recorded.dns:
            # resolver first, while the block still holds; a failure keeps both
            result.warnings += dns.revert(recorded.dns.get("record"))
        elif recorded is None:
            result.warnings.append("state unreadable: resolver configuration (if any) not restored")
        failures = []
        for family in sorted(targets):
            if family == 6 and not ipv6_available():
                continue
            try:
                backend = IptablesFamily(family, variant)
                result.removed.extend(backend.remove(chain) for chain in targets[family])
                for name in sets.get(family, ()):
                    ipset.destroy(name)  # after the rules that name it are gone
            except (FirewallError, PrerequisiteError) as exc:
                failures.append(str(exc))
        if failures:
            raise FirewallError("; ".join(failures) + " (state kept: run wgkill-down again)")
        hostspin.unpin(interface)
        statefile.remove(interface)
    return result
