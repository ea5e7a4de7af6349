"""The console scripts as installed: exit codes and one-line errors, before any change.

None of these reach the firewall: each stops at validation, at the state file
or at a missing prerequisite, which is exactly what they check.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _run(tmp_path: Path, *argv: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path if path is not None else f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "WGKILL_STATE_DIR": str(tmp_path / "state"),
        "LC_ALL": "C",
    }
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=env,
                          check=False, timeout=60)


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("name", ["wg0;touch /tmp/x", "-j ACCEPT", "A" * 16, "", "$(reboot)"])
@pytest.mark.parametrize("command", ["wgkill-up", "wgkill-down"])
def test_hostile_names_refused_before_anything(tmp_path: Path, command: str, name: str) -> None:
    done = _run(tmp_path, command, "--", name)
    assert done.returncode == 2
    assert "invalid interface name" in _one_line(done.stderr)
    assert not (tmp_path / "state").exists()
    assert done.stdout == ""


@pytest.mark.parametrize("argv", [["--", "wg0;touch /tmp/x"], ["--", "A" * 16], ["--no-such-option"],
                                  ["--probe-port", "0"], ["--json", "--prometheus"], ["wg0", "wg1"]])
def test_status_usage_errors_are_unknown_in_one_plugin_line(tmp_path: Path, argv: list[str]) -> None:
    """Monitors read 2 as CRITICAL and 1 as WARNING: a usage error is neither, it is UNKNOWN (3)."""
    done = _run(tmp_path, "wgkill-status", *argv)
    assert done.returncode == 3, done
    line = _one_line(done.stdout)
    assert line.startswith("WGKILL UNKNOWN - wgkill-status: error: "), line
    assert done.stderr == "" and not (tmp_path / "state").exists()


def test_status_internal_error_is_unknown_in_one_plugin_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from wgkill.cli import status as status_cli

    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("something nobody expected")

    def exit_(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(status_cli.status, "check_protection", broken)
    monkeypatch.setattr(status_cli.os, "_exit", exit_)
    monkeypatch.setattr(sys, "argv", ["wgkill-status"])
    monkeypatch.delenv("WGKILL_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        status_cli.main()
    assert exited.value.code == 3
    out, err = capsys.readouterr()
    assert out == "WGKILL UNKNOWN - wgkill-status: internal error: RuntimeError: something nobody expected\n"
    assert err == ""


def test_down_with_nothing_recorded_succeeds_quietly(tmp_path: Path) -> None:
    done = _run(tmp_path, "wgkill-down", "wg0")
    assert done.returncode == 0
    assert _one_line(done.stderr) == "wgkill-down: nothing recorded for wg0: nothing to remove"


@pytest.mark.parametrize("content", ["{not json", '{"version": 7}', ""])
def test_down_with_corrupt_state_fails_closed(tmp_path: Path, content: str) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / "wg0.json").write_text(content)
    done = _run(tmp_path, "wgkill-down", "wg0")
    assert done.returncode == 4
    line = _one_line(done.stderr)
    assert line.startswith("wgkill-down: error:") and "state file" in line
    assert (tmp_path / "state" / "wg0.json").read_text() == content  # kept for --force


def test_up_without_iptables_names_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "emptybin"
    empty.mkdir()
    done = _run(tmp_path, "wgkill-up", "wg0", path=str(empty))
    assert done.returncode == 5
    assert "iptables-restore not found" in _one_line(done.stderr)
    assert not (tmp_path / "state").exists()


def test_up_for_a_missing_interface_changes_nothing(tmp_path: Path) -> None:
    done = _run(tmp_path, "wgkill-up", "wgkillnone0", "--config", str(tmp_path / "absent.conf"))
    assert done.returncode == 3
    assert "cannot read wg-quick config" in _one_line(done.stderr)
    assert not (tmp_path / "state").exists()


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = _run(tmp_path, "wgkill-up", "wg0", "--frobnicate")
    assert done.returncode == 2
    assert "unrecognized arguments" in _one_line(done.stderr)


def test_render_prints_the_hook_lines(tmp_path: Path) -> None:
    done = _run(tmp_path, "wgkill-render")
    assert done.returncode == 0
    assert "PostUp = wgkill-up %i\n" in done.stdout and "PreDown = wgkill-down %i\n" in done.stdout


def test_hook_imports_stay_light() -> None:
    """The PreDown path never loads the template engine or netlink library; PostUp loads
    jinja2 only when it has to render (see test_rerun_with_unchanged_inputs_skips_jinja)."""
    code = ("import sys, wgkill.cli.down, wgkill.cli.up; "
            "print(sorted(m for m in ('jinja2', 'pyroute2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
