"""Replacing system files (resolv.conf, hosts) so readers never see half a file.

Atomic rename when we can; in place when the path is a mount point, as
resolv.conf and hosts are in containers and under ``ip netns exec`` (a
bind-mounted file cannot be renamed over).
"""

import errno
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.wgkill.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        return
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM):
            raise
    with open(path, "r+b") as handle:  # a bind mount: same inode, new bytes
        handle.truncate(0)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
