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

from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, UsageError
from .names import validate_interface
from .policy import FamilyPolicy, PeerEndpoint
from .recordclass import dataclass, replace


@dataclass(frozen=True)
class Peers:
    """The other tunnels wgkill protects, as a block names them."""

    interfaces: tuple[str, ...] = ()
    endpoints: tuple[PeerEndpoint, ...] = ()

    def of(self, fp: FamilyPolicy) -> FamilyPolicy:
        """``fp`` naming these peers (its family's endpoints)."""
        return replace(fp, peer_interfaces=self.interfaces,
                       peer_endpoints=tuple(e for e in self.endpoints if e.family == fp.family))


@dataclass
class Recorded:
    """Every recorded tunnel, its state loaded once per operation: ``states`` holds the readable ones
    (None: the file went meanwhile), ``broken`` why the others could not be read."""

    states: dict[str, statefile.State | None]
    broken: dict[str, StateError]

    @staticmethod
    def load(skip: str | None = None) -> "Recorded":
        """Every recorded tunnel but ``skip`` (the caller's own, which it has read already)."""
        states: dict[str, statefile.State | None] = {}
        broken: dict[str, StateError] = {}
        for name in statefile.recorded_interfaces():
            if name == skip:
                continue
            try:
                validate_interface(name)
            except UsageError:
                continue
            try:
                states[name] = statefile.load(name)
            except StateError as exc:
                broken[name] = exc
        return Recorded(states, broken)

    def reread(self, name: str) -> "Recorded":
        """These states with ``name``'s read again (written or removed since), the others as they were."""
        states = {n: s for n, s in self.states.items() if n != name}
        broken = {n: e for n, e in self.broken.items() if n != name}
        try:
            state = statefile.load(name)
        except StateError as exc:
            broken[name] = exc
        else:
            if state is not None:
                states[name] = state
        return Recorded(states, broken)


def peers(interface: str, recorded: Recorded | None = None) -> Peers:
    """The other interfaces wgkill protects (a state file each; a corrupt one still counts, by
    name: its endpoints are not known) and their recorded endpoints."""
    everything = recorded or Recorded.load()
    names = (set(everything.states) | set(everything.broken)) - {interface}
    endpoints: set[PeerEndpoint] = set()
    for name in names:
        state = everything.states.get(name)
        if state is None:
            continue
        try:
            endpoints.update(PeerEndpoint(e.address, e.port, state.fwmark) for e in state.endpoints)
        except ValueError:
            continue  # known by name only, like a corrupt state
    ordered = sorted(endpoints, key=lambda e: (e.address, e.port, e.fwmark or 0))
    return Peers(tuple(sorted(names)), tuple(ordered))


def recompose(changed: str, known: Recorded | None = None) -> list[str]:
    """Re-apply every other recorded block whose peer list is not the current one.

    Call with the state lock held, after ``changed``'s state was written or
    removed. May be called any number of times: a block already naming the
    right peers is not touched (each re-application shows as its ``[#]`` line).
    Returns one line per block that could not be re-applied, for the caller to
    warn with: nothing here raises for another tunnel. Every state is read once: ``known``, when
    the caller read them all under the same lock hold (only ``changed``'s is read again).
    """
    from .replay import replan

    everything = known.reread(changed) if known is not None else Recorded.load()
    said = []
    for interface in peers(changed, everything).interfaces:
        try:
            if interface in everything.broken:
                raise everything.broken[interface]
            recorded = everything.states.get(interface)
            if recorded is None or not recorded.policies:
                continue
            policies = list(recorded.policies)
            theirs = peers(interface, everything)
            wanted = [theirs.of(fp) for fp in policies]
            if wanted == policies:
                continue
            replan(recorded, wanted)
        except (StateError, FirewallError, PrerequisiteError) as exc:
            said.append(f"{interface}: block not re-applied with its new peers: {exc}")
    return said
