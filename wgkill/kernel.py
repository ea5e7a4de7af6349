"""What the running kernel grants this process: an IPv6 stack, and root's power over the firewall.

Asked in one place so that engaging, releasing, boot and status agree on
whether IPv6 rules are needed (``ipv6.disable=1`` removes the stack, and with
it ip6tables' tables) and refuse the same way when not run as root.
"""

import os

from .errors import PrerequisiteError

IPV6_PROC = "/proc/sys/net/ipv6"


def ipv6_available() -> bool:
    """Whether this kernel has an IPv6 stack at all (``ipv6.disable=1`` removes it)."""
    return os.path.isdir(IPV6_PROC)


def require_root() -> None:
    """PrerequisiteError unless running as root: changing the firewall needs it."""
    if os.geteuid() != 0:
        raise PrerequisiteError("must be run as root (it changes the firewall)")
