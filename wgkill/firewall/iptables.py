"""The iptables backend: ``iptables-restore -w -n`` payloads into chains we own.

Works with iptables-nft and iptables-legacy alike; the variant is read from
where the ``iptables-restore`` on PATH really points, recorded in the state,
and used again on removal, so a later switch of alternatives cannot make
``wgkill-down`` look in the wrong place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import FirewallError, PrerequisiteError
from ..names import jump_spec
from ..runner import CommandError, run
from ..templating import render
from . import Removed

if TYPE_CHECKING:
    from ..policy import FamilyPolicy

_TOOL = {4: "iptables", 6: "ip6tables"}
VARIANTS = ("nf_tables", "legacy")
_VARIANT_INFIX = {"nf_tables": "nft", "legacy": "legacy"}


def detect_variant(family: int = 4) -> str:
    """Which iptables the plain name on PATH runs: 'nf_tables' or 'legacy'."""
    path = shutil.which(f"{_TOOL[family]}-restore")
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
        return hashlib.sha256("\n".join(self.rules.get(chain, [])).encode()).hexdigest()

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


def render_body(policy: FamilyPolicy) -> str:
    """All of one family's rule text; its hash is what the state records."""
    return "".join(spec.body for spec in chain_specs(policy))


def removal_payload(specs: list[ChainSpec]) -> str:
    """What removes ``specs`` as applied (each jumped to once): recorded so that release
    can replay it without reading the table or loading the template engine."""
    chains = [{"chain": spec.chain, "hook": spec.hook, "delete_jumps": [spec.jump], "present": True}
              for spec in specs]
    return render("restore-remove.j2", chains=chains)


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


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
        specific = shutil.which(f"{tool}-{_VARIANT_INFIX[self.variant]}-{verb}")
        if specific:
            return specific
        plain = shutil.which(f"{tool}-{verb}")
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

    def apply_payload(self, specs: list[ChainSpec], snap: FilterSnapshot) -> str:
        """The restore payload that makes the live table hold exactly ``specs``, each jumped to first."""
        chains = []
        for spec in specs:
            jumps = snap.jumps_to(spec.chain, spec.hook)
            in_place = jumps == [(0, spec.jump)]
            chains.append({
                "chain": spec.chain, "hook": spec.hook, "jump": spec.jump, "body": spec.body,
                "delete_jumps": [] if in_place else [j for _, j in jumps], "insert_jump": not in_place,
            })
        return render("restore-apply.j2", chains=chains)

    def prerender(self, specs: list[ChainSpec]) -> dict[str, str]:
        """The two payloads a table usually needs: ``fresh`` (no jump of ours yet) and
        ``in_place`` (every jump already first): cacheable, so re-runs skip the templates."""
        in_place = FilterSnapshot(
            chains={s.chain for s in specs},
            rules={s.hook: [s.jump] for s in specs},
        )
        return {"fresh": self.apply_payload(specs, FilterSnapshot()),
                "in_place": self.apply_payload(specs, in_place)}

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
        chains = []
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
