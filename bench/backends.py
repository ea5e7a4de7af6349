"""Per firewall backend (nft, iptables): the hook cycle and ``wgkill-status IFACE`` (kill switch
engaged, verdict OK) against the article's four lines in the same run, and a 100,000-prefix split
bring-up (issues 12 and 21). Writes docs/benchmarks-backends.md.

Run by ``make bench`` inside ``unshare --net`` (the lab refuses the initial namespace). The
article's lines and both wgkill variants alternate round by round (bench/timer.py), so a
trend in the machine's load does not favour one of them. Two floors are measured in the same
rounds: a bare ``nft -f`` up + down of the same table, and two ``python3 -I -S`` start-ups.
"""

import json
import statistics
import sys
import time
from pathlib import Path

from wgkill_lab.netns import Lab

BENCH = Path(__file__).resolve().parent
OUT = BENCH.parent / "docs" / "benchmarks-backends.md"
PY = sys.executable
ROUNDS, WARMUP = 15, 2
X = "\u00d7"  # the multiplication sign
ARTICLE_UP = ("{tool} -I OUTPUT ! -o {i} -m mark ! --mark $(wg show {i} fwmark) "
              "-m addrtype ! --dst-type LOCAL -j REJECT")
ARTICLE_DOWN = ARTICLE_UP.replace(" -I ", " -D ")


CYCLE_TARGET = {"nft": 1.5, "iptables": 2.0}  # issue 21: the hook cycle's ratio to the article's lines


def _time(lab: Lab, variants: dict[str, list[list[str]]]) -> dict[str, list[float]]:
    spec = json.dumps({"rounds": ROUNDS, "warmup": WARMUP, "variants": variants})
    done = lab.client(PY, str(BENCH / "timer.py"), stdin=spec, timeout=600)
    return {name: [sum(r["seconds"]) for r in rounds] for name, rounds in json.loads(done.stdout).items()}


def _prefix_file(path: Path, count: int) -> Path:
    path.write_text("".join(f"{(i >> 16) + 100}.{(i >> 8) & 255}.{i & 255}.0/25\n" for i in range(count)))
    return path


def hook_cycle(backend: str) -> dict[str, float]:
    with Lab(backend=backend) as lab:
        tunnel = lab.add_tunnel(hooks="")
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        iface = tunnel.iface
        lab.client("wgkill-up", iface, "--backend", backend)  # the render cache, as after the first up
        payload = lab.client("wgkill-up", iface, "--dry-run", "--backend", "nft").stdout.split("\n", 1)[1]
        lab.client("wgkill-down", iface)
        table = lab.tmp / "table.nft"
        table.write_text(payload)
        article = [["bash", "-c", ARTICLE_UP.format(tool=t, i=iface)] for t in ("iptables", "ip6tables")]
        article += [["bash", "-c", ARTICLE_DOWN.format(tool=t, i=iface)] for t in ("iptables", "ip6tables")]
        variants = {
            "wgkill": [["bash", "-c", f"wgkill-up {iface} --backend {backend}"],
                       ["bash", "-c", f"wgkill-down {iface}"]],
            **({"wgkill, nft binary": [
                ["bash", "-c", f"WGKILL_LIBNFTABLES=0 wgkill-up {iface} --backend nft"],
                ["bash", "-c", f"WGKILL_LIBNFTABLES=0 wgkill-down {iface}"]]} if backend == "nft" else {}),
            # engaged untimed before and removed after, so every other variant starts from no rules
            "wgkill-status": [{"check": ["wgkill-up", iface, "--backend", backend]}, ["wgkill-status", iface],
                              {"check": ["wgkill-down", iface]}],
            "article": article,
            "bare nft -f up + down": [["nft", "-f", str(table)],
                                      ["nft", "delete", "table", "inet", f"wgkill-{iface}"]],
            "two python3 -I -S": [[PY, "-I", "-S", "-c", "pass"], [PY, "-I", "-S", "-c", "pass"]],
        }
        times = _time(lab, variants)
        if "wgkill" in lab.ruleset() or "wgkill" in lab.save(4):
            raise RuntimeError("the hook benchmark left rules behind")
        return {name: statistics.median(values) for name, values in times.items()}


def split_bring_up(backend: str, count: int = 100_000, rounds: int = 5) -> dict[str, float]:
    """Median ``wgkill-up --allowed-ips-file`` of ``count`` prefixes, and (nft) the bare ``nft -f`` of
    the same table, its payload from ``--dry-run``, alternating round by round with it. The first
    round is also given alone: the list parsed and the table rendered (no cache yet)."""
    with Lab(backend=backend) as lab:
        tunnel = lab.add_tunnel(hooks="", allowed_ips="203.0.113.80/32")
        lab.wg_quick("up", tunnel)
        listing = _prefix_file(lab.tmp / "list.txt", count)
        up = ["wgkill-up", tunnel.iface, "--backend", backend, "--allowed-ips-file", str(listing)]
        table = lab.tmp / "split.nft"
        if backend == "nft":
            table.write_text(lab.client(*up, "--dry-run", timeout=300).stdout.split("\n", 1)[1])
        took: dict[str, list[float]] = {"wgkill": [], "bare nft -f": []}
        for _ in range(rounds):
            started = time.perf_counter()
            lab.client(*up, timeout=300)
            took["wgkill"].append(time.perf_counter() - started)
            lab.client("wgkill-down", tunnel.iface)
            if backend == "nft":
                started = time.perf_counter()
                lab.client("nft", "-f", str(table), timeout=300)
                took["bare nft -f"].append(time.perf_counter() - started)
                lab.client("nft", "delete", "table", "inet", f"wgkill-{tunnel.iface}")
        return {"first": took["wgkill"][0],
                **{name: statistics.median(values) for name, values in took.items() if values}}


def split_table(split: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| backend | 100,000-prefix split bring-up (wgkill-up, median of 5) | bare `nft -f` of the set "
             "| ratio | target | first run (list parsed, table rendered) |", "|---|---|---|---|---|---|"]
    for backend, r in split.items():
        if "bare nft -f" in r:
            ratio = r["wgkill"] / r["bare nft -f"]
            lines.append(f"| {backend} | {r['wgkill']:.2f} s | {r['bare nft -f']:.2f} s | {ratio:.2f}{X} | "
                         f"≤ 1.3{X} ({'met' if ratio <= 1.3 else 'missed'}) | {r['first']:.2f} s, "
                         f"{r['first'] / r['bare nft -f']:.2f}{X} |")
        else:
            lines.append(f"| {backend} | {r['wgkill']:.2f} s | — | — | — | {r['first']:.2f} s |")
    return lines


def main() -> int:
    if sys.argv[1:] == ["--split-only"]:  # development: the split bring-up alone, printed, no file written
        print("\n".join(split_table({backend: split_bring_up(backend) for backend in ("nft", "iptables")})))
        return 0
    rows, split = {}, {}
    for backend in ("nft", "iptables"):
        print(f"hook cycle, {backend}", file=sys.stderr)
        rows[backend] = hook_cycle(backend)
        print(f"100k split bring-up, {backend}", file=sys.stderr)
        split[backend] = split_bring_up(backend)
    lines = ["# Benchmarks per firewall backend (issue 12)", "",
             f"Medians of {ROUNDS} alternating rounds in one run (`python bench/backends.py`, "
             "inside `unshare --net`).", "",
             "| backend | hook cycle (wgkill-up + wgkill-down) | article's 4 lines | ratio | target "
             "| bare `nft -f` up + down | two `python3 -I -S` "
             "| `wgkill-status IFACE` | ratio to one seed cycle | target |", "|---" * 10 + "|"]
    for backend, r in rows.items():
        ratio = r["wgkill"] / r["article"]
        status = r["wgkill-status"] / r["article"]
        target = CYCLE_TARGET[backend]
        lines.append(f"| {backend} | {r['wgkill'] * 1000:.0f} ms | {r['article'] * 1000:.0f} ms | "
                     f"{ratio:.2f}{X} | ≤ {target:g}{X} ({'met' if ratio <= target else 'missed'}) | "
                     f"{r['bare nft -f up + down'] * 1000:.0f} ms | {r['two python3 -I -S'] * 1000:.0f} ms | "
                     f"{r['wgkill-status'] * 1000:.0f} ms | {status:.2f}{X} | "
                     f"≤ 1.5{X} ({'met' if status <= 1.5 else 'missed'}) |")
    binary = rows["nft"]["wgkill, nft binary"]
    lines += ["", f"nft backend through the `nft` binary (`WGKILL_LIBNFTABLES=0`) instead of libnftables "
              f"in-process, same rounds: {binary * 1000:.0f} ms, {binary / rows['nft']['article']:.2f}{X} "
              f"the article's lines ({rows['nft']['wgkill'] / binary:.2f}{X} of it in-process)."]
    lines += ["", *split_table(split)]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
