"""What wakes wgkill-guard: the kernel's change notifications, read only as "something changed".

Three sources, each one file descriptor for ``select``: rtnetlink's multicast
groups (links, routes and policy rules of both families), nfnetlink's
``NFNLGRP_NFTABLES`` group (every nftables change, iptables-nft's included:
what ``nft monitor`` listens to, without the child process) and inotify on the
files whose changes matter (the state directory, a held resolv.conf). Nothing
is parsed beyond "this concerns us": the guard's check reads everything anew.
What sends no event (iptables-legacy, ipset, systemd-resolved's settings) is the
guard's poll, only while such a thing is in use (``guard.unheard``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from .recordclass import dataclass, field

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NFNLGRP_NFTABLES = 7
# RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE | RTMGRP_IPV6_ROUTE | RTMGRP_IPV6_RULE
RTNL_GROUPS = 0x1 | 0x40 | 0x80 | 0x400 | 0x40000
NFT_GROUPS = 1 << (NFNLGRP_NFTABLES - 1)

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW = 0x400, 0x800, 0x4000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000  # O_NONBLOCK, O_CLOEXEC
FILE_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF  # the file itself
DIR_MASK = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE  # a name in it replaced or removed
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


def netlink(protocol: int, groups: int) -> socket.socket | None:
    """A non-blocking netlink socket joined to ``groups`` (a bitmask), or None where the kernel
    refuses (no nf_tables, no permission): the guard then polls instead."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             protocol)
    except OSError:
        return None
    try:
        sock.bind((0, groups))
    except OSError:
        sock.close()
        return None
    return sock


def drain(sock: socket.socket) -> bool:
    """Read every message waiting on ``sock``; False when it is closed for good."""
    while True:
        try:
            if not sock.recv(65536):
                return False
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:  # ENOBUFS: messages were lost; the check reads all anyway
                return False


Interest = Callable[[str], bool]  # which names in a watched directory concern us


@dataclass
class Inotify:
    """An inotify instance (through libc: Python has no binding) and what its watches are for."""

    fd: int
    _libc: ctypes.CDLL
    _watches: dict[int, Interest | None] = field(default_factory=dict)  # wd -> names (None: any event)
    _paths: dict[tuple[str, int], int] = field(default_factory=dict)  # (path, mask) -> wd

    @classmethod
    def open(cls) -> Inotify | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        except (OSError, AttributeError):
            return None
        return cls(fd, libc) if fd >= 0 else None

    def arm(self, wanted: dict[tuple[str, int], Interest | None]) -> None:
        """Watch exactly ``wanted`` ((path, mask) -> interest) from now on: each added again (a
        replaced file is a new inode), those no longer wanted removed. A missing path is skipped:
        its directory's watch says when it comes."""
        old, self._watches, self._paths = self._paths, {}, {}
        for (path, mask), interest in wanted.items():
            wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
            if wd >= 0:
                self._paths[(path, mask)] = wd
                self._watches[wd] = interest
        for wd in set(old.values()) - set(self._paths.values()):
            self._libc.inotify_rm_watch(self.fd, wd)

    def changed(self) -> bool:
        """Read the events waiting; whether any concerns a watched path."""
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        found, offset = False, 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            start = offset + _EVENT.size
            name = data[start:start + length].rstrip(b"\0").decode(errors="replace")
            offset = start + length
            found = found or concerns(self._watches, wd, mask, name)
        return found

    def close(self) -> None:
        os.close(self.fd)


def concerns(watches: dict[int, Interest | None], wd: int, mask: int, name: str) -> bool:
    """Whether one inotify event is about what ``watches`` are for (an overflow always is)."""
    if mask & IN_Q_OVERFLOW:
        return True
    if wd not in watches:
        return False  # a watch removed since (IN_IGNORED)
    interest = watches[wd]
    return interest is None or interest(name)


def held_file(path: str) -> dict[tuple[str, int], Interest | None]:
    """The watches for a file the guard holds (resolv.conf): the file itself (followed through a
    symlink: written in place, or through a bind mount) and its name in its directory (replaced)."""
    where = Path(path)
    return {(path, FILE_MASK): None, (str(where.parent), DIR_MASK): lambda name: name == where.name}


def state_files(directory: Path) -> dict[tuple[str, int], Interest | None]:
    """The watch for the states: one written (renamed into place, as every writer does), or
    removed. Not each close after writing: the lock file (``.lock``) is one at every check."""
    return {(str(directory), DIR_MASK): lambda name: name.endswith(".json")}
