"""Large split tunnels: ipset.sync + routes.setup at 1k / 10k / 100k prefixes, against wg-quick.

Run as root, inside a throwaway network namespace (the lab refuses the initial one):

    unshare --net -- .venv/bin/python bench/split_scale.py [--rounds 3] [--json out.json]

In one lab (client / isp / vpn namespaces, real wg-quick and wireguard-go) it measures:

* ``wgkill``: ``python -m wgkill.routes_lab up`` in the client namespace — parse the
  list, ``ipset.sync`` per family, ``routes.setup`` — for each size, ``--rounds``
  times (median shown), wall time of the whole process (interpreter start
  included) and the in-process steps; then the teardown. The first round of each
  size checks that the web server (in every list) answers through the tunnel.
* ``wg-quick``: plain ``wg-quick up`` with the same prefixes as AllowedIPs (one route
  per prefix, quadratic), bounded by ``--wg-quick-timeout``; against
  ``wg-quick up`` with ``Table = off`` followed by the wgkill step above.
* the alternatives rejected in the modules: pyroute2's ipset (one netlink
  request per entry) and pyroute2 for the rules and routes (its import).

Stdlib plus wgkill; stops by itself; everything is removed when the lab closes.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from wgkill.lab import VPN4, VPN6, Lab, Tunnel
from wgkill.routes_lab import generate

REAL = ["203.0.113.80/32", "2001:db8:80::80/128", "198.51.100.0/24"]  # web server; VPN server's net
SIZES = [("1k v4", 1000, 0), ("10k v4", 10000, 0), ("100k v4", 100000, 0), ("10k v6", 0, 10000),
         ("100k v4 + 10k v6", 100000, 10000)]


def _driver(lab: Lab, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = lab.client(sys.executable, "-m", "wgkill.routes_lab", *args, timeout=600)
    return time.perf_counter() - started, json.loads(done.stdout)


def _write(lab: Lab, name: str, count4: int, count6: int) -> Path:
    path = lab.tmp / name
    path.write_text("\n".join([*REAL, *generate(count4, count6)]) + "\n")
    return path


def measure_wgkill(lab: Lab, tunnel: Tunnel, rounds: int) -> list[dict]:
    rows = []
    for label, count4, count6 in SIZES:
        path = _write(lab, f"{count4}-{count6}.txt", count4, count6)
        walls, downs, steps = [], [], []
        for round_ in range(rounds):
            wall, result = _driver(lab, "up", tunnel.iface, "--file", str(path))
            if round_ == 0:
                seen = (lab.whoami(4), lab.whoami(6))
                if seen != (VPN4, VPN6):
                    raise SystemExit(f"{label}: listed destination not through the tunnel: {seen}")
            record = lab.tmp / "record.json"
            record.write_text(json.dumps(result["record"]))
            down_wall, _ = _driver(lab, "down", str(record))
            walls.append(wall)
            downs.append(down_wall)
            steps.append(result["timings"])
        row = {
            "list": label, "entries": sum(result["counts"].values()),
            "up_wall_s": statistics.median(walls), "down_wall_s": statistics.median(downs),
            **{f"{key}_s": statistics.median(s[key] for s in steps) for key in steps[0]},
        }
        rows.append(row)
        print(f"wgkill {label:>17}: up {row['up_wall_s']:.3f}s wall (parse {row['parse_s']:.3f}, "
              f"ipset4 {row['ipset4_s']:.3f}, ipset6 {row['ipset6_s']:.3f}, routes {row['routes_s']:.3f}, "
              f"in-process {row['total_s']:.3f}); down {row['down_wall_s']:.3f}s", flush=True)
    return rows


def _timed(lab: Lab, argv: list[str], timeout: float) -> float | None:
    started = time.perf_counter()
    try:
        lab.client(*argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started


def measure_wg_quick(lab: Lab, tunnel: Tunnel, sizes: list[int], timeout: float) -> list[dict]:
    rows = []
    for count in sizes:
        listed = [*REAL[:1], REAL[2], *generate(count, 0)]
        path = _write(lab, f"wgq-{count}.txt", count, 0)
        # wgkill: the tunnel with Table = off, then the set and the routes
        lab.wg_quick("down", tunnel)
        up = _timed(lab, ["wg-quick", "up", tunnel.iface], timeout)
        wall, result = _driver(lab, "up", tunnel.iface, "--file", str(path))
        ours = {"wg_quick_table_off_s": up, "wgkill_s": wall}
        record = lab.tmp / "record.json"
        record.write_text(json.dumps(result["record"]))
        _driver(lab, "down", str(record))
        # plain wg-quick: one route per prefix
        lab.wg_quick("down", tunnel)
        plain = lab.add_tunnel(hooks="", allowed_ips=", ".join(listed))
        plain_up = _timed(lab, ["wg-quick", "up", plain.iface], timeout)
        plain_down = _timed(lab, ["wg-quick", "down", plain.iface], timeout) if plain_up else None
        lab.wg_quick("up", tunnel)
        total = (ours["wg_quick_table_off_s"] or 0) + ours["wgkill_s"]
        row = {"prefixes": count + 2, **ours, "wgkill_total_s": total,
               "wg_quick_plain_up_s": plain_up, "wg_quick_plain_down_s": plain_down,
               "speedup": (plain_up / total) if plain_up else None}
        rows.append(row)
        shown = f"{plain_up:.2f}s" if plain_up else f"> {timeout:.0f}s (stopped)"
        print(f"wg-quick {count + 2} prefixes: plain wg-quick up {shown}; wgkill: wg-quick up (Table=off) "
              f"{up:.3f}s + routes {wall:.3f}s = {total:.3f}s"
              + (f" -> {row['speedup']:.0f}x faster" if plain_up else ""), flush=True)
    return rows


PYROUTE2_IPSET = """
import socket, sys, time
from wgkill.routes_lab import generate
lines = list(generate(int(sys.argv[1]), 0))
t0 = time.perf_counter()
from pyroute2.ipset import IPSet
with IPSet() as ips:
    ips.create("wgkill-bench-4", stype="hash:net", family=socket.AF_INET, hashsize=65536, maxelem=262144)
    for prefix in lines:
        ips.add("wgkill-bench-4", prefix, etype="net")
    ips.destroy("wgkill-bench-4")
print(time.perf_counter() - t0)
"""

IPSET_RESTORE = """
import sys, time
from wgkill import ipset
from wgkill.routes_lab import generate
lines = list(generate(int(sys.argv[1]), 0))
t0 = time.perf_counter()
ipset.sync("wgkill-bench-4", 4, lines)
took = time.perf_counter() - t0
ipset.destroy("wgkill-bench-4")
print(took)
"""

RULES_PYROUTE2 = """
import sys, time
t0 = time.perf_counter()
from pyroute2 import IPRoute
t1 = time.perf_counter()
with IPRoute() as ipr:
    index = ipr.link_lookup(ifname=sys.argv[1])[0]
    for family, default in ((2, "0.0.0.0/0"), (10, "::/0")):
        ipr.get_rules(family=family)
        ipr.route("replace", dst=default, oif=index, table=52899, family=family)
        ipr.route("replace", dst=default, type="unreachable", priority=4294967295, table=52899, family=family)
        ipr.rule("add", family=family, fwmark=0x0F000000, fwmask=0x0F000000, table=52899, priority=32099)
print(time.perf_counter() - t0, t1 - t0)
"""

RULES_IP = """
import subprocess, sys, time
t0 = time.perf_counter()
for flag in ("-4", "-6"):
    subprocess.run(["ip", "-j", flag, "rule", "show"], check=True, capture_output=True)
    batch = (f"route replace default dev {sys.argv[1]} table 52899\\n"
             "route replace unreachable default metric 4294967295 table 52899\\n"
             "rule add fwmark 0xf000000/0xf000000 lookup 52899 priority 32099\\n")
    subprocess.run(["ip", flag, "-batch", "-"], input=batch, text=True, check=True)
print(time.perf_counter() - t0, 0.0)
"""


def _clean_scratch_rules(lab: Lab) -> None:
    for flag in ("-4", "-6"):
        lab.client("ip", flag, "rule", "del", "priority", "32099", check=False)
        lab.client("ip", flag, "route", "flush", "table", "52899", check=False)


def measure_alternatives(lab: Lab, tunnel: Tunnel, ipset_entries: int) -> dict:
    out: dict = {"entries": ipset_entries}
    for name, code in (("ipset_restore_s", IPSET_RESTORE), ("pyroute2_ipset_s", PYROUTE2_IPSET)):
        out[name] = float(lab.client(sys.executable, "-c", code, str(ipset_entries), timeout=600).stdout)
    print(f"ipset, {ipset_entries} entries: ipset restore {out['ipset_restore_s']:.3f}s, "
          f"pyroute2 IPSet.add per entry {out['pyroute2_ipset_s']:.3f}s", flush=True)
    for name, code in (("rules_ip_s", RULES_IP), ("rules_pyroute2_s", RULES_PYROUTE2)):
        said = lab.client(sys.executable, "-c", code, tunnel.iface).stdout
        total, imported = (float(x) for x in said.split())
        out[name] = total
        if name == "rules_pyroute2_s":
            out["pyroute2_import_s"] = imported
        _clean_scratch_rules(lab)
    print(f"2 rules + 4 routes: ip -batch (2 reads, 2 batches) {out['rules_ip_s'] * 1000:.1f} ms, "
          f"pyroute2 {out['rules_pyroute2_s'] * 1000:.1f} ms "
          f"(import {out['pyroute2_import_s'] * 1000:.1f} ms)", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wg-quick-sizes", type=int, nargs="*", default=[1000],
                        help="list sizes for the plain wg-quick comparison (default 1000)")
    parser.add_argument("--wg-quick-timeout", type=float, default=300)
    parser.add_argument("--pyroute2-ipset", type=int, default=10000, metavar="N",
                        help="entries for the pyroute2 ipset comparison (0 to skip; ~0.5 ms each)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    results: dict = {}
    with Lab() as lab:
        tunnel = lab.add_tunnel(hooks="", extra="Table = off\n")
        lab.wg_quick("up", tunnel)
        results["wgkill"] = measure_wgkill(lab, tunnel, args.rounds)
        if args.pyroute2_ipset:
            results["alternatives"] = measure_alternatives(lab, tunnel, args.pyroute2_ipset)
        results["wg_quick"] = measure_wg_quick(lab, tunnel, args.wg_quick_sizes, args.wg_quick_timeout)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
