"""Time commands inside a lab namespace, alternating variants, one child at a time.

Run by ``bench/run.py`` through ``ip netns exec`` so that the namespace entry
itself (a mount namespace and bind mounts per call) is paid once, not inside
every measured command: wg-quick runs its hooks from within the namespace too.
Stdlib only, so the timer's own start-up never depends on the code it measures.

Input (stdin, JSON): ``{"rounds": N, "warmup": W, "variants": {name: [step, ...]}}``; a step
is an argv list (timed), or ``{"check": argv, "stdout": TEXT, "returncode": N}`` (both keys
optional, default exit 0): run untimed in its place, every round, and the run fails unless the
command's stripped stdout equals TEXT and its exit code is N. Checks prove that what was timed
did what it should (a route through the tunnel, a destination refused), each round.
Output (stdout, JSON): ``{name: [{"seconds": [...per timed step], "cpu": [...], "maxrss_kb": [...]}, ...]}``
with one entry per measured round. Round ``i`` runs the variants in order when
``i`` is even and in reverse order when it is odd (A B, B A, ...), so a trend in
the machine's load does not favour whichever variant always runs first.
"""

import json
import os
import subprocess
import sys
import tempfile
import time


class StepFailed(RuntimeError):
    pass


def run_step(argv: list[str]) -> tuple[float, float, int]:
    """Run one command; return its wall time, its CPU time (user + system, the whole tree: steadier
    than wall time on a busy machine) and the peak RSS (KiB) of its largest process.

    ``os.wait4`` reports the child's own usage merged with the descendants it
    reaped, so ``ru_maxrss`` is the biggest process of the whole tree (a
    ``bash -c`` line, the Python it execs, the iptables-restore it runs).
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            said = err.read().decode(errors="replace").strip()[-400:]
            raise StepFailed(f"{argv!r} exited {proc.returncode}: {said}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def run_check(check: dict[str, object]) -> None:
    """An untimed step: its exit code and (if given) its stripped stdout must be as expected."""
    argv = check["check"]
    assert isinstance(argv, list)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                              timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"check {argv!r} did not finish in 60 s") from exc
    want_rc = check.get("returncode", 0)
    want_out = check.get("stdout")
    got = done.stdout.strip()
    if done.returncode != want_rc or (want_out is not None and got != want_out):
        wanted = f" (want {want_out!r})" if want_out is not None else ""
        raise StepFailed(f"check {argv!r}: exit {done.returncode} (want {want_rc}), "
                         f"stdout {got[:200]!r}{wanted}")


def run_variant(steps: list[list[str] | dict[str, object]]) -> dict[str, list[float] | list[int]]:
    seconds: list[float] = []
    cpu: list[float] = []
    rss: list[int] = []
    for argv in steps:
        if isinstance(argv, dict):
            run_check(argv)
            continue
        elapsed, used, maxrss = run_step(argv)
        seconds.append(elapsed)
        cpu.append(used)
        rss.append(maxrss)
    return {"seconds": seconds, "cpu": cpu, "maxrss_kb": rss}


def main() -> int:
    spec = json.load(sys.stdin)
    names = list(spec["variants"])
    results: dict[str, list[dict[str, list[float] | list[int]]]] = {name: [] for name in names}
    for _ in range(spec.get("warmup", 1)):
        for name in names:
            run_variant(spec["variants"][name])
    for index in range(spec["rounds"]):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(run_variant(spec["variants"][name]))
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepFailed as exc:
        print(f"timer: {exc}", file=sys.stderr)
        sys.exit(1)
