"""The nft backend's rule text: a policy rendered into the table's one transaction (pure).

Kept apart from ``nft`` (apply, remove, inspect) so that wgkill-down and
wgkill-status, which only remove and read tables, never define these records.

Endpoint-name lookups while blocked: nftables has no string match, but a
query carries its one question at a fixed offset (after the 8-byte UDP header
and the 12-byte DNS header), so the wire-format name, terminating zero
included, is compared with raw payload expressions of at most 128 bits each,
letters masked with ``~0x20`` (case-insensitive). A name that merely contains
the endpoint's (a subdomain, a longer label, a continuation) differs in a
length byte or the terminating zero and is refused.
"""

from __future__ import annotations

from ..names import nft_interface_pattern, nft_table_name
from ..recordclass import dataclass, field, replace
from .nft_text import rule_counts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from ..policy import FamilyPolicy, KillSwitchPolicy
    from ..prefixes import PrefixList

QUESTION_OFFSET = 20  # bytes from the UDP header to the question's name
MAX_NAME = 255  # a wire-format name's longest length
CHUNK = 16  # bytes per raw payload comparison (128 bits, one register)
_IP = {4: "ip", 6: "ip6"}
_NFPROTO = {4: "ipv4", 6: "ipv6"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_REJECT = {4: "icmp port-unreachable", 6: "icmpv6 port-unreachable"}


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
    """What the table's template sees: the whole transaction's decisions, no netfilter word."""

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
    """The rendered transaction and what it holds (rules per chain, sets and their sizes): recorded
    in the state, so wgkill-down and status never render again."""

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
    kept = list(filter(str.strip, rendered.splitlines()))  # the lines that are not blank
    payload = "\n".join(kept) + "\n" if kept else ""
    return NftPlan(table, payload, rule_counts(payload, table),
                   {f.p.family: f.set for f in families if f.set},
                   {f.p.family: len(f.elements) for f in families if f.set})
