"""Prefix lists for split tunnels: parsed, checked and collapsed once, before any change.

Two sources: AllowedIPs values (split on commas and blanks, as wg-quick does)
and a file given with ``--allowed-ips-file`` (one prefix per line, ``#``
comments and blank lines allowed). Both end up as one ``PrefixList`` per
family, sorted and collapsed (duplicates, nested and adjacent prefixes merged,
as ``ipaddress.collapse_addresses`` would), which is what the kernel set and
the routes are built from.

Host bits set (``10.0.0.1/24``) are *normalised* to the network, because that
is what WireGuard does: ``wg set ... allowed-ips 10.0.0.1/24`` is accepted and
``wg show`` then lists ``10.0.0.0/24`` (the kernel and wireguard-go both mask
the address), and wg-quick builds its routes from that normalised list. A list
wg accepts must not be refused here; the count is kept in ``normalised`` so a
caller can warn. A bare address is a host prefix (/32 or /128), as in wg.

Anything else that is not an IPv4/IPv6 prefix refuses the whole list with a
ConfigError naming the first few offending lines and how many there are, so
nothing is applied from a half-valid list.

Speed matters (100,000 lines on a hook path): addresses are parsed with
``inet_pton`` into integers and collapsed with one sort and one pass; the
``ipaddress`` objects cost about 2.5 s for 100,000 lines, this about 0.2 s.
Everything here is pure (no system access) and may be called any number of times.
"""

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

SHOWN_ERRORS = 5
_BITS = {4: 32, 6: 128}
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_ENTRY = re.compile(r"([0-9A-Fa-f:.]+)(?:/([0-9]{1,3}))?")


@dataclass(frozen=True)
class PrefixList:
    """Collapsed prefixes per family, as canonical CIDR strings, ascending by address.

    ``read`` counts the entries read (before collapsing), ``normalised`` those
    whose host bits were set and cleared.
    """

    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()
    read: int = 0
    normalised: int = 0

    def family(self, family: int) -> tuple[str, ...]:
        """The prefixes of ``family`` (4 or 6)."""
        if family not in _BITS:
            raise ValueError(f"family must be 4 or 6, not {family!r}")
        return self.v4 if family == 4 else self.v6

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6)

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


class _Collector:
    """Accumulates entries as (network int, prefix length) per family, and the errors."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.entries: dict[int, list[int]] = {4: [], 6: []}  # network << 8 | length: sorts fast
        self.errors: list[tuple[str, str, str]] = []
        self.read = 0
        self.normalised = 0

    def add_all(self, items: Iterable[tuple[int, str]], label: str, lines: bool = False) -> None:
        """Add (number, text) entries; ``label`` names the numbering ("line", "entry").
        With ``lines``, each text is a file line: a ``#`` comment is cut, blanks are skipped.

        One loop with everything in locals: this is the hot path for 100,000 lines.
        """
        fullmatch, pton, from_bytes = _ENTRY.fullmatch, socket.inet_pton, int.from_bytes
        af4, af6 = socket.AF_INET, socket.AF_INET6
        add4, add6, errors = self.entries[4].append, self.entries[6].append, self.errors.append
        read = normalised = 0
        for number, text in items:
            if lines:
                if "#" in text:
                    text = text.split("#", 1)[0]
                text = text.strip()
                if not text:
                    continue
            read += 1
            match = fullmatch(text)
            if match is None:
                why = "one prefix per line" if lines and (" " in text or "," in text) else (
                    "not an IPv4 or IPv6 prefix")
                errors((f"{label} {number}", text, why))
                continue
            address, length = match.groups()
            if ":" in address:
                family, bits, af, add = 6, 128, af6, add6
            else:
                family, bits, af, add = 4, 32, af4, add4
            try:
                value = from_bytes(pton(af, address), "big")
            except OSError:
                errors((f"{label} {number}", text, f"not an IPv{family} address"))
                continue
            plen = bits if length is None else int(length)
            if plen > bits:
                errors((f"{label} {number}", text, f"prefix length over {bits}"))
                continue
            shift = bits - plen
            network = value >> shift << shift
            if network != value:
                normalised += 1
            add(network << 8 | plen)
        self.read += read
        self.normalised += normalised

    def finish(self) -> PrefixList:
        if self.errors:
            shown = "; ".join(
                f"{where}: {_show(text)} ({why})" for where, text, why in self.errors[:SHOWN_ERRORS]
            )
            more = len(self.errors) - SHOWN_ERRORS
            raise ConfigError(
                f"{self.source}: {len(self.errors)} invalid "
                f"{'entry' if len(self.errors) == 1 else 'entries'}, nothing applied: {shown}"
                + (f"; and {more} more" if more > 0 else "")
            )
        return PrefixList(
            v4=_format_all(4, _collapse_packed(self.entries[4], 32)),
            v6=_format_all(6, _collapse_packed(self.entries[6], 128)),
            read=self.read,
            normalised=self.normalised,
        )


def _show(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _format_all(family: int, entries: list[tuple[int, int]]) -> tuple[str, ...]:
    ntop, af, size = socket.inet_ntop, _AF[family], _BITS[family] // 8
    return tuple(f"{ntop(af, network.to_bytes(size, 'big'))}/{plen}" for network, plen in entries)


def _collapse_packed(packed: list[int], bits: int) -> list[tuple[int, int]]:
    """Collapse one family's ``network << 8 | length`` integers (``bits`` 32 or 128; sorted in
    place: ints sort about twice as fast as tuples): drop duplicates and nested prefixes, merge
    sibling pairs into their parent, repeatedly.

    Two CIDR blocks are either nested or disjoint, so after sorting by (start,
    length) one pass with a stack suffices: an entry ending inside the last
    kept range is covered; otherwise it is pushed and merged with the top of
    the stack while the two are the halves of one block.
    """
    packed.sort()
    kept: list[tuple[int, int]] = []
    end = -1
    for key in packed:
        network, plen = key >> 8, key & 0xFF
        last = network + (1 << (bits - plen)) - 1
        if last <= end:
            continue
        end = last
        while kept and plen > 0:
            top, top_len = kept[-1]
            size = 1 << (bits - plen)
            if top_len != plen or top & size or top + size != network:
                break
            kept.pop()
            network, plen = top, plen - 1
        kept.append((network, plen))
    return kept


def parse_allowed_ips(values: str | Iterable[str], source: str = "AllowedIPs") -> PrefixList:
    """Parse AllowedIPs value(s): items split on commas and blanks, as wg-quick does."""
    collector = _Collector(source)
    items = [values] if isinstance(values, str) else values
    split = (item for value in items for item in value.replace(",", " ").split())
    collector.add_all(enumerate(split, start=1), "entry")
    return collector.finish()


def parse_lines(lines: Iterable[str], source: str = "<prefix list>") -> PrefixList:
    """Parse a prefix file's lines: one prefix per line, ``#`` starts a comment anywhere."""
    collector = _Collector(source)
    collector.add_all(enumerate(lines, start=1), "line", lines=True)
    return collector.finish()


def load_file(path: str | Path) -> PrefixList:
    """Read ``--allowed-ips-file PATH``; unreadable or invalid is a ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read prefix file {path}: {reason}") from exc
    return parse_lines(text.splitlines(), str(path))


def merge(*lists: PrefixList) -> PrefixList:
    """One list from several (AllowedIPs of every peer plus a file), collapsed again."""
    collector = _Collector("<merged>")
    collector.add_all(
        ((0, prefix) for one in lists for family in (4, 6) for prefix in one.family(family)), "entry"
    )
    merged = collector.finish()
    return PrefixList(
        merged.v4,
        merged.v6,
        read=sum(one.read for one in lists),
        normalised=sum(one.normalised for one in lists),
    )


def _intervals(family: int, prefixes: Iterable[str]) -> list[tuple[int, int]]:
    """(first, last) address of each ``a.b.c.d/n`` of ``family``, in the order given."""
    pton, from_bytes, af, bits = socket.inet_pton, int.from_bytes, _AF[family], _BITS[family]
    out = []
    for prefix in prefixes:
        address, _, length = prefix.partition("/")
        first = from_bytes(pton(af, address), "big")
        out.append((first, first + (1 << (bits - int(length))) - 1))
    return out


def uncovered(listed: PrefixList, cover: PrefixList) -> int:
    """How many prefixes of ``listed`` are not wholly inside one prefix of ``cover``.

    Both are collapsed (disjoint, ascending), so one binary search per listed
    prefix finds the only prefix of ``cover`` that could hold it: 100,000
    prefixes take about 0.1 s.
    """
    from bisect import bisect_right

    missing = 0
    for family in (4, 6):
        spans = _intervals(family, cover.family(family))
        starts = [first for first, _ in spans]
        for first, last in _intervals(family, listed.family(family)):
            at = bisect_right(starts, first) - 1
            if at < 0 or spans[at][1] < last:
                missing += 1
    return missing
