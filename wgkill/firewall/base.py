"""The seam both firewall backends implement: nothing outside ``wgkill.firewall`` uses more (an import
contract in pyproject.toml; docs/architecture.md is the map).

A run plans first (nothing changes), records the plan in the state (intent
before any change, so an interrupted run stays removable), then applies it.

- ``plan`` may be called any number of times and changes nothing.
- ``apply`` may be called again with the same plan; the result is the same
  rule set as applying it once. nft: one transaction for both families;
  iptables: one per family, IPv4 first.
- ``remove`` removes exactly what the state records and nothing else; pieces
  already gone are not an error, so it may be called twice.
- ``remove_by_name`` is for a lost or unreadable state: what our names and tags
  say is ours.
- ``boot`` re-applies a recorded block as recorded.
- ``inspect`` reads what is live (status), never changes anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..recordclass import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

    from .. import state as statefile
    from ..exclusion import ExclusionRecord
    from ..policy import KillSwitchPolicy
    from ..prefixes import PrefixList
    from . import Removed
    from .facts import ChainFacts, SetFacts


Inspected = tuple[list["ChainFacts"], list["SetFacts"], list[str]]  # chains, sets, read errors


@dataclass
class Plan:
    """What a backend will apply: its payloads by label (``--dry-run`` prints them) and its own data."""

    backend: str
    payloads: dict[str, str] = field(default_factory=dict)
    data: Any = None


class Backend(ABC):
    name: str
    sets_in_payload: bool  # the split sets' elements are part of the one payload (nft), not apart
    set_word: str  # what status calls one of its sets

    @abstractmethod
    def check_split_tools(self) -> None:
        """Before any change: PrerequisiteError if a split tunnel's sets cannot be made here."""

    @abstractmethod
    def plan(self, policy: KillSwitchPolicy, split: PrefixList | None, *, cache: bool = True) -> Plan:
        """Render the payload for ``policy``, reading no table; ``cache``: rendered text may be kept
        for the next run."""

    def preview(self, plan: Plan) -> dict[str, str]:
        """--dry-run: the payloads ``apply`` would feed now, by label. The one place a plan meets
        the live tables (iptables: its restore input depends on the jumps already there)."""
        return dict(plan.payloads)

    @abstractmethod
    def record(self, plan: Plan, state: statefile.State) -> None:
        """Fill ``state`` with what ``apply(plan)`` will put in place (saved before applying)."""

    @abstractmethod
    def apply(self, plan: Plan, state: statefile.State, previous: statefile.State | None) -> None:
        """Put ``plan`` in place; drop what ``previous`` (same backend) applied and this plan does not."""

    @abstractmethod
    def remove(self, state: statefile.State) -> list[Removed]:
        """Remove exactly what ``state`` records."""

    @abstractmethod
    def remove_by_name(self, interface: str) -> list[Removed]:
        """Remove what our names say is ``interface``'s (the state is lost)."""

    @abstractmethod
    def boot(self, state: statefile.State, split: PrefixList | None, *, sets: bool = True) -> None:
        """Re-apply the recorded block as recorded (boot, and the guard's repairs); ``sets``: refill
        the split sets from ``split`` too, where they are apart from the rules (iptables)."""

    @abstractmethod
    def block_all(self, interface: str, families: tuple[int, ...]) -> None:
        """A full block by name (lo, local and link upkeep only): for an unreadable state at boot."""

    @abstractmethod
    def inspect(self, state: statefile.State, ipv6: bool) -> Inspected:
        """The recorded chains and sets as they are now, and what could not be read."""

    @staticmethod
    @abstractmethod
    def silent(state: statefile.State) -> list[str]:
        """What of this block another program can change without an event (the guard polls only
        for these): nothing in nftables, whose every change is announced (iptables-nft's too)."""

    # ---- --routes: the marks that route a split tunnel's set into it (wgkill.routes) ---------

    @staticmethod
    @abstractmethod
    def route_variant() -> str:
        """What a route record keeps as its iptables variant ("" where there is none)."""

    @staticmethod
    @abstractmethod
    def route_chains(interface: str, version: int) -> dict[str, str]:
        """For a family's route record: our chains by key (mangle, nat, guard); none where the
        block's table holds them."""

    @abstractmethod
    def apply_route_marks(self, interface: str, family: int, variant: str, mark: int, mask: int,
                          endpoints: Sequence[tuple[str, int]], wg_fwmark: int | None) -> None:
        """Put the marks, the source NAT and the postrouting guard of one family in place (nft: they
        are chains of the block's table, applied with it)."""

    @abstractmethod
    def remove_route_marks(self, interface: str, family: int, variant: str,
                           chains: dict[str, str]) -> list[str]:
        """Remove the recorded route chains of one family and every jump to them; what went."""

    @abstractmethod
    def missing_route_marks(self, family: int, variant: str, chains: dict[str, str]) -> list[str]:
        """The recorded route chains of one family that are gone or not jumped to."""

    # ---- per-app exclusion: the rules that mark the excluded cgroup's packets ------------------

    @abstractmethod
    def exclusion_payloads(self, record: ExclusionRecord) -> dict[str, str]:
        """--dry-run: the exclusion's payloads apart from ``plan``'s, by label (none if in the plan)."""

    @abstractmethod
    def apply_exclusion(self, record: ExclusionRecord, state: statefile.State) -> None:
        """Put the exclusion's own rules in place after the block (its cgroup made already)."""

    @abstractmethod
    def remove_exclusion(self, interface: str, state: statefile.State | None) -> list[str]:
        """Remove the exclusion's own rules (before the block); by name when the state is lost.
        Returns the families done (ipv4, ipv6)."""

    @abstractmethod
    def exclusion_present(self, state: statefile.State, record: ExclusionRecord,
                          ipv6: bool) -> dict[str, bool]:
        """Per family (ipv4, ipv6): are the marking rules in place (status)."""
