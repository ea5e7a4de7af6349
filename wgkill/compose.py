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
(``recompose``), under the state lock the caller holds. A state without a
recorded policy (wgkill 0.1) is left as it is.
"""

import copy
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
    names, endpoints = set(), set()
    for name in statefile.recorded_interfaces():
        try:
            names.add(validate_interface(name))
            recorded = statefile.load(name) if name != interface else None
        except (UsageError, StateError):
            continue
        try:
            endpoints.update(PeerEndpoint(e["address"], e["port"], recorded.fwmark)
                             for e in (recorded.endpoints if recorded else ()))
        except (KeyError, TypeError, ValueError):
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
    said = []
    for interface in peers(changed).interfaces:
        try:
            recorded = statefile.load(interface)
            if recorded is None or not recorded.policies:
                continue
            policies = [FamilyPolicy.from_dict(d) for d in recorded.policies]
            wanted = [peers(interface).of(fp) for fp in policies]
            if wanted == policies:
                continue
            reapply(recorded, wanted)
        except (StateError, FirewallError, PrerequisiteError) as exc:
            said.append(f"{interface}: block not re-applied with its new peers: {exc}")
    return said


def reapply(recorded: statefile.State, policies: list[FamilyPolicy]) -> None:
    """Apply ``policies`` for ``recorded``'s interface through the backend it records, and record
    them. The split sets keep what they hold (iptables: the ipsets are not touched; nft: the
    recorded list is rendered into the one payload again)."""
    from .dns import DnsPlan
    from .firewall import backend as make_backend
    from .policy import KillSwitchPolicy

    split = None
    if recorded.backend == "nft" and any(fp.split_set for fp in policies):
        from . import prefixes
        from .policy import decide_split

        listed = prefixes.load_file(recorded.allowed_ips_file) if recorded.allowed_ips_file else None
        split = decide_split(prefixes.parse_allowed_ips(recorded.allowed_ips), listed)
    endpoints = tuple(e for fp in policies for e in fp.endpoints)
    policy = KillSwitchPolicy(recorded.interface, recorded.fwmark, endpoints, tuple(recorded.allowed_ips),
                              tuple(policies), DnsPlan(), split)
    firewall = make_backend(recorded.backend)
    previous = copy.deepcopy(recorded)
    plan = firewall.plan(policy, split)
    firewall.record(plan, recorded)
    for family, rec in recorded.families.items():  # the sets were not refilled: what they held stays
        old = previous.families.get(family)
        rec.set_entries = old.set_entries if old else None
    if recorded.nft is not None and previous.nft is not None:
        recorded.nft.set_entries = previous.nft.set_entries
    firewall.apply(plan, recorded, previous)
    recorded.policies = [fp.to_dict() for fp in policies]
    statefile.save(recorded)
