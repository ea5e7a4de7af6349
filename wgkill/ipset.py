"""Kernel sets (ipset ``hash:net``) holding a split tunnel's prefixes, one per family.

One set per interface and family, ``wgkill-IFACE-4`` / ``wgkill-IFACE-6``,
matched by ``iptables -m set`` in the kill switch and in the routing marks: the
per-packet cost does not grow with the list (a hash probe per distinct prefix
length), and iptables-save stays one line long whatever the list holds.

``sync`` replaces a set's contents atomically: one ``ipset restore`` builds a
temporary set, fills it, creates the live one if absent, ``swap``s the two,
and destroys the temporary, which now holds the old contents. Rules referring
to the live name see the old list, then the new one, never a half-filled set;
a failure before the swap leaves the live set as it was (the temporary is
removed). 100,000 entries take about 0.2-0.3 s
(``ipset restore``); pyroute2's ipset sends one netlink request per entry and
took 3-5 s for 10,000 (bench/split_scale.py) and 49 s for 100,000.

``sync`` may be called any number of times (each call swaps in a fresh set);
``destroy`` may be called when the set is already gone. A set still referenced
by a rule cannot be destroyed: remove the rules first.
"""

import re
import time
from operator import methodcaller

from .errors import FirewallError, PrerequisiteError
from .names import CHAIN_PREFIX, temp_set_name
from .runner import CommandError, find, run

IPSET = "ipset"
FAMILIES = {4: "inet", 6: "inet6"}
MAX_NAME = 31  # IPSET_MAXNAMELEN - 1
MIN_HASHSIZE = 1024
MIN_MAXELEM = 65536
_HALVES = {4: ("0.0.0.0/1", "128.0.0.0/1"), 6: ("::/1", "8000::/1")}
_IN_USE = "in use by a kernel component"
_ENTRIES = re.compile(r"^Number of entries: (\d+)$", re.MULTILINE)


def _check_name(name: str) -> None:
    # Names reach an ipset restore payload: one token, ours, short enough for the temporary too.
    if not name.startswith(CHAIN_PREFIX) or len(temp_set_name(name)) > MAX_NAME or not re.fullmatch(
        r"[a-zA-Z0-9_=+.-]+", name
    ):
        raise ValueError(f"not a wgkill set name: {name!r}")


def _pow2_at_least(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


def sizing(count: int) -> tuple[int, int]:
    """(hashsize, maxelem) for ``count`` entries.

    hashsize: the next power of two of count/2, at least 1024, so the kernel
    never has to grow the table while 100,000 entries are added (measured:
    starting at 1024 costs ~0.33 s for 78k entries, at 65536 ~0.18 s).
    maxelem: twice the count, at least ipset's default 65536, so a later manual
    ``ipset add`` still fits; each sync builds a fresh set, so it never limits a sync.
    """
    return max(MIN_HASHSIZE, _pow2_at_least(count // 2)), max(MIN_MAXELEM, 2 * count)


def entries(family: int, prefixes: list[str] | tuple[str, ...]) -> list[str]:
    """The prefixes as ipset can hold them: a /0 becomes its two /1 halves (hash:net refuses /0)."""
    if not any(map(methodcaller("endswith", "/0"), prefixes)):  # C-level: 100,000 prefixes on a hook path
        return list(prefixes)
    out: list[str] = []
    for prefix in prefixes:
        if prefix.endswith("/0"):
            out.extend(_HALVES[family])
        else:
            out.append(prefix)
    return out


def restore_payload(name: str, family: int, prefixes: list[str] | tuple[str, ...], *,
                    live_exists: bool, temp_exists: bool = False) -> str:
    """The ``ipset restore`` input that makes ``name`` hold exactly ``prefixes``, atomically."""
    _check_name(name)
    members = entries(family, prefixes)
    hashsize, maxelem = sizing(len(members))
    temp = temp_set_name(name)
    spec = f"hash:net family {FAMILIES[family]} hashsize {hashsize} maxelem {maxelem}"
    lines = [f"destroy {temp}"] if temp_exists else []  # left by an interrupted run
    lines.append(f"create {temp} {spec}")
    if members:
        lines.append(f"add {temp} " + f"\nadd {temp} ".join(members))  # one join: no f-string per member
    if not live_exists:
        lines.append(f"create {name} {spec}")
    lines.extend([f"swap {temp} {name}", f"destroy {temp}", ""])
    return "\n".join(lines)


def _binary() -> str:
    """The ipset binary, resolved before any change (Debian package ``ipset``)."""
    path = find(IPSET)
    if path is None:
        raise PrerequisiteError("ipset not found on PATH: install the ipset package")
    return path


def names() -> set[str]:
    """Every set name in this network namespace."""
    try:
        return set(run([_binary(), "list", "-n"]).split())
    except CommandError as exc:
        raise FirewallError(f"cannot list ipsets: {exc}") from exc


def exists(name: str) -> bool:
    return name in names()


def sync(name: str, family: int, prefixes: list[str] | tuple[str, ...]) -> int:
    """Make set ``name`` (family 4 or 6) hold exactly ``prefixes``; returns the entry count.

    ``prefixes`` should be collapsed (``wgkill.prefixes``): duplicates make
    ``ipset restore`` fail, and nothing changes then.
    """
    present = names()
    payload = restore_payload(name, family, prefixes, live_exists=name in present,
                              temp_exists=temp_set_name(name) in present)
    try:
        run([_binary(), "restore"], stdin=payload, change=True)
    except CommandError as exc:
        _discard_temp(name)
        raise FirewallError(f"{name}: ipset restore failed, the live set is unchanged: {exc}") from exc
    return len(entries(family, prefixes))


def _discard_temp(name: str) -> None:
    temp = temp_set_name(name)
    try:
        if temp in names():
            run([_binary(), "destroy", temp], change=True)
    except (CommandError, FirewallError):
        pass  # best effort: the next sync destroys it first


def destroy(name: str, *, attempts: int = 10) -> bool:
    """Destroy set ``name`` (and a leftover temporary); False if it was already gone.

    With iptables-nft, older kernels release a deleted rule's set reference a
    moment after iptables-restore returns, so "in use" is retried briefly.
    """
    _check_name(name)
    present = names()
    if temp_set_name(name) in present:
        _discard_temp(name)
    if name not in present:
        return False
    for attempt in range(attempts):
        try:
            run([_binary(), "destroy", name], change=attempt == 0)
            return True
        except CommandError as exc:
            if _IN_USE not in exc.stderr or attempt == attempts - 1:
                raise FirewallError(f"cannot destroy ipset {name}: {exc}") from exc
            time.sleep(0.05)
    return True  # pragma: no cover - the loop always returns or raises


def members_count(name: str) -> int | None:
    """How many entries set ``name`` holds (from its header, not a 100,000-line listing);
    None if the set does not exist."""
    try:
        header = run([_binary(), "list", "-t", name])
    except CommandError as exc:
        if not exists(name):
            return None
        raise FirewallError(f"cannot read ipset {name}: {exc}") from exc
    match = _ENTRIES.search(header)
    if match is None:
        raise FirewallError(f"ipset {name}: no entry count in its header")
    return int(match.group(1))
