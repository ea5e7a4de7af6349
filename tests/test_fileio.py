"""The one atomic writer: mode before the first byte, the backup, the bind-mount fallback."""

import errno
import os
from pathlib import Path

import pytest

from wgkill.fileio import write_atomic


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_new_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"{}\n", 0o644)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"{}\n" and _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left behind


def test_backup_keeps_the_old_bytes_and_mode(tmp_path: Path) -> None:
    target, backup = tmp_path / "wg0.conf", tmp_path / "wg0.conf.bak"
    target.write_bytes(b"old\n")
    target.chmod(0o640)
    write_atomic(target, b"new\n", 0o640, backup=backup)
    assert (target.read_bytes(), backup.read_bytes()) == (b"new\n", b"old\n")
    assert _mode(backup) == 0o640


def test_a_mount_point_is_written_in_place_only_when_allowed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "resolv.conf"
    target.write_bytes(b"nameserver 192.0.2.1\n")
    inode = target.stat().st_ino

    def busy(src: str, dst: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(OSError, match="busy"):
        write_atomic(target, b"nameserver 10.64.0.1\n", 0o644)
    assert target.read_bytes() == b"nameserver 192.0.2.1\n"
    write_atomic(target, b"nameserver 10.64.0.1\n", 0o644, in_place=True)
    assert target.read_bytes() == b"nameserver 10.64.0.1\n" and target.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["resolv.conf"]
