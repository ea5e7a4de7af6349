"""The one way wgkill replaces a file: readers see the old file or the new one, never half.

Temp file in the same directory, mode (and owner) set before the first byte,
fsync, rename, fsync of the directory. Used for the state, the configs
wgkill-render writes, the status textfile, resolv.conf and /etc/hosts.
resolv.conf and hosts are mount points in containers and under ``ip netns
exec`` (a bind-mounted file cannot be renamed over): for them ``in_place``
falls back to rewriting the same inode. Errors are OSError; each caller says
what it was writing.
"""

import errno
import os
from pathlib import Path

_MOUNT_POINT = (errno.EBUSY, errno.EXDEV, errno.EPERM)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, owner: tuple[int, int] | None = None,
                 backup: Path | None = None, in_place: bool = False, durable: bool = True) -> None:
    """Replace ``path`` with ``data``, with permission bits ``mode``.

    ``owner``: (uid, gid) to give the file when not the caller's own.
    ``backup``: first keep the current file there, with its mode and owner.
    ``in_place``: if ``path`` cannot be renamed over (a mount point), write it in place.
    ``durable=False``: no fsync (a cache, which a crash may lose: the next run rebuilds it);
    still never half a file for a reader.
    """
    if backup is not None:
        current = path.stat()
        write_atomic(backup, path.read_bytes(), current.st_mode & 0o7777,
                     owner=(current.st_uid, current.st_gid))
    fd, tmp = _create_temporary(path)
    try:
        os.fchmod(fd, mode)
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if not (in_place and exc.errno in _MOUNT_POINT):
            raise
        _write_in_place(path, data)
        return
    if durable:
        _sync_directory(path.parent)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, mode 0600, never an existing one (O_EXCL), as ``tempfile.mkstemp``
    makes it; without importing tempfile (random, shutil, bz2, lzma), which every hook would pay for."""
    while True:
        tmp = path.parent / f".{path.name}.wgkill.{os.urandom(6).hex()}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as handle:  # a bind mount: same inode, new bytes
        handle.truncate(0)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # the rename is done; a directory that cannot be fsynced is not worth failing for
