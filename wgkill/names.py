"""Interface names, validated exactly as wg-quick does, and every name wgkill derives from one.

wg-quick accepts ``^[a-zA-Z0-9_=+.-]{1,15}$``; the kernel additionally refuses
``.`` and ``..``. Every name that reaches a command line or a rule passes here
first, so a hostile ``%i`` can never become an option or a second command.

What wgkill owns is found by name as well as by the state (the state may be
lost), so each derived name (chains, jump comments, jump specs, ipset sets)
is built here and nowhere else.
"""

import os
import re

from .errors import UsageError

_VALID = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}")
CHAIN_PREFIX = "wgkill-"
FORWARD_SUFFIX = "-fwd"
SET_FAMILIES = (4, 6)
TEMP_SET_SUFFIX = "-t"


def validate_interface(name: str) -> str:
    """Return ``name`` unchanged if wg-quick (and the kernel) would accept it."""
    if not _VALID.fullmatch(name) or name in {".", ".."}:
        shown = name if len(name) <= 40 and name.isprintable() else repr(name[:40])
        raise UsageError(
            f"invalid interface name {shown!r}: "
            "expected 1-15 characters of [a-zA-Z0-9_=+.-], as wg-quick requires"
        )
    return name


def validate_interface_pattern(pattern: str) -> str:
    """An interface name, or a prefix ending in ``+`` (``br-+``, ``veth+``), as iptables writes
    a wildcard; returned unchanged. A bare ``+`` (every interface) is refused: it opens the uplink."""
    base = pattern[:-1] if pattern.endswith("+") else pattern
    if not re.fullmatch(r"[a-zA-Z0-9_=.-]{1,15}", base) or base in {".", ".."}:
        shown = pattern if len(pattern) <= 40 and pattern.isprintable() else repr(pattern[:40])
        raise UsageError(
            f"invalid interface {shown!r}: expected an interface name (1-15 characters of "
            "[a-zA-Z0-9_=.-]), optionally ending in + for every name that starts with it"
        )
    return pattern


def pattern_matches(pattern: str, interface: str) -> bool:
    """Whether ``--allow-iface`` ``pattern`` matches ``interface``, as iptables matches ``-o``."""
    return interface.startswith(pattern[:-1]) if pattern.endswith("+") else interface == pattern


def nft_interface_pattern(pattern: str) -> str:
    """An ``--allow-iface`` pattern as nftables matches it: ``br-+`` becomes ``br-*``."""
    pattern = validate_interface_pattern(pattern)
    return pattern[:-1] + "*" if pattern.endswith("+") else pattern


# ---- the kill switch (filter table) -------------------------------------------------------

def chain_name(interface: str) -> str:
    """The one chain wgkill owns for ``interface`` (at most 22 of iptables' 28 characters)."""
    return CHAIN_PREFIX + interface


def forward_chain_name(interface: str) -> str:
    """The gateway's chain for routed traffic (FORWARD), beside ``chain_name``."""
    return chain_name(interface) + FORWARD_SUFFIX


def jump_comment(interface: str) -> str:
    """The tag on our OUTPUT jump: a second way to find what we own if the state is lost."""
    return f"wgkill:{interface}"


def jump_spec(chain: str, comment: str) -> str:
    """The rule spec of a jump to one of our chains, exactly as iptables-save prints it."""
    return f'-m comment --comment "{comment}" -j {chain}'


def chain_interface(chain: str) -> str | None:
    """The interface a kill-switch chain (``wgkill-IFACE`` or its ``-fwd``) belongs to; None if not ours."""
    if not chain.startswith(CHAIN_PREFIX):
        return None
    return chain[len(CHAIN_PREFIX):].removesuffix(FORWARD_SUFFIX)


# ---- split tunnels: ipset sets and the routes' mangle/nat chains ---------------------------

def set_name(interface: str, family: int) -> str:
    """``wgkill-IFACE-4`` or ``wgkill-IFACE-6`` (at most 24 of ipset's 31 characters)."""
    if family not in SET_FAMILIES:
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    return f"{CHAIN_PREFIX}{validate_interface(interface)}-{family}"


def temp_set_name(name: str) -> str:
    """The temporary that ``ipset restore`` fills before swapping it with set ``name``."""
    return name + TEMP_SET_SUFFIX


def owns_set(interface: str, name: str) -> bool:
    """Whether set ``name`` is one of ``interface``'s (what release may destroy)."""
    return name.startswith(chain_name(interface) + "-")


def route_chain_names(interface: str, guard: bool = True) -> dict[str, str]:
    """The routes' chains (<= 26 of 28 chars): mangle ``wgkill-IFACE-rt`` (marks), nat
    ``wgkill-IFACE-nat`` (source address) and, keyed ``guard``, mangle POSTROUTING's
    ``wgkill-IFACE-out`` (drops a marked packet leaving by another interface; records of
    version 1, ``guard=False``, have none)."""
    names = {"mangle": f"{CHAIN_PREFIX}{interface}-rt", "nat": f"{CHAIN_PREFIX}{interface}-nat"}
    if guard:
        names["guard"] = f"{CHAIN_PREFIX}{interface}-out"
    return names


def route_jump_comment(interface: str) -> str:
    """The tag on the routes' mangle and nat jumps, apart from the kill switch's."""
    return f"wgkill:{interface}:routes"


# ---- per-app exclusion (wgkill-exclude): the cgroup and the mangle/nat chains -------------

EXCLUDE_CGROUP = "wgkill-exclude"
EXCLUDE_CGROUP_ENV = "WGKILL_EXCLUDE_CGROUP"
_CGROUP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def exclude_cgroup() -> str:
    """The exclusion cgroup, directly under the cgroup v2 root: ``wgkill-exclude``.

    ``$WGKILL_EXCLUDE_CGROUP`` names another one (cgroups are shared by every
    network namespace, so each test lab needs its own); one path component only.
    """
    name = os.environ.get(EXCLUDE_CGROUP_ENV) or EXCLUDE_CGROUP
    if not _CGROUP_NAME.fullmatch(name) or name in {".", ".."}:
        raise UsageError(f"{EXCLUDE_CGROUP_ENV}={name[:70]!r}: expected 1-64 characters of [A-Za-z0-9_.-]")
    return name


def exclude_chain_names(interface: str) -> dict[str, str]:
    """The exclusion's chains: mangle ``wgkill-IFACE-ex`` (OUTPUT: mark), ``wgkill-IFACE-exin``
    (PREROUTING: the mark back on replies) and nat ``wgkill-IFACE-exnat`` (<= 28 chars)."""
    base = CHAIN_PREFIX + validate_interface(interface)
    return {"mark": f"{base}-ex", "restore": f"{base}-exin", "nat": f"{base}-exnat"}


def exclude_jump_comment(interface: str) -> str:
    """The tag on the exclusion's jumps, apart from the kill switch's and the routes'."""
    return f"wgkill:{interface}:exclude"


# ---- the nftables backend -------------------------------------------------------------------

_NFT_ESCAPES = {"_": "__", "=": "_e", "+": "_p"}


def nft_table_name(interface: str) -> str:
    """``wgkill-IFACE``, the inet table wgkill owns for ``interface``.

    nft 1.0.6 takes no quoted table names and refuses ``=`` and ``+``, which
    interface names may hold: those (and ``_``, so the mapping stays
    one-to-one) are escaped as ``_e``, ``_p`` and ``__``.
    """
    escaped = "".join(_NFT_ESCAPES.get(c, c) for c in validate_interface(interface))
    return CHAIN_PREFIX + escaped


# ---- the guard's owned copies (wgkill-guard, ``wgkill.owned``) -------------------------------

GUARD_TABLE_PREFIX = "wgkill_guard-"  # not "wgkill-": no interface's own table can ever have this name
GUARD_SOCKET = "guard.sock"  # in the state directory: the hooks ask the guard to follow a change
GUARD_RECORD = "guard.record"  # in the state directory: the guard's repairs, for wgkill-status (not *.json:
# those are tunnels' states)


def guard_table_name(interface: str) -> str:
    """``wgkill_guard-IFACE``: the guard's owned copy of ``interface``'s block (same escapes as
    ``nft_table_name``)."""
    return GUARD_TABLE_PREFIX + nft_table_name(interface)[len(CHAIN_PREFIX):]
