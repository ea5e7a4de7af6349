"""Where one hook's time goes, measured inside the hook's own process (no profiler overhead).

Run by ``bench/run.py`` in the client namespace as ``profile_hook.py up|down IFACE [ARGS...]``
(ARGS go to the CLI as they are, e.g. ``--allowed-ips-file PATH --routes``).
It times the imports of the CLI module, then calls the CLI body with light
wrappers around the things that can cost: child processes
(``runner._spawn``), jinja2 (import, template compilation, rendering), the
state file (lock, atomic write) and, for split tunnels, the prefix file's
parsing, the merge with AllowedIPs, the set sync and the routes (each of the
last two includes its own child processes). Everything else is "other Python".
Prints one JSON object. Interpreter start-up happens before this file runs and is
measured separately (``python -c pass``).
"""

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

Timings = dict[str, float]


def _timed(into: Timings, key: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            into[key] = into.get(key, 0.0) + time.perf_counter() - start
    return wrapper


def main() -> int:
    verb, iface, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    spent: Timings = {}
    children: list[tuple[str, float]] = []
    start = time.perf_counter()
    if verb == "up":
        from wgkill.cli.up import run
    else:
        from wgkill.cli.down import run
    spent["import wgkill.cli"] = time.perf_counter() - start

    import wgkill.firewall.iptables
    import wgkill.ipset
    import wgkill.killswitch
    import wgkill.prefixes
    import wgkill.rendercache
    import wgkill.routes
    import wgkill.runner
    import wgkill.state
    import wgkill.templating

    real_spawn = wgkill.runner._spawn  # the one place a wgkill process starts a child

    def child(argv: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        begin = time.perf_counter()
        try:
            return real_spawn(argv, stdin)
        finally:
            children.append((os.path.basename(argv[0]), time.perf_counter() - begin))

    wgkill.runner._spawn = child

    real_environment = wgkill.templating.environment

    def environment() -> Any:
        if "jinja2 import + environment" in spent:
            return real_environment()
        begin = time.perf_counter()
        env = real_environment()
        spent["jinja2 import + environment"] = time.perf_counter() - begin
        env.get_template = _timed(spent, "jinja2 template compile", env.get_template)
        return env

    wgkill.templating.environment = environment  # type: ignore[assignment]
    wgkill.firewall.iptables.render = _timed(  # type: ignore[assignment]
        spent, "templates (all: import, compile, render)", wgkill.firewall.iptables.render)
    wgkill.state.write_atomic = _timed(spent, "state file write (fsync)", wgkill.state.write_atomic)
    for module, name, key in (
        (wgkill.prefixes, "load_file", "parse the prefix file"),
        (wgkill.rendercache, "prefix_list", "parse the prefix file"),  # or take it from the cache
        (wgkill.killswitch, "decide_split", "merge with AllowedIPs (collapse again)"),
        (wgkill.ipset, "sync", "ipset sync (payload + ipset restore)"),
        (wgkill.ipset, "destroy", "ipset destroy"),
        (wgkill.routes, "setup", "routes setup (ip, iptables)"),
        (wgkill.routes, "teardown", "routes teardown (ip, iptables)"),
    ):
        if hasattr(module, name):  # the code under test may have moved on: time what is there
            setattr(module, name, _timed(spent, key, getattr(module, name)))

    begin = time.perf_counter()
    code = run([iface, *extra])
    spent["hook body"] = time.perf_counter() - begin
    spent["child processes"] = sum(seconds for _, seconds in children)
    print(json.dumps({"code": code, "spent": spent, "children": children,
                      "total": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
