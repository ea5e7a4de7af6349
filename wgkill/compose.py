"""Tunnels that compose: what leaves through another tunnel wgkill protects passes every block.

Traffic out another WireGuard interface is encrypted, and its outer packets go
through OUTPUT again, where every block still judges them: refusing the inner
packets protects nothing and breaks the second tunnel (wg0 full + wg1 split:
wg1's peer unreachable). So each block lets out its peers, the other
interfaces with a wgkill state, by name (``-o wg1``), never by a wildcard and
never the uplink, and their own UDP to their endpoints exactly as their own
blocks do (``PeerEndpoint``), whatever route it takes: a split wg1 whose
endpoint is on the LAN sends it by the uplink, not through wg0. Nothing else of
theirs passes: after wg0 drops, wg1's other packets are refused by wg0's block.

The peer list is part of each block's policy, so bringing one tunnel up or
down re-renders the others' blocks from their recorded policies
(``recompose``, through ``replay.replan``), under the state lock the caller
holds. A state without a recorded policy (wgkill 0.1) is left as it is.
"""

from dataclasses import dataclass, replace

from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, UsageError
from .names import validate_interface
from .policy import FamilyPolicy, PeerEndpoint


@dataclass(frozen=True)
class Peers:
    """The other tunnels wgkill protects, as a block names them."""

    interfaces: tuple[str, ...] = ()
    endpoints: tuple[PeerEndpoint, ...] = ()

    def of(self, fp: FamilyPolicy) -> FamilyPolicy:
        """``fp`` naming these peers (its family's endpoints)."""
        return replace(fp, peer_interfaces=self.interfaces,
                       peer_endpoints=tuple(e for e in self.endpoints if e.family == fp.family))


def peers(interface: str) -> Peers:
    """The other interfaces wgkill protects (a state file each; a corrupt one still counts, by
    name: its endpoints are not known) and their recorded endpoints."""
    names: set[str] = set()
    endpoints: set[PeerEndpoint] = set()
    for name in statefile.recorded_interfaces():
        try:
            names.add(validate_interface(name))
            recorded = statefile.load(name) if name != interface else None
        except (UsageError, StateError):
            continue
        if recorded is None:
            continue
        try:
            endpoints.update(PeerEndpoint(e.address, e.port, recorded.fwmark) for e in recorded.endpoints)
        except ValueError:
            continue  # known by name only, like a corrupt state
    names.discard(interface)
    ordered = sorted(endpoints, key=lambda e: (e.address, e.port, e.fwmark or 0))
    return Peers(tuple(sorted(names)), tuple(ordered))


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
    for interface in peers(changed).interfaces:
        try:
            recorded = statefile.load(interface)
            if recorded is None or not recorded.policies:
                continue
            policies = list(recorded.policies)
            wanted = [peers(interface).of(fp) for fp in policies]
            if wanted == policies:
                continue
            replan(recorded, wanted)
        except (StateError, FirewallError, PrerequisiteError) as exc:
            said.append(f"{interface}: block not re-applied with its new peers: {exc}")
    return said
