"""The one place that runs commands: argv lists only, stderr captured, errors carry both.

System changes are announced as ``[#] command`` (wg-quick's convention) through
``trace``, which the CLI points at stderr; the library itself never prints.
"""

import os
from collections.abc import Callable, Sequence

from .errors import PrerequisiteError, WgkillError

trace: Callable[[str], None] | None = None


class CommandError(WgkillError):
    """A command exited non-zero; ``stderr`` holds what it said."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        said = " ".join(stderr.split())[:300] or f"exit status {returncode}"
        import shlex  # only when something failed or is traced: a hook that succeeds skips it

        super().__init__(f"{shlex.join(self.argv)}: {said}")


def find(name: str, path: str | None = None) -> str | None:
    """Where ``name`` runs from on ``path`` (default PATH), None if nowhere: ``shutil.which``'s
    POSIX rules (a name with a slash is checked as it is; an executable file, not a directory),
    without importing shutil (bz2, lzma, fnmatch: about 5 ms of every hook)."""
    def runnable(candidate: str) -> bool:
        return os.access(candidate, os.X_OK) and not os.path.isdir(candidate)

    if os.sep in name:
        return name if runnable(name) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH") or os.defpath
            except (AttributeError, ValueError):
                path = os.defpath
    seen: set[str] = set()
    for directory in path.split(os.pathsep):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, name)
        if runnable(candidate):
            return candidate
    return None


def which(name: str) -> str:
    """Resolve a binary once, before any change, so we fail before the first rule."""
    path = find(name)
    if path is None:
        raise PrerequisiteError(f"{name} not found on PATH: {_HINTS.get(name, 'install it')}")
    return path


_HINTS = {
    "wg": "install wireguard-tools",
    "iptables-restore": "install iptables",
    "ip6tables-restore": "install iptables",
    "iptables-save": "install iptables",
    "ip6tables-save": "install iptables",
    "ipset": "install ipset",
    "sysctl": "install procps",
    "resolvectl": "install systemd-resolved, or use --dns-backend file",
    "resolvconf": "install openresolv, or use --dns-backend file",
    "chattr": "install e2fsprogs",
}


def run(argv: Sequence[str], *, stdin: str | None = None, change: bool = False) -> str:
    """Run ``argv`` and return its stdout; raise CommandError on a non-zero exit.

    ``change=True`` marks a system change: it is announced before it runs.
    """
    import subprocess  # imported when used: the hooks' path often runs no binary at all

    if change and trace is not None:
        import shlex

        trace(f"[#] {shlex.join([os.path.basename(argv[0]), *argv[1:]])}")
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise PrerequisiteError(f"{argv[0]} not found: {_HINTS.get(argv[0], 'install it')}") from exc
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stderr)
    return done.stdout
