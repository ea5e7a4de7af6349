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
(``recompose``), under the state lock the caller holds. A state without a
recorded policy (wgkill 0.1) is left as it is.
"""

from dataclasses import replace

from . import state as statefile
from .errors import FirewallError, PrerequisiteError, StateError, UsageError
from .firewall.iptables import ChainSpec, IptablesFamily, body_hash, chain_specs, removal_payload
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


def family_record(fp: FamilyPolicy, specs: list[ChainSpec], removal: str) -> statefile.FamilyRecord:
    """What the state records for one family's applied chains."""
    text = "".join(spec.body for spec in specs)
    return statefile.FamilyRecord(
        table="filter",
        chains=[spec.chain for spec in specs],
        jumps=[{"chain": spec.hook, "target": spec.chain, "spec": spec.jump} for spec in specs],
        payload_sha256=body_hash(text),
        rules=text.count("\n"),
        sets=[fp.split_set] if fp.split_set else [],
        bodies={spec.chain: spec.body for spec in specs},
        remove_payload=removal,
    )


def recompose(changed: str) -> list[str]:
    """Re-apply every other recorded block whose peer list is not the current one.

    Call with the state lock held, after ``changed``'s state was written or
    removed. May be called any number of times: a block already naming the
    right peers is not touched (each re-application shows as its ``[#]`` line).
    Returns one line per block that could not be re-applied, for the caller to
    warn with: nothing here raises for another tunnel.
    """
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
            reapply(recorded, [replace(fp, peer_interfaces=wanted) for fp in policies])
        except (StateError, FirewallError, PrerequisiteError) as exc:
            said.append(f"{interface}: block not re-applied with its new peers: {exc}")
    return said


def reapply(recorded: statefile.State, policies: list[FamilyPolicy]) -> None:
    """Apply ``policies`` for ``recorded``'s interface and record them (iptables, per family)."""
    for fp in policies:
        name = f"ipv{fp.family}"
        if name not in recorded.families:
            continue
        specs = chain_specs(fp)
        backend = IptablesFamily(fp.family, recorded.iptables_variant)
        backend.apply(specs)
        old = recorded.families[name]
        new = family_record(fp, specs, removal_payload(specs))
        new.saved_sha256 = backend.snapshot().chain_sha256(fp.chain)
        new.set_entries = old.set_entries
        recorded.families[name] = new
    recorded.policies = [fp.to_dict() for fp in policies]
    statefile.save(recorded)
