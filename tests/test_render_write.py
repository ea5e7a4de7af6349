"""Writing configs: atomic, mode and owner kept, a backup for --in-place, private keys never exposed.

pyfakefs for the rules, then the console script on a real directory.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wgkill import confedit, render
from wgkill.errors import ConfigError
from wgkill.render import HookOptions, Rendered, Request

SAMPLES = Path(__file__).parent / "samples"
GOLDEN = Path(__file__).parent / "golden" / "render"
BIN = Path(sys.executable).parent
CONF = Path("/etc/wireguard/wg0.conf")
KEYLESS = "[Interface]\nAddress = 10.0.0.2/32\nPostUp = wg set %i private-key /etc/wireguard/wg0.key\n"


# Read from the real filesystem before pyfakefs takes over: the samples, golden files and templates.
MULLVAD = (SAMPLES / "mullvad.conf").read_bytes()
UPGRADED = (GOLDEN / "from-mullvad.conf").read_bytes()
BLOCK = render.hook_block(HookOptions())


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _upgrade(path: Path) -> Rendered:
    """What `--from path` returns, with the templates rendered before the fake filesystem existed."""
    text = path.read_bytes().decode()
    return Rendered(confedit.replace_hooks(text, BLOCK).text, private="PrivateKey" in text, source=str(path))


@pytest.fixture
def mullvad() -> bytes:
    return MULLVAD


@pytest.fixture(autouse=True)
def fchown_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """pyfakefs does not fake os.fchown: a fake fd must never reach the real call."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
    return calls


def test_upgrade_helper_matches_the_library(tmp_path: Path) -> None:
    real = render.build(Request(source=str(SAMPLES / "mullvad.conf")), "/usr/bin")
    assert _upgrade(SAMPLES / "mullvad.conf") == real
    keyless = tmp_path / "wg0.conf"
    keyless.write_text(KEYLESS)
    assert _upgrade(keyless) == render.build(Request(source=str(keyless)), "/usr/bin")


def test_in_place_keeps_mode_and_backup(fs, mullvad: bytes) -> None:
    fs.create_file(CONF, contents=mullvad, st_mode=stat.S_IFREG | 0o600)
    result = _upgrade(CONF)
    backup = render.write_in_place(result)
    assert backup == Path("/etc/wireguard/wg0.conf.bak")
    assert CONF.read_bytes() == UPGRADED
    assert backup.read_bytes() == mullvad
    assert _mode(CONF) == 0o600 and _mode(backup) == 0o600
    assert sorted(p.name for p in CONF.parent.iterdir()) == ["wg0.conf", "wg0.conf.bak"]


def test_in_place_unchanged_writes_nothing(fs) -> None:
    fs.create_file(CONF, contents=UPGRADED, st_mode=stat.S_IFREG | 0o600)
    assert render.write_in_place(_upgrade(CONF)) is None
    assert [p.name for p in CONF.parent.iterdir()] == ["wg0.conf"]


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o601])
def test_in_place_refuses_a_world_accessible_private_key(fs, mullvad: bytes, mode: int) -> None:
    fs.create_file(CONF, contents=mullvad, st_mode=stat.S_IFREG | mode)
    pattern = rf"refusing to write .*wg0\.conf: it holds a PrivateKey.*{mode:04o}"
    with pytest.raises(ConfigError, match=pattern):
        render.write_in_place(_upgrade(CONF))
    assert CONF.read_bytes() == mullvad and _mode(CONF) == mode
    assert [p.name for p in CONF.parent.iterdir()] == ["wg0.conf"]


def test_in_place_keeps_a_loose_mode_when_there_is_no_private_key(fs) -> None:
    fs.create_file(CONF, contents=KEYLESS, st_mode=stat.S_IFREG | 0o644)
    result = _upgrade(CONF)
    assert not result.private
    render.write_in_place(result)
    assert _mode(CONF) == 0o644 and "PostUp = wgkill-up %i\n" in CONF.read_text()


def test_in_place_through_a_symlink_updates_the_target(fs, mullvad: bytes) -> None:
    target = Path("/srv/wg/wg0.conf")
    fs.create_file(target, contents=mullvad, st_mode=stat.S_IFREG | 0o600)
    fs.create_symlink(CONF, target)
    render.write_in_place(_upgrade(CONF))
    assert CONF.is_symlink() and os.readlink(CONF) == str(target)
    assert target.read_bytes() == UPGRADED
    assert Path("/srv/wg/wg0.conf.bak").read_bytes() == mullvad


def test_in_place_keeps_owner(fs, mullvad: bytes, fchown_calls: list[tuple[int, int]]) -> None:
    fs.create_file(CONF, contents=mullvad, st_mode=stat.S_IFREG | 0o640)
    os.chown(CONF, 0, 1234)
    render.write_in_place(_upgrade(CONF))
    assert fchown_calls == [(0, 1234), (0, 1234)]  # backup, then the file; real owners: the tmp-dir test
    assert _mode(CONF) == 0o640 and _mode(CONF.with_name("wg0.conf.bak")) == 0o640


@pytest.mark.parametrize(("private", "mode"), [(True, 0o600), (False, 0o644)])
def test_write_config_new_file_modes(fs, private: bool, mode: int) -> None:
    fs.create_dir("/out")
    os.umask(0o000)  # the mode is ours, not the umask's
    render.write_config("/out/x.conf", b"data\n", private=private)
    assert Path("/out/x.conf").read_bytes() == b"data\n" and _mode(Path("/out/x.conf")) == mode


def test_write_config_refuses_world_accessible_existing_file(fs) -> None:
    fs.create_file("/out/wg0.conf", contents="old\n", st_mode=stat.S_IFREG | 0o644)
    with pytest.raises(ConfigError, match=r"refusing to write /out/wg0\.conf"):
        render.write_config("/out/wg0.conf", b"[Interface]\nPrivateKey = x\n", private=True)
    assert Path("/out/wg0.conf").read_text() == "old\n"
    render.write_config("/out/wg0.conf", b"# a snippet\n", private=False)  # no key: mode kept
    assert _mode(Path("/out/wg0.conf")) == 0o644


def test_failed_replace_keeps_the_old_file_and_no_temp(fs, monkeypatch: pytest.MonkeyPatch) -> None:
    fs.create_file("/out/wg0.conf", contents="old\n", st_mode=stat.S_IFREG | 0o600)

    def broken(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ConfigError, match=r"cannot write /out/wg0\.conf: No space left on device"):
        render.write_config("/out/wg0.conf", b"new\n", private=True)
    assert Path("/out/wg0.conf").read_text() == "old\n"
    assert [p.name for p in Path("/out").iterdir()] == ["wg0.conf"]


def test_missing_directory_is_one_error(fs) -> None:
    with pytest.raises(ConfigError, match=r"cannot write /nowhere/wg0\.conf"):
        render.write_config("/nowhere/wg0.conf", b"x\n", private=True)


# ---- the console script, on a real directory -----------------------------------------------------

def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "wgkill-render"), *argv], capture_output=True, text=True, check=False,
                          timeout=30, env={"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})


def _config(tmp_path: Path, sample: str, mode: int) -> tuple[Path, bytes]:
    """``sample`` as tmp_path/wg0.conf with ``mode``: its path and the original bytes."""
    conf = tmp_path / "wg0.conf"
    original = (SAMPLES / sample).read_bytes()
    conf.write_bytes(original)
    conf.chmod(mode)
    return conf, original


def test_cli_in_place_on_a_real_directory(tmp_path: Path) -> None:
    conf, original = _config(tmp_path, "article.conf", 0o600)
    done = _cli("--from", str(conf), "--in-place")
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.splitlines()[0] == f"wgkill-render: wrote {conf} (previous version in {conf}.bak)"
    assert conf.read_bytes() == (GOLDEN / "from-article.conf").read_bytes()
    assert (tmp_path / "wg0.conf.bak").read_bytes() == original
    assert _mode(conf) == 0o600 and _mode(tmp_path / "wg0.conf.bak") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wg0.conf", "wg0.conf.bak"]

    again = _cli("--from", str(conf), "--in-place")
    assert again.returncode == 0 and again.stderr.splitlines()[0] == f"wgkill-render: {conf}: unchanged"
    assert (tmp_path / "wg0.conf.bak").read_bytes() == original


def test_cli_in_place_keeps_group_owner(tmp_path: Path) -> None:
    conf, _ = _config(tmp_path, "proton.conf", 0o640)
    os.chown(conf, os.geteuid(), 4321)
    done = _cli("--from", str(conf), "--in-place")
    assert done.returncode == 0, done.stderr
    assert conf.read_bytes() == (GOLDEN / "from-proton.conf").read_bytes()
    assert (conf.stat().st_gid, _mode(conf)) == (4321, 0o640)
    assert ((tmp_path / "wg0.conf.bak").stat().st_gid, _mode(tmp_path / "wg0.conf.bak")) == (4321, 0o640)


def test_cli_in_place_refuses_world_readable_key(tmp_path: Path) -> None:
    conf, original = _config(tmp_path, "proton.conf", 0o644)
    done = _cli("--from", str(conf), "--in-place")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == (f"wgkill-render: error: refusing to write {conf}: it holds a PrivateKey and is "
                           f"world-accessible (mode 0644); run `chmod 600 {conf}` first\n")
    assert conf.read_bytes() == original and [p.name for p in tmp_path.iterdir()] == ["wg0.conf"]


def test_cli_output_and_in_place_conflict(tmp_path: Path) -> None:
    done = _cli("--from", str(SAMPLES / "proton.conf"), "--in-place", "--output", str(tmp_path / "x"))
    assert done.returncode == 2 and done.stdout == "" and "give one of them" in done.stderr
