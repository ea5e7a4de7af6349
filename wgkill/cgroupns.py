"""Run one command with cgroup2 mounted at /sys/fs/cgroup, in a mount namespace of its own.

nft 1.0.6 resolves a ``socket cgroupv2`` path only under /sys/fs/cgroup/ and
fails on hybrid hosts, where cgroup2 is at /sys/fs/cgroup/unified ("cgroupv2
path fails"). The kernel keeps the cgroup's id, not the path, so a rule loaded
from a private mount namespace where cgroup2 sits at /sys/fs/cgroup matches
the same cgroup for everyone. ``argv_for`` builds the command line:
``unshare --mount --propagation private -- PYTHON -I -m wgkill.cgroupns --
nft -f -``; this module then mounts and execs. Nothing outside that private
namespace is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import PrerequisiteError
from .runner import find

TARGET = "/sys/fs/cgroup"


def argv_for(command: Sequence[str], root: Path) -> list[str]:
    """``command`` as is where cgroup2 is already at /sys/fs/cgroup, else wrapped to mount it there."""
    if str(root) == TARGET:
        return list(command)
    unshare = find("unshare")
    if unshare is None:
        raise PrerequisiteError("unshare not found on PATH: install util-linux")
    return [unshare, "--mount", "--propagation", "private", "--",
            sys.executable, "-I", "-m", "wgkill.cgroupns", "--", *command]


def _own_mount_namespace() -> bool:
    try:
        return os.stat("/proc/self/ns/mnt").st_ino != os.stat("/proc/1/ns/mnt").st_ino
    except PermissionError:
        return True  # pid 1's namespace is not readable from here: it is not ours
    except OSError:
        return False


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2 or argv[0] != "--":
        sys.exit("usage: python -m wgkill.cgroupns -- COMMAND [ARGS...]")
    if not _own_mount_namespace():
        sys.exit("wgkill.cgroupns: refusing to mount outside a private mount namespace (use unshare)")
    mount = find("mount")
    if mount is None:
        sys.exit("wgkill.cgroupns: mount not found on PATH: install mount")
    done = subprocess.run([mount, "-t", "cgroup2", "cgroup2", TARGET], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"wgkill.cgroupns: cannot mount cgroup2 at {TARGET}: {done.stderr.strip()}")
    os.execvp(argv[1], list(argv[1:]))  # noqa: S606 - argv as given, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
