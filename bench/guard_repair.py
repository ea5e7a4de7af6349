"""How long an engaged block is gone when another tool removes it, with wgkill-guard running.

In a lab of its own: a full tunnel, dropped (so that without the block packets
would take the uplink), the guard running, and a UDP datagram to the web server
every millisecond. Each round one common action of another tool; measured:
the guard's own figure (from the change seen to the block back: its log line)
and the datagrams the isp counted on the uplink in that window (the far side's
figure, about one per millisecond the block was gone, detection included).
The ``--routes`` rule case has its own lab (a split list routed by wgkill);
its packets fail closed at postrouting meanwhile, so only the repair time is
reported. Target: < 100 ms (issue 13). Medians and maxima over the rounds.

Each backend is measured twice: the guard repairing only (``--no-hold``, as
before issue 20), and the guard also holding the block in an nft table of its
own (the default): there the far side must count 0.

    unshare --net .venv/bin/python bench/guard_repair.py [--rounds N] [--backend nft|iptables ...]
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

from wgkill_lab.guarding import DEBIAN_NFTABLES_CONF, Guard, act, repair_ms, stream
from wgkill_lab.netns import Lab, LabError

TARGET_MS = 100
HOOKS = "PostUp = wgkill-up %i{options}\nPreDown = wgkill-down %i\n"


@dataclass
class Row:
    action: str
    repair: list[int] = field(default_factory=list)  # ms, the guard's figure
    far_side: list[int] = field(default_factory=list)  # datagrams counted on the uplink

    def line(self) -> str:
        med, top = statistics.median(self.repair), max(self.repair)
        far = (f"{statistics.median(self.far_side):.0f} (max {max(self.far_side)})" if self.far_side
               else "0 (fail closed)")
        return (f"| {self.action} | {med:.0f} ms | {top} ms | {med / TARGET_MS:.2f} | {far} | "
                f"{len(self.repair)} |")


DEBIAN_RELOAD = [["nft", "-f", "-", "<" + DEBIAN_NFTABLES_CONF]]
ACTIONS = {  # what reaches each backend's block (iptables -F does not reach wgkill's nft table)
    "nft": {"nft flush ruleset": [["nft", "flush", "ruleset"]],
            "Debian's nftables.conf loaded": DEBIAN_RELOAD, "our table deleted": []},
    "iptables": {"nft flush ruleset": [["nft", "flush", "ruleset"]],
                 "Debian's nftables.conf loaded": DEBIAN_RELOAD,
                 "iptables -F, ip6tables -F": [["iptables", "-F"], ["ip6tables", "-F"]],
                 "our chain deleted": []},
}


def _delete_ours(lab: Lab, iface: str, backend: str) -> list[list[str]]:
    if backend == "nft":
        from wgkill.names import nft_table_name

        return [["nft", "delete", "table", "inet", nft_table_name(iface)]]
    chain = f"wgkill-{iface}"
    # one transaction: the guard is fast enough to put the jump back between separate commands
    return [["iptables-restore", "-w", "-n", f"<*filter\n-D OUTPUT 1\n-F {chain}\n-X {chain}\nCOMMIT\n"]]


def _round(lab: Lab, guard: Guard, argvs: list[list[str]], row: Row, count_far: bool = True) -> None:
    before = len(guard.repairs())
    lab.reset_counters()
    with stream(lab, 1.0):
        time.sleep(0.2)
        act(lab, argvs)
        lines = guard.wait_repairs(before + 1)  # TimedOut (a LabError) after 10 s
    if "repaired in" not in lines[before]:
        raise LabError(f"{row.action}: {lines[before]}")
    row.repair.append(repair_ms(lines[before]))
    if count_far:
        row.far_side.append(sum(lab.leaks().values()))
    guard.wait_checks()  # its own re-application woke it and was checked before the next round


def measure(rounds: int, backend: str, hold: bool) -> list[Row]:
    rows = []
    backend_option = f" --backend {backend}"
    held = "held" if hold else "repair only"
    with Lab() as lab:
        tunnel = lab.add_tunnel(hooks=HOOKS.format(options=backend_option))
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        lab.client("ip", "link", "set", tunnel.iface, "down")
        guard = Guard(lab, 0.2, *(() if hold else ("--no-hold",)))
        for action, argvs in ACTIONS[backend].items():
            row = Row(f"{held} | {action}")
            for _ in range(rounds):
                _round(lab, guard, argvs or _delete_ours(lab, tunnel.iface, backend), row)
            rows.append(row)
        guard.stop()
    if not hold:
        return rows
    with Lab() as lab:
        listing = lab.tmp / "list.txt"
        listing.write_text("203.0.113.80/32\n2001:db8:80::80/128\n")
        options = f"{backend_option} --allowed-ips-file {listing} --routes"
        tunnel = lab.add_tunnel(hooks=HOOKS.format(options=options), extra="Table = off\n")
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        guard = Guard(lab)
        row = Row(f"{held} | --routes rule deleted (v4 and v6)")
        priority = str(_state(lab, tunnel.iface)["routes"]["priority"])
        for _ in range(rounds):
            argvs = [["ip", flag, "rule", "del", "priority", priority] for flag in ("-4", "-6")]
            _round(lab, guard, argvs, row, count_far=False)
        rows.append(row)
        guard.stop()
    return rows


def _state(lab: Lab, iface: str) -> dict:
    return json.loads((lab.state_dir / f"{iface}.json").read_text())


def section(results: dict[str, list[Row]]) -> list[str]:
    lines = ["Tunnel dropped, guard running (`--interval 0.2`), one UDP datagram a millisecond.", "",
             "| backend | guard | what another tool did | repair (median) | repair (max) | "
             "median / 100 ms target | datagrams at the far side (median) | rounds |",
             "|---|---|---|---|---|---|---|---|"]
    for backend, rows in results.items():
        lines += [f"| {backend} {row.line()}" for row in rows]
    return lines


def results(rounds: int, backends: tuple[str, ...] | list[str]) -> dict[str, list[Row]]:
    """Each backend with the guard repairing only, then holding the block as well."""
    return {backend: measure(rounds, backend, False) + measure(rounds, backend, True) for backend in backends}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/guard_repair.py")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--backend", choices=("nft", "iptables"), action="append")
    args = parser.parse_args(argv)
    print("\n".join(section(results(args.rounds, args.backend or ("nft", "iptables")))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
