"""Time to the first packet under a held block (issue 20): after an unclean drop or a boot with
the block held, how long from `wg-quick up` returning to the first answer through the tunnel,
per backend, against no rules at all (WireGuard's own handshake) in the same run; the article's
lines beside them (their REJECT, left by the drop, refuses the unmarked first handshake too).
Writes docs/benchmarks-reconnect.md.

Run by ``make bench`` inside ``unshare --net``. Each round: the daemon killed (or the kernel's
state flushed and ``wgkill-boot`` run: a reboot), ``wg-quick up``, then a fetch every 10 ms
until the web server answers through the tunnel.
"""

import statistics
import time
from pathlib import Path

from wgkill_lab.netns import VPN4, Lab

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-reconnect.md"
ROUNDS = 7
ARTICLE = ("PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) "
           "-m addrtype ! --dst-type LOCAL -j REJECT\n"
           "PreDown = iptables -D OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) "
           "-m addrtype ! --dst-type LOCAL -j REJECT\n")


def _first_answer(lab: Lab, started: float, limit: float = 15) -> float:
    while time.monotonic() - started < limit:
        if lab.whoami(4, timeout=1) == VPN4:
            return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"no answer through the tunnel within {limit} s")


def _reboot(lab: Lab) -> None:
    for family in ("-4", "-6"):
        for rule in (["table", "51820"], ["table", "main", "suppress_prefixlength", "0"]):
            lab.client("ip", family, "rule", "del", *rule, check=False)
    lab.client("nft", "flush", "ruleset")
    lab.client("wgkill-boot")


def measure(backend: str | None, hooks: str | None, boot: bool) -> list[float]:
    with Lab(backend=backend) as lab:
        tunnel = lab.add_tunnel(hooks=hooks)
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        seconds = []
        for _ in range(ROUNDS):
            lab.kill_daemon(tunnel)
            if boot:
                _reboot(lab)
            lab.wg_quick("up", tunnel)
            seconds.append(_first_answer(lab, time.monotonic()))
        lab.wg_quick("down", tunnel)
    return seconds


def main() -> None:
    base = statistics.median(measure(None, "", boot=False))
    rows = [("no rules", "unclean drop", base, 1.0)]
    article = statistics.median(measure(None, ARTICLE, boot=False))
    rows.append(("the article's lines (their rule left by the drop)", "unclean drop", article,
                 article / base))
    for name, backend in (("nft", "nft"), ("iptables", "iptables")):
        for what, boot in (("unclean drop", False), ("boot, block held", True)):
            median = statistics.median(measure(backend, None, boot))
            rows.append((f"wgkill, {name}", what, median, median / base))
    lines = ["# Reconnect under a held block", "",
             f"`bench/reconnect.py`, medians of {ROUNDS}: from `wg-quick up` returning to the first answer "
             "through the tunnel (a fetch every 10 ms).", "",
             "| hooks | before `wg-quick up` | first answer | vs no rules |", "|---|---|---|---|"]
    lines += [f"| {h} | {w} | {s * 1000:.0f} ms | {r:.1f}\u00d7 |" for h, w, s, r in rows]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
