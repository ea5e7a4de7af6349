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
    if change and trace is not None:
        import shlex

        trace(f"[#] {shlex.join([os.path.basename(argv[0]), *argv[1:]])}")
    try:
        code, out, err = _spawn(list(argv), None if stdin is None else stdin.encode())
    except FileNotFoundError as exc:
        raise PrerequisiteError(f"{argv[0]} not found: {_HINTS.get(argv[0], 'install it')}") from exc
    if code != 0:
        raise CommandError(argv, code, _text(err))
    return _text(out)


def _text(raw: bytes) -> str:
    """As ``subprocess``'s text mode reads a child's output (UTF-8, universal newlines)."""
    return raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def _spawn(argv: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
    """``subprocess.run(argv, input=stdin, capture_output=True)`` without ``subprocess``, whose
    imports (threading, selectors, signal, locale) cost a hook ~7 ms for one ``wg show dump``:
    posix_spawn with pipes, fed and drained through poll so a large payload cannot deadlock.
    As subprocess: the child's stdin is inherited unless ``stdin`` is given, SIGPIPE and SIGXFSZ
    are back to their defaults, and no descriptor of ours but the three leaks into the child
    (Python's own are close-on-exec; inherited ones are closed)."""
    import _signal  # type: ignore[import-not-found]  # what signal.py wraps in enums (~1 ms)
    import select

    fds: list[int] = []
    try:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fds += [out_r, out_w, err_r, err_w]
        actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        in_w = -1
        if stdin is not None:
            in_r, in_w = os.pipe()
            fds += [in_r, in_w]
            actions.append((os.POSIX_SPAWN_DUP2, in_r, 0))
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited()]
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions,
                              setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (out_w, err_w) + ((in_r,) if stdin is not None else ()):
        os.close(fd)
        fds.remove(fd)
    try:
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        left = memoryview(stdin or b"")
        if in_w >= 0:
            poller.register(in_w, select.POLLOUT)
        open_fds = {out_r, err_r} | ({in_w} if in_w >= 0 else set())
        while open_fds:
            for fd, _event in poller.poll():
                if fd == in_w:
                    try:
                        left = left[os.write(fd, left[:65536]):]
                    except BrokenPipeError:  # the child stopped reading: what it says is the answer
                        left = left[:0]
                    finished = not left
                else:
                    chunk = os.read(fd, 65536)
                    chunks[fd].append(chunk)
                    finished = not chunk
                if finished:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    os.close(fd)
                    fds.remove(fd)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        for fd in fds:
            os.close(fd)
        if pid:
            os.kill(pid, _signal.SIGKILL)
            os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _inherited() -> list[int]:
    """Descriptors above 2 that a child would inherit (subprocess's ``close_fds``): only ones our
    own parent left us, as Python opens everything close-on-exec."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
    return found
