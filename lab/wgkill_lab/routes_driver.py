"""Private driver for the namespace lab and the benchmark: ``python -m wgkill_lab.routes_driver``.

Not a user interface (wgkill-up/down will carry ``--routes``): it runs the
split-tunnel pieces in the order the hooks will, inside one namespace, and
prints JSON with what it did and how long each step took, so tests and
``bench/split_scale.py`` can drive it with ``ip netns exec``.

    up IFACE --file PATH [--previous RECORD.json]   parse, ipset.sync (4, 6), routes.setup
    down RECORD.json                                routes.teardown, ipset.destroy (4, 6)
    generate N4 N6                                  print a synthetic, non-collapsing list
"""

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from wgkill import ipset, names, prefixes, routes, runner
from wgkill.errors import StateError, WgkillError
from wgkill.recordclass import asdict
from wgkill.records import route_record_from_json
from wgkill.tunnel import read_tunnel

V4_BASE = 11 << 24  # 11.0.0.0 up: clear of every lab address (192.0.2/24, 198.51.100/24, 203.0.113/24)
V6_BASE = 0xFD77 << 112  # fd77::/16, clear of the lab's 2001:db8::/32
_V4_LENGTHS = (24, 25, 26, 28, 32)


def generate(count4: int, count6: int) -> Iterator[str]:
    """``count4`` IPv4 and ``count6`` IPv6 prefixes that collapse to exactly as many entries.

    Each prefix sits at the start of its own block twice its largest size, so
    no two are nested or siblings; the IPv4 lengths vary (5 distinct lengths in
    the set, as a real country list has several).
    """
    import ipaddress

    for i in range(count4):
        yield f"{ipaddress.IPv4Address(V4_BASE + i * 512)}/{_V4_LENGTHS[i % len(_V4_LENGTHS)]}"
    for i in range(count6):
        yield f"{ipaddress.IPv6Address(V6_BASE + ((2 * i) << 80))}/48"


def _up(args: argparse.Namespace) -> dict[str, object]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    listed = prefixes.load_file(args.file)
    timings["parse"] = time.perf_counter() - started
    facts = read_tunnel(args.interface)
    endpoints = [(p.endpoint.host, p.endpoint.port) for p in facts.peers if p.endpoint]
    families = (4, 6)
    counts = {}
    for family in families:
        mark = time.perf_counter()
        counts[f"ipv{family}"] = ipset.sync(names.set_name(args.interface, family), family,
                                            listed.family(family))
        timings[f"ipset{family}"] = time.perf_counter() - mark
    previous = record_from_json(Path(args.previous).read_text()) if args.previous else None
    mark = time.perf_counter()
    record = routes.setup(args.interface, families, endpoints=endpoints, wg_fwmark=facts.fwmark,
                          previous=previous)
    timings["routes"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return {"record": asdict(record), "counts": counts, "read": listed.read,
            "normalised": listed.normalised, "timings": timings}


def record_from_json(text: str) -> routes.RouteRecord:
    """A route record as ``_up`` printed it (the lab passes records between runs as files)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"corrupt route record: {exc}") from exc
    if not isinstance(data, dict):
        raise StateError("corrupt route record: not a JSON object")
    return route_record_from_json(data)


def _down(args: argparse.Namespace) -> dict[str, object]:
    record = record_from_json(Path(args.record).read_text())
    started = time.perf_counter()
    removed = routes.teardown(record)
    sets = [names.set_name(record.interface, fam.family) for fam in record.families.values()]
    destroyed = [name for name in sets if ipset.destroy(name)]
    return {"removed": removed, "destroyed": destroyed, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgkill_lab.routes_driver")
    verbs = parser.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up")
    up.add_argument("interface")
    up.add_argument("--file", required=True)
    up.add_argument("--previous")
    down = verbs.add_parser("down")
    down.add_argument("record")
    gen = verbs.add_parser("generate")
    gen.add_argument("count4", type=int)
    gen.add_argument("count6", type=int)
    args = parser.parse_args(argv)
    runner.trace = lambda line: print(line, file=sys.stderr)
    if args.verb == "generate":
        sys.stdout.writelines(line + "\n" for line in generate(args.count4, args.count6))
        return 0
    try:
        result = _up(args) if args.verb == "up" else _down(args)
    except WgkillError as exc:
        print(f"routes_driver: {exc}", file=sys.stderr)
        return exc.exit_code
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
