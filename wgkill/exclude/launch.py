"""wgkill-exclude's work: put one process in the exclusion cgroup, say so, and run the command.

Everything that can fail is checked before the first change: root, cgroup v2,
a tunnel that allows exclusion, the user, the command. Then, under the state
lock (so ``wgkill-down`` cannot remove the cgroup meanwhile), the process
moves in and one line is written to ``STATE_DIR/exclude.log`` and returned
for stderr. ``run`` then drops to the user like ``runuser`` (supplementary
groups, gid, uid) with a minimal environment and execs the command, whose
exit code becomes ours.

What moves and what does not is the kernel's rule: a process's children
born after the move are in the cgroup; its existing sockets keep the cgroup
they were created in, so connections already open stay in the tunnel (or
blocked, after a drop); only sockets created afterwards are excluded.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import state as statefile
from ..cgroups import Cgroup, command_of, unified_root
from ..errors import CommandNotFoundError, ExecError, PrerequisiteError, UsageError
from ..kernel import require_root
from ..names import exclude_cgroup
from ..recordclass import dataclass
from ..runner import find
from . import ExclusionRecord, recorded_exclusions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import NoReturn

LOG_NAME = "exclude.log"
KEPT_FROM_CALLER = ("TERM", "LANG")
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Account:
    """Who the command runs as, from the passwd database."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


def account(user: str | None) -> Account:
    """USER (a name or a numeric uid), or root when none is given; UsageError if unknown."""
    try:
        entry = pwd.getpwuid(0) if user is None else (
            pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user))
    except (KeyError, OverflowError) as exc:
        raise UsageError(f"--user {user!r}: no such user") from exc
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell or "/bin/sh")


def environment(who: Account, caller: Mapping[str, str]) -> dict[str, str]:
    """HOME, USER, LOGNAME, SHELL from passwd; a fixed PATH; TERM and LANG kept if set. Nothing else."""
    env = {"HOME": who.home, "USER": who.name, "LOGNAME": who.name, "SHELL": who.shell,
           "PATH": ROOT_PATH if who.uid == 0 else USER_PATH}
    env.update({k: caller[k] for k in KEPT_FROM_CALLER if k in caller})
    return env


def find_command(name: str, path: str) -> str:
    """The program to exec: ``name`` itself if it has a slash, else the first on ``path``."""
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFoundError(f"{name}: no such file")
        if not os.access(name, os.X_OK) or os.path.isdir(name):
            raise ExecError(f"{name}: not executable")
        return name
    found = find(name, path=path)
    if found is None:
        raise CommandNotFoundError(f"{name}: command not found on PATH={path}")
    return found


def active_exclusion() -> ExclusionRecord:
    """The exclusion of a protected tunnel (the one with this host's cgroup name first).

    PrerequisiteError when no tunnel's state allows exclusion: there is nothing
    to be excluded from, and a cgroup no rule matches would exclude nothing.
    """
    records, _ = recorded_exclusions()
    if not records:
        raise PrerequisiteError("no tunnel is protected with --allow-exclude (add it to the PostUp "
                                "wgkill-up line): nothing to exclude from; nothing changed")
    wanted = exclude_cgroup()
    return next((r for r in records if r.cgroup == wanted), records[0])


def _who() -> str:
    """The caller as the audit log names it: uid, sudo's user, the login uid."""
    parts = [f"uid {os.getuid()}"]
    if os.environ.get("SUDO_USER"):
        parts.append(f"sudo by {os.environ['SUDO_USER']}")
    try:
        login = int(Path("/proc/self/loginuid").read_text().strip())
        if login != 0xFFFFFFFF:
            parts.append(f"login uid {login}")
    except (OSError, ValueError):
        pass
    return ", ".join(parts)


def audit(line: str) -> str:
    """Append one timestamped line to STATE_DIR/exclude.log (0600); return it for stderr."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = f"{stamp} {line}"
    path = statefile.state_dir() / LOG_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (text.replace("\n", " ") + "\n").encode(errors="replace"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise PrerequisiteError(f"cannot write the exclusion log {path}: {exc.strerror}; "
                                "nothing excluded") from exc
    return text


def _move(pid: int) -> tuple[ExclusionRecord, Cgroup]:
    root = unified_root()
    record = active_exclusion()
    cgroup = Cgroup(root, record.cgroup)
    if not cgroup.exists():
        raise PrerequisiteError(f"the exclusion cgroup {cgroup.path} is gone (its rules match only the "
                                f"one they were made with): run wgkill-up {record.interface} "
                                "--allow-exclude again")
    cgroup.add(pid)
    return record, cgroup


def exclude_pid(pid: int) -> str:
    """Move running process ``pid`` into the exclusion cgroup; the audit line."""
    require_root()
    unified_root()
    if pid <= 1:
        raise UsageError(f"--pid {pid}: refusing to move init (everything it starts would be excluded)")
    command = command_of(pid)
    if command is None:
        raise UsageError(f"--pid {pid}: no such process")
    with statefile.lock():
        record, cgroup = _move(pid)
        return audit(f"wgkill-exclude: pid {pid} moved into {cgroup.path} by {_who()} "
                     f"(tunnel {record.interface}; its open sockets stay in the tunnel): {command}")


def prepare(argv: Sequence[str], user: str | None) -> tuple[str, Account, dict[str, str], str]:
    """Check everything, then move this process in: (program, account, environment, audit line)."""
    require_root()
    unified_root()
    if not argv:
        raise UsageError("no command given: wgkill-exclude [--user USER] -- COMMAND [ARGS...]")
    who = account(user)
    env = environment(who, os.environ)
    program = find_command(argv[0], env["PATH"])
    with statefile.lock():
        record, cgroup = _move(os.getpid())
        line = audit(f"wgkill-exclude: pid {os.getpid()} in {cgroup.path} by {_who()} as {who.name} "
                     f"(uid {who.uid}, tunnel {record.interface}): {' '.join(argv)}")
    return program, who, env, line


def become_and_exec(program: str, argv: Sequence[str], who: Account, env: dict[str, str]) -> NoReturn:
    """Drop to ``who`` as runuser does (groups, gid, uid: in that order) and exec ``program``."""
    try:
        os.initgroups(who.name, who.gid)
        os.setgid(who.gid)
        os.setuid(who.uid)
    except OSError as exc:
        raise ExecError(f"cannot become {who.name}: {exc.strerror}") from exc
    try:
        os.execve(program, list(argv), env)  # noqa: S606 - argv as given, no shell
    except OSError as exc:
        raise ExecError(f"cannot run {program}: {exc.strerror}") from exc
