"""The hook's budget (issue 21): per step of ``wgkill-up``, ``wgkill-down`` and ``wgkill-status``, where
the milliseconds go, beside the floors, so the next regression is seen at once. Writes
docs/benchmarks-budget.md.

Run by ``make bench`` inside ``unshare --net`` (the lab refuses the initial namespace), nft backend,
one tunnel up with its handshake done. Outside the process (bench/timer.py, rounds alternating):
each command's wall time, and the floors in the same rounds: the article's four lines, a bare
``nft -f`` up + down of the same table, the interpreter's start and exit (``import os; os._exit(0)``,
as the hooks exit), the interpreter with the standard modules a typed program of this kind
imports (re, typing, dataclasses, pathlib, json, argparse), and with those the hooks import since
they stopped importing typing and dataclasses (re, pathlib, json, argparse, ipaddress). Inside the process
(bench/budget_probe.py): imports, state file, kernel, guard socket, deciding. "start and exit" is
the floor's; "unaccounted" is the command's wall time less all of the above: the two come from
different runs (so it carries their noise), and the probe cannot see what its wrappers miss.
"""

import json
import statistics
import sys
from pathlib import Path

from wgkill_lab.netns import Lab

BENCH = Path(__file__).resolve().parent
OUT = BENCH.parent / "docs" / "benchmarks-budget.md"
PY = sys.executable
ROUNDS, WARMUP, PROBES = 15, 2, 9
X = "\u00d7"
ARTICLE = ("{tool} {op} OUTPUT ! -o {i} -m mark ! --mark $(wg show {i} fwmark) "
           "-m addrtype ! --dst-type LOCAL -j REJECT")
STDLIB = "import re, typing, dataclasses, pathlib, json, argparse, os; os._exit(0)"
HOOK_STDLIB = "import re, pathlib, json, argparse, ipaddress, os; os._exit(0)"


def commands(iface: str) -> dict[str, list[list[str]]]:
    return {"up": [["wgkill-up", iface, "--backend", "nft"]], "status": [["wgkill-status", iface]],
            "down": [["wgkill-down", iface]]}


def outside(lab: Lab, iface: str, table: Path) -> dict[str, float]:
    """Medians (ms) of whole commands and floors, alternating round by round."""
    article = [["bash", "-c", ARTICLE.format(tool=t, op=op, i=iface)]
               for op in ("-I", "-D") for t in ("iptables", "ip6tables")]
    hooks = commands(iface)
    variants = {
        "wgkill": hooks["up"] + hooks["status"] + hooks["down"],
        "article": article,
        "bare nft -f up + down": [["nft", "-f", str(table)],
                                  ["nft", "delete", "table", "inet", f"wgkill-{iface}"]],
        "interpreter start + exit": [[PY, "-c", "import os; os._exit(0)"]],
        "interpreter + stdlib set": [[PY, "-c", STDLIB]],
        "interpreter + the hooks' stdlib": [[PY, "-c", HOOK_STDLIB]],
    }
    spec = json.dumps({"rounds": ROUNDS, "warmup": WARMUP, "variants": variants})
    done = lab.client(PY, str(BENCH / "timer.py"), stdin=spec, timeout=900)
    runs = json.loads(done.stdout)
    med = {name: statistics.median(sum(r["seconds"]) for r in rounds) * 1000 for name, rounds in runs.items()}
    for index, verb in enumerate(("up", "status", "down")):
        med[verb] = statistics.median(r["seconds"][index] for r in runs["wgkill"]) * 1000
    return med


def inside(lab: Lab, iface: str) -> dict[str, dict[str, float]]:
    """Medians (ms) of the probe's steps per verb, the verbs in the hooks' order."""
    samples: dict[str, list[dict[str, float]]] = {"up": [], "status": [], "down": []}
    for _ in range(PROBES):
        for verb, argv in commands(iface).items():
            done = lab.client(PY, str(BENCH / "budget_probe.py"), verb, *argv[0][1:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if verb != "status" and result["code"] != 0:
                raise RuntimeError(f"{verb} exited {result['code']} under the probe")
            samples[verb].append(result["ms"])
    return {verb: {key: statistics.median(s.get(key, 0.0) for s in runs)
                   for key in sorted({k for s in runs for k in s})} for verb, runs in samples.items()}


def main() -> int:
    with Lab(backend="nft") as lab:
        tunnel = lab.add_tunnel(hooks="")
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        iface = tunnel.iface
        lab.client("wgkill-up", iface, "--backend", "nft")  # the render cache, as after the first up
        table = lab.tmp / "table.nft"
        dry = lab.client("wgkill-up", iface, "--dry-run", "--backend", "nft").stdout
        table.write_text(dry.split("\n", 1)[1])
        lab.client("wgkill-down", iface)
        whole = outside(lab, iface, table)
        steps = inside(lab, iface)
        if "wgkill" in lab.ruleset():
            raise RuntimeError("the budget benchmark left rules behind")
    article = whole["article"]
    keys = ["imports", "state file", "kernel: nftables in-process", "kernel: child processes", "guard socket",
            "deciding (other Python)"]
    lines = ["# The hook's budget (issue 21)", "",
             f"nft backend, one tunnel; medians in ms of {ROUNDS} alternating rounds (whole commands, "
             "floors) "
             f"and {PROBES} probe runs (steps inside the process). `python bench/budget.py`, inside "
             "`unshare --net`.", "",
             "| step | wgkill-up | wgkill-down | wgkill-status |", "|---|---|---|---|"]
    start = whole["interpreter start + exit"]
    rows = [("start and exit (interpreter)", {v: start for v in steps})]
    rows += [(key, {v: steps[v].get(key, 0.0) for v in steps}) for key in keys]
    rows += [("unaccounted (the command less the rows above)",
              {v: whole[v] - start - sum(steps[v].values()) for v in steps})]
    rows += [("**whole command**", {v: whole[v] for v in steps})]
    for label, values in rows:
        cells = " | ".join(f"{values[v]:.1f}" for v in ("up", "down", "status"))
        lines.append(f"| {label} | {cells} |")
    cycle = whole["up"] + whole["down"]
    hook = "interpreter + the hooks' stdlib"
    lines += ["", "| measure | ms | ratio to the article's four lines |", "|---|---|---|",
              f"| hook cycle (up + down) | {cycle:.1f} | {cycle / article:.2f}{X} (target ≤ 1.5{X}) |",
              f"| wgkill-status IFACE | {whole['status']:.1f} | {whole['status'] / article:.2f}{X} "
              f"(target ≤ 1.5{X}) |",
              f"| the article's four lines (up + down) | {article:.1f} | 1.00{X} |",
              f"| bare `nft -f` up + down | {whole['bare nft -f up + down']:.1f} | "
              f"{whole['bare nft -f up + down'] / article:.2f}{X} |",
              f"| two interpreter starts + exits | {2 * whole['interpreter start + exit']:.1f} | "
              f"{2 * whole['interpreter start + exit'] / article:.2f}{X} |",
              f"| two interpreters importing re, typing, dataclasses, pathlib, json, argparse | "
              f"{2 * whole['interpreter + stdlib set']:.1f} | "
              f"{2 * whole['interpreter + stdlib set'] / article:.2f}{X} |",
              f"| two interpreters importing re, pathlib, json, argparse, ipaddress (the hooks' "
              f"standard modules) | {2 * whole[hook]:.1f} | {2 * whole[hook] / article:.2f}{X} |"]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
