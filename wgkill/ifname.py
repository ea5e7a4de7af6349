"""Interface names, validated exactly as wg-quick does, and the names we derive.

wg-quick accepts ``^[a-zA-Z0-9_=+.-]{1,15}$``; the kernel additionally refuses
``.`` and ``..``. Every name that reaches a command line or a rule passes here
first, so a hostile ``%i`` can never become an option or a second command.
"""

import re

from .errors import UsageError

_VALID = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}")
CHAIN_PREFIX = "wgkill-"


def validate_interface(name: str) -> str:
    """Return ``name`` unchanged if wg-quick (and the kernel) would accept it."""
    if not _VALID.fullmatch(name) or name in {".", ".."}:
        shown = name if len(name) <= 40 and name.isprintable() else repr(name[:40])
        raise UsageError(
            f"invalid interface name {shown!r}: "
            "expected 1-15 characters of [a-zA-Z0-9_=+.-], as wg-quick requires"
        )
    return name


def chain_name(interface: str) -> str:
    """The one chain wgkill owns for ``interface`` (at most 22 of iptables' 28 characters)."""
    return CHAIN_PREFIX + interface


def jump_comment(interface: str) -> str:
    """The tag on our OUTPUT jump: a second way to find what we own if the state is lost."""
    return f"wgkill:{interface}"
