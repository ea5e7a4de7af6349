"""Split-tunnel scale (issue 8 item 3, issue 7): measured in one namespace lab, formatted by run.py.

``bench/run.py`` calls ``measure(lab, plan)``; standalone (development, or the extra
comparisons below) it runs alone:

    unshare --net -- .venv/bin/python bench/split_scale.py [--quick] [--json OUT] [--alternatives N]

What it measures, on a live wireguard-go tunnel brought up with ``Table = off`` and
AllowedIPs ``0.0.0.0/0, ::/0`` (wg-quick then adds no route and no fwmark):

* **apply**, per list (1k, 10k, 100k IPv4; 10k IPv6), alternating: ``wgkill-up IFACE
  --allowed-ips-file PATH`` (set + kill switch) then ``wgkill-down``; the routes (``wgkill-up
  ... --routes`` when ``wgkill-up --help`` lists it and it passes a functional check, else
  ``python -m wgkill_lab.routes_driver up``); and the baseline, one ``-A bench-linear -d PREFIX -j
  REJECT`` per prefix applied in one ``iptables-restore``, then removed (``-F``, ``-D``, ``-X``).
  Every round checks what was timed: a listed destination refused, or answered through the tunnel.
* **bring-up** against plain wg-quick: ``wg-quick up`` (Table = off) plus the routes, against
  ``wg-quick up`` with the 1k list as AllowedIPs (one route per prefix, one process each);
  the plain tunnel is removed with ``ip link del`` (``wg-quick down`` takes as long again and is
  not what is compared). Also 100k with wgkill, and one bounded attempt of plain wg-quick at 10k.
* **per-packet**: TCP connections/s from the client to 203.0.113.81 (on the isp's lo, not in any
  list, so over the uplink through the whole OUTPUT path) with no rules, the 100k set (kill
  switch), the set with routes, and one rule per prefix, alternating.
* **profile**: where ``wgkill-up --allowed-ips-file PATH --routes`` spends its time at 100k.

The generated prefixes lie in benchmark/documentation space (198.18.0.0/15, then the reserved
240.0.0.0/4 once the /15 is full; /48s from 2001:db8:4000:: up), never collapse (each sits at the start of
a block twice its size), and only go into sets, rules and routes: the only traffic sent is to
the lab's own addresses. Everything is removed when the lab closes.
"""

import argparse
import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wgkill import prefixes
from wgkill_lab.netns import CLIENT4, VPN4, VPN6, WEB4, WEB6, Lab, LabError, Tunnel

BENCH = Path(__file__).resolve().parent
PY = sys.executable
OUTSIDE4 = "203.0.113.81"  # the per-packet target: on the isp's lo, in no list
ECHO_PORT, SINK_PORT = 5211, 5212
LINEAR = "bench-linear"
V4_SPACE = (("198.18.0.0", 1 << 17), ("240.0.0.0", 1 << 28))  # benchmark /15, then reserved /4
V4_LENGTHS = (32, 31, 30, 29, 28)
V6_BASE = int(ipaddress.IPv6Address("2001:db8:4000::"))  # clear of the lab's 2001:db8:0-ff::
V6_MAX = (0x10000 - 0x4000) // 2  # every other /48 up to 2001:db8:ffff::/48
REAL = {4: f"{WEB4}/32", 6: f"{WEB6}/128"}  # one listed destination the lab can reach
CURL_REFUSED = 7  # curl: "Failed to connect" (a TCP reset or an ICMP unreachable)


@dataclass(frozen=True)
class ListSpec:
    """One prefix list: ``count`` prefixes of one family, after collapsing."""

    label: str
    family: int
    count: int

    @property
    def large(self) -> bool:
        return self.count >= 100_000


LISTS = (ListSpec("1k IPv4", 4, 1_000), ListSpec("10k IPv4", 4, 10_000), ListSpec("100k IPv4", 4, 100_000),
         ListSpec("10k IPv6", 6, 10_000))


@dataclass(frozen=True)
class Plan:
    """How much to run; ``rounds_large`` for the 100k cases, ``bringup_rounds`` for wg-quick."""

    rounds: int = 10
    rounds_large: int = 6
    warmup: int = 1
    bringup_rounds: int = 6
    connect_seconds: float = 1.5
    large_wg_quick: int = 10_000
    large_wg_quick_timeout: float = 20.0
    profile_rounds: int = 4
    routes_driver: str = "auto"  # auto | flag | routes_driver
    deadline: float | None = None  # time.monotonic() after which optional parts are skipped


@dataclass(frozen=True)
class RouteDriver:
    """How the routes are brought up and down: ``wgkill-up --routes``, or the interim lab driver."""

    name: str
    with_kill_switch: bool
    why: str
    record: str | None = None  # routes_driver only: the record its ``down`` reads

    def up(self, iface: str, path: Path) -> list[list[str]]:
        if self.record is None:
            return [["wgkill-up", iface, "--backend", "iptables", "--allowed-ips-file", str(path),
                     "--routes"]]
        return [[PY, "-I", "-m", "wgkill_lab.routes_driver", "up", iface, "--file", str(path)]]

    def down(self, iface: str) -> list[list[str]]:
        if self.record is None:
            return [["wgkill-down", iface]]
        return [[PY, "-I", "-m", "wgkill_lab.routes_driver", "down", self.record]]


@dataclass
class Results:
    """Everything measured, raw (per-round values), for run.py to format."""

    plan: dict[str, Any]
    driver: dict[str, Any] = field(default_factory=dict)
    lists: list[dict[str, Any]] = field(default_factory=list)
    apply: dict[str, Any] = field(default_factory=dict)
    bringup: dict[str, Any] | None = None
    large_wg_quick: dict[str, Any] | None = None
    packets: dict[str, list[float]] = field(default_factory=dict)
    packet_labels: dict[str, str] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def log(message: str) -> None:
    print(f"bench: split: {message}", file=sys.stderr, flush=True)


# ---- lists and payloads -----------------------------------------------------------------------

def generate4(count: int) -> list[str]:
    """``count`` IPv4 prefixes (lengths /32../28 in turn) that collapse to exactly as many."""
    out: list[str] = []
    spaces = iter(V4_SPACE)
    base_text, size = next(spaces)
    base, offset = int(ipaddress.IPv4Address(base_text)), 0
    while len(out) < count:
        plen = V4_LENGTHS[len(out) % len(V4_LENGTHS)]
        block = 2 << (32 - plen)  # twice the prefix: its sibling stays empty, nothing merges
        offset = -(-offset // block) * block
        if offset + block > size:
            base_text, size = next(spaces)
            base, offset = int(ipaddress.IPv4Address(base_text)), 0
            continue
        out.append(f"{ipaddress.IPv4Address(base + offset)}/{plen}")
        offset += block
    return out


def generate6(count: int) -> list[str]:
    """``count`` IPv6 /48s, every other one from 2001:db8:4000::/48."""
    if count > V6_MAX:
        raise ValueError(f"at most {V6_MAX} IPv6 prefixes fit")
    return [f"{ipaddress.IPv6Address(V6_BASE + ((2 * i) << 80))}/48" for i in range(count)]


def list_prefixes(spec: ListSpec) -> list[str]:
    """The lab's reachable web address first (it is what the checks probe), then generated ones."""
    made = generate4(spec.count - 1) if spec.family == 4 else generate6(spec.count - 1)
    return [REAL[spec.family], *made]


def write_list(directory: Path, spec: ListSpec) -> tuple[Path, list[str]]:
    """Write the list file; check that wgkill's parser keeps every prefix (nothing collapses)."""
    listed = list_prefixes(spec)
    path = directory / f"split-{spec.family}-{spec.count}.txt"
    path.write_text(f"# bench/split_scale.py: {spec.label}\n" + "\n".join(listed) + "\n")
    parsed = prefixes.load_file(path)
    if len(parsed.family(spec.family)) != spec.count or len(parsed) != spec.count:
        raise LabError(f"{spec.label}: {len(parsed)} prefixes after collapsing, not {spec.count}")
    return path, listed


def tool(family: int) -> str:
    return "iptables" if family == 4 else "ip6tables"


def write_linear(directory: Path, spec: ListSpec, listed: list[str]) -> Path:
    """The baseline: one REJECT rule per prefix in one chain, jumped to first, in one restore."""
    path = directory / f"linear-{spec.family}-{spec.count}.restore"
    rules = "".join(f"-A {LINEAR} -d {prefix} -j REJECT\n" for prefix in listed)
    path.write_text(f"*filter\n:{LINEAR} - [0:0]\n-I OUTPUT 1 -j {LINEAR}\n{rules}COMMIT\n")
    return path


def linear_apply(spec: ListSpec, path: Path) -> list[str]:
    return [f"{tool(spec.family)}-restore", "-w", "-n", str(path)]


def linear_remove(family: int) -> list[list[str]]:
    """Flush first: with 100k rules in the table, ``-D OUTPUT`` alone takes seconds (iptables-nft
    reads the whole table), after ``-F`` it is instant."""
    t = tool(family)
    return [[t, "-w", "-F", LINEAR], [t, "-w", "-D", "OUTPUT", "-j", LINEAR], [t, "-w", "-X", LINEAR]]


def url(family: int, address: str | None = None) -> str:
    address = address or (WEB4 if family == 4 else WEB6)
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


def curl(family: int, address: str | None = None) -> list[str]:
    return ["curl", "-s", "--max-time", "5", url(family, address)]


def through(family: int) -> dict[str, Any]:
    """timer.py check: the listed web address answers, and sees the VPN server (the tunnel)."""
    return {"check": curl(family), "stdout": VPN4 if family == 4 else VPN6}


def refused(family: int) -> dict[str, Any]:
    """timer.py check: the listed web address is refused at once (the set or the rules hold)."""
    return {"check": curl(family), "returncode": CURL_REFUSED}


# ---- running ----------------------------------------------------------------------------------

def timed(lab: Lab, variants: dict[str, list[Any]], rounds: int, warmup: int,
          timeout: float) -> dict[str, list[dict[str, list[float]]]]:
    """``bench/timer.py`` in the client namespace: variants alternated A B, B A; per-step times, RSS."""
    spec = json.dumps({"rounds": rounds, "warmup": warmup, "variants": variants})
    done = lab.client(PY, "-I", str(BENCH / "timer.py"), stdin=spec, timeout=timeout)
    return json.loads(done.stdout)


def run_steps(lab: Lab, steps: list[list[str]], timeout: float = 300) -> None:
    for argv in steps:
        lab.client(*argv, timeout=timeout)


BUILTIN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def firewall_and_routes(lab: Lab) -> list[str]:
    """Rules, our chains, sets, policy rules and IPv4 routes, for before/after checks (a table that
    first appears empty, or a counter, is not a difference)."""
    lines = []
    for argv in (["iptables-save"], ["ip6tables-save"], ["ipset", "list", "-n"], ["ip", "-4", "rule"],
                 ["ip", "-6", "rule"], ["ip", "-4", "route", "show", "table", "all"]):
        for line in lab.client(*argv).stdout.splitlines():
            builtin = line.startswith(":") and line[1:].split()[0] in BUILTIN
            if builtin or line.startswith(("#", "*", "COMMIT")):
                continue
            lines.append(line.split(" [")[0] if line.startswith(":") else line)
    return sorted(lines)


def _differ(before: list[str], after: list[str]) -> str:
    gone, new = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    return f"gone {gone[:3]}, new {new[:3]}"


def choose_driver(lab: Lab, tunnel: Tunnel, path: Path, mode: str) -> RouteDriver:
    """``wgkill-up --routes`` if ``--help`` lists it and it works; else ``routes_driver`` (and why)."""
    listed = "--routes" in lab.client("wgkill-up", "--help").stdout
    if mode == "routes_driver" or (mode == "auto" and not listed):
        why = ("forced with --routes-driver routes_driver" if mode == "routes_driver"
               else "`wgkill-up --help` does not list --routes yet")
        return _lab_driver(lab, tunnel, path, why)
    flag = RouteDriver("wgkill-up IFACE --allowed-ips-file PATH --routes", True,
                       "`wgkill-up --help` lists --routes and it passed the functional check")
    try:
        _check_driver(lab, tunnel, flag, path)
    except (LabError, subprocess.TimeoutExpired) as exc:
        if mode == "flag":
            raise
        return _lab_driver(lab, tunnel, path,
                                  f"`wgkill-up --help` lists --routes, but it failed the check: {exc}")
    return flag


def _lab_driver(lab: Lab, tunnel: Tunnel, path: Path, why: str) -> RouteDriver:
    """The interim driver; its ``down`` reads the record of a first run (the same slot every time)."""
    done = lab.client(PY, "-I", "-m", "wgkill_lab.routes_driver", "up", tunnel.iface, "--file", str(path),
                      timeout=300)
    record = lab.tmp / "routes-record.json"
    record.write_text(json.dumps(json.loads(done.stdout)["record"]))
    lab.client(PY, "-I", "-m", "wgkill_lab.routes_driver", "down", str(record), timeout=300)
    driver = RouteDriver("python -m wgkill_lab.routes_driver up IFACE --file PATH "
                         "(set + routes, no kill switch)", False, why, str(record))
    _check_driver(lab, tunnel, driver, path)
    return driver


def _check_driver(lab: Lab, tunnel: Tunnel, driver: RouteDriver, path: Path) -> None:
    """Listed destination through the tunnel, another over the uplink; down leaves no trace."""
    before = firewall_and_routes(lab)
    run_steps(lab, driver.up(tunnel.iface, path))
    try:
        seen = (lab.whoami(4), lab.whoami(4, target=OUTSIDE4))
        if seen != (VPN4, CLIENT4):
            raise LabError(f"{driver.name}: listed/unlisted destination seen from {seen}, "
                           f"want ({VPN4}, {CLIENT4})")
    finally:
        run_steps(lab, driver.down(tunnel.iface))
    after = firewall_and_routes(lab)
    if after != before:
        raise LabError(f"{driver.name}: the firewall or the routes differ after its down step: "
                       f"{_differ(before, after)}")


# ---- 1. apply ---------------------------------------------------------------------------------

def measure_apply(lab: Lab, tunnel: Tunnel, spec: ListSpec, path: Path, linear: Path,
                  driver: RouteDriver, plan: Plan) -> dict[str, Any]:
    """Kill switch, routes, one rule per prefix: alternating rounds, each checked."""
    iface = tunnel.iface
    variants = {
        "wgkill": [["wgkill-up", iface, "--backend", "iptables", "--allowed-ips-file", str(path)],
                   refused(spec.family), ["wgkill-down", iface]],
        "routes": [*driver.up(iface, path), through(spec.family), *driver.down(iface)],
        "linear": [linear_apply(spec, linear), refused(spec.family), *linear_remove(spec.family)],
    }
    rounds = plan.rounds_large if spec.large else plan.rounds
    log(f"apply {spec.label}: kill switch, routes, one rule per prefix ({rounds} rounds)")
    before = firewall_and_routes(lab)
    res = timed(lab, variants, rounds, plan.warmup, timeout=120 + rounds * 120)
    after = firewall_and_routes(lab)
    if after != before:
        raise LabError(f"apply {spec.label}: the firewall or the routes differ afterwards: "
                       f"{_differ(before, after)}")
    return {"rounds": rounds, "warmup": plan.warmup, "up_steps": len(driver.up(iface, path)), "res": res}


# ---- 2. bring-up against plain wg-quick ---------------------------------------------------------

def measure_bringup(lab: Lab, tunnel: Tunnel, plain: Tunnel, small: Path, large: Path,
                    driver: RouteDriver, plan: Plan) -> dict[str, Any]:
    """wg-quick up (Table = off) + routes, against wg-quick up with the list as AllowedIPs."""
    def ours(path: Path) -> list[Any]:
        return [["wg-quick", "up", tunnel.iface], *driver.up(tunnel.iface, path), through(4),
                *driver.down(tunnel.iface), ["wg-quick", "down", tunnel.iface]]

    variants = {
        "wgkill 1k": ours(small),
        "wg-quick 1k": [["wg-quick", "up", plain.iface], through(4), ["ip", "link", "del", plain.iface]],
        "wgkill 100k": ours(large),
    }
    log(f"bring-up: wg-quick + routes vs plain wg-quick at 1k ({plan.bringup_rounds} rounds, no warm-up; "
        "a plain round takes ~25 s)")
    res = timed(lab, variants, plan.bringup_rounds, 0, timeout=300 + plan.bringup_rounds * 180)
    return {"rounds": plan.bringup_rounds, "up_steps": 1 + len(driver.up(tunnel.iface, small)), "res": res}


def try_large_wg_quick(lab: Lab, listed: list[str], timeout: float) -> dict[str, Any]:
    """One plain ``wg-quick up`` with a long list, stopped at ``timeout``: how far it got."""
    plain = lab.add_tunnel(hooks="", allowed_ips=", ".join(listed))
    log(f"plain wg-quick with {len(listed):,} prefixes, stopped after {timeout:.0f} s")
    started = time.perf_counter()
    try:
        lab.client("wg-quick", "up", plain.iface, timeout=timeout)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    seconds = time.perf_counter() - started
    shown = lab.client("ip", "-4", "route", "show", "dev", plain.iface, check=False).stdout
    installed = sum(1 for line in shown.splitlines() if line.strip())
    lab.client("ip", "link", "del", plain.iface, check=False)
    return {"count": len(listed), "timeout": timeout, "finished": finished, "seconds": seconds,
            "routes": installed}


# ---- 3. per-packet ----------------------------------------------------------------------------

def measure_packets(lab: Lab, tunnel: Tunnel, spec: ListSpec, path: Path, linear: Path,
                    driver: RouteDriver, plan: Plan) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Connections/s to an unlisted address over the uplink under each rule set, alternating."""
    iface = tunnel.iface
    variants: dict[str, tuple[list[list[str]], list[list[str]], str | None]] = {
        # name: (set up, tear down, what the listed web address must answer: None = refused)
        "none": ([], [], CLIENT4),
        "set": ([["wgkill-up", iface, "--backend", "iptables", "--allowed-ips-file", str(path)]],
                [["wgkill-down", iface]], None),
        "set + routes": (driver.up(iface, path), driver.down(iface), VPN4),
        "linear": ([linear_apply(spec, linear)], linear_remove(spec.family), None),
    }
    labels = {
        "none": "no rules",
        "set": f"wgkill kill switch, {spec.count:,}-prefix set",
        "set + routes": (f"wgkill kill switch + routes (set marks), {spec.count:,} prefixes"
                         if driver.with_kill_switch else
                         f"routes only (routes_driver: set marks, no kill switch), {spec.count:,} prefixes"),
        "linear": f"one rule per prefix, {spec.count:,} rules",
    }
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.isp_ns, PY, "-I", str(BENCH / "traffic.py"), "serve", "--host", OUTSIDE4,
         "--echo-port", str(ECHO_PORT), "--sink-port", str(SINK_PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=lab.env())
    lab.adopt(server)  # killed and reaped when the lab closes, whatever happens here

    def sample() -> float:
        done = lab.client(PY, "-I", str(BENCH / "traffic.py"), "connect", OUTSIDE4, "--port", str(ECHO_PORT),
                          "--seconds", str(plan.connect_seconds), timeout=plan.connect_seconds + 60)
        got = json.loads(done.stdout)
        if got["failed"] or not got["connections"]:
            raise LabError(f"per-packet: connections to {OUTSIDE4} failed: {got}")
        return float(got["per_second"])

    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            raise LabError("the per-packet traffic server did not start")
        names = list(variants)
        for name in names:  # once each, before timing: the rule set does what it is named for
            up, down, listed_answer = variants[name]
            run_steps(lab, up)
            try:
                seen = lab.whoami(4, timeout=3)
                if seen != listed_answer or lab.whoami(4, target=OUTSIDE4) != CLIENT4:
                    raise LabError(f"per-packet {name}: the listed address answered {seen!r}, "
                                   f"want {listed_answer!r}; or {OUTSIDE4} did not go over the uplink")
            finally:
                run_steps(lab, down)
        rounds = plan.rounds_large if spec.large else plan.rounds
        log(f"per-packet with {spec.label}: {', '.join(names)} ({rounds} rounds of "
            f"{plan.connect_seconds} s)")
        out: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            for name in (names if index % 2 == 0 else names[::-1]):
                up, down, _ = variants[name]
                run_steps(lab, up)
                try:
                    out[name].append(sample())
                finally:
                    run_steps(lab, down)
    finally:
        server.kill()
        server.wait(timeout=10)
    return out, labels


# ---- 4. where the time goes ------------------------------------------------------------------------

def profile(lab: Lab, tunnel: Tunnel, path: Path, driver: RouteDriver, rounds: int) -> dict[str, Any]:
    """In-process breakdown of the routes bring-up (``bench/profile_hook.py``, or routes_driver's own)."""
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        if driver.record is None:
            done = lab.client(PY, "-I", str(BENCH / "profile_hook.py"), "up", tunnel.iface,
                              "--allowed-ips-file", str(path), "--routes", timeout=300)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            if got["code"] != 0:
                raise LabError(f"profile: wgkill-up exited {got['code']}")
            spent = dict(got["spent"])
            for name, seconds in got["children"]:
                key = f"child: {name}"
                spent[key] = spent.get(key, 0.0) + seconds
            spent["total"] = got["total"]
            spent["children (count)"] = float(len(got["children"]))
            runs.append(spent)
        else:
            done = lab.client(*driver.up(tunnel.iface, path)[0], timeout=300)
            runs.append({f"routes_driver: {k}": v for k, v in json.loads(done.stdout)["timings"].items()})
        run_steps(lab, driver.down(tunnel.iface))
    keys = sorted({key for run in runs for key in run})
    return {key: sorted(run.get(key, 0.0) for run in runs)[len(runs) // 2] for key in keys} | {
        "rounds": float(rounds)}


# ---- all of it ----------------------------------------------------------------------------------

def measure(lab: Lab, plan: Plan) -> Results:
    """Every split-tunnel measurement in ``lab`` (a fresh one: this brings its own tunnels up)."""
    started = time.monotonic()
    results = Results(plan=asdict(plan))
    lab.isp("ip", "addr", "add", f"{OUTSIDE4}/32", "dev", "lo")
    tunnel = lab.add_tunnel(hooks="", extra="Table = off\n")
    files: dict[str, tuple[Path, list[str], Path]] = {}
    for spec in LISTS:
        path, listed = write_list(lab.tmp, spec)
        files[spec.label] = (path, listed, write_linear(lab.tmp, spec, listed))
        results.lists.append({**asdict(spec), "bytes": path.stat().st_size, "first": listed[1],
                              "last": listed[-1]})
    small = next(s for s in LISTS if s.family == 4 and s.count == 1_000)
    large = next(s for s in LISTS if s.large)
    plain = lab.add_tunnel(hooks="", allowed_ips=", ".join(files[small.label][1]))
    lab.wg_quick("up", tunnel)  # Table = off: nothing goes through it until routes do (checked then)

    driver = choose_driver(lab, tunnel, files[small.label][0], plan.routes_driver)
    results.driver = asdict(driver)
    log(f"routes driver: {driver.name} ({driver.why})")
    for spec in LISTS:
        path, _, linear = files[spec.label]
        results.apply[spec.label] = measure_apply(lab, tunnel, spec, path, linear, driver, plan)
    path, _, linear = files[large.label]
    results.packets, results.packet_labels = measure_packets(lab, tunnel, large, path, linear, driver, plan)
    results.profile = profile(lab, tunnel, path, driver, plan.profile_rounds)
    lab.wg_quick("down", tunnel)
    results.bringup = measure_bringup(lab, tunnel, plain, files[small.label][0], path, driver, plan)
    if plan.large_wg_quick:
        if plan.deadline is not None and time.monotonic() > plan.deadline:
            results.skipped.append(f"plain wg-quick with {plan.large_wg_quick:,} prefixes: skipped, "
                                   "the run's time budget was used up")
        else:
            big = next(s for s in LISTS if s.family == 4 and s.count >= plan.large_wg_quick)
            listed = files[big.label][1][:plan.large_wg_quick]
            results.large_wg_quick = try_large_wg_quick(lab, listed, plan.large_wg_quick_timeout)
    results.seconds = time.monotonic() - started
    return results


PYROUTE2_IPSET = """
import socket, sys, time
lines = open(sys.argv[1]).read().split()
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
lines = open(sys.argv[1]).read().split()
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


def alternatives(lab: Lab, tunnel: Tunnel, entries: int) -> dict[str, float]:
    """Rejected designs (standalone only, cited by wgkill/ipset.py and routes.py): pyroute2's ipset
    (one netlink request per entry) against ``ipset restore``; pyroute2 (its import) against two
    ``ip -batch`` runs for the policy rule and the two routes of each family."""
    path = lab.tmp / "alternatives.txt"
    path.write_text("\n".join(generate4(entries)) + "\n")
    out = {name: float(lab.client(PY, "-I", "-c", code, str(path), timeout=900).stdout)
           for name, code in (("ipset_restore_s", IPSET_RESTORE), ("pyroute2_ipset_s", PYROUTE2_IPSET))}
    if not lab.client("ip", "link", "show", tunnel.iface, check=False).returncode:
        for name, code in (("rules_ip_s", RULES_IP), ("rules_pyroute2_s", RULES_PYROUTE2)):
            said = lab.client(PY, "-I", "-c", code, tunnel.iface).stdout
            total, imported = (float(x) for x in said.split())
            out[name] = total
            if name == "rules_pyroute2_s":
                out["pyroute2_import_s"] = imported
            for flag in ("-4", "-6"):  # scratch rule and table: gone before the next
                lab.client("ip", flag, "rule", "del", "priority", "32099", check=False)
                lab.client("ip", flag, "route", "flush", "table", "52899", check=False)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one or two rounds each")
    parser.add_argument("--routes-driver", choices=("auto", "flag", "routes_driver"), default="auto")
    parser.add_argument("--alternatives", type=int, default=0, metavar="N",
                        help="also time pyroute2's ipset against ipset restore for N entries")
    parser.add_argument("--json", metavar="PATH", help="write the raw results here (default: stdout)")
    args = parser.parse_args()
    plan = (Plan(rounds=2, rounds_large=1, warmup=0, bringup_rounds=1, connect_seconds=0.5,
                 large_wg_quick_timeout=5, profile_rounds=1, routes_driver=args.routes_driver)
            if args.quick else Plan(routes_driver=args.routes_driver))
    with Lab() as lab:
        out: dict[str, Any] = asdict(measure(lab, plan))
        if args.alternatives:
            tunnel = lab.tunnels[0]
            lab.wg_quick("up", tunnel)  # measure() left it down
            out["alternatives"] = alternatives(lab, tunnel, args.alternatives)
    text = json.dumps(out, indent=2) + "\n"
    if args.json:
        Path(args.json).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
