"""``make bench``: measure wgkill against its baselines in the namespace lab, write docs/benchmarks.md.

Every number is a ratio against a baseline measured in the same run, on the
same tunnel, alternating A/B (A B, B A, ...), medians of at least 10 rounds
(the split-tunnel section, ``bench/split_scale.py`` in a lab of its own, uses
fewer for its 100k cases and for plain wg-quick, whose 1k bring-up alone takes
over 20 s, and says so): other engineers' lab runs share this machine, and
pairing is what keeps the ratios honest under that noise. Absolute times are
printed beside them only to show scale; absolute targets are judged on them.

Runs under ``unshare --net`` (the lab refuses the initial namespace); all
traffic stays between the lab's namespaces and its documentation addresses.
"""

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import guard_repair
import split_scale

from wgkill_lab.netns import WEB4, WG_SOCKETS, Lab, LabError, Tunnel

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"
# This report's baselines are iptables rules (the article's lines, one rule per prefix) and its
# readings are iptables-save's, so it measures the iptables backend; bench/backends.py, the second
# half of `make bench`, compares the nft and iptables backends.
BACKEND = "--backend iptables"
ECHO_PORT, SINK_PORT = 5201, 5202
PY = sys.executable
X = "\N{MULTIPLICATION SIGN}"

# The article's kill switch, as four wg-quick hook lines (%i already substituted).
ARTICLE_UP = ("{tool} -I OUTPUT ! -o {i} -m mark ! --mark $(wg show {i} fwmark) "
              "-m addrtype ! --dst-type LOCAL -j REJECT")
ARTICLE_DOWN = ("{tool} -D OUTPUT ! -o {i} -m mark ! --mark $(wg show {i} fwmark) "
                "-m addrtype ! --dst-type LOCAL -j REJECT")


@dataclass
class Settings:
    rounds: int
    warmup: int
    packet_rounds: int
    connect_seconds: float
    bulk_megabytes: int
    bulk_seconds: float
    quick: bool
    split: split_scale.Plan  # section 4, in its own lab


FULL = Settings(rounds=15, warmup=2, packet_rounds=25, connect_seconds=1.5, bulk_megabytes=100,
                bulk_seconds=15.0, quick=False, split=split_scale.Plan())
QUICK = Settings(rounds=3, warmup=1, packet_rounds=3, connect_seconds=0.5, bulk_megabytes=20,
                 bulk_seconds=5.0, quick=True,
                 split=split_scale.Plan(rounds=2, rounds_large=1, warmup=0, bringup_rounds=1,
                                        connect_seconds=0.5, large_wg_quick_timeout=5, profile_rounds=1))
BUDGET_SECONDS = 12 * 60  # the whole `make bench`; optional parts are skipped past it


@dataclass
class Row:
    """One line of the summary table: ``ratio`` is ours/baseline, judged by ``meets``."""

    what: str
    baseline_label: str
    baseline: float | None
    ours: float | None
    unit: str
    target: str
    meets: Callable[[float, float], bool] | None
    note: str = ""
    paired: list[float] = field(default_factory=list)
    absolute: bool = False  # the target is on ``ours`` alone; ``paired`` then holds per-round values

    @property
    def iqr(self) -> tuple[float, float] | None:
        """Interquartile range of the per-round ratios (or values): how far the noise reaches."""
        if len(self.paired) < 2:
            return None
        q1, _, q3 = statistics.quantiles(self.paired, n=4)
        return q1, q3

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.ours is None:
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> str:
        """yes / **no** by the median; said so when the per-round IQR reaches across the target."""
        if self.meets is None or self.ours is None or (self.baseline is None and not self.absolute):
            return "n/a"
        base = 0.0 if self.absolute else self.baseline
        assert base is not None
        scale = 1.0 if self.absolute else base
        iqr = self.iqr
        ends = [self.meets(q * scale, base) for q in iqr] if iqr is not None else []
        if self.meets(self.ours, base):
            if ends and not all(ends):
                return "yes by the median, but the noise (IQR) reaches across the target"
            return "yes"
        if any(ends):
            return "not resolved: the noise is larger than the margin"
        return "**no**"


@dataclass
class Report:
    settings: Settings
    machine: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    memory: list[tuple[str, int]] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)

    def section(self, title: str, lines: list[str]) -> None:
        self.sections.append((title, lines))


def med(values: list[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ---- running things in the lab ------------------------------------------------

def time_in_client(lab: Lab, variants: dict[str, list[list[str]]], rounds: int, warmup: int,
                   timeout: float = 300) -> dict[str, list[dict[str, list[float]]]]:
    """Run ``bench/timer.py`` inside the client namespace: alternating variants, per-step times and RSS."""
    spec = json.dumps({"rounds": rounds, "warmup": warmup, "variants": variants})
    done = lab.client(PY, str(BENCH / "timer.py"), stdin=spec, timeout=timeout)
    return json.loads(done.stdout)


def totals(samples: list[dict[str, list[float]]]) -> list[float]:
    return [sum(s["seconds"]) for s in samples]


def step_median(samples: list[dict[str, list[float]]], index: int, key: str = "seconds") -> float:
    return med([s[key][index] for s in samples])


def peak_rss(samples: list[dict[str, list[float]]]) -> int:
    return int(max(max(s["maxrss_kb"]) for s in samples))


def paired_ratios(ours: list[float], base: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, base, strict=True) if b]


def spread(values: list[float]) -> str:
    return f"median {med(values):.3f}, min {min(values):.3f}, max {max(values):.3f}"


def ns_pids(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def daemon_pid(ns: str, iface: str) -> int | None:
    """The wireguard-go process serving ``iface`` in ``ns``."""
    for pid in ns_pids(ns):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"wireguard-go") and iface.encode() in argv:
            return pid
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wgkill_lines(lab: Lab) -> list[str]:
    return [ln for family in (4, 6) for ln in lab.save(family).splitlines() if "wgkill" in ln]


@contextmanager
def hold_sockets(tunnel: Tunnel) -> Iterator[None]:
    """Keep the tunnel's wireguard-go control sockets visibly in use for the whole run.

    ``wgkill_lab.netns.reap_stale()`` (run at the start of every ``make test``)
    unlinks /var/run/wireguard sockets that ``fuser`` says nobody uses, and
    ``fuser`` cannot see a listening socket from another network namespace: a
    concurrent test run would cut ``wg`` off from our tunnel mid-benchmark.
    An O_PATH descriptor on the socket file is something ``fuser`` does see.
    """
    fds = [os.open(WG_SOCKETS / f"{name}.sock", os.O_PATH)
           for name in (tunnel.iface, tunnel.server_iface)]
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)


# ---- machine -----------------------------------------------------------------------

def other_labs() -> int:
    """Lab namespaces of other processes alive right now: the noise we share the CPU with."""
    names = {p.name.rsplit("-", 1)[0] for p in Path("/run/netns").glob("wgk-*")}
    return len({n for n in names if not n.startswith(f"wgk-{os.getpid()}-")})


def machine_info() -> dict[str, str]:
    def out(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
        except FileNotFoundError:
            return "not installed"
        return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"

    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "nproc": str(os.cpu_count()),
        "CPU": model,
        "kernel": platform.release(),
        "iptables": out("iptables", "--version"),
        "python": sys.version.split()[0] + f" ({PY})",
        "wireguard-go": out("wireguard-go", "--version"),
        "wgkill": _wgkill_version(),
        "work tree": _git_revision(),
    }


def _git_revision() -> str:
    try:
        argv = ["git", "-C", str(ROOT), "describe", "--always", "--dirty=+uncommitted changes"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except FileNotFoundError:
        return "git not installed"
    return done.stdout.strip() if done.returncode == 0 else "not a git checkout"


def _wgkill_version() -> str:
    import wgkill

    where = Path(wgkill.__file__).resolve().parent
    kind = "installed" if "site-packages" in where.parts else "editable (work tree)"
    return f"{wgkill.__version__}, {kind}: {where}"


# ---- 1. hook cycle -------------------------------------------------------------------

def article_lines(iface: str) -> list[list[str]]:
    lines = [ARTICLE_UP.format(tool=t, i=iface) for t in ("iptables", "ip6tables")]
    lines += [ARTICLE_DOWN.format(tool=t, i=iface) for t in ("iptables", "ip6tables")]
    return [["bash", "-c", line] for line in lines]


def wgkill_lines_argv(iface: str) -> list[list[str]]:
    return [["bash", "-c", f"wgkill-up {iface} {BACKEND}"], ["bash", "-c", f"wgkill-down {iface}"]]


def check_hooks_work(lab: Lab, tunnel: Tunnel) -> None:
    """Both variants really change the firewall and leave it as they found it."""
    before = (lab.save(4), lab.save(6))
    up, down = wgkill_lines_argv(tunnel.iface)
    lab.client(*up)
    if len(wgkill_lines(lab)) < 4:
        raise LabError("wgkill-up did not install its chains")
    lab.client(*down)
    article = article_lines(tunnel.iface)
    for argv in article[:2]:
        lab.client(*argv)
    if sum("REJECT" in ln and tunnel.iface in ln for f in (4, 6) for ln in lab.save(f).splitlines()) != 2:
        raise LabError("the article's lines did not install their two rules")
    for argv in article[2:]:
        lab.client(*argv)
    if (lab.save(4), lab.save(6)) != before:
        raise LabError("a hook cycle did not restore the firewall")


def bench_hooks(lab: Lab, tunnel: Tunnel, s: Settings, report: Report) -> dict[str, Any]:
    iface = tunnel.iface
    check_hooks_work(lab, tunnel)
    before = (lab.save(4), lab.save(6))
    log("hook cycle: wgkill-up/down vs the article's four lines")
    res = time_in_client(lab, {"wgkill": wgkill_lines_argv(iface), "article": article_lines(iface)},
                         s.rounds, s.warmup)
    if (lab.save(4), lab.save(6)) != before:
        raise LabError("the firewall differs after the hook benchmark")
    ours, base = totals(res["wgkill"]), totals(res["article"])
    report.rows.append(Row("hook cycle (up + down)", "article's 4 lines", med(base), med(ours), "s",
                           f"≤ 1.5{X}", lambda o, b: o <= 1.5 * b, paired=paired_ratios(ours, base)))
    up_rss = int(max(x["maxrss_kb"][0] for x in res["wgkill"]))
    down_rss = int(max(x["maxrss_kb"][1] for x in res["wgkill"]))
    report.memory += [("`wgkill-up` (largest process of the hook)", up_rss), ("`wgkill-down`", down_rss),
                      ("article line (bash + iptables)", peak_rss(res["article"]))]
    lines = [
        f"Per-round ratios wgkill/article: {spread(paired_ratios(ours, base))}.",
        "",
        "| step | median | peak RSS |",
        "|---|---|---|",
        f"| `bash -c 'wgkill-up {iface} {BACKEND}'` | {ms(step_median(res['wgkill'], 0))} "
        f"| {int(max(s['maxrss_kb'][0] for s in res['wgkill']))} KiB |",
        f"| `bash -c 'wgkill-down {iface}'` | {ms(step_median(res['wgkill'], 1))} "
        f"| {int(max(s['maxrss_kb'][1] for s in res['wgkill']))} KiB |",
    ]
    for index, argv in enumerate(article_lines(iface)):
        lines.append(f"| `{' '.join(argv[2].split()[:2])} OUTPUT …` "
                     f"| {ms(step_median(res['article'], index))} "
                     f"| {int(max(x['maxrss_kb'][index] for x in res['article']))} KiB |")
    return {"ours": ours, "base": base, "res": res, "table": lines}


def bench_startup(lab: Lab, tunnel: Tunnel, s: Settings) -> dict[str, float]:
    """Medians of the pieces a hook is made of, each a fresh process, alternated round-robin."""
    noop = lab.tmp / "noop.restore"
    noop.write_text("*filter\nCOMMIT\n")
    variants = {
        "python -S -c pass (no site)": [PY, "-S", "-c", "pass"],
        "python -c pass (bare interpreter)": [PY, "-c", "pass"],
        "python -c 'import wgkill.cli.up'": [PY, "-c", "import wgkill.cli.up"],
        "python -c 'import wgkill.cli.up, jinja2' (the hook's imports)":
            [PY, "-c", "import wgkill.cli.up, jinja2"],
        "python -c 'import jinja2'": [PY, "-c", "import jinja2"],
        "python -c 'import pyroute2'": [PY, "-c", "import pyroute2"],
        f"wg show {tunnel.iface} dump": ["wg", "show", tunnel.iface, "dump"],
        "iptables-save -t filter": ["iptables-save", "-t", "filter"],
        "ip6tables-save -t filter": ["ip6tables-save", "-t", "filter"],
        "iptables-restore -w -n (empty transaction)": ["iptables-restore", "-w", "-n", str(noop)],
        "ip6tables-restore -w -n (empty transaction)": ["ip6tables-restore", "-w", "-n", str(noop)],
        "bash -c true": ["bash", "-c", "true"],
        "python -c 'import wgkill.cli.up, jinja2; os._exit(0)' (no interpreter teardown)":
            [PY, "-c", "import wgkill.cli.up, jinja2, os; os._exit(0)"],
    }
    log("start-up and component costs")
    res = time_in_client(lab, {k: [v] for k, v in variants.items()}, s.rounds, s.warmup)
    return {name: med(totals(samples)) for name, samples in res.items()} | {
        f"rss:{name}": peak_rss(samples) for name, samples in res.items()}


def importtime(lab: Lab, argv: list[str], before: Callable[[], object] | None = None,
               tries: int = 3) -> tuple[float, list[tuple[str, float]]]:
    """Total and top-level cumulative import times (s) from ``PYTHONPROFILEIMPORTTIME``, best of ``tries``.

    A one-shot profile on a shared machine is mostly noise; the fastest run is the one least disturbed.
    """
    best: tuple[float, list[tuple[str, float]]] | None = None
    for _ in range(tries):
        if before is not None:
            before()
        done = lab.client("env", "PYTHONPROFILEIMPORTTIME=1", *argv)
        top: list[tuple[str, float]] = []
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if match and len(match.group(3)) == 1:
                top.append((match.group(4), int(match.group(2)) / 1e6))
        total = sum(t for _, t in top)
        if best is None or total < best[0]:
            best = (total, sorted(top, key=lambda item: -item[1]))
    assert best is not None
    return best


def profile_hooks(lab: Lab, tunnel: Tunnel, rounds: int) -> dict[str, dict[str, float]]:
    """Medians of ``profile_hook.py``'s in-process breakdown, up and down alternating."""
    runs: dict[str, list[dict[str, Any]]] = {"up": [], "down": []}
    for _ in range(rounds):
        for verb in ("up", "down"):
            done = lab.client(PY, str(BENCH / "profile_hook.py"), verb, tunnel.iface)
            runs[verb].append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, dict[str, float]] = {}
    for verb, samples in runs.items():
        keys = sorted({k for sample in samples for k in sample["spent"]})
        out[verb] = {k: med([sample["spent"].get(k, 0.0) for sample in samples]) for k in keys}
        out[verb]["total"] = med([sample["total"] for sample in samples])
        out[verb]["children"] = float(len(samples[0]["children"]))
        out[verb]["names"] = " ".join(name for name, _ in samples[0]["children"])  # type: ignore[assignment]
        out[verb]["other Python in the body"] = med([
            sample["spent"]["hook body"] - sample["spent"]["child processes"]
            - sample["spent"].get("templates (all: import, compile, render)", 0.0)
            - sample["spent"].get("state file write (fsync)", 0.0) for sample in samples])
        for index, (name, _) in enumerate(samples[0]["children"]):
            out[verb][f"child {index + 1}: {name}"] = med([sample["children"][index][1] for sample in samples
                                                          if len(sample["children"]) > index])
    return out


def count_execs(lab: Lab, argv: list[str]) -> list[str] | None:
    """Programs ``argv`` executes, from ``strace -f -e trace=execve`` (None without strace)."""
    if shutil.which("strace") is None:
        return None
    trace = lab.tmp / "execve.trace"
    lab.client("strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(trace), *argv)
    names = []
    for line in trace.read_text().splitlines():
        match = re.search(r'execve\("([^"]+)".*\) = 0$', line)
        if match:
            names.append(os.path.basename(match.group(1)))
    return names


# ---- 2. per-packet cost ----------------------------------------------------------------

@contextmanager
def traffic_server(lab: Lab) -> Iterator[None]:
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.isp_ns, PY, str(BENCH / "traffic.py"), "serve", "--host", WEB4,
         "--echo-port", str(ECHO_PORT), "--sink-port", str(SINK_PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=lab.env())
    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            raise LabError("the benchmark's traffic server did not start")
        yield
    finally:
        server.kill()
        server.wait(timeout=10)


def set_rules(lab: Lab, tunnel: Tunnel, on: bool) -> None:
    """Apply or remove wgkill's rules, and check the firewall says so."""
    lab.client(*(["wgkill-up", tunnel.iface, *BACKEND.split()] if on else ["wgkill-down", tunnel.iface]))
    present = len(wgkill_lines(lab))
    if (on and present < 4) or (not on and present):
        raise LabError(f"expected wgkill rules {'present' if on else 'absent'}, found {present} lines")


def traffic(lab: Lab, *argv: str, timeout: float) -> dict[str, float]:
    done = lab.client(PY, str(BENCH / "traffic.py"), *argv, timeout=timeout)
    return json.loads(done.stdout)


def ab_traffic(lab: Lab, tunnel: Tunnel, rounds: int, measure: Callable[[], float],
               during: Callable[[], float] | None = None) -> dict[str, list[float]]:
    """``measure`` with wgkill's rules and without, alternating (on off, off on, ...)."""
    out: dict[str, list[float]] = {"rules": [], "none": [], "cpu_rules": [], "cpu_none": []}
    for index in range(rounds):
        for on in ((True, False) if index % 2 == 0 else (False, True)):
            set_rules(lab, tunnel, on)
            cpu = during() if during else 0.0
            value = measure()
            out["rules" if on else "none"].append(value)
            if during:
                out["cpu_rules" if on else "cpu_none"].append(during() - cpu)
    set_rules(lab, tunnel, False)
    return out


def bench_packets(lab: Lab, tunnel: Tunnel, s: Settings, report: Report) -> dict[str, Any]:
    client_wg = daemon_pid(lab.client_ns, tunnel.iface)
    server_wg = daemon_pid(lab.vpn_ns, tunnel.server_iface)
    fwmark = int(lab.client("wg", "show", tunnel.iface, "fwmark").stdout.strip(), 0)
    found: dict[str, Any] = {"fwmark": fwmark}
    c_to = s.connect_seconds + 30
    b_to = s.bulk_seconds + 60

    def connects(mark: int | None = None) -> Callable[[], float]:
        extra = ["--mark", str(mark)] if mark is not None else []
        def measure() -> float:
            got = traffic(lab, "connect", WEB4, "--port", str(ECHO_PORT), "--seconds", str(s.connect_seconds),
                          *extra, timeout=c_to)
            if got["failed"]:
                raise LabError(f"{got['failed']} connections failed: {got}")
            return got["per_second"]
        return measure

    def bulk(mark: int | None = None) -> Callable[[], float]:
        extra = ["--mark", str(mark)] if mark is not None else []
        def measure() -> float:
            got = traffic(lab, "bulk", WEB4, "--port", str(SINK_PORT), "--megabytes", str(s.bulk_megabytes),
                          "--seconds", str(s.bulk_seconds), *extra, timeout=b_to)
            if got["received"] != got["sent"]:
                raise LabError(f"bulk transfer lost bytes: {got}")
            found.setdefault("bulk_bytes", []).append(got["sent"])
            return got["mb_per_second"]
        return measure

    def wg_cpu() -> float:
        return cpu_seconds(client_wg) + cpu_seconds(server_wg)

    def both_cpu() -> tuple[float, float]:
        return cpu_seconds(client_wg), cpu_seconds(server_wg)

    with traffic_server(lab):
        log("per-packet: TCP connections/s through the tunnel, rules vs none")
        found["connect"] = ab_traffic(lab, tunnel, s.packet_rounds, connects())
        log("per-packet: bulk transfer through the tunnel, rules vs none")
        found["bulk"] = ab_traffic(lab, tunnel, s.packet_rounds, bulk(), during=wg_cpu)
        log("per-packet: the same on the uplink, around the tunnel (SO_MARK = the tunnel's fwmark)")
        found["connect_uplink"] = ab_traffic(lab, tunnel, s.packet_rounds, connects(fwmark))
        found["bulk_uplink"] = ab_traffic(lab, tunnel, s.packet_rounds, bulk(fwmark))
        # One more tunnel transfer, split by daemon, to show where the CPU goes.
        before, start = both_cpu(), time.perf_counter()
        rate = bulk()()
        wall = time.perf_counter() - start
        after = both_cpu()
        found["split_cpu"] = {"client": (after[0] - before[0]) / wall,
                              "server": (after[1] - before[1]) / wall, "rate": rate}

    c, b = found["connect"], found["bulk"]
    report.rows.append(Row("TCP connections/s through the tunnel", "no rules",
                           med(c["none"]), med(c["rules"]), "conn/s", f"within 3% (≥ 0.97{X})",
                           lambda o, base: o >= 0.97 * base, paired=paired_ratios(c["rules"], c["none"])))
    report.rows.append(Row(f"bulk TCP through the tunnel ({s.bulk_megabytes} MB)", "no rules",
                           med(b["none"]), med(b["rules"]), "MB/s", f"within 3% (≥ 0.97{X})",
                           lambda o, base: o >= 0.97 * base, paired=paired_ratios(b["rules"], b["none"])))
    return found


# ---- 3. status ---------------------------------------------------------------------------

def status_has_json(lab: Lab) -> bool:
    return "--json" in lab.client("wgkill-status", "--help").stdout


def bench_status(lab: Lab, tunnel: Tunnel, s: Settings, report: Report) -> dict[str, Any]:
    set_rules(lab, tunnel, True)
    iface = tunnel.iface
    variants = {
        "status": [["wgkill-status", iface]],
        "reads": [["bash", "-c", "iptables-save -t filter && ip6tables-save -t filter"]],
    }
    has_json = status_has_json(lab)
    if has_json:
        variants["json"] = [["wgkill-status", "--json", iface]]
    log(f"status: wgkill-status{' and --json' if has_json else ''} vs the two table reads")
    res = time_in_client(lab, variants, s.rounds, s.warmup)
    set_rules(lab, tunnel, False)
    base = med(totals(res["reads"]))
    report.rows.append(Row("`wgkill-status IFACE`", "iptables-save + ip6tables-save", base,
                           med(totals(res["status"])), "s", "< 0.3 s absolute",
                           lambda o, _b: o < 0.3))
    report.memory.append(("`wgkill-status`", peak_rss(res["status"])))
    if has_json:
        report.rows.append(Row("`wgkill-status --json IFACE`", "iptables-save + ip6tables-save", base,
                               med(totals(res["json"])), "s", "< 0.3 s absolute", lambda o, _b: o < 0.3))
        report.memory.append(("`wgkill-status --json`", peak_rss(res["json"])))
    else:
        report.rows.append(Row("`wgkill-status --json IFACE`", "—", None, None, "s", "< 0.3 s absolute", None,
                               note="not measured: `--json` does not exist yet (measured automatically "
                                    "once `wgkill-status --help` lists it)"))
    return {"res": res, "has_json": has_json}


# ---- 4. split-tunnel scale (bench/split_scale.py measures, this formats) -----------------------------

def _sums(samples: list[dict[str, list[float]]], first: int, count: int | None = None) -> list[float]:
    """Per round, the time of steps ``first`` .. ``first + count`` (to the end without ``count``)."""
    end = None if count is None else first + count
    return [sum(sample["seconds"][first:end]) for sample in samples]


def _rss(samples: list[dict[str, list[float]]], first: int, count: int | None = None) -> int:
    end = None if count is None else first + count
    return int(max(max(sample["maxrss_kb"][first:end]) for sample in samples))


def _kib(value: int) -> str:
    return f"{value:,} KiB"


def split_failed(report: Report, why: str) -> None:
    """The split section could not run: its rows say so, and no number is reported."""
    for what, base, unit in (("split: kill switch for 1k/10k/100k prefixes", "one rule per prefix", "s"),
                             ("split: bring-up with 1k IPv4 prefixes", "plain wg-quick", "s"),
                             ("split: bring-up with 100k IPv4 prefixes", "—", "s"),
                             ("split: TCP connections/s with the 100k set", "one rule per prefix", "conn/s")):
        report.rows.append(Row(what, base, None, None, unit, "as in the large-split issue", None,
                               note=f"failed: {why}"))
    report.section("4. Split-tunnel scale", [
        f"**The split-tunnel run failed; no number from it is reported.** Error: `{why}`"])


def bench_split_scale(report: Report, parts: dict[str, float] | None,
                      plan: split_scale.Plan) -> split_scale.Results | None:
    """Issue 8 item 3 in a lab of its own (two tunnels with ``Table = off`` and plain AllowedIPs)."""
    try:
        with Lab() as lab:
            results = split_scale.measure(lab, plan)
    except (LabError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        why = " ".join(str(exc).split())[:400]
        log(f"split-tunnel run failed: {why}")
        split_failed(report, why)
        return None
    split_rows(results, report)
    report.section("4. Split-tunnel scale", split_analysis(results, parts))
    return results


def split_rows(r: split_scale.Results, report: Report) -> None:
    """Summary rows and peak memory from the split-tunnel results."""
    for spec in r.lists:
        a = r.apply[spec["label"]]["res"]
        ours, base = _sums(a["wgkill"], 0, 1), _sums(a["linear"], 0, 1)
        report.rows.append(Row(f"split: kill switch for {spec['label']} prefixes (apply)",
                               "one rule per prefix, one restore", med(base), med(ours), "s", "none set",
                               None, paired=paired_ratios(ours, base)))
    if r.bringup is not None:
        b, k = r.bringup["res"], r.bringup["up_steps"]
        ours, plain = _sums(b["wgkill 1k"], 0, k), _sums(b["wg-quick 1k"], 0, 1)
        report.rows.append(Row("split: bring-up with 1k IPv4 prefixes (wg-quick up + routes)",
                               "plain wg-quick, a route per prefix", med(plain), med(ours), "s",
                               f"≥ 20{X} faster (≤ 0.05{X})", lambda o, base: o <= 0.05 * base,
                               paired=paired_ratios(ours, plain)))
        large = _sums(b["wgkill 100k"], 0, k)
        report.rows.append(Row("split: bring-up with 100k IPv4 prefixes (wg-quick up + routes)", "—", None,
                               med(large), "s", "< 1 s absolute", lambda o, _b: o < 1.0, paired=large,
                               absolute=True))
    p = r.packets
    report.rows.append(Row("split: TCP connections/s, 100k set vs one rule per prefix",
                           "one rule per prefix (100k rules)", med(p["linear"]), med(p["set"]), "conn/s",
                           "none set", None, paired=paired_ratios(p["set"], p["linear"])))
    report.rows.append(Row("split: TCP connections/s, 100k set vs no rules", "no rules", med(p["none"]),
                           med(p["set"]), "conn/s", "none set", None,
                           paired=paired_ratios(p["set"], p["none"])))
    report.rows.append(Row("split: TCP connections/s, 100k set + routes vs no rules", "no rules",
                           med(p["none"]), med(p["set + routes"]), "conn/s", "none set", None,
                           paired=paired_ratios(p["set + routes"], p["none"])))
    large_label = next(spec["label"] for spec in r.lists if spec["count"] >= 100_000)
    a, k = r.apply[large_label]["res"], r.apply[large_label]["up_steps"]
    routes_cmd = "`wgkill-up --routes`" if r.driver["with_kill_switch"] else "`routes_driver up`"
    report.memory += [
        ("`wgkill-up --allowed-ips-file` (100k prefixes)", _rss(a["wgkill"], 0, 1)),
        (f"{routes_cmd} (100k prefixes)", _rss(a["routes"], 0, k)),
        ("`wgkill-down` (after 100k prefixes)", _rss(a["wgkill"], 1)),
        ("`iptables-restore`, one rule per prefix (100k rules)", _rss(a["linear"], 0, 1)),
    ]
    if r.bringup is not None:
        report.memory.append(("plain `wg-quick up` (1k prefixes, largest process)",
                              _rss(r.bringup["res"]["wg-quick 1k"], 0, 1)))


def split_analysis(r: split_scale.Results, parts: dict[str, float] | None) -> list[str]:
    """Section 4 of docs/benchmarks.md."""
    plan = r.plan
    flag = r.driver["with_kill_switch"]
    routes_name = ("`wgkill-up IFACE --allowed-ips-file PATH --routes` (kill switch, set and routes)" if flag
                   else "`python -m wgkill_lab.routes_driver up IFACE --file PATH` (set and routes only: "
                        "no kill switch; `wgkill-up --routes` is not measured)")
    lines = [
        "A lab of its own: a wireguard-go tunnel brought up with `Table = off` and AllowedIPs "
        "`0.0.0.0/0, ::/0` (wg-quick adds no route), and a second one with the 1k list as AllowedIPs "
        "for plain "
        "wg-quick. The lists are generated: the lab's web address (so every round can check that a listed "
        "destination is refused, or answered through the tunnel) plus prefixes of lengths /32 to /28 "
        "in turn, "
        "each at the start of a block twice its size so that nothing collapses (checked with wgkill's "
        "parser), "
        "in 198.18.0.0/15 and, once that is full, 240.0.0.0/4; IPv6 /48s from 2001:db8:4000::. No traffic is "
        "sent to them. Five distinct prefix lengths: `hash:net` probes once per distinct length, so a real "
        "list with more lengths costs more per packet than measured here.",
        "",
        "| list | prefixes | file | first generated | last generated |",
        "|---|---|---|---|---|",
        *(f"| {x['label']} | {x['count']:,} | {x['bytes'] / 1e6:.2f} MB | {x['first']} | {x['last']} |"
          for x in r.lists),
        "",
        f"Routes: {routes_name}. Why this one: {r.driver['why']}.",
        "",
        f"Rounds: {plan['rounds']} (after {plan['warmup']} warm-up) for the 1k and 10k lists, "
        f"**{plan['rounds_large']} for the 100k cases** (a 100k round of the apply loop takes about 4 s, and "
        f"the per-packet loop changes 100k-entry rule sets 3 times a round), **{plan['bringup_rounds']} for "
        "the bring-up against plain wg-quick, without warm-up** (one plain wg-quick round with 1k prefixes "
        "takes over 20 s). Every round alternates the variants (A B C, C B A, ...).",
        "",
        "### Applying the kill switch and the routes",
        "",
        "`wgkill-up IFACE --allowed-ips-file PATH` (`ipset restore` of a `hash:net` set, then the kill "
        "switch) "
        "against the baseline: one `-A bench-linear -d PREFIX -j REJECT` per prefix, jumped to first from "
        "`OUTPUT`, in one `iptables-restore -w -n`. Each round checks the listed web address: refused under "
        "both, answered through the tunnel with the routes. Removal of the baseline is `-F`, then `-D "
        "OUTPUT`, "
        "then `-X` (with 100k rules in the table, `-D` first takes seconds).",
        "",
        "| list | rounds | wgkill-up --allowed-ips-file | one rule per prefix | ratio | per-round ratios "
        "| routes up | wgkill-down | routes down | baseline removal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in r.lists:
        entry = r.apply[spec["label"]]
        a, k = entry["res"], entry["up_steps"]
        ours, base = _sums(a["wgkill"], 0, 1), _sums(a["linear"], 0, 1)
        lines.append(
            f"| {spec['label']} | {entry['rounds']} | {ms(med(ours))} | {ms(med(base))} "
            f"| {med(ours) / med(base):.2f}{X} | {spread(paired_ratios(ours, base))} "
            f"| {ms(med(_sums(a['routes'], 0, k)))} | {ms(med(_sums(a['wgkill'], 1)))} "
            f"| {ms(med(_sums(a['routes'], k)))} | {ms(med(_sums(a['linear'], 1)))} |")
    lines += ["", "Peak RSS (largest process of each command, over all rounds):", "",
              "| list | wgkill-up --allowed-ips-file | routes up | wgkill-down | one rule per prefix "
              "(restore) |",
              "|---|---|---|---|---|"]
    for spec in r.lists:
        a, k = r.apply[spec["label"]]["res"], r.apply[spec["label"]]["up_steps"]
        lines.append(f"| {spec['label']} | {_kib(_rss(a['wgkill'], 0, 1))} | {_kib(_rss(a['routes'], 0, k))} "
                     f"| {_kib(_rss(a['wgkill'], 1))} | {_kib(_rss(a['linear'], 0, 1))} |")
    if parts is not None:
        startup = parts["python -c 'import wgkill.cli.up'"]
        small = r.apply[r.lists[0]["label"]]["res"]
        lines += ["", "At 1k the single restore wins on applying: `wgkill-up` is a Python process, and a "
                  f"fresh `python -c 'import wgkill.cli.up'` alone takes {ms(startup)} (section 1) of its "
                  f"{ms(med(_sums(small['wgkill'], 0, 1)))}. The set wins per packet (below)."]
    lines += split_bringup(r) + split_packets(r) + split_profile(r, parts)
    if r.skipped:
        lines += ["", *(f"- {item}" for item in r.skipped)]
    lines += ["", f"The split-tunnel lab ran {r.seconds:.0f} s."]
    return lines


def split_bringup(r: split_scale.Results) -> list[str]:
    lines = ["", "### Bringing the tunnel up: wgkill against plain wg-quick", ""]
    if r.bringup is None:
        return [*lines, "Not measured."]
    b, k = r.bringup["res"], r.bringup["up_steps"]
    routes = "`wgkill-up --routes`" if r.driver["with_kill_switch"] else "`routes_driver up`"
    ours, plain = _sums(b["wgkill 1k"], 0, k), _sums(b["wg-quick 1k"], 0, 1)
    lines += [
        f"wgkill: `wg-quick up` (Table = off, AllowedIPs `0.0.0.0/0, ::/0`) then {routes}; plain: "
        "`wg-quick up` "
        "with the list as AllowedIPs and no Table line (one `ip route add` per prefix, after an `ip "
        "route show` "
        "each). Each round checks the listed web address answers through the tunnel, then takes the "
        "tunnel down "
        f"(wgkill: its down step and `wg-quick down`; plain: `ip link del`). {r.bringup['rounds']} rounds.",
        "",
        "| variant | wg-quick up | routes | bring-up total | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name in ("wgkill 1k", "wgkill 100k"):
        lines.append(f"| {name} | {ms(med(_sums(b[name], 0, 1)))} | {ms(med(_sums(b[name], 1, k - 1)))} "
                     f"| {ms(med(_sums(b[name], 0, k)))} | {_kib(_rss(b[name], 0, k))} |")
    lines.append(f"| plain wg-quick 1k | {ms(med(plain))} | (included) | {ms(med(plain))} "
                 f"| {_kib(_rss(b['wg-quick 1k'], 0, 1))} |")
    lines += ["", f"Plain wg-quick over wgkill at 1k: {med(plain) / med(ours):.0f}{X} "
              f"(per-round: {spread(paired_ratios(plain, ours))})."]
    big = r.large_wg_quick
    if big is not None:
        if big["finished"]:
            lines.append(f"Plain wg-quick with {big['count']:,} prefixes: up in {big['seconds']:.1f} s.")
        else:
            lines.append(f"Plain wg-quick with {big['count']:,} prefixes: **did not finish in "
                         f"{big['timeout']:.0f} s** (stopped; {big['routes']:,} of its routes were "
                         "installed by "
                         "then). Not tried at 100k.")
    return lines


def split_packets(r: split_scale.Results) -> list[str]:
    p = r.packets
    base = med(p["none"])
    seconds = r.plan["connect_seconds"]
    lines = [
        "", "### Per-packet cost with 100k prefixes", "",
        f"TCP connections/s (connect, one byte each way, close with RST; {seconds} s per sample) from "
        "the client "
        f"to {split_scale.OUTSIDE4}, on the isp's loopback and in no list: it leaves over the uplink "
        "and every "
        "packet traverses the whole OUTPUT path (the kill switch's chain to its end, or all the baseline's "
        "rules). Before timing, each rule set was checked once: the listed web address refused (set, "
        "one rule "
        "per prefix), answered through the tunnel (routes) or directly (no rules). "
        f"{len(p['none'])} rounds, alternating.",
        "",
        "| rule set | connections/s (median) | vs no rules | per-round ratios vs no rules |",
        "|---|---|---|---|",
    ]
    for name, values in p.items():
        lines.append(f"| {r.packet_labels[name]} | {med(values):,.0f} | {med(values) / base:.3f} "
                     f"| {spread(paired_ratios(values, p['none']))} |")
    ratio = med(p["set"]) / med(p["linear"])
    lines += ["", f"The set against one rule per prefix: {ratio:.0f}{X} the connections per second "
              f"(per-round: {spread(paired_ratios(p['set'], p['linear']))})."]
    return lines


PROFILE_KEYS = ("import wgkill.cli", "parse the prefix file", "merge with AllowedIPs (collapse again)",
                "ipset sync (payload + ipset restore)", "routes setup (ip, iptables)",
                "templates (all: import, compile, render)", "state file write (fsync)", "child processes",
                "hook body", "total")


def split_profile(r: split_scale.Results, parts: dict[str, float] | None) -> list[str]:
    prof = r.profile
    lines = ["", "### Where the 100k routes bring-up goes", ""]
    if not r.driver["with_kill_switch"]:
        lines += ["`routes_driver`'s own timings (medians):", "", "| step | median |", "|---|---|"]
        return lines + [f"| {key.split(': ', 1)[1]} | {ms(value)} |" for key, value in prof.items()
                        if key.startswith("routes_driver: ")]
    lines += [
        f"`bench/profile_hook.py up IFACE --allowed-ips-file PATH --routes` with the 100k list, medians of "
        f"{int(prof['rounds'])} runs: wall time inside the process after interpreter start-up. The "
        "split steps "
        "include their own child processes; \"child processes\" is all of them together.",
        "", "| part | median |", "|---|---|",
        *(f"| {key} | {ms(prof[key])} |" for key in PROFILE_KEYS if key in prof),
        *(f"| child: {key.split(': ', 1)[1]} (all calls) | {ms(value)} |" for key, value in prof.items()
          if key.startswith("child: ")),
        f"| child processes (count) | {int(prof.get('children (count)', 0))} |",
    ]
    if parts is not None:
        lines.append(f"| interpreter start-up (`python -c pass`, section 1) | "
                     f"{ms(parts['python -c pass (bare interpreter)'])} |")
    return lines


def split_budget(r: split_scale.Results, parts: dict[str, float] | None) -> list[str]:
    """"What bounds it" for the split-tunnel targets that were missed, from the measured breakdown."""
    notes: list[str] = []
    if r.bringup is None:
        return notes
    b, k = r.bringup["res"], r.bringup["up_steps"]
    values = _sums(b["wgkill 100k"], 0, k)
    large, over = med(values), sum(value >= 1.0 for value in values)
    label = next(spec["label"] for spec in r.lists if spec["count"] >= 100_000)
    entry = r.apply[label]
    alone = med(_sums(entry["res"]["routes"], 0, entry["up_steps"]))
    if large >= 1.0 or over:
        wgq, step = med(_sums(b["wgkill 100k"], 0, 1)), med(_sums(b["wgkill 100k"], 1, k - 1))
        head = (f"- The 100k bring-up target is missed: {ms(large)}" if large >= 1.0 else
                f"- The 100k bring-up target is met by the median only, {ms(large)}: {over} of {len(values)} "
                f"rounds took 1 s or more, and the same routes step alone had a median of {ms(alone)} in the "
                f"apply loop ({entry['rounds']} rounds). The bring-up")
        prof = r.profile
        if r.driver["with_kill_switch"]:
            merge = prof.get("merge with AllowedIPs (collapse again)", 0.0)
            parse = prof.get("parse the prefix file", 0.0)
            sync = prof.get("ipset sync (payload + ipset restore)", 0.0)
            restore = prof.get("child: ipset", 0.0)
            routes = prof.get("routes setup (ip, iptables)", 0.0)
            start = parts["python -c pass (bare interpreter)"] if parts else 0.0
            imports = prof.get("import wgkill.cli", 0.0)
            floor = wgq + start + restore + routes
            notes.append(
                f"{head} = `wg-quick up` {ms(wgq)} + "
                f"`wgkill-up --routes` {ms(step)}. What bounds it (profile medians above): parsing the file "
                f"{ms(parse)}, collapsing the already collapsed list again when merging it with AllowedIPs "
                f"{ms(merge)}, the set sync {ms(sync)} (of which the `ipset restore` process "
                f"{ms(restore)}), the "
                f"routes {ms(routes)}, imports {ms(imports)}"
                + (f", interpreter start-up {ms(start)}" if parts else "") + ". What would move it: skipping "
                f"the second collapse when AllowedIPs add nothing to the file (saves up to {ms(merge)}), a "
                f"faster parse (up to {ms(parse)}); `wg-quick up`, the interpreter, `ipset restore` and the "
                f"routes leave a floor of about {ms(floor)}.")
        else:
            notes.append(f"{head} = `wg-quick up` {ms(wgq)} + routes_driver {ms(step)} (no kill switch); "
                         "`wgkill-up --routes` was not measured.")
    ours, plain = _sums(b["wgkill 1k"], 0, k), _sums(b["wg-quick 1k"], 0, 1)
    if med(ours) > 0.05 * med(plain):
        notes.append(f"- The 1k bring-up target (≥ 20{X} faster than plain wg-quick) is missed: "
                     f"{ms(med(ours))} against {ms(med(plain))}; of ours, `wg-quick up` takes "
                     f"{ms(med(_sums(b['wgkill 1k'], 0, 1)))} and the routes step "
                     f"{ms(med(_sums(b['wgkill 1k'], 1, k - 1)))}.")
    return notes


# ---- writing docs/benchmarks.md -----------------------------------------------------------------

def ratio_text(ratio: float | None, sign: str = X) -> str:
    """Two decimals, or three significant digits below 0.1 (a 100x speed-up is not "0.01")."""
    if ratio is None:
        return "—"
    return f"{ratio:.3g}{sign}" if ratio < 0.1 else f"{ratio:.2f}{sign}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return ms(value)
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


def hook_analysis(iface: str, hooks: dict[str, Any], parts: dict[str, float],
                  prof: dict[str, dict[str, float]],
                  imports: dict[str, tuple[float, list[tuple[str, float]]]],
                  execs: dict[str, list[str] | None]) -> list[str]:
    bare = parts["python -c pass (bare interpreter)"]
    lines = [
        *hooks["table"],
        "",
        "### Start-up and the pieces a hook is made of",
        "",
        "Each a fresh process in the client namespace, medians, alternated round-robin.",
        "",
        "| process | median | Δ vs bare interpreter | peak RSS |",
        "|---|---|---|---|",
    ]
    for name, value in parts.items():
        if name.startswith("rss:"):
            continue
        delta = f"+{ms(value - bare)}" if name.startswith("python -c 'import") else ""
        lines.append(f"| `{name}` | {ms(value)} | {delta} | {int(parts['rss:' + name])} KiB |")
    lines += ["", "### Inside one hook process (`bench/profile_hook.py`, medians)", "",
              "Wall time inside the Python process after interpreter start-up, split by where it goes. "
              "Light wrappers, no profiler.", "",
              "| part | wgkill-up | wgkill-down |", "|---|---|---|"]
    keys = ["import wgkill.cli", "hook body", "child processes", "templates (all: import, compile, render)",
            "jinja2 import + environment", "jinja2 template compile", "state file write (fsync)",
            "other Python in the body", "total"]
    for key in keys:
        lines.append(f"| {key} | {ms(prof['up'].get(key, 0.0))} | {ms(prof['down'].get(key, 0.0))} |")
    counts = (int(prof["up"]["children"]), int(prof["down"]["children"]))
    lines += [f"| child processes (count) | {counts[0]} | {counts[1]} |",
              "", "Each child process, in order:", "", "| hook | child | median |", "|---|---|---|"]
    for verb in ("up", "down"):
        lines += [f"| wgkill-{verb} | {key.split(': ', 1)[1]} | {ms(value)} |"
                  for key, value in prof[verb].items() if key.startswith("child ") and ": " in key]
    lines.append("")
    lines += ["### Import time (`PYTHONPROFILEIMPORTTIME`, best of 3 runs each; the profiler inflates it)",
              ""]
    for label, (total, top) in imports.items():
        shown = ", ".join(f"{name} {t * 1000:.1f}" for name, t in top[:8])
        lines.append(f"- {label}: **{total * 1000:.1f} ms** of imports; top-level (ms): {shown}")
    lines += ["", "### Processes executed (`strace -f -e trace=execve`)", ""]
    for label, names in execs.items():
        if names is None:
            lines.append(f"- {label}: not counted (strace not installed)")
        else:
            lines.append(f"- {label}: **{len(names)}** execve: {' '.join(names)}")
    b = hook_budget(hooks, parts, prof)
    cycle = b["cycle"]
    rest = cycle - b["interpreters"] - b["imports"] - b["jinja2"] - b["children"] - b["teardown"]

    def part(name: str, value: float) -> str:
        return f"{name} ≈ {ms(value)} ({value / cycle:.0%})"

    teardown = "interpreter teardown" + (" (skipped: os._exit)" if hooks_skip_teardown() else "")

    lines += [
        "",
        "### What dominates",
        "",
        f"Of a {ms(cycle)} wgkill cycle (medians above): "
        f"{part('two interpreter start-ups', b['interpreters'])}, "
        f"{part('importing the CLI modules (fresh-process delta, twice)', b['imports'])}, "
        f"{part('jinja2 (import, compile, render)', b['jinja2'])}, "
        f"{part('child processes', b['children'])} "
        f"({int(prof['up']['children'] + prof['down']['children'])} of them), "
        f"{part(teardown, b['teardown'])}; "
        + (f"{part('the rest', rest)} (two bash execs, the entry-point script, the hooks' own Python). "
           if rest > 0 else
           f"these parts, medians of separate runs, add up to {(cycle - rest) / cycle:.0%} of the cycle "
           "(on a busy machine separately measured medians do not add up exactly). ") +
        f"The article's whole cycle is {ms(b['article'])}; without imports, jinja2 and teardown the floor "
        f"would be {ms(b['floor'])} ({b['floor'] / b['article']:.2f}{X}).",
    ]
    return lines


def packet_analysis(p: dict[str, Any], s: Settings) -> list[str]:
    c, b, cu, bu = p["connect"], p["bulk"], p["connect_uplink"], p["bulk_uplink"]
    cpu_r, cpu_n = med(b["cpu_rules"]), med(b["cpu_none"])
    split = p["split_cpu"]
    mb = med(p.get("bulk_bytes", [0])) / 1e6
    lines = [
        f"Client: one sequential Python program (`bench/traffic.py`) in the client namespace; server: the "
        f"same file in the isp namespace on {WEB4}, reached through the tunnel (wireguard-go on both ends) "
        f"and the VPN server's masquerade. Connections: connect, one byte each way, close with RST, for "
        f"{s.connect_seconds} s per sample. Bulk: {s.bulk_megabytes} MB per sample, stopped at "
        f"{s.bulk_seconds} s (median sent {mb:.0f} MB); the sink's byte count is checked. "
        f"{s.packet_rounds} rounds of each, alternating.",
        "",
        "| path | measurement | no rules | wgkill rules | ratio | per-round ratios |",
        "|---|---|---|---|---|---|",
    ]
    for path, name, data, unit in (("tunnel", "connections/s", c, ""), ("tunnel", "bulk MB/s", b, ""),
                                   ("uplink (fwmark, around the tunnel)", "connections/s", cu, ""),
                                   ("uplink (fwmark, around the tunnel)", "bulk MB/s", bu, "")):
        ratio = med(data["rules"]) / med(data["none"])
        lines.append(f"| {path} | {name} | {med(data['none']):,.1f}{unit} | {med(data['rules']):,.1f}{unit} "
                     f"| {ratio:.3f} | {spread(paired_ratios(data['rules'], data['none']))} |")
    tunnel_bulk, uplink_bulk = med(b["none"]), med(bu["none"])
    lines += [
        "",
        "**The bottleneck is wireguard-go in userspace**: the same sender reaches "
        f"{uplink_bulk:,.0f} MB/s on the uplink but {tunnel_bulk:,.0f} MB/s through the tunnel "
        f"({tunnel_bulk / uplink_bulk:.1%}), and {med(cu['none']):,.0f} vs {med(c['none']):,.0f} "
        f"connections/s. During a tunnel transfer the two wireguard-go daemons together use "
        f"{cpu_n:.2f} CPU-seconds per sample without rules and {cpu_r:.2f} with them; measured alone, the "
        f"client's daemon ran at {split['client']:.0%} and the server's at {split['server']:.0%} of one core "
        f"(this machine has {os.cpu_count()} cores, shared with the sender, the sink and other jobs). "
        "The rules are evaluated twice per packet on the client (the plaintext packet leaving the tunnel "
        "interface, the encrypted one leaving the uplink), both times matching within the first three rules.",
    ]
    return lines


def write_doc(report: Report, path: Path) -> None:
    s = report.settings
    out = ["# Benchmarks", "",
           "Written by `make bench` (`bench/run.py`); do not edit by hand. Every ratio is wgkill against a "
           "baseline measured in the same run, alternating A/B, medians of "
           f"{s.rounds} rounds (after {s.warmup} warm-up) unless a section says otherwise.", ""]
    if s.quick:
        out += ["> **QUICK RUN** (`--quick`): too few rounds to quote; run `make bench` for real numbers.",
                ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in report.machine.items()]
    out += ["", "## Summary", "",
            "| measurement | baseline | baseline value | wgkill | ratio | per-round ratios, IQR | target "
            "| met? |",
            "|---|---|---|---|---|---|---|---|"]
    for row in report.rows:
        ratio = ratio_text(row.ratio)
        iqr = f"{ratio_text(row.iqr[0], '')} to {ratio_text(row.iqr[1], '')}" if row.iqr else "—"
        if row.absolute and row.iqr:
            iqr = f"{fmt(row.iqr[0], row.unit)} to {fmt(row.iqr[1], row.unit)} (values)"
        if row.note:
            out.append(f"| {row.what} | {row.baseline_label} | — | — | — | — | {row.target} | {row.note} |")
        else:
            out.append(f"| {row.what} | {row.baseline_label} | {fmt(row.baseline, row.unit)} "
                       f"| {fmt(row.ours, row.unit)} | {ratio} | {iqr} | {row.target} | {row.met} |")
    out += ["", "Ratio: median of wgkill over median of the baseline. IQR: the middle half of the per-round "
            "ratios (each round measures both, back to back); where it reaches across the target, the "
            "difference is smaller than the noise of this run. For an absolute target, the IQR is that of "
            "the per-round values. Rounds per measurement: see each section (the split-tunnel section uses "
            "fewer for its 100k cases and for plain wg-quick, and says how many)."]
    out += ["", "## Peak memory (max RSS of the largest process of each command)", "",
            "| command | peak RSS |", "|---|---|"]
    out += [f"| {name} | {kb:,} KiB |" for name, kb in report.memory]
    for title, lines in report.sections:
        out += ["", f"## {title}", "", *lines]
    out += ["", "## Closing note", "", *report.closing, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))


# ---- the verdict -------------------------------------------------------------------------------

def hook_budget(hooks: dict[str, Any], parts: dict[str, float],
                prof: dict[str, dict[str, float]]) -> dict[str, float]:
    """Where a wgkill cycle's time goes, and its floor, from the medians measured above."""
    article = sum(step_median(hooks["res"]["article"], i) for i in range(4))
    bare = parts["python -c pass (bare interpreter)"]
    both = "python -c 'import wgkill.cli.up, jinja2' (the hook's imports)"
    no_teardown = "python -c 'import wgkill.cli.up, jinja2; os._exit(0)' (no interpreter teardown)"
    kids = prof["up"].get("child processes", 0) + prof["down"].get("child processes", 0)
    return {
        "cycle": step_median(hooks["res"]["wgkill"], 0) + step_median(hooks["res"]["wgkill"], 1),
        "article": article,
        "interpreters": 2 * bare,
        "bash": 2 * parts["bash -c true"],
        # a fresh ``python -c 'import wgkill.cli.up'`` minus the bare interpreter, once per hook: the
        # in-process figure misses what profile_hook.py itself imported first (json, typing)
        "imports": 2 * max(0.0, parts["python -c 'import wgkill.cli.up'"] - bare),
        "jinja2": sum(prof[v].get("templates (all: import, compile, render)", 0) for v in ("up", "down")),
        "children": kids,
        # the hooks' own teardown: none when their entry point ends in os._exit
        "teardown": 0.0 if hooks_skip_teardown() else 2 * max(0.0, parts[both] - parts[no_teardown]),
        "floor": 2 * bare + 2 * parts["bash -c true"] + kids,
    }


def hooks_skip_teardown() -> bool:
    """Whether the console scripts' entry point ends in ``os._exit`` (no interpreter teardown)."""
    import inspect

    import wgkill.cli

    return "os._exit(" in inspect.getsource(wgkill.cli.entry)


def closing_note(report: Report, budget: dict[str, float] | None) -> list[str]:
    notes = []
    for row in report.rows:
        if row.note:
            notes.append(f"- {row.what}: {row.note}.")
        elif row.ratio is not None:
            faster = f", {1 / row.ratio:.0f}{X} faster" if row.unit == "s" and row.ratio < 0.5 else ""
            notes.append(f"- {row.what}: {ratio_text(row.ratio)} ({fmt(row.ours, row.unit)} vs "
                         f"{fmt(row.baseline, row.unit)}{faster}), target {row.target}: {row.met}.")
        elif row.absolute and row.ours is not None:
            notes.append(f"- {row.what}: {fmt(row.ours, row.unit)}, target {row.target}: {row.met}.")
    hook_row = next((row for row in report.rows if row.what == "hook cycle (up + down)"), None)
    if budget is not None and hook_row is not None and hook_row.ratio is not None and hook_row.ratio > 1.5:
        b = budget
        skips = hooks_skip_teardown()
        bounds = [f"imports the CLI ({ms(b['imports'])} for both)"]
        moves = []
        if b["jinja2"] >= 0.001:
            bounds.append(f"imports jinja2 and compiles its templates ({ms(b['jinja2'])} for both)")
            moves.append(f"no jinja2 on the hook path (saves {ms(b['jinja2'])})")
        if skips:
            bounds.append("exits without interpreter teardown already (`os._exit` in the entry point)")
        else:
            bounds.append(f"tears the interpreter down ({ms(b['teardown'])} for both, measured as `exit` vs "
                          "`os._exit`)")
            moves.append(f"exit without teardown after flushing (saves {ms(b['teardown'])})")
        moves.append(f"a leaner import graph for the hooks (saves up to {ms(b['imports'])})")
        notes.append(
            "- The hook-cycle target is missed. What bounds it: each hook is a Python process that "
            + ", ".join(bounds) + ". What would move it, each measured above: " + ", ".join(moves) + ". "
            "Even then, two interpreter start-ups, two bash execs and the "
            f"{ms(b['children'])} of iptables/wg child processes leave a floor of {ms(b['floor'])}, "
            f"{b['floor'] / b['article']:.2f}{X} the "
            f"article's {ms(b['article'])}: the 1.5{X} target needs fewer or cheaper child processes "
            "as well, or no second Python process.")
    return notes


def measure(lab: Lab, tunnel: Tunnel, s: Settings, report: Report) -> dict[str, Any]:
    """Every measurement, in order, on one live tunnel; the rows go into ``report``."""
    iface = tunnel.iface
    got: dict[str, Any] = {
        "hooks": bench_hooks(lab, tunnel, s, report),
        "parts": bench_startup(lab, tunnel, s),
        "prof": profile_hooks(lab, tunnel, max(5, s.rounds // 2) if not s.quick else 2),
        "imports": {
            "`python -c 'import wgkill.cli.up'`": importtime(lab, [PY, "-c", "import wgkill.cli.up"]),
            f"`wgkill-up {iface}` (the real hook, on the live tunnel)": importtime(
                lab, ["wgkill-up", iface, *BACKEND.split()]),
            f"`wgkill-down {iface}` (each time after a `wgkill-up`)": importtime(
                lab, ["wgkill-down", iface], before=lambda: lab.client("wgkill-up", iface, *BACKEND.split())),
        },
        "execs": {
            f"`bash -c 'wgkill-up {iface} {BACKEND}'`": count_execs(
                lab, ["bash", "-c", f"wgkill-up {iface} {BACKEND}"]),
            f"`bash -c 'wgkill-down {iface}'`": count_execs(lab, ["bash", "-c", f"wgkill-down {iface}"]),
            "the article's four lines": _article_execs(lab, iface),
        },
    }
    got["packets"] = bench_packets(lab, tunnel, s, report)
    got["status"] = bench_status(lab, tunnel, s, report)
    return got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, short samples: for development")
    parser.add_argument("--output", type=Path, default=DOC, help=f"default {DOC.relative_to(ROOT)}")
    parser.add_argument("--routes-driver", choices=("auto", "flag", "routes_driver"), default="auto",
                        help="split routes: `wgkill-up --routes` when --help lists it and it works (auto), "
                             "always (flag), or the lab's `python -m wgkill_lab.routes_driver` "
                             "(routes_driver)")
    parser.add_argument("--only", choices=("all", "split"), default="all",
                        help="development: run only the split-tunnel section (4)")
    parser.add_argument("--raw", type=Path, metavar="PATH",
                        help="also write the split-tunnel section's per-round values here (JSON)")
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    report = Report(s, machine_info())
    started = time.monotonic()
    plan = dataclasses.replace(s.split, routes_driver=args.routes_driver,
                               deadline=started + BUDGET_SECONDS - s.split.large_wg_quick_timeout - 30)
    load_start, labs_start = os.getloadavg(), other_labs()
    got: dict[str, Any] | None = None
    if args.only == "all":
        with Lab() as lab:
            tunnel = lab.add_tunnel(hooks="")  # no hooks: the benchmark runs them itself
            lab.wg_quick("up", tunnel)
            lab.wait_handshake(tunnel)
            log(f"lab up: {tunnel.iface} in {lab.client_ns}")
            with hold_sockets(tunnel):
                got = measure(lab, tunnel, s, report)
        report_main_sections(report, got, tunnel.iface, s)
    log(f"sections 1-3: {time.monotonic() - started:.0f} s; split-tunnel scale next")
    split = bench_split_scale(report, got["parts"] if got else None, plan)
    if split is not None and args.raw is not None:
        args.raw.write_text(json.dumps(dataclasses.asdict(split), indent=1) + "\n")
    if args.only == "all":
        log("guard repair next (bench/guard_repair.py)")
        rounds = 3 if s.quick else 10
        measured = guard_repair.results(rounds, ("nft", "iptables"))
        report.section("5. Guard repair", guard_repair.section(measured))
    load_end, labs_end = os.getloadavg(), other_labs()
    report.section("Noise", [
        f"Load average (1/5/15 min) at the start {'/'.join(f'{v:.2f}' for v in load_start)}, "
        f"at the end {'/'.join(f'{v:.2f}' for v in load_end)}; other labs alive: "
        f"{labs_start} at the start, {labs_end} at the end. Other jobs share the CPU, which is why every "
        "comparison alternates A/B and the paired per-round ratios are shown beside the medians. "
        f"Whole run: {time.monotonic() - started:.0f} s."])
    budget = hook_budget(got["hooks"], got["parts"], got["prof"]) if got else None
    report.closing = closing_note(report, budget)
    if split is not None:
        report.closing += split_budget(split, got["parts"] if got else None)
    if args.only != "all":
        report.closing.append("- Sections 1-3 not run (`--only split`): not a full benchmark.")
    write_doc(report, args.output)
    log(f"wrote {args.output}")
    for line in report.closing:
        print(line)
    return 0 if split is not None else 1


def report_main_sections(report: Report, got: dict[str, Any], iface: str, s: Settings) -> None:
    """Sections 1-3 of docs/benchmarks.md from what ``measure`` returned."""
    hooks, parts, prof, imports, execs, packets, status = (got[k] for k in (
        "hooks", "parts", "prof", "imports", "execs", "packets", "status"))
    report.section("1. Hook cycle", [
        f"`bash -c 'wgkill-up {iface} {BACKEND}'` then `bash -c 'wgkill-down {iface}'` against the "
        "article's four "
        "lines (`iptables`/`ip6tables -I OUTPUT ! -o IFACE -m mark ! --mark $(wg show IFACE fwmark) "
        "-m addrtype ! --dst-type LOCAL -j REJECT`, then the two `-D`), each through `bash -c` as wg-quick "
        "runs hook lines, on the same live wireguard-go tunnel, timed from inside the client namespace "
        "(`bench/timer.py`).",
        "",
        *hook_analysis(iface, hooks, parts, prof, imports, execs)])
    report.section("2. Per-packet cost", packet_analysis(packets, s))
    status_lines = [f"`wgkill-status {iface}` with the kill switch engaged (verdict OK), against the two "
                    "table reads it has to do anyway. The target is absolute.", ""]
    if not status["has_json"]:
        status_lines.append("`wgkill-status --json` does not exist yet; the runner detects it from `--help` "
                            "and measures it in the same A/B loop once it does.")
    report.section("3. Status", status_lines)


def _article_execs(lab: Lab, iface: str) -> list[str] | None:
    names: list[str] = []
    for argv in article_lines(iface):
        got = count_execs(lab, argv)
        if got is None:
            return None
        names += got
    return names


if __name__ == "__main__":
    sys.exit(main())
