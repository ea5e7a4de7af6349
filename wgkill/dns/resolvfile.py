"""The plain /etc/resolv.conf backend: write the tunnel's servers, keep the original byte for byte.

The original (or the symlink it was) is recorded in the state and put back on
release, but only if the file is still what wgkill wrote: a file that DHCP or
an administrator rewrote since is theirs, and is left alone with a warning.
While the tunnel is up, wgkill-guard ``hold``s the file: a rewrite by another
program (a DHCP renewal, NetworkManager) would point the system resolver at a
server the DNS lock refuses (no leak, but no DNS), so ours goes back and theirs
becomes the original that release restores.
"""

from __future__ import annotations

import base64
import fcntl
import os
import struct
import time
from pathlib import Path

from ..digest import sha256_hex
from ..errors import DnsError
from ..fileio import write_atomic
from ..runner import CommandError, run, which
from ..templating import render
from . import GLIBC_MAX_NAMESERVERS, DnsPlan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

RESOLV_CONF = Path("/etc/resolv.conf")
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x10
SETTLE_SECONDS, SETTLE_ROUNDS = 0.02, 10  # another program's rewrite, read until it stops changing


def is_immutable(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0))
        return bool(struct.unpack("l", flags)[0] & FS_IMMUTABLE_FL)
    except OSError:
        return False  # the filesystem has no such flags (tmpfs, overlay): nothing to undo
    finally:
        os.close(fd)


def _sha(data: bytes) -> str:
    return sha256_hex(data)


def content(plan: DnsPlan, interface: str) -> bytes:
    return render("resolv.conf.j2", interface=interface, servers=plan.servers, search=plan.search).encode()


def preflight(
    plan: DnsPlan, previous: dict[str, Any] | None = None, path: Path = RESOLV_CONF
) -> list[str]:
    """Refuse before any change if the file cannot be replaced; return warnings."""
    warnings = []
    locked_by_us = previous is not None and previous.get("immutable") and _ours(path, previous)
    if is_immutable(path) and not locked_by_us:
        raise DnsError(f"{path} is immutable already (chattr +i): run `chattr -i {path}` first")
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        raise DnsError(f"{path.parent} is read-only: cannot point {path} at the tunnel")
    if plan.lock_resolv_conf:
        which("chattr")
    if len(plan.servers) > GLIBC_MAX_NAMESERVERS:
        warnings.append(
            f"{len(plan.servers)} resolvers: glibc reads only the first {GLIBC_MAX_NAMESERVERS} "
            "from resolv.conf (all of them are allowed through the DNS lock)"
        )
    return warnings


def apply(
    plan: DnsPlan, interface: str, previous: dict[str, Any] | None = None, path: Path = RESOLV_CONF
) -> dict[str, Any]:
    """Write the tunnel's resolv.conf. Re-running keeps the first run's original."""
    if previous is not None and previous.get("path") == str(path) and _ours(path, previous):
        if previous.get("immutable") and is_immutable(path):
            run([which("chattr"), "-i", str(path)], change=True)
        link, mode = previous.get("symlink"), int(previous["mode"])
        saved = previous.get("original_b64")
        original = None if saved is None else base64.b64decode(saved)
    else:
        link = os.readlink(path) if path.is_symlink() else None
        original = None if link is not None or not path.exists() else path.read_bytes()
        mode = path.stat().st_mode & 0o7777 if original is not None else 0o644
    new = content(plan, interface)
    try:
        write_atomic(path, new, mode, in_place=True)
    except OSError as exc:
        raise DnsError(f"cannot write {path}: {exc.strerror}") from exc
    record: dict[str, Any] = {
        "backend": "file",
        "path": str(path),
        "symlink": link,
        "original_b64": None if original is None else base64.b64encode(original).decode(),
        "mode": mode,
        "written_sha256": _sha(new),
        "written_b64": base64.b64encode(new).decode(),  # what hold() puts back
        "immutable": False,
    }
    if plan.lock_resolv_conf:
        try:
            run([which("chattr"), "+i", str(path)], change=True)
        except CommandError as exc:
            raise DnsError(f"cannot make {path} immutable: {exc}") from exc
        record["immutable"] = True
    return record


def hold(record: dict[str, Any]) -> dict[str, Any] | None:
    """Put back what ``apply`` wrote if another program replaced it; the record to save then
    (their version is the original from now on), or None when the file is still ours (or the
    record is older than this and does not hold what was written)."""
    path = Path(record["path"])
    if _ours(path, record) or record.get("written_b64") is None:
        return None
    link = os.readlink(path) if path.is_symlink() else None
    try:
        original = None if link is not None or not path.exists() else _settled(path)
        mode = path.stat().st_mode & 0o7777 if original is not None else int(record["mode"])
        write_atomic(path, base64.b64decode(record["written_b64"]), int(record["mode"]), in_place=True)
    except OSError as exc:
        raise DnsError(f"cannot put back {path}: {exc.strerror}") from exc
    return {**record, "symlink": link, "mode": mode,
            "original_b64": None if original is None else base64.b64encode(original).decode()}


def _settled(path: Path) -> bytes:
    """The other program's version once it stopped changing. The guard hears a rewrite at once,
    and a writer that truncates first (``open(path, "w")``, ``echo >``) may not have written yet:
    adopting that empty file as the original would make wgkill-down restore an empty resolv.conf.
    Two equal reads ``SETTLE_SECONDS`` apart settle it; an empty file is given the full rounds."""
    previous = path.read_bytes()
    for _ in range(SETTLE_ROUNDS):
        time.sleep(SETTLE_SECONDS)
        current = path.read_bytes()
        if current == previous and current:
            return current
        previous = current
    return previous


def _ours(path: Path, record: dict[str, Any]) -> bool:
    try:
        return bool(_sha(path.read_bytes()) == record["written_sha256"])
    except OSError:
        return False


def revert(record: dict[str, Any]) -> list[str]:
    """Put back what ``apply`` replaced; return warnings for what was left alone."""
    path = Path(record["path"])
    if record.get("immutable") and is_immutable(path):
        try:
            run([which("chattr"), "-i", str(path)], change=True)
        except CommandError as exc:
            raise DnsError(f"cannot lift the immutable flag on {path}: {exc}") from exc
    try:
        current = path.read_bytes()
    except OSError:
        current = None
    if current is None or _sha(current) != record["written_sha256"]:
        return [f"{path} changed since wgkill wrote it: left as it is now, not restored"]
    try:
        if record.get("symlink"):
            tmp = path.with_name(f".resolv.conf.wgkill-link.{os.getpid()}")
            tmp.unlink(missing_ok=True)
            os.symlink(record["symlink"], tmp)
            os.replace(tmp, path)
        elif record.get("original_b64") is None:
            path.unlink()
        else:
            write_atomic(path, base64.b64decode(record["original_b64"]), int(record["mode"]), in_place=True)
    except OSError as exc:
        raise DnsError(f"cannot restore {path}: {exc.strerror}") from exc
    return []
