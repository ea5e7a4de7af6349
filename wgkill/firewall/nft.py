"""The nftables backend: one ``inet`` table per interface, applied and removed in one transaction.

In nftables a packet must pass every base chain hooked where it travels: an
``accept`` in another table (or in iptables' tables, which iptables-nft keeps
in tables of their own) ends only that table's evaluation, while a reject
here is final. So nothing another tool does to its own rules opens the block.
Applying is one ``nft -f`` that creates the table if missing, deletes it and
defines it whole (the Mullvad idiom): atomic for IPv4 and IPv6 together, and
re-running leaves ``nft list ruleset`` byte for byte as it was. Removing is
one ``add table``/``delete table`` transaction, which is a no-op when the
table is already gone.

The rule text is rendered in ``nft_render``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import FirewallError
from ..names import nft_table_name
from ..runner import CommandError, run, which
from . import Removed
from .base import Backend, Inspected, Plan
from .libnft import NftError, run_text
from .nft_text import parse_listing

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from .. import state as statefile
    from ..exclusion import ExclusionRecord
    from ..policy import KillSwitchPolicy
    from ..prefixes import PrefixList
    from .nft_render import NftPlan

EXCLUSION_CHAINS = ("exclude_mark", "exclude_restore", "exclude_nat")  # templates/nft/table.nft.j2
_FAMILY_JUMP = re.compile(r"meta nfproto ipv[46] jump (?:forward_)?ipv[46]")


class NftBackend(Backend):
    name = "nft"
    sets_in_payload = True  # the set elements are in the table's one transaction
    set_word = "set"

    def check_split_tools(self) -> None:
        return None  # nft holds the sets itself

    def __init__(self) -> None:
        self.nft = which("nft")

    # ---- planning -------------------------------------------------------------------------

    @staticmethod
    def render(policy: KillSwitchPolicy, split: PrefixList | None) -> NftPlan:
        """The table's one transaction for ``policy`` (pure: no binary, no kernel; ``nft_render``,
        which wgkill-down and wgkill-status never import)."""
        from .nft_render import render

        return render(policy, split)

    def plan(self, policy: KillSwitchPolicy, split: PrefixList | None, *, cache: bool = True) -> Plan:
        from .. import rendercache

        key = rendercache.cache_key(("nft", policy))
        cached = rendercache.load(policy.interface, key)
        if cached is not None:
            from .nft_render import NftPlan

            data = NftPlan(cached["table"], cached["payload"], cached["rules"],
                           {int(k): v for k, v in cached["sets"].items()},
                           {int(k): v for k, v in cached.get("entries", {}).items()})
        else:
            data = self.render(policy, split)
            if cache:
                rendercache.save(policy.interface, {"key": key, "table": data.table, "payload": data.payload,
                                                    "rules": data.rules, "sets": data.sets,
                                                    "entries": data.entries})
        return Plan(self.name, {"nft -f -": data.payload}, data)

    def record(self, plan: Plan, state: statefile.State) -> None:
        from .. import state as statefile

        data: NftPlan = plan.data
        state.backend = self.name
        state.families = {}
        state.nft = statefile.NftRecord(
            table=data.table, payload=data.payload,
            rules=dict(data.rules), sets=dict(data.sets), set_entries=dict(data.entries),
        )

    # ---- changing -------------------------------------------------------------------------

    def _transaction(self, payload: str, what: str, cgroups: bool = False) -> None:
        """One transaction, in-process through libnftables (``libnft``; the ``nft`` binary where it
        is missing). ``cgroups``: the payload names a cgroup (``socket cgroupv2``), which nft
        resolves only under /sys/fs/cgroup/: on hybrid hosts ``nft -f`` runs in a mount namespace
        of its own with cgroup2 mounted there (``wgkill.cgroupns``)."""
        if cgroups:
            from ..cgroupns import TARGET, argv_for
            from ..cgroups import unified_root

            root = unified_root()
            if str(root) != TARGET:
                try:
                    run(argv_for([self.nft, "-f", "-"], root), stdin=payload, change=True)
                except CommandError as exc:
                    raise FirewallError(f"nft: {what} failed, ruleset unchanged: {exc}") from exc
                return
        try:
            run_text(payload, change=True)
        except NftError as exc:
            raise FirewallError(f"nft: {what} failed, ruleset unchanged: {exc}") from exc

    def apply(self, plan: Plan, state: statefile.State, previous: statefile.State | None) -> None:
        data: NftPlan = plan.data
        rules = sum(data.rules.values())
        self._transaction(data.payload, f"table inet {data.table} ({rules} rules)", bool(state.exclude))

    def _delete(self, table: str) -> None:
        payload = f"add table inet {table}\ndelete table inet {table}\n"
        self._transaction(payload, f"remove table inet {table}")

    def remove(self, state: statefile.State) -> list[Removed]:
        if state.nft is None:
            return []
        table = state.nft.table
        if table != nft_table_name(state.interface):
            raise FirewallError(f"state for {state.interface} names table {table!r}, not its own: refusing")
        self._delete(table)  # one process: no listing first, the transaction is a no-op if it is gone
        return [Removed(0, True, 0)]

    def remove_by_name(self, interface: str) -> list[Removed]:
        return self.remove_table(nft_table_name(interface))

    def remove_table(self, table: str) -> list[Removed]:
        present = self._present(table)
        if present:
            self._delete(table)
        return [Removed(0, present, 0)]

    def boot(self, state: statefile.State, split: PrefixList | None, *, sets: bool = True) -> None:
        if state.nft is None or state.nft.table != nft_table_name(state.interface):
            raise FirewallError(f"state for {state.interface} has no table of its own to re-apply")
        self._transaction(state.nft.payload, f"table inet {state.nft.table} (boot)", bool(state.exclude))

    def block_all(self, interface: str, families: tuple[int, ...]) -> None:
        from ..policy import build_policy

        policy = build_policy(interface, None, None, families)
        self._transaction(self.render(policy, None).payload, f"full block for {interface}")

    # ---- reading --------------------------------------------------------------------------

    def _present(self, table: str) -> bool:
        return table in self.tables()

    def tables(self) -> set[str]:
        """Names of the inet tables in this namespace."""
        try:
            text = run_text("list tables inet\n")
        except NftError as exc:
            raise FirewallError(f"nft: cannot list tables: {exc}") from exc
        # an owned table's line ends in a comment: ``table inet NAME { # progname wgkill-guard``
        return {line.split("#")[0].split()[-1] for line in text.splitlines()
                if line.startswith("table inet ")}

    def listing(self, table: str) -> dict[str, list[str]] | None:
        """Our table's chains and their rules as nft prints them; None if the table is gone (asked
        only when the listing fails: nft's error text is not the place to learn that)."""
        try:
            text = run_text(f"list table inet {table}\n")
        except NftError as exc:
            if table not in self.tables():
                return None
            raise FirewallError(f"nft: cannot read table {table}: {exc}") from exc
        return parse_listing(text).get(table, {})

    def set_size(self, table: str, name: str) -> int | None:
        try:
            text = run_text(f"list set inet {table} {name}\n")
        except NftError:
            return None
        body = text.partition("elements = {")[2].partition("}")[0]
        return len([e for e in body.split(",") if e.strip()])

    def inspect(self, state: statefile.State, ipv6: bool) -> Inspected:
        from .facts import ChainFacts, SetFacts

        record = state.nft
        if record is None:
            return [], [], ["state records backend nft but no table"]
        try:
            live = self.listing(record.table)
        except FirewallError as exc:
            return [], [], [str(exc)]
        chains: list[ChainFacts] = []
        for hook, base in (("OUTPUT", "output"), ("FORWARD", "forward")):
            if base not in record.rules:
                continue
            for family in (4, 6):
                name = f"ipv{family}" if base == "output" else f"forward_ipv{family}"
                if name not in record.rules or (family == 6 and not ipv6):
                    continue
                jump = f"meta nfproto ipv{family} jump {name}"
                facts = ChainFacts(f"ipv{family}", f"{record.table} {name}", hook, jump)
                if live is not None and name in live and base in live:
                    facts.present = True
                    facts.rules = len(live[name])
                    facts.recorded_rules = record.rules[name]
                    positions = [i for i, rule in enumerate(live[base]) if rule == jump]
                    before = live[base][: positions[0]] if positions else []
                    facts.above = [r for r in before if not _FAMILY_JUMP.fullmatch(r)]
                    # the position among rules other than our family jumps: 0 when nothing precedes
                    facts.jump_positions = [len(facts.above), *positions[1:]] if positions else []
                    facts.jump_specs = [jump] * len(positions)
                chains.append(facts)
        size = self.set_size
        sets = [SetFacts(f"{record.table} {name}", None if live is None else size(record.table, name))
                for name in sorted(record.sets.values())]
        return chains, sets, []

    # ---- --routes: chains ``route`` and ``route_nat`` of the tunnel's own table, in the plan -----

    @staticmethod
    def silent(state: statefile.State) -> list[str]:
        return []

    @staticmethod
    def route_variant() -> str:
        return ""

    @staticmethod
    def route_chains(interface: str, version: int) -> dict[str, str]:
        return {}

    def apply_route_marks(self, interface: str, family: int, variant: str, mark: int, mask: int,
                          endpoints: Sequence[tuple[str, int]], wg_fwmark: int | None) -> None:
        return None

    def remove_route_marks(self, interface: str, family: int, variant: str,
                           chains: dict[str, str]) -> list[str]:
        return []  # removed with the table

    def missing_route_marks(self, family: int, variant: str, chains: dict[str, str]) -> list[str]:
        return []  # status reads the table on its own

    # ---- per-app exclusion: chains of the tunnel's own table, in the plan's one transaction ------

    def exclusion_payloads(self, record: ExclusionRecord) -> dict[str, str]:
        return {}

    def apply_exclusion(self, record: ExclusionRecord, state: statefile.State) -> None:
        return None

    def remove_exclusion(self, interface: str, state: statefile.State | None) -> list[str]:
        return []  # the table goes whole

    def exclusion_present(self, state: statefile.State, record: ExclusionRecord,
                          ipv6: bool) -> dict[str, bool]:
        live = self.listing(nft_table_name(state.interface)) or {}
        return {f"ipv{f}": all(chain in live for chain in EXCLUSION_CHAINS)
                for f in record.families if f == 4 or ipv6}
