"""Hooks and wgkill-guard agree on every change: a unix socket in the state directory.

The guard owns its copies of the blocks (``wgkill.owned``): no other process
can change them, so ``wgkill-up``, ``wgkill-down`` and ``wgkill-release`` ask
it, once their own change is done, to make its copies follow the states, and
wait for its answer, bounded by ``ANSWER_TIMEOUT``. Without a guard (no socket,
or a killed guard's stale one) they go on at once. Kept apart from ``owned`` so
that the hooks import only this.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import state as statefile
from .names import GUARD_SOCKET

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    import socket

ANSWER_TIMEOUT = 2.0  # seconds a hook waits for the guard's answer


def socket_path() -> Path:
    return statefile.state_dir() / GUARD_SOCKET


def listen() -> socket.socket:
    """The guard's end: a stream socket in the state directory, for root only."""
    import socket

    path = socket_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(16)
    server.setblocking(False)
    return server


def accept_all(server: socket.socket) -> list[socket.socket]:
    """Every hook waiting on ``server`` now (their question is always the same: follow)."""
    waiting: list[socket.socket] = []
    while True:
        try:
            conn, _ = server.accept()
        except (BlockingIOError, InterruptedError):
            return waiting
        conn.settimeout(0.5)
        waiting.append(conn)


def answer(conns: list[socket.socket]) -> None:
    for conn in conns:
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass
        conn.close()


def follow(timeout: float = ANSWER_TIMEOUT) -> list[str]:
    """Ask a running guard to make its copies follow the states, and wait for it (each hook does,
    after its own change): the warning when it does not answer in time; none when it answered or
    no guard runs."""
    said = _ask(timeout)
    return [said] if said else []


def _ask(timeout: float) -> str | None:
    path = socket_path()
    if not path.exists():
        return None  # no guard (the hooks' common case: nothing more imported)
    import socket

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
        conn.sendall(b"follow\n")
        reply = conn.recv(16)
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # no guard listening (a killed one leaves its socket file)
    except OSError as exc:
        return f"wgkill-guard did not answer ({exc}): its copy of the block follows when it does"
    finally:
        conn.close()
    if reply != b"ok\n":
        return "wgkill-guard closed without answering: its copy of the block follows when it does"
    return None
