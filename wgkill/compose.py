"""Tunnels that compose: what leaves through another tunnel wgkill protects passes every block.

Traffic out another WireGuard interface is encrypted, and its outer packets go
through OUTPUT again, where every block still judges them: refusing the inner
packets protects nothing and breaks the second tunnel (wg0 full + wg1 split:
wg1's peer unreachable). So each block lets out its peers, the other
interfaces with a wgkill state, by name (``-o wg1``), never by a wildcard and
never the uplink. Their outer packets still meet every block: after wg0 drops,
wg1's UDP to its endpoint is refused by wg0's block like any other packet.

The peer list is part of each block's policy, so bringing one tunnel up or
down re-renders the others' blocks from their recorded policies
(``recompose``, through ``replay.replan``), under the state lock the caller
holds. A state without a recorded policy (wgkill 0.1) is left as it is.
"""

from dataclasses import replace

from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, UsageError
from .names import validate_interface
from .policy import FamilyPolicy


def peers(interface: str) -> tuple[str, ...]:
    """The other interfaces wgkill protects (a state file each; a corrupt one still counts)."""
    found = []
    for name in statefile.recorded_interfaces():
        try:
            found.append(validate_interface(name))
        except UsageError:
            continue
    return tuple(sorted(set(found) - {interface}))


def recompose(changed: str) -> list[str]:
    """Re-apply every other recorded block whose peer list is not the current one.

    Call with the state lock held, after ``changed``'s state was written or
    removed. May be called any number of times: a block already naming the
    right peers is not touched (each re-application shows as its ``[#]`` line).
    Returns one line per block that could not be re-applied, for the caller to
    warn with: nothing here raises for another tunnel.
    """
    from .replay import replan

    said = []
    for interface in peers(changed):
        try:
            recorded = statefile.load(interface)
            if recorded is None or not recorded.policies:
                continue
            policies = [FamilyPolicy.from_dict(d) for d in recorded.policies]
            wanted = peers(interface)
            if all(fp.peer_interfaces == wanted for fp in policies):
                continue
            replan(recorded, [replace(fp, peer_interfaces=wanted) for fp in policies])
        except (StateError, FirewallError, PrerequisiteError) as exc:
            said.append(f"{interface}: block not re-applied with its new peers: {exc}")
    return said
