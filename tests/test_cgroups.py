"""cgroup v2 discovery from mountinfo (pyfakefs), and the exclusion cgroup's name."""

from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from wgkill.cgroups import Cgroup, parse_mountinfo, unified_root
from wgkill.errors import PrerequisiteError, UsageError
from wgkill.names import exclude_cgroup

HYBRID = """\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_ONLY = "\n".join(HYBRID.splitlines()[:4]) + "\n"


def _mountinfo(fs: FakeFilesystem, text: str) -> str:
    fs.create_file("/proc/self/mountinfo", contents=text)
    return "/proc/self/mountinfo"


def test_parser_reads_optional_fields_and_escapes() -> None:
    [mount] = parse_mountinfo(r"36 35 98:0 /mnt1 /mnt\040two rw,noatime master:1 shared:2 - ext3 /dev/r rw")
    assert mount.mount_point == "/mnt two" and mount.fstype == "ext3" and mount.root == "/mnt1"
    assert parse_mountinfo("garbage\n\n") == []


@pytest.mark.parametrize(("text", "where"), [(HYBRID, "/sys/fs/cgroup/unified"), (UNIFIED, "/sys/fs/cgroup")])
def test_unified_root_on_hybrid_and_unified_hosts(fs: FakeFilesystem, text: str, where: str) -> None:
    assert unified_root(_mountinfo(fs, text)) == Path(where)


@pytest.mark.parametrize("text", [V1_ONLY, "", "44 22 0:40 /sub /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"])
def test_no_cgroup_v2_is_refused_in_one_line(fs: FakeFilesystem, text: str) -> None:
    with pytest.raises(PrerequisiteError) as caught:
        unified_root(_mountinfo(fs, text))
    assert "cgroup v2 is not mounted" in str(caught.value) and "nothing changed" in str(caught.value)
    assert caught.value.exit_code == 5 and "\n" not in str(caught.value)


def test_a_later_mount_hides_an_earlier_one(fs: FakeFilesystem) -> None:
    hidden = UNIFIED + "50 30 0:50 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    with pytest.raises(PrerequisiteError):
        unified_root(_mountinfo(fs, hidden))


def test_cgroup_create_members_and_remove(fs: FakeFilesystem) -> None:
    root = Path("/sys/fs/cgroup/unified")
    fs.create_file(root / "cgroup.procs", contents="")
    cgroup = Cgroup(root, "wgkill-exclude")
    assert cgroup.create() is True and cgroup.create() is False
    fs.create_file(cgroup.path / "cgroup.procs", contents="")
    assert cgroup.exists() and cgroup.pids() == []
    (cgroup.path / "cgroup.procs").unlink()  # the kernel's files vanish with rmdir: pyfakefs needs help
    assert cgroup.remove() == [] and not cgroup.path.exists()
    assert cgroup.remove() == []  # gone already: fine


def test_exclude_cgroup_name_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WGKILL_EXCLUDE_CGROUP", raising=False)
    assert exclude_cgroup() == "wgkill-exclude"
    monkeypatch.setenv("WGKILL_EXCLUDE_CGROUP", "wgkill-exclude-123-ab")
    assert exclude_cgroup() == "wgkill-exclude-123-ab"
    for bad in ("../init.scope", "a/b", "..", "x" * 65, "a b"):
        monkeypatch.setenv("WGKILL_EXCLUDE_CGROUP", bad)
        with pytest.raises(UsageError):
            exclude_cgroup()
