"""The iptables backend: ``iptables-restore -w -n`` payloads into chains we own.

Works with iptables-nft and iptables-legacy alike; the variant is read from
where the ``iptables-restore`` on PATH really points, recorded in the state,
and used again on removal, so a later switch of alternatives cannot make
``wgkill-down`` look in the wrong place.
"""

import hashlib
import os
import shutil
from dataclasses import dataclass, field

from ..errors import FirewallError, PrerequisiteError
from ..policy import FamilyPolicy
from ..runner import CommandError, run
from ..templating import render
from . import Applied, Removed

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


def jump_spec(chain: str, comment: str) -> str:
    """The OUTPUT rule spec of our jump, exactly as iptables-save prints it."""
    return f'-m comment --comment "{comment}" -j {chain}'


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

    def jumps_to(self, chain: str) -> list[tuple[int, str]]:
        """OUTPUT rules (position, spec) whose target is ``chain``."""
        return [
            (index, spec)
            for index, spec in enumerate(self.rules.get("OUTPUT", []))
            if spec.split()[-2:] == ["-j", chain]
        ]


def parse_save(text: str) -> FilterSnapshot:
    """Parse ``iptables-save -t filter`` output."""
    snap = FilterSnapshot()
    in_filter = False
    for line in text.splitlines():
        if line.startswith("*"):
            in_filter = line == "*filter"
        elif not in_filter or line.startswith("#"):
            continue
        elif line.startswith(":"):
            snap.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            chain, _, spec = line[3:].partition(" ")
            snap.rules.setdefault(chain, []).append(spec)
    return snap


def render_body(policy: FamilyPolicy) -> str:
    """The chain body for one family; its hash is what the state records."""
    return render("killswitch.rules.j2", p=policy)


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

    def snapshot(self) -> FilterSnapshot:
        try:
            return parse_save(run([self.save, "-t", "filter"]))
        except CommandError as exc:
            raise FirewallError(f"{self.name}: cannot read rules: {exc}") from exc

    def apply_payload(self, policy: FamilyPolicy, body: str, snap: FilterSnapshot) -> str:
        """The restore payload that makes the live table hold exactly ``body`` once, jumped to first."""
        jump = jump_spec(policy.chain, policy.comment)
        jumps = snap.jumps_to(policy.chain)
        in_place = [(index, spec) for index, spec in jumps] == [(0, jump)]
        return render(
            "restore-apply.j2",
            chain=policy.chain,
            jump=jump,
            delete_jumps=[] if in_place else [spec for _, spec in jumps],
            insert_jump=not in_place,
            body=body,
        )

    def apply(self, policy: FamilyPolicy, body: str) -> Applied:
        payload = self.apply_payload(policy, body, self.snapshot())
        self._restore(payload, f"{policy.chain} ({body.count(chr(10))} rules)")
        return Applied(
            family=self.family,
            variant=self.variant,
            chain=policy.chain,
            jump=jump_spec(policy.chain, policy.comment),
            payload_sha256=body_hash(body),
            rules=body.count("\n"),
        )

    def remove(self, chain: str) -> Removed:
        """Remove every OUTPUT jump to ``chain`` and the chain itself; nothing else."""
        snap = self.snapshot()
        jumps = [spec for _, spec in snap.jumps_to(chain)]
        present = chain in snap.chains
        if not jumps and not present:
            return Removed(self.family, False, 0)
        payload = render(
            "restore-remove.j2", chain=chain, delete_jumps=jumps, chain_present=present
        )
        self._restore(payload, f"remove {chain}")
        return Removed(self.family, present, len(jumps))

    def _restore(self, payload: str, what: str) -> None:
        try:
            run([self.restore, "-w", "-n"], stdin=payload, change=True)
        except CommandError as exc:
            raise FirewallError(f"{self.name}: {what} failed, table unchanged: {exc}") from exc
