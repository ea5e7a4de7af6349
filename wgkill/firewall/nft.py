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

Endpoint-name lookups while blocked: nftables has no string match, but a
query carries its one question at a fixed offset (after the 8-byte UDP header
and the 12-byte DNS header), so the wire-format name, terminating zero
included, is compared with raw payload expressions of at most 128 bits each,
letters masked with ``~0x20`` (case-insensitive). A name that merely contains
the endpoint's (a subdomain, a longer label, a continuation) differs in a
length byte or the terminating zero and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import FirewallError
from ..names import nft_interface_pattern, nft_table_name
from ..runner import CommandError, run, which
from . import Removed
from .base import Backend, Inspected, Plan
from .libnft import NftError, run_text

if TYPE_CHECKING:
    from .. import state as statefile
    from ..exclusion import ExclusionRecord
    from ..policy import FamilyPolicy, KillSwitchPolicy
    from ..prefixes import PrefixList

EXCLUSION_CHAINS = ("exclude_mark", "exclude_restore", "exclude_nat")  # templates/nft/table.nft.j2


QUESTION_OFFSET = 20  # bytes from the UDP header to the question's name
MAX_NAME = 255  # a wire-format name's longest length
CHUNK = 16  # bytes per raw payload comparison (128 bits, one register)
_IP = {4: "ip", 6: "ip6"}
_NFPROTO = {4: "ipv4", 6: "ipv6"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_REJECT = {4: "icmp port-unreachable", 6: "icmpv6 port-unreachable"}
_CHAIN_HEAD = re.compile(r"^\s*chain (\S+) \{$")
_TABLE_HEAD = re.compile(r"^\s*table inet (\S+) \{$")
_FAMILY_JUMP = re.compile(r"meta nfproto ipv[46] jump (?:forward_)?ipv[46]")


def _letter(byte: int) -> bool:
    return 0x41 <= (byte & 0xDF) <= 0x5A


def wire_match(wire: bytes, at: int = 0) -> str:
    """Raw payload comparisons that hold when ``wire`` sits at byte ``at`` of the question,
    letters compared case-insensitively."""
    parts = []
    for start in range(0, len(wire), CHUNK):
        chunk = wire[start:start + CHUNK]
        mask = bytes(0xDF if _letter(b) else 0xFF for b in chunk)
        value = bytes(b & m for b, m in zip(chunk, mask, strict=True))
        bits = (QUESTION_OFFSET + at + start) * 8
        expr = f"@th,{bits},{len(chunk) * 8}"
        if any(m != 0xFF for m in mask):
            expr += f" & 0x{mask.hex()}"
        parts.append(f"{expr} == 0x{value.hex()}")
    return " ".join(parts)


def suffix_matches(wire: bytes) -> list[str]:
    """``wire`` (a private domain) ending the question's name at every offset a name allows:
    the domain and all its subdomains. A false match refuses a query, never lets one out."""
    return [wire_match(wire, at) for at in range(MAX_NAME - len(wire) + 1)]


def _mark_match(route_mark: str | None) -> str | None:
    """``0xMARK/0xMASK`` (a --routes or --allow-mark mark) as an nft comparison."""
    if not route_mark:
        return None
    mark, _, mask = route_mark.partition("/")
    return f"meta mark & 0x{int(mask, 16):08x} == 0x{int(mark, 16):08x}"


@dataclass(frozen=True)
class NftFamily:
    """What the templates need for one family, beyond its FamilyPolicy."""

    p: FamilyPolicy
    ip: str
    nfproto: str
    addr_type: str
    reject: str
    chain: str
    forward_chain: str
    set: str | None
    elements: tuple[str, ...]  # collapsed (wgkill.prefixes): no overlaps, so no auto-merge needed
    lookups: tuple[str, ...]
    route_mark: str | None
    allow_interfaces: tuple[str, ...] = ()  # --allow-iface as nft matches it: br-+ -> br-*
    allow_marks: tuple[str, ...] = ()  # --allow-mark as nft comparisons


@dataclass(frozen=True)
class NftRoute:
    """--routes: the mark (and its mask) the route chain sets, and the comparison that finds it."""

    interface: str
    fwmark: int | None
    mark: str
    keep: str  # the mark bits outside the mask, kept as they are
    match: str


@dataclass(frozen=True)
class NftExclusion:
    """--allow-exclude: the cgroup whose sockets get ``mark``, and the tunnel they go around."""

    cgroup: str
    mark: str
    interface: str


def _exclusion(policy: KillSwitchPolicy) -> NftExclusion | None:
    found = next((fp for fp in policy.families if fp.exclude_cgroup and fp.fwmark), None)
    if found is None or found.exclude_cgroup is None or found.fwmark is None:
        return None
    return NftExclusion(found.exclude_cgroup, f"0x{found.fwmark:08x}", policy.interface)


@dataclass(frozen=True)
class NftTable:
    table: str
    families: tuple[NftFamily, ...]
    private_names: tuple[str, ...]
    forward: bool
    route: NftRoute | None = None
    exclude: NftExclusion | None = None


def _route(policy: KillSwitchPolicy) -> NftRoute | None:
    marked = next((fp.route_mark for fp in policy.families if fp.route_mark), None)
    if marked is None:
        return None
    mark, mask = (int(x, 16) for x in marked.split("/"))
    return NftRoute(policy.interface, policy.fwmark, f"0x{mark:08x}", f"0x{~mask & 0xFFFFFFFF:08x}",
                    _mark_match(marked) or "")


@dataclass
class NftPlan:
    table: str
    payload: str
    rules: dict[str, int] = field(default_factory=dict)
    sets: dict[int, str] = field(default_factory=dict)
    entries: dict[int, int] = field(default_factory=dict)  # family -> elements rendered into its set


def _family(fp: FamilyPolicy, split: PrefixList | None) -> NftFamily:
    elements = tuple(split.family(fp.family)) if split is not None and fp.split_set else ()
    return NftFamily(
        p=fp, ip=_IP[fp.family], nfproto=_NFPROTO[fp.family], addr_type=_ADDR_TYPE[fp.family],
        reject=_REJECT[fp.family], chain=_NFPROTO[fp.family], forward_chain=f"forward_{_NFPROTO[fp.family]}",
        set=f"dst{fp.family}" if fp.split_set else None, elements=elements,
        lookups=tuple(wire_match(bytes.fromhex(q)) for q in fp.endpoint_lookups),
        route_mark=_mark_match(fp.route_mark),
        allow_interfaces=tuple(nft_interface_pattern(p) for p in fp.allow_interfaces),
        allow_marks=tuple(m for m in map(_mark_match, fp.allow_marks) if m),
    )


def parse_listing(text: str) -> dict[str, dict[str, list[str]]]:
    """``nft list`` output (or our own payload): table -> chain -> rule lines.

    The one reader of the nft text format: a chain's rules are its lines other
    than the ``type ... hook ...;`` declaration."""
    tables: dict[str, dict[str, list[str]]] = {}
    table = chain = None
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        head = _TABLE_HEAD.match(line)
        if head and depth == 0:
            table, depth = head.group(1), 1
            tables[table] = {}
            continue
        if table is None:
            continue
        found = _CHAIN_HEAD.match(line)
        if found and depth == 1:
            chain, depth = found.group(1), 2
            tables[table][chain] = []
            continue
        if stripped.endswith("{"):
            depth += 1
            continue
        if stripped == "}":
            depth -= 1
            if depth == 1:
                chain = None
            elif depth == 0:
                table = None
            continue
        if chain is not None and depth == 2 and not stripped.startswith("type "):
            tables[table][chain].append(stripped)
    return tables


def rule_counts(payload: str, table: str) -> dict[str, int]:
    return {chain: len(rules) for chain, rules in parse_listing(payload).get(table, {}).items()}


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
        """The table's one transaction for ``policy`` (pure: no binary, no kernel)."""
        from ..templating import render

        table = nft_table_name(policy.interface)
        families = tuple(_family(fp, split) for fp in policy.families)
        private = tuple(dict.fromkeys(
            m for fp in policy.families if fp.dns_lock for q in fp.dns_private_names
            for m in suffix_matches(bytes.fromhex(q))
        ))
        context = NftTable(table, families, private, any(fp.forward_chain for fp in policy.families),
                           _route(policy))
        context = replace(context, exclude=_exclusion(policy))
        rendered = render("nft/table.nft.j2", t=context)
        payload = "".join(line + "\n" for line in rendered.splitlines() if line.strip())
        return NftPlan(table, payload, rule_counts(payload, table),
                       {f.p.family: f.set for f in families if f.set},
                       {f.p.family: len(f.elements) for f in families if f.set})

    def plan(self, policy: KillSwitchPolicy, split: PrefixList | None, *, cache: bool = True) -> Plan:
        from .. import rendercache

        key = rendercache.cache_key(("nft", policy))
        cached = rendercache.load(policy.interface, key)
        if cached is not None:
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
        """Our table's chains and their rules as nft prints them; None if the table is gone."""
        if table not in self.tables():
            return None
        try:
            text = run_text(f"list table inet {table}\n")
        except NftError as exc:
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
                name = _NFPROTO[family] if base == "output" else f"forward_{_NFPROTO[family]}"
                if name not in record.rules or (family == 6 and not ipv6):
                    continue
                jump = f"meta nfproto {_NFPROTO[family]} jump {name}"
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
