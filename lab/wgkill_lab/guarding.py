"""wgkill-guard in a lab: the guard as a background process, and a continuous sender.

Shared by tests/lab/test_guard.py (behaviour) and bench/guard_repair.py (timings).
"""

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from wgkill.names import GUARD_SOCKET

from .netns import WEB4, Lab, LabError, wait_until

REPAIRED = re.compile(r"repaired in (\d+) ms")
CHECKED = re.compile(r": check \d+ done \(")

# Debian 12's /etc/nftables.conf as the nftables package ships it: `systemctl reload nftables` runs it.
DEBIAN_NFTABLES_CONF = """#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter;
	}
	chain forward {
		type filter hook forward priority filter;
	}
	chain output {
		type filter hook output priority filter;
	}
}
"""


class Guard:
    """``wgkill-guard --verbose`` running in the client namespace; its log lines collected as they
    come: one per repair, and one per check of every block (what "nothing came back" waits for)."""

    def __init__(self, lab: Lab, interval: float = 0.2, *options: str,
                 where: Callable[..., list[str]] | None = None, env: dict[str, str] | None = None) -> None:
        """``where``: how to run it (default ``ip netns exec CLIENT``; a resolved harness's ``argv``
        runs it beside that resolved), with ``env``."""
        self.state_dir = Path((env or lab.env())["WGKILL_STATE_DIR"])
        guard = ["wgkill-guard", "--interval", str(interval), "--verbose", *options]
        argv = where(*guard) if where else ["ip", "netns", "exec", lab.client_ns, *guard]
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=env or lab.env())
        lab.adopt(self.proc)
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(15):
            raise LabError(f"wgkill-guard did not start: {self.lines}")

    def _read(self) -> None:
        if self.proc.stderr is None:
            return
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "watching" in line:
                self._ready.set()

    def repairs(self) -> list[str]:
        return [line for line in self.lines if ": repaired in " in line or "repair failed" in line]

    def wait_repairs(self, count: int, timeout: float = 10) -> list[str]:
        """The repair lines once there are ``count`` of them (TimedOut after ``timeout``)."""
        return wait_until(lambda: len(self.repairs()) >= count and self.repairs(), timeout,
                          f"{count} repair line(s) from wgkill-guard", interval=0.01)

    def checks(self) -> int:
        """How many times it has checked every recorded block so far."""
        return sum(1 for line in list(self.lines) if CHECKED.search(line))

    def ask(self, timeout: float = 10) -> None:
        """Ask it for a check, as the hooks do (its socket: answered once a check that began after
        the question is done). An idle guard sleeps until an event; this is one."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(self.state_dir / GUARD_SOCKET))
            conn.sendall(b"follow\n")
            if conn.recv(16) != b"ok\n":
                raise LabError(f"wgkill-guard did not answer: {self.lines[-5:]}")

    def wait_checks(self, more: int = 2, timeout: float = 10) -> None:
        """Until it has checked every block ``more`` more times, each asked for (``ask``): a whole
        check began after this call (the one running now may have read the kernel before what the
        caller just did), and whatever the caller's change sent it has been drained by then."""
        wanted = self.checks() + more
        for _ in range(more):
            self.ask(timeout)
        wait_until(lambda: self.checks() >= wanted, timeout, f"{more} more checks by wgkill-guard",
                   interval=0.01)

    def holding(self) -> list[str]:
        """The interfaces whose block it said it holds in a table of its own, in order."""
        return [line.split(": ")[1] for line in self.lines if ": holding the block in table" in line]

    def kill(self) -> int:
        """SIGKILL: no clean-up of its own; its owned tables go with its socket."""
        self.proc.kill()
        return self.proc.wait(timeout=10)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=10)


def act(lab: Lab, steps: list[list[str]]) -> None:
    """Run each step in the client; a last argument starting with ``<`` is the step's stdin."""
    for step in steps:
        stdin = step[-1][1:] if step and step[-1].startswith("<") else None
        lab.client(*(step[:-1] if stdin is not None else step), stdin=stdin)


def repair_ms(line: str) -> int:
    """The milliseconds a repair line reports."""
    match = REPAIRED.search(line)
    if match is None:
        raise LabError(f"not a repair line: {line}")
    return int(match.group(1))


@contextmanager
def stream(lab: Lab, seconds: float, interval: float = 0.001, target: str = WEB4) -> Iterator[dict[str, int]]:
    """A UDP datagram to the web server (``target``) every ``interval`` while the body runs: the far
    side's counter then says how many got out. Yields a dict filled with sent/refused counts at the end."""
    argv = ["ip", "netns", "exec", lab.client_ns, sys.executable, "-I", "-m", "wgkill_lab.servers", "stream",
            target, "--duration", str(seconds), "--interval", str(interval)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=lab.env())
    lab.adopt(proc)
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        raise LabError("the stream sender did not start")
    result: dict[str, int] = {}
    yield result
    out, _ = proc.communicate(timeout=seconds + 30)
    result.update(json.loads(out))
