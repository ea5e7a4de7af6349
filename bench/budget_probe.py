"""Where one hook's milliseconds go, measured inside its own process: ``budget_probe.py VERB ARGS...``.

Run by ``bench/budget.py`` in the client namespace, in place of ``wgkill-VERB ARGS...``
(VERB: up, down, status). Times the import of the CLI module, then runs its body
with wall-clock wrappers around the steps that can cost: the state file (load,
save), the kernel (nftables in-process through libnftables, child processes),
and for status its netlink and guard reads. What is left of the body is "deciding"
(plain Python). Imports the body makes when it first needs a module count as imports. Every
loaded wgkill module's reference to a wrapped function is
replaced, so ``from .libnft import run_text`` is timed too. Interpreter start and
exit are outside this process: ``budget.py`` measures them separately. Prints one
JSON object (milliseconds). Only what the interpreter loads at start (os, sys, time)
is imported before the clock starts; json after it stops.
"""

import os
import sys
import time

STEPS = (  # (module, function, the budget line it counts towards)
    ("wgkill.state", "load", "state file"),
    ("wgkill.state", "save", "state file"),
    ("wgkill.state", "remove", "state file"),
    ("wgkill.firewall.libnft", "run_text", "kernel: nftables in-process"),
    ("wgkill.runner", "run", "kernel: child processes"),  # the one place that runs commands
    ("wgkill.guardlink", "follow", "guard socket"),
)


def wrap_everywhere(module_name: str, name: str, into: dict[str, float], key: str) -> None:
    module = sys.modules.get(module_name)
    original = getattr(module, name, None) if module else None
    if original is None:
        return  # the code under test moved on: time what is there

    def timed(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[key] = into.get(key, 0.0) + time.perf_counter() - start

    for loaded in [m for n, m in sys.modules.items() if n.startswith("wgkill")]:
        for attr, value in list(vars(loaded).items()):
            if value is original:
                setattr(loaded, attr, timed)


def main() -> int:
    verb, argv = sys.argv[1], sys.argv[2:]
    spent: dict[str, float] = {}
    start = time.perf_counter()
    module = __import__(f"wgkill.cli.{verb}", fromlist=["run"])
    for module_name, _, _ in STEPS:
        __import__(module_name)  # the body would import it (or already has): counted as imports
    spent["imports"] = time.perf_counter() - start
    before_body = spent["imports"]
    for module_name, name, key in STEPS:
        wrap_everywhere(module_name, name, spent, key)
    import builtins

    real_import, depth = builtins.__import__, [0]

    def timed_import(*args: object, **kwargs: object) -> object:  # modules the body imports when used
        depth[0] += 1
        begin = time.perf_counter()
        try:
            return real_import(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent["imports"] = spent.get("imports", 0.0) + time.perf_counter() - begin

    builtins.__import__ = timed_import  # type: ignore[assignment]
    begin = time.perf_counter()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(devnull, 1)  # status prints its verdict: not ours to show
    try:
        code = module.run(argv)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    body = time.perf_counter() - begin
    builtins.__import__ = real_import
    counted = spent.get("imports", 0.0) - before_body + sum(v for k, v in spent.items() if k != "imports")
    spent["deciding (other Python)"] = max(0.0, body - counted)
    import json

    print(json.dumps({"code": code, "ms": {k: v * 1000 for k, v in spent.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
