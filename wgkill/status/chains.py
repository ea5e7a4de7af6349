"""The recorded chains and their jumps as they are now: iptables chains from ``iptables-save`` of the recorded
variant (the nft table is read by ``wgkill.firewall.nft.NftBackend.inspect``)."""

from __future__ import annotations

from typing import Any

from .. import state as statefile
from ..names import chain_interface, chain_name, jump_comment, jump_spec
from .facts import ChainFacts


class Snapshots:
    """One backend object per backend name, however many interfaces need it (its binaries resolved once)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            from ..firewall import backend

            self._cache[name] = backend(name)
        return self._cache[name]


def chain_facts(interface: str, family_name: str, record: statefile.FamilyRecord,
                 snap: Any) -> list[ChainFacts]:
    own = record.chains[0] if record.chains else chain_name(interface)
    # A record without jumps still promised the OUTPUT jump: check that one rather than nothing.
    default = {"chain": "OUTPUT", "target": own, "spec": jump_spec(own, jump_comment(interface))}
    out = []
    for jump in record.jumps or [default]:
        chain = jump.get("target", own)
        hook = jump.get("chain", "OUTPUT")
        facts = ChainFacts(family_name, chain, hook, jump.get("spec", ""), present=chain in snap.chains)
        if facts.present:
            facts.rules = len(snap.rules.get(chain, []))
            facts.live_sha256 = snap.chain_sha256(chain)
        jumps = snap.jumps_to(chain, hook)
        facts.jump_positions = [i for i, _ in jumps]
        facts.jump_specs = [s for _, s in jumps]
        if jumps:
            facts.above = [r for r in snap.rules.get(hook, [])[: jumps[0][0]] if not is_wgkill_jump(r)]
        if hook == "OUTPUT" and chain == own:
            facts.saved_sha256 = record.saved_sha256
            if record.saved_sha256 is None and len(record.jumps) == 1:
                facts.recorded_rules = record.rules
        out.append(facts)
    return out


def is_wgkill_jump(spec: str) -> bool:
    """Another tunnel's jump: every chain must pass a packet, so its order does not matter."""
    words = spec.split()
    if words[-2:-1] != ["-j"]:
        return False
    interface = chain_interface(words[-1])
    return interface is not None and f'"{jump_comment(interface)}"' in spec
