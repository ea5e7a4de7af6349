"""cgroup v2, found where it is mounted, and the one cgroup wgkill owns: the exclusion.

The kernel records a socket's cgroup v2 when the socket is created; iptables
(``-m cgroup --path``) and nftables (``socket cgroupv2``) match on it. So the
exclusion is only as real as a cgroup v2 hierarchy: on a unified host it is
``/sys/fs/cgroup``; on a hybrid one (cgroup v1 controllers on a tmpfs at
``/sys/fs/cgroup``) it is ``/sys/fs/cgroup/unified``. Which one is read from
``/proc/self/mountinfo`` (``parse_mountinfo`` is the one parser of it); without
either, exclusion is refused and nothing is changed.

Only root can move a process into a cgroup here (``cgroup.procs`` is root's),
so only root can exclude.
"""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

from .errors import PrerequisiteError, UsageError, WgkillError
from .recordclass import dataclass

MOUNTINFO = "/proc/self/mountinfo"
CANDIDATES = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")  # unified host first, then hybrid
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where, what, and which part of the filesystem."""

    mount_point: str
    fstype: str
    root: str  # the part of the filesystem mounted there ("/" for a whole cgroup2 hierarchy)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """``/proc/PID/mountinfo`` (proc(5)): ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - FSTYPE SRC SUPER."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-", 6)
        except ValueError:
            continue  # not a mountinfo line
        if len(fields) <= dash + 1:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[dash + 1], _unescape(fields[3])))
    return mounts


def unified_root(mountinfo: str = MOUNTINFO) -> Path:
    """Where the cgroup v2 hierarchy is mounted; PrerequisiteError (nothing changed) if nowhere.

    The last mount on a mount point is the one in effect (a later mount hides an earlier one).
    """
    try:
        text = Path(mountinfo).read_text()
    except OSError as exc:
        raise PrerequisiteError(f"cannot read {mountinfo}: {exc.strerror}") from exc
    visible: dict[str, Mount] = {}
    for mount in parse_mountinfo(text):
        visible[mount.mount_point] = mount
    for point in CANDIDATES:
        found = visible.get(point)
        if found is not None and found.fstype == "cgroup2" and found.root == "/":
            return Path(point)
    raise PrerequisiteError(
        "cgroup v2 is not mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified: per-app exclusion "
        "needs it (the kernel matches a socket's cgroup v2); nothing changed"
    )


@dataclass(frozen=True)
class Member:
    """A process in the exclusion cgroup: its pid and what it runs."""

    pid: int
    command: str


def command_of(pid: int) -> str | None:
    """What process ``pid`` runs (its argv, or ``[comm]``); None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if words:
        return " ".join(words)
    try:
        return f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return None


@dataclass(frozen=True)
class Cgroup:
    """One cgroup directly under the v2 root, by name (``wgkill.names.exclude_cgroup``)."""

    root: Path
    name: str

    @property
    def path(self) -> Path:
        return self.root / self.name

    def exists(self) -> bool:
        return (self.path / "cgroup.procs").is_file()

    def create(self) -> bool:
        """Make the cgroup if it is not there; True if this call made it. May be called again."""
        try:
            self.path.mkdir(mode=0o755)
        except FileExistsError:
            return False
        except OSError as exc:
            raise PrerequisiteError(f"cannot create cgroup {self.path}: {exc.strerror}") from exc
        return True

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise WgkillError(f"cannot read {self.path}/cgroup.procs: {exc.strerror}") from exc
        return sorted(int(p) for p in text.split())

    def members(self) -> list[Member]:
        return [Member(pid, command_of(pid) or "?") for pid in self.pids()]

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) here; its future children are born here."""
        _move(self.path, pid)

    def remove(self) -> list[int]:
        """Move every process back to the root cgroup, then remove this one; returns the pids moved.

        Gone already is fine. Forks racing the move are caught by moving again.
        """
        moved: list[int] = []
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    _move(self.root, pid)
                    moved.append(pid)
                except UsageError:
                    pass  # exited meanwhile
        for _ in range(50):
            try:
                self.path.rmdir()
                return moved
            except FileNotFoundError:
                return moved
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise WgkillError(f"cannot remove cgroup {self.path}: {exc.strerror}") from exc
                time.sleep(0.02)  # a process that just exited is still being reaped
        raise WgkillError(f"cannot remove cgroup {self.path}: still busy")


def _move(directory: Path, pid: int) -> None:
    try:
        fd = os.open(directory / "cgroup.procs", os.O_WRONLY)
    except OSError as exc:
        raise WgkillError(f"cannot open {directory}/cgroup.procs: {exc.strerror}") from exc
    try:
        os.write(fd, f"{pid}\n".encode())
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise UsageError(f"no such process: {pid}") from exc
        raise WgkillError(f"cannot move process {pid} into {directory}: {exc.strerror}") from exc
    finally:
        os.close(fd)
