"""What an idle wgkill-guard costs: its wake-ups and CPU while nothing changes.

In a lab of its own, the guard running (its default ``--interval 1``) beside
engaged blocks that nobody touches, for ``--seconds`` (default 60): one nft
tunnel alone (every source sends events: the guard should sleep), then the
same with an iptables-legacy tunnel beside it (legacy rules send no event: the
1 s poll is the price). Measured from /proc over the guard's whole process tree
(an ``nft monitor`` child included where there is one): CPU (utime + stime,
and the children it ran and reaped: iptables-save, ipset),
wake-ups (context switches: each return from its wait is one), and the checks
it logged (``--verbose``). Then one ``nft flush ruleset``: how many checks that
one change gave (a burst of events is debounced into one check, and the
re-application's own events into one more).

    unshare --net .venv/bin/python bench/guard_idle.py [--seconds N]
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wgkill_lab.guarding import Guard, act
from wgkill_lab.netns import Lab

TICK = os.sysconf("SC_CLK_TCK")
HOOKS = "PostUp = wgkill-up %i --backend {backend}\nPreDown = wgkill-down %i\n"


@dataclass
class Usage:
    cpu: float  # seconds: every process in the tree, and the children it reaped (iptables-save, ipset)
    switches: int  # voluntary + involuntary context switches of every thread in the tree


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def usage(pid: int) -> Usage:
    cpu, switches = 0.0, 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += sum(int(value) for value in fields[11:15]) / TICK  # utime, stime, cutime, cstime (14-17)
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                status = (task / "status").read_text()
            except OSError:
                continue
            switches += sum(int(line.split()[1]) for line in status.splitlines()
                            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
    return Usage(cpu, switches)


@dataclass
class Row:
    what: str
    seconds: float
    cpu: float
    wakeups: int
    checks: int
    processes: int

    def line(self) -> str:
        return (f"| {self.what} | {self.processes} | {self.wakeups} ({self.wakeups / self.seconds:.1f}/s) | "
                f"{self.checks} | {self.cpu * 1000:.0f} ms ({self.cpu / self.seconds * 100:.2f} %) |")


def idle(lab: Lab, guard: Guard, what: str, seconds: float) -> Row:
    time.sleep(2)  # past start-up and the events of bringing the tunnels up
    pid = guard.proc.pid
    before, checks = usage(pid), guard.checks()
    time.sleep(seconds)
    after = usage(pid)
    return Row(what, seconds, after.cpu - before.cpu, after.switches - before.switches,
               guard.checks() - checks, len(_tree(pid)))


def burst(lab: Lab, guard: Guard) -> int:
    """Checks that one ``nft flush ruleset`` gave, the repair's own events included."""
    checks = guard.checks()
    act(lab, [["nft", "flush", "ruleset"]])
    guard.wait_repairs(1)
    time.sleep(2)
    return guard.checks() - checks


def measure(seconds: float) -> tuple[list[Row], int]:
    rows = []
    with Lab(backend="iptables") as lab:  # the machine's iptables: iptables-nft
        tunnel = lab.add_tunnel()
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        guard = Guard(lab, 1.0)
        rows.append(idle(lab, guard, "one iptables-nft tunnel", seconds))
        guard.stop()
    with Lab(legacy=True, backend="iptables") as lab:
        nft = lab.add_tunnel(hooks=HOOKS.format(backend="nft"))
        lab.wg_quick("up", nft)
        lab.wait_handshake(nft)
        guard = Guard(lab, 1.0)
        rows.append(idle(lab, guard, "one nft tunnel", seconds))
        flushed = burst(lab, guard)
        legacy = lab.add_tunnel(hooks=HOOKS.format(backend="iptables"), allowed_ips="192.0.2.145/32")
        lab.wg_quick("up", legacy)
        lab.wait_handshake(legacy)
        rows.append(idle(lab, guard, "one nft tunnel + one iptables-legacy tunnel", seconds))
        guard.stop()
    return rows, flushed


def section(rows: list[Row], flushed: int) -> list[str]:
    seconds = rows[0].seconds
    return [f"The guard idle for {seconds:.0f} s (default `--interval 1`) beside engaged blocks nobody "
            "touches; its whole process tree, from /proc.", "",
            "| blocks | processes | wake-ups (context switches) | checks | CPU |",
            "|---|---|---|---|---|", *[row.line() for row in rows], "",
            f"One `nft flush ruleset` (the nft tunnel's table gone, put back): {flushed} check(s)."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/guard_idle.py")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    rows, flushed = measure(args.seconds)
    print("\n".join(["## The guard idle", "", *section(rows, flushed)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
