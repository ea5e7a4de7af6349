"""The iptables backend: ``iptables-restore -w -n`` payloads into chains we own.

Works with iptables-nft and iptables-legacy alike; the variant is read from
where the ``iptables-restore`` on PATH really points, recorded in the state,
and used again on removal, so a later switch of alternatives cannot make
``wgkill-down`` look in the wrong place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..digest import sha256_hex
from ..errors import ApplyFailed, FirewallError, PrerequisiteError, StateError, WgkillError
from ..names import (
    chain_interface,
    chain_name,
    forward_chain_name,
    jump_comment,
    jump_spec,
    owns_set,
    route_chain_names,
    set_name,
)
from ..recordclass import dataclass, field
from ..runner import CommandError, find, run, which
from ..templating import render
from . import Removed
from .base import Backend, Inspected, Plan
from .facts import ChainFacts, SetFacts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

    from .. import state as statefile
    from ..exclusion import ExclusionRecord
    from ..policy import FamilyPolicy, KillSwitchPolicy
    from ..prefixes import PrefixList

_TOOL = {4: "iptables", 6: "ip6tables"}
VARIANTS = ("nf_tables", "legacy")
_VARIANT_INFIX = {"nf_tables": "nft", "legacy": "legacy"}


def detect_variant(family: int = 4) -> str:
    """Which iptables the plain name on PATH runs: 'nf_tables' or 'legacy'."""
    path = find(f"{_TOOL[family]}-restore")
    if path is None:
        raise PrerequisiteError(
            f"{_TOOL[family]}-restore not found on PATH: install iptables (nft or legacy)"
        )
    real = os.path.basename(os.path.realpath(path))
    if "legacy" in real:
        return "legacy"
    if "nft" in real:
        return "nf_tables"
    version = run([path, "--version"])
    return "legacy" if "legacy" in version else "nf_tables"


@dataclass
class FilterSnapshot:
    """The filter table as iptables-save printed it: chain names and rules per chain."""

    chains: set[str] = field(default_factory=set)
    rules: dict[str, list[str]] = field(default_factory=dict)

    def chain_sha256(self, chain: str) -> str | None:
        """A fingerprint of ``chain``'s rules as iptables-save prints them; None if it is absent."""
        if chain not in self.chains:
            return None
        return sha256_hex("\n".join(self.rules.get(chain, [])).encode())

    def jumps_to(self, chain: str, hook: str = "OUTPUT") -> list[tuple[int, str]]:
        """Rules of built-in chain ``hook`` (position, spec) whose target is ``chain``."""
        return [
            (index, spec)
            for index, spec in enumerate(self.rules.get(hook, []))
            if spec.split()[-2:] == ["-j", chain]
        ]


def parse_save(text: str, table: str = "filter") -> FilterSnapshot:
    """Parse ``iptables-save -t TABLE`` output (the filter table unless told otherwise)."""
    snap = FilterSnapshot()
    in_filter = False
    for line in text.splitlines():
        if line.startswith("*"):
            in_filter = line == f"*{table}"
        elif not in_filter or line.startswith("#"):
            continue
        elif line.startswith(":"):
            snap.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            snap.rules.setdefault(chain, []).append(spec)
    return snap


@dataclass(frozen=True)
class ChainSpec:
    """One chain wgkill owns: its rules, and the built-in chain that jumps to it first."""

    chain: str
    hook: str  # OUTPUT, or FORWARD in gateway mode
    comment: str
    body: str

    @property
    def jump(self) -> str:
        return jump_spec(self.chain, self.comment)


def _rules(template: str, policy: FamilyPolicy) -> str:
    """Rendered rule lines; blank lines (left by template logic) never reach a payload."""
    return "".join(line + "\n" for line in render(template, p=policy).splitlines() if line.strip())


def chain_specs(policy: FamilyPolicy) -> list[ChainSpec]:
    """Render one family's chains: the host's (OUTPUT) and, for a gateway, the routed (FORWARD)."""
    specs = [ChainSpec(policy.chain, "OUTPUT", policy.comment, _rules("killswitch.rules.j2", policy))]
    if policy.forward_chain:
        body = _rules("killswitch-forward.rules.j2", policy)
        specs.append(ChainSpec(policy.forward_chain, "FORWARD", policy.comment, body))
    return specs


def removal_payload(specs: list[ChainSpec]) -> str:
    """What removes ``specs`` as applied (each jumped to once): recorded so that release
    can replay it without reading the table or loading the template engine."""
    chains = [{"chain": spec.chain, "hook": spec.hook, "delete_jumps": [spec.jump], "present": True}
              for spec in specs]
    return render("restore-remove.j2", chains=chains)


class IptablesFamily:
    """One address family of one iptables variant."""

    def __init__(self, family: int, variant: str | None = None) -> None:
        self.family = family
        self.variant = variant or detect_variant(family)
        if self.variant not in VARIANTS:
            raise FirewallError(f"unknown iptables variant {self.variant!r}")
        self.restore = self._binary("restore")
        self.save = self._binary("save")

    def _binary(self, verb: str) -> str:
        """Prefer the variant-specific name; accept the plain one if it is that variant."""
        tool = _TOOL[self.family]
        specific = find(f"{tool}-{_VARIANT_INFIX[self.variant]}-{verb}")
        if specific:
            return specific
        plain = find(f"{tool}-{verb}")
        if plain and detect_variant(self.family) == self.variant:
            return plain
        raise PrerequisiteError(
            f"{tool}-{verb} for iptables-{_VARIANT_INFIX[self.variant]} not found: install iptables"
        )

    @property
    def name(self) -> str:
        return f"ipv{self.family}"

    def snapshot(self, table: str = "filter") -> FilterSnapshot:
        try:
            return parse_save(run([self.save, "-t", table]), table)
        except CommandError as exc:
            raise FirewallError(f"{self.name}: cannot read {table} rules: {exc}") from exc

    @staticmethod
    def apply_payload(specs: list[ChainSpec], snap: FilterSnapshot) -> str:
        """The restore payload that makes the table ``snap`` shows hold exactly ``specs``, each jumped
        to first (pure: no binary, no kernel)."""
        chains = []
        for spec in specs:
            jumps = snap.jumps_to(spec.chain, spec.hook)
            in_place = jumps == [(0, spec.jump)]
            chains.append({
                "chain": spec.chain, "hook": spec.hook, "jump": spec.jump, "body": spec.body,
                "delete_jumps": [] if in_place else [j for _, j in jumps], "insert_jump": not in_place,
            })
        return render("restore-apply.j2", chains=chains)

    @staticmethod
    def prerender(specs: list[ChainSpec]) -> dict[str, str]:
        """The two payloads a table usually needs: ``fresh`` (no jump of ours yet) and
        ``in_place`` (every jump already first): cacheable, so re-runs skip the templates."""
        in_place = FilterSnapshot(
            chains={s.chain for s in specs},
            rules={s.hook: [s.jump] for s in specs},
        )
        return {"fresh": IptablesFamily.apply_payload(specs, FilterSnapshot()),
                "in_place": IptablesFamily.apply_payload(specs, in_place)}

    def apply(self, specs: list[ChainSpec], prerendered: dict[str, str] | None = None) -> None:
        """Make the table hold ``specs`` in one transaction; may be called again with the same result."""
        snap = self.snapshot()
        jumps = [snap.jumps_to(spec.chain, spec.hook) for spec in specs]
        if prerendered and all(j == [(0, spec.jump)] for j, spec in zip(jumps, specs, strict=True)):
            payload = prerendered["in_place"]
        elif prerendered and not any(jumps):
            payload = prerendered["fresh"]
        else:
            payload = self.apply_payload(specs, snap)
        rules = sum(spec.body.count("\n") for spec in specs)
        self._restore(payload, f"{', '.join(s.chain for s in specs)} ({rules} rules)")

    def remove(self, owned: list[tuple[str, str]]) -> Removed:
        """Remove each (hook, chain): every jump to it from its hook, then the chain; nothing else."""
        snap = self.snapshot()
        chains: list[dict[str, Any]] = []  # restore-remove.j2's rows
        for hook, chain in owned:
            jumps = [spec for _, spec in snap.jumps_to(chain, hook)]
            if jumps or chain in snap.chains:
                chains.append({"chain": chain, "hook": hook, "delete_jumps": jumps,
                               "present": chain in snap.chains})
        if not chains:
            return Removed(self.family, False, 0)
        names = " ".join(c["chain"] for c in chains)
        self._restore(render("restore-remove.j2", chains=chains), f"remove {names}")
        return Removed(self.family, any(c["present"] for c in chains),
                       sum(len(c["delete_jumps"]) for c in chains))

    def restore_payload(self, payload: str) -> None:
        """Feed a ready payload to iptables-restore; CommandError if it does not apply as a whole."""
        run([self.restore, "-w", "-n"], stdin=payload, change=True)

    def _restore(self, payload: str, what: str) -> None:
        try:
            run([self.restore, "-w", "-n"], stdin=payload, change=True)
        except CommandError as exc:
            raise FirewallError(f"{self.name}: {what} failed, table unchanged: {exc}") from exc


@dataclass
class IptablesPlan:
    """Per family: our chains, the cacheable apply payloads and the recorded removal payload."""

    specs: dict[int, list[ChainSpec]]
    prerendered: dict[int, dict[str, str]]
    removals: dict[int, str]
    sets: dict[int, str | None]
    split: PrefixList | None


class IptablesBackend(Backend):
    """Both families through ``iptables-restore -w -n``: one transaction per family, IPv4 first;
    split-tunnel destinations in ipset sets (``wgkill.ipset``)."""

    name = "iptables"
    sets_in_payload = False  # ipset sets, filled apart (wgkill.ipset)
    set_word = "ipset"

    def __init__(self, variants: dict[int, str] | None = None) -> None:
        from ..kernel import ipv6_available

        self._variants = variants or {}
        self._families: dict[tuple[int, str | None], IptablesFamily] = {}
        for family in (4, 6) if ipv6_available() else (4,):
            self.family(family)  # binaries resolved before any change

    def check_split_tools(self) -> None:
        which("ipset")

    def family(self, family: int, variant: str | None = None) -> IptablesFamily:
        """The binaries of one family and variant (detected when not given), resolved once."""
        variant = variant or self._variants.get(family)
        key = (family, variant)
        if key not in self._families:
            self._families[key] = IptablesFamily(family, variant)
        return self._families[key]

    def plan(self, policy: KillSwitchPolicy, split: PrefixList | None, *, cache: bool = True) -> Plan:
        from .. import rendercache

        key = rendercache.cache_key(policy)
        cached = rendercache.load(policy.interface, key)
        if cached is not None:
            specs = {int(f): [ChainSpec(**c) for c in chains] for f, chains in cached["specs"].items()}
            prerendered = {int(f): p for f, p in cached["payloads"].items()}
            removals = {int(f): p for f, p in cached["removals"].items()}
        else:
            specs = {fp.family: chain_specs(fp) for fp in policy.families}
            prerendered = {f: IptablesFamily.prerender(chains) for f, chains in specs.items()}
            removals = {f: removal_payload(chains) for f, chains in specs.items()}
            if cache:
                rendercache.save(policy.interface, {
                    "key": key,
                    "specs": {f: [vars(c) for c in chains] for f, chains in specs.items()},
                    "payloads": prerendered,
                    "removals": removals,
                })
        sets = {fp.family: fp.split_set for fp in policy.families}
        data = IptablesPlan(specs, prerendered, removals, sets, split)
        # Against tables holding no jump of ours; ``apply`` and ``preview`` read the live ones.
        payloads = {f"{_TOOL[family]}-restore -w -n": prerendered[family]["fresh"] for family in specs}
        return Plan(self.name, payloads, data)

    def preview(self, plan: Plan) -> dict[str, str]:
        data: IptablesPlan = plan.data
        payloads = {}
        for family, chains in data.specs.items():
            snap = self.family(family).snapshot() if os.geteuid() == 0 else FilterSnapshot()  # user: none
            payloads[f"{_TOOL[family]}-restore -w -n"] = self.family(family).apply_payload(chains, snap)
        return payloads

    def record(self, plan: Plan, state: statefile.State) -> None:
        from .. import state as statefile

        data: IptablesPlan = plan.data
        state.backend = self.name
        state.nft = None
        state.families = {}
        for family, chains in data.specs.items():
            text = "".join(spec.body for spec in chains)
            state.families[family] = statefile.FamilyRecord(
                table="filter",
                chains=[spec.chain for spec in chains],
                jumps=[{"chain": spec.hook, "target": spec.chain, "spec": spec.jump} for spec in chains],
                rules=text.count("\n"),
                sets=[name] if (name := data.sets.get(family)) else [],
                bodies={spec.chain: spec.body for spec in chains},
                remove_payload=data.removals[family],
                variant=self.family(family).variant,
            )

    def apply(self, plan: Plan, state: statefile.State, previous: statefile.State | None) -> None:
        from .. import ipset

        data: IptablesPlan = plan.data
        done: list[str] = []
        for family, chains in data.specs.items():
            try:
                name = data.sets.get(family)
                if name and data.split is not None:  # the set exists before any rule names it
                    state.families[family].set_entries = ipset.sync(name, family, data.split.family(family))
                self.family(family).apply(chains, data.prerendered[family])
                snap = self.family(family).snapshot()
                state.families[family].saved_sha256 = snap.chain_sha256(chains[0].chain)
            except FirewallError as exc:
                kept = f"; the {', '.join(done)} block stays in place" if done else ""
                raise ApplyFailed(f"{exc}{kept}", done) from exc
            done.append(f"ipv{family}")
        if previous is not None and previous.backend == self.name:
            self._drop_stale(previous, state)

    def _drop_stale(self, previous: statefile.State, state: statefile.State) -> None:
        """What an earlier run applied and this one does not (a gateway chain, a split set)."""
        from .. import ipset
        from ..kernel import ipv6_available

        for family, old in previous.families.items():
            new = state.families.get(family)
            if family == 6 and not ipv6_available():
                continue
            gone = [(j["chain"], j.get("target", old.chains[0])) for j in old.jumps
                    if new is None or j.get("target", old.chains[0]) not in new.chains]
            if gone:
                self.family(family, old.variant).remove(gone)
            for set_ in set(old.sets) - set(new.sets if new else ()):
                ipset.destroy(set_)

    def remove(self, state: statefile.State) -> list[Removed]:
        from .. import ipset
        from ..kernel import ipv6_available

        owned = owned_chains(state)
        removed = []
        failures = []
        for family in sorted(owned):
            if family == 6 and not ipv6_available():
                continue
            record = state.families[family]
            try:
                binaries = self.family(family, record.variant)
                removed.append(_replay(binaries, record.remove_payload, owned[family]))
                for name in record.sets:
                    ipset.destroy(name)  # after the rules that name it are gone
            except (FirewallError, PrerequisiteError) as exc:
                failures.append(str(exc))
        if failures:
            raise FirewallError("; ".join(failures))
        return removed

    def remove_by_name(self, interface: str) -> list[Removed]:
        from .. import ipset
        from ..kernel import ipv6_available

        own = chain_name(interface)
        removed = []
        for family in (4, 6):
            if family == 6 and not ipv6_available():
                continue
            owned = [("OUTPUT", own), ("FORWARD", forward_chain_name(interface))]
            removed.append(self.family(family).remove(owned))
            if find("ipset") and ipset.exists(set_name(interface, family)):
                ipset.destroy(set_name(interface, family))
        return removed

    def boot(self, state: statefile.State, split: PrefixList | None, *, sets: bool = True) -> None:
        from .. import ipset
        from ..kernel import ipv6_available

        for family, rec in sorted(state.families.items()):
            if family == 6 and not ipv6_available():
                continue
            for set_ in rec.sets if sets else ():
                ipset.sync(set_, family, split.family(family) if split else ())
            specs = [
                ChainSpec(j.get("target", rec.chains[0]), j["chain"], jump_comment(state.interface),
                          rec.bodies[j.get("target", rec.chains[0])])
                for j in rec.jumps
            ]
            self.family(family, rec.variant).apply(specs)

    def block_all(self, interface: str, families: tuple[int, ...]) -> None:
        from ..policy import build_policy

        for fp in build_policy(interface, None, None, families).families:
            self.family(fp.family).apply(chain_specs(fp))

    def inspect(self, state: statefile.State, ipv6: bool) -> Inspected:
        from .. import ipset

        chains: list[ChainFacts] = []
        sets: list[SetFacts] = []
        errors: list[str] = []
        for family, record in sorted(state.families.items()):
            if family == 6 and not ipv6:
                continue
            try:
                snap = self.family(family, record.variant).snapshot()
            except WgkillError as exc:
                errors.append(f"cannot read ipv{family} rules: {exc}")
                continue
            chains += chain_facts(state.interface, f"ipv{family}", record, snap)
            for name in record.sets:
                try:
                    sets.append(SetFacts(name, ipset.members_count(name)))
                except WgkillError as exc:
                    errors.append(f"cannot read ipset {name}: {exc}")
        return chains, sets, errors

    @staticmethod
    def silent(state: statefile.State) -> list[str]:
        """iptables-legacy rules and ipsets: neither announces a change (nf_tables does)."""
        legacy = "legacy" in [state.variant(family) for family in state.families]
        return (["iptables-legacy"] if legacy else []) + (["ipset"] if state.split_sets() else [])

    @staticmethod
    def route_variant() -> str:
        return detect_variant(4)

    @staticmethod
    def route_chains(interface: str, version: int) -> dict[str, str]:
        return route_chain_names(interface, guard=version >= 2)

    def apply_route_marks(self, interface: str, family: int, variant: str, mark: int, mask: int,
                          endpoints: Sequence[tuple[str, int]], wg_fwmark: int | None) -> None:
        from . import iptables_routes

        fam = self.family(family, variant)
        bodies = iptables_routes.chain_bodies(interface, family, mark, mask, endpoints, wg_fwmark)
        payload = iptables_routes.apply_payload(interface, bodies, iptables_routes.snapshots(fam))
        iptables_routes.restore(fam, payload, f"routing marks for {interface}")

    def remove_route_marks(self, interface: str, family: int, variant: str,
                           chains: dict[str, str]) -> list[str]:
        from . import iptables_routes

        fam = self.family(family, variant)
        payload, done = iptables_routes.remove_payload(chains, iptables_routes.snapshots(fam))
        if payload:
            iptables_routes.restore(fam, payload, f"remove routing marks for {interface}")
        return [f"ipv{family} {what}" for what in done]

    def missing_route_marks(self, family: int, variant: str, chains: dict[str, str]) -> list[str]:
        from . import iptables_routes

        return iptables_routes.missing(chains, iptables_routes.snapshots(self.family(family, variant)))

    def exclusion_payloads(self, record: ExclusionRecord) -> dict[str, str]:
        from . import iptables_exclude

        payloads = {}
        for family in record.families:
            snaps = (iptables_exclude.snapshots(self.family(family)) if os.geteuid() == 0
                     else {"mangle": FilterSnapshot(), "nat": FilterSnapshot()})  # as a user: read none
            label = f"{_TOOL[family]}-restore -w -n (exclusion)"
            payloads[label] = iptables_exclude.apply_payload(record, snaps)
        return payloads

    def apply_exclusion(self, record: ExclusionRecord, state: statefile.State) -> None:
        from . import iptables_exclude

        for family in record.families:
            if family in state.families:
                iptables_exclude.apply(record, self.family(family, state.variant(family)))

    def remove_exclusion(self, interface: str, state: statefile.State | None) -> list[str]:
        """Our mangle/nat chains, found by name, in the variant each family was applied with (the
        state lost: the variant on PATH)."""
        from ..kernel import ipv6_available
        from . import iptables_exclude

        done = []
        for family in (4, 6) if ipv6_available() else (4,):
            variant = state.variant(family) if state is not None else None
            if state is not None and variant is None:
                continue
            if iptables_exclude.remove(interface, self.family(family, variant)):
                done.append(f"ipv{family}")
        return done

    def exclusion_present(self, state: statefile.State, record: ExclusionRecord,
                          ipv6: bool) -> dict[str, bool]:
        from . import iptables_exclude

        families = [f for f in record.families if f == 4 or ipv6]
        return {f"ipv{f}": all(iptables_exclude.present(state.interface,
                                                        self.family(f, state.variant(f))).values())
                for f in families}


def chain_facts(interface: str, family_name: str, record: statefile.FamilyRecord,
                snap: FilterSnapshot) -> list[ChainFacts]:
    """The recorded chains and their jumps as ``snap`` (iptables-save of the recorded variant) shows them."""
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


def owned_chains(state: statefile.State) -> dict[int, list[tuple[str, str]]]:
    """(hook, chain) pairs per family, from the state; refused if it names chains not ours."""
    own = chain_name(state.interface)
    owned = {
        family: [(j["chain"], j.get("target", rec.chains[0])) for j in rec.jumps]
        for family, rec in state.families.items()
    }
    allowed = {("OUTPUT", own), ("FORWARD", forward_chain_name(state.interface))}
    if any(pair not in allowed for pairs in owned.values() for pair in pairs):
        raise StateError(f"state for {state.interface} names chains other than {own}: refusing")
    for rec in state.families.values():
        if any(not owns_set(state.interface, name) for name in rec.sets):
            raise StateError(f"state for {state.interface} names a set that is not its own: refusing")
    return owned


def _replay(backend: IptablesFamily, stored: str | None, owned: list[tuple[str, str]]) -> Removed:
    """The recorded removal payload if it applies as is (one transaction), else work it out."""
    if stored:
        try:
            backend.restore_payload(stored)
            return Removed(backend.family, True, len(owned))
        except CommandError:
            pass  # something changed under us: read the table and remove what is left
    return backend.remove(owned)
