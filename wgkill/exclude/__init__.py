"""Per-app exclusion: programs in one cgroup leave by the uplink, around the tunnel and its block.

Opt-in per tunnel (``wgkill-up IFACE --allow-exclude``), for a full tunnel
that wg-quick routes by its fwmark: sockets created in the exclusion cgroup
(``wgkill.names.exclude_cgroup``) get that fwmark, so wg-quick's own policy
rule (``not fwmark M lookup M``) routes them by the main table, i.e. the
uplink; the kill switch lets out exactly the packets of that cgroup *and*
that mark. Nothing else is opened: the match is on the socket's cgroup, which
the kernel records when the socket is created, and only root can move a
process into the cgroup.

Both backends: nft keeps the marking, the ct mark and the NAT as chains of
the tunnel's own table (one transaction, ``templates/nft/table.nft.j2``);
iptables has mangle and nat chains of their own (``firewall.iptables_exclude``),
applied after the kill switch and removed before it. Which is the backend's
business: here only ``Backend.apply_exclusion`` and its siblings are called.

The cgroup is shared by every tunnel that allows exclusion and is removed
with the last of them (its processes moved back to the root cgroup first).
Order, the contract: the cgroup exists before any rule names it (the kernel
resolves the path when the rule is added); the mark is removed before the
kill switch's exemption, and both before the cgroup.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import state as statefile
from ..cgroups import Cgroup, unified_root
from ..errors import StateError, UsageError
from ..exclusion import ExclusionRecord
from ..firewall import backend, installed
from ..names import exclude_cgroup

__all__ = [
    "ExclusionRecord",
    "cgroup_of_record",
    "check_tunnel",
    "plan",
    "recorded_exclusions",
    "release_cgroup",
    "remove_rules",
]


def check_tunnel(fwmark: int | None, full: bool, routes_off: bool) -> int:
    """The mark excluded sockets get; UsageError (nothing touched) when the tunnel cannot have one.

    Only a full tunnel that wg-quick routes (Table unset) has the policy rule that sends
    its fwmark around it; for split tunnels or ``Table = off`` wgkill would need a
    routing mark and rule of its own, which it does not add: refused.
    """
    if not full:
        raise UsageError("--allow-exclude needs a full tunnel (AllowedIPs with 0.0.0.0/0 or ::/0): "
                         "a split tunnel already leaves everything else on the uplink")
    if routes_off or not fwmark:
        raise UsageError("--allow-exclude needs the fwmark and policy rule wg-quick adds for a full "
                         "tunnel (Table = off, or no fwmark): excluded traffic could not be routed around it")
    return fwmark


def plan(interface: str, mark: int, families: Iterable[int]) -> ExclusionRecord:
    """The record, changing nothing; PrerequisiteError if there is no cgroup v2 to match on."""
    unified_root()
    return ExclusionRecord(interface, exclude_cgroup(), mark, sorted(families))


def cgroup_of_record(record: ExclusionRecord) -> Cgroup:
    """The record's cgroup where cgroup v2 is mounted now (PrerequisiteError if nowhere)."""
    return Cgroup(unified_root(), record.cgroup)


def remove_rules(interface: str, state: statefile.State | None) -> list[str]:
    """The exclusion's own rules, before the block; the state lost: by name, in every backend
    installed. The families done."""
    names = [state.backend] if state is not None else installed()
    return [family for name in names for family in backend(name).remove_exclusion(interface, state)]


def rules_present(state: statefile.State, record: ExclusionRecord, ipv6: bool) -> dict[str, bool]:
    """Per family: are the marking rules in place (for status)."""
    return backend(state.backend).exclusion_present(state, record, ipv6)


def recorded_exclusions(skip: str | None = None) -> tuple[list[ExclusionRecord], bool]:
    """The exclusion records of every state but ``skip``'s, and whether some state was unreadable."""
    found, unreadable = [], False
    for name in statefile.recorded_interfaces():
        if name == skip:
            continue
        try:
            recorded = statefile.load(name)
        except StateError:
            unreadable = True
            continue
        if recorded is not None and recorded.exclude is not None:
            found.append(recorded.exclude)
    return found, unreadable


def release_cgroup(name: str, interface: str) -> list[int] | None:
    """Remove cgroup ``name`` unless another tunnel's state still names it (or might: unreadable).

    Its processes go back to the root cgroup first. Returns the pids moved, or None if kept.
    Call under the state lock, after ``interface``'s own rules are gone.
    """
    others, unreadable = recorded_exclusions(skip=interface)
    if unreadable or any(r.cgroup == name for r in others):
        return None
    cgroup = Cgroup(unified_root(), name)
    if not cgroup.path.exists():
        return []
    return cgroup.remove()
