"""Release: remove exactly what the state records. The ``PreDown`` hook's whole path.

Kept apart from engaging so that ``wgkill-down`` imports little: every
millisecond here is paid on each ``wg-quick down``. The common case replays the
removal payload rendered when the block was engaged (no template engine, no
``iptables-save``); only when that fails (rules partly gone, a jump duplicated
by hand) is the table read and the removal worked out afresh.
"""

import shutil
from dataclasses import dataclass, field

from . import hostpins
from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, WgkillError
from .firewall import Removed
from .firewall.iptables import IptablesFamily, detect_variant
from .kernel import ipv6_available, require_root
from .names import chain_name, forward_chain_name, owns_set, set_name, validate_interface
from .runner import CommandError


@dataclass
class Released:
    interface: str
    recorded: bool
    removed: list[Removed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept_for_lockdown: bool = False


def _owned(interface: str, recorded: statefile.State | None) -> dict[int, list[tuple[str, str]]]:
    """(hook, chain) pairs per family: from the state, or by name when it is unreadable."""
    own = chain_name(interface)
    if recorded is None:
        return {f: [("OUTPUT", own), ("FORWARD", forward_chain_name(interface))] for f in (4, 6)}
    owned = {
        int(name[-1]): [(j["chain"], j.get("target", rec.chains[0])) for j in rec.jumps]
        for name, rec in recorded.families.items()
    }
    allowed = {("OUTPUT", own), ("FORWARD", forward_chain_name(interface))}
    if any(pair not in allowed for pairs in owned.values() for pair in pairs):
        raise StateError(f"state for {interface} names chains other than {own}: refusing")
    return owned


def release(interface: str, force: bool = False, lift_lockdown: bool = False) -> Released:
    """Remove what the state records for ``interface``; with ``force``, find our chains by name.

    Safe to call twice: a second call finds nothing recorded. Rules already
    partly gone are not an error; a rule that cannot be removed keeps the state.
    A lockdown state is kept (the block holds) unless ``lift_lockdown``.
    """
    validate_interface(interface)
    require_root()
    with statefile.lock():
        try:
            recorded = statefile.load(interface)
        except StateError:
            if not force:
                raise
            recorded = None
        if recorded is None and not force:
            return Released(interface, recorded=False)
        if recorded is not None and recorded.lockdown and not (lift_lockdown or force):
            return Released(interface, recorded=True, kept_for_lockdown=True)
        owned = _owned(interface, recorded)
        if recorded is not None:
            variant = recorded.iptables_variant
            sets = {int(name[-1]): rec.sets for name, rec in recorded.families.items()}
        else:
            variant = detect_variant(4)
            sets = {f: [set_name(interface, f)] if shutil.which("ipset") else [] for f in (4, 6)}
        if any(not owns_set(interface, name) for names in sets.values() for name in names):
            raise StateError(f"state for {interface} names a set that is not its own: refusing")
        result = Released(interface, recorded=recorded is not None)
        if recorded is not None and recorded.dns and recorded.dns.get("record"):
            from . import dns

            # resolver first, while the block still holds; a failure keeps both
            result.warnings += dns.revert(recorded.dns.get("record"))
        elif recorded is None:
            result.warnings.append("state unreadable: resolver configuration (if any) not restored")
        failures = []
        if recorded is not None and recorded.routes:
            from . import routes

            try:  # routes first: their marks name the sets removed below
                routes.teardown(routes.RouteRecord.from_dict(recorded.routes))
            except (FirewallError, PrerequisiteError) as exc:
                failures.append(str(exc))
        excluded = recorded is None or bool(recorded.exclude)
        if excluded:  # the marks go first: excluded packets then meet the block, never the uplink
            failures += _remove_exclusion(interface, variant, recorded is not None)
        for family in sorted(owned):
            if family == 6 and not ipv6_available():
                continue
            try:
                backend = IptablesFamily(family, variant)
                stored = recorded.families[f"ipv{family}"].remove_payload if recorded else None
                result.removed.append(_replay(backend, stored, owned[family]))
                for name in sets.get(family, ()):
                    from . import ipset

                    ipset.destroy(name)  # after the rules that name it are gone
            except (FirewallError, PrerequisiteError) as exc:
                failures.append(str(exc))
        if failures:
            raise FirewallError("; ".join(failures) + " (state kept: run wgkill-down again)")
        hostpins.unpin(interface)
        statefile.remove(interface)
        if excluded:
            result.warnings += _release_cgroup(interface, recorded)
    return result


def _remove_exclusion(interface: str, variant: str, recorded: bool) -> list[str]:
    """The exclusion's mangle/nat chains of both families, by name; the failures, as text."""
    from .exclude import remove_rules

    failures = []
    for family in (4, 6) if ipv6_available() else (4,):
        try:
            remove_rules(interface, {family: IptablesFamily(family, variant)})
        except (FirewallError, PrerequisiteError) as exc:
            if recorded:
                failures.append(str(exc))
    return failures


def _release_cgroup(interface: str, recorded: statefile.State | None) -> list[str]:
    """The exclusion cgroup goes with the last tunnel that allows exclusion; said in a warning
    when it still held processes (moved back to the root cgroup: no longer excluded)."""
    from .exclude import ExclusionRecord, release_cgroup
    from .names import exclude_cgroup

    try:
        name = ExclusionRecord.from_dict(recorded.exclude).cgroup if recorded else exclude_cgroup()
        moved = release_cgroup(name, interface)
    except WgkillError as exc:
        return [f"exclusion cgroup not removed: {exc}"] if recorded else []
    if moved is None:
        return [f"exclusion cgroup {name} kept: another tunnel allows exclusion"] if recorded else []
    if moved:
        return [f"exclusion cgroup {name} removed; {len(moved)} process(es) in it moved back to the "
                f"root cgroup (pids {' '.join(map(str, moved))}): no longer excluded"]
    return []




def _replay(backend: IptablesFamily, stored: str | None, owned: list[tuple[str, str]]) -> Removed:
    """The recorded removal payload if it applies as is (one transaction), else work it out."""
    if stored:
        try:
            backend.restore_payload(stored)
            return Removed(backend.family, True, len(owned))
        except CommandError:
            pass  # something changed under us: read the table and remove what is left
    return backend.remove(owned)
