"""Run a command with a chosen cgroup layout under /sys/fs/cgroup, inside the lab's own mount namespace.

``ip netns exec`` gives each command a private mount namespace with a fresh
/sys, where no cgroup filesystem is mounted. This puts one back before it
execs the command, as a host would have it:

* ``hybrid``: a tmpfs at /sys/fs/cgroup and cgroup2 at /sys/fs/cgroup/unified
  (this machine's layout; nft resolves cgroupv2 paths only under /sys/fs/cgroup/);
* ``unified``: cgroup2 at /sys/fs/cgroup;
* ``v1``: a tmpfs with one cgroup v1 hierarchy (``name=systemd``), no cgroup2;
* ``none``: nothing mounted.

Usage: ``python -m wgkill_lab.cgroupfs LAYOUT -- COMMAND [ARGS...]``. It refuses
to run outside a private mount namespace (it would mount on the machine).
"""

import os
import subprocess
import sys
from pathlib import Path

LAYOUTS = ("hybrid", "unified", "v1", "none")
ROOT = "/sys/fs/cgroup"


def cgroup_of(pid: int | str = "self") -> str | None:
    """The cgroup v2 path of ``pid`` (``0::/PATH`` in /proc/PID/cgroup), None if it has none."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True, text=True)


def _private_mount_namespace() -> bool:
    try:
        return os.stat("/proc/self/ns/mnt").st_ino != os.stat("/proc/1/ns/mnt").st_ino
    except PermissionError:
        return True  # pid 1's namespace is not ours to read: we are not in it
    except OSError:
        return False


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] not in LAYOUTS or argv[1] != "--":
        sys.exit(f"usage: cgroupfs {{{','.join(LAYOUTS)}}} -- COMMAND [ARGS...]")
    if not _private_mount_namespace():
        sys.exit("cgroupfs: refusing to mount outside a private mount namespace (use ip netns exec)")
    layout, command = argv[0], argv[2:]
    if layout == "unified":
        _mount("-t", "cgroup2", "cgroup2", ROOT)
    elif layout in ("hybrid", "v1"):
        _mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", ROOT)
        sub = "unified" if layout == "hybrid" else "systemd"
        os.mkdir(f"{ROOT}/{sub}")
        if layout == "hybrid":
            _mount("-t", "cgroup2", "cgroup2", f"{ROOT}/unified")
        else:
            _mount("-t", "cgroup", "-o", "none,name=systemd", "cgroup", f"{ROOT}/systemd")
    os.execvp(command[0], command)  # noqa: S606 - argv as given


if __name__ == "__main__":
    main(sys.argv[1:])
