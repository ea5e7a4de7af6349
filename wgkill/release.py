"""Release: remove exactly what the state records. The ``PreDown`` hook's whole path.

Kept apart from engaging so that ``wgkill-down`` imports little: every
millisecond here is paid on each ``wg-quick down``. Only the backend the state
records is imported. nft: one ``delete table``. iptables: the common case
replays the removal payload rendered when the block was engaged (no template
engine, no ``iptables-save``); only when that fails (rules partly gone, a jump
duplicated by hand) is the table read and the removal worked out afresh.
"""

from . import hostpins
from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, WgkillError
from .firewall import Removed, backend, check_recorded, installed
from .kernel import require_root
from .names import validate_interface
from .recordclass import dataclass, field


@dataclass
class Released:
    """What one wgkill-down or wgkill-release removed, and what the user should know."""

    interface: str
    recorded: bool
    removed: list[Removed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept_for_lockdown: bool = False


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
        if recorded is not None:
            check_recorded(recorded)  # a state naming chains or sets not ours is refused before any change
        result = Released(interface, recorded=recorded is not None)
        if recorded is not None and recorded.dns.record:
            from . import dns

            # resolver first, while the block still holds; a failure keeps both
            result.warnings += dns.revert(recorded.dns.record)
        elif recorded is None:
            result.warnings.append("state unreadable: resolver configuration (if any) not restored")
        excluded = recorded is None or bool(recorded.exclude)
        failures = _remove_rules(interface, recorded, excluded, result)
        if failures:
            raise FirewallError("; ".join(failures) + " (state kept: run wgkill-down again)")
        hostpins.unpin(interface)
        statefile.remove(interface)
        if excluded:
            result.warnings += _release_cgroup(interface, recorded)
        if any(name != interface for name in statefile.recorded_interfaces()):
            from . import compose  # only beside other tunnels: their blocks stop naming this one

            result.warnings += compose.recompose(interface)
    return result


def _remove_rules(interface: str, recorded: statefile.State | None, excluded: bool,
                  result: Released) -> list[str]:
    """Routes, then the exclusion's marks, then the block (each order says why); every step is
    tried, the failures returned as text."""
    failures = []
    if recorded is not None and recorded.routes:
        from . import routes

        try:  # routes first: their marks name the sets removed below
            routes.teardown(recorded.routes)
        except (FirewallError, PrerequisiteError) as exc:
            failures.append(str(exc))
    if excluded:  # the marks go first: excluded packets then meet the block, never the uplink
        failures += _remove_exclusion(interface, recorded)
    try:
        if recorded is not None:
            result.removed += backend(recorded.backend).remove(recorded)
        else:
            result.removed += _remove_by_name(interface)
    except (FirewallError, PrerequisiteError) as exc:
        failures.append(str(exc))
    return failures


def _remove_exclusion(interface: str, recorded: statefile.State | None) -> list[str]:
    """The exclusion's own rules outside the kill switch (iptables' mangle/nat chains; nft keeps
    them in the table, deleted whole), by name; the failures, as text."""
    from .exclude import remove_rules

    try:
        remove_rules(interface, recorded)
    except (FirewallError, PrerequisiteError) as exc:
        return [str(exc)] if recorded is not None else []
    return []


def _release_cgroup(interface: str, recorded: statefile.State | None) -> list[str]:
    """The exclusion cgroup goes with the last tunnel that allows exclusion; said in a warning
    when it still held processes (moved back to the root cgroup: no longer excluded)."""
    from .exclude import release_cgroup
    from .names import exclude_cgroup

    try:
        name = recorded.exclude.cgroup if recorded is not None and recorded.exclude else exclude_cgroup()
        moved = release_cgroup(name, interface)
    except WgkillError as exc:
        return [f"exclusion cgroup not removed: {exc}"] if recorded else []
    if moved is None:
        return [f"exclusion cgroup {name} kept: another tunnel allows exclusion"] if recorded else []
    if moved:
        return [f"exclusion cgroup {name} removed; {len(moved)} process(es) in it moved back to the "
                f"root cgroup (pids {' '.join(map(str, moved))}): no longer excluded"]
    return []


def _remove_by_name(interface: str) -> list[Removed]:
    """The state is lost: what our names say is ours, in every backend installed."""
    return [removed for name in installed() for removed in backend(name).remove_by_name(interface)]
