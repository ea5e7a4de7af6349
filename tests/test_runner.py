"""runner.run: the one way wgkill runs a command, answering as subprocess.run did (real children)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wgkill import runner
from wgkill.errors import PrerequisiteError

PY = sys.executable


def test_stdout_is_returned_as_text() -> None:
    assert runner.run([PY, "-c", "print('a\\u00e9'); print('b', end='\\r\\n')"]) == "a\u00e9\nb\n"


def test_a_non_zero_exit_raises_with_what_it_said() -> None:
    with pytest.raises(runner.CommandError) as caught:
        runner.run([PY, "-c", "import sys; print('out'); sys.exit('said on stderr')"])
    assert caught.value.returncode == 1
    assert caught.value.stderr == "said on stderr\n"
    assert "said on stderr" in str(caught.value)


def test_a_signal_is_a_negative_code_as_in_subprocess() -> None:
    argv = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]
    with pytest.raises(runner.CommandError) as caught:
        runner.run(argv)
    assert caught.value.returncode == subprocess.run(argv, check=False).returncode == -15


def test_a_large_payload_in_and_out_does_not_deadlock() -> None:
    """Bigger than any pipe buffer both ways at once, as a 100k-prefix iptables-restore payload."""
    payload = "".join(f"198.51.100.{n % 256}/32 line {n}\n" for n in range(200_000))
    code = "import sys; data = sys.stdin.read(); sys.stderr.write(data[:70000]); sys.stdout.write(data)"
    assert runner.run([PY, "-c", code], stdin=payload) == payload


def test_stdin_is_inherited_unless_given(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.write_text("from the parent\n")
    code = "from wgkill import runner; print(runner.run(['cat']), end='')"
    with given.open() as handle:
        done = subprocess.run([PY, "-c", code], stdin=handle, capture_output=True, text=True, check=True)
    assert done.stdout == "from the parent\n"
    assert runner.run(["cat"], stdin="") == ""


def test_the_child_gets_default_sigpipe_and_no_inherited_descriptor() -> None:
    """Python ignores SIGPIPE; a child such as iptables-restore must not inherit that (subprocess's
    restore_signals), nor a descriptor a parent such as wg-quick left inheritable (close_fds)."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        status = runner.run(["cat", "/proc/self/status"])
        ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
        assert not ignored & (1 << (13 - 1))  # SIGPIPE is 13
        assert runner.run(["ls", "/proc/self/fd"]).split() == ["0", "1", "2", "3"]  # 3: ls's own listing
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_missing_binary_is_a_prerequisite_error() -> None:
    with pytest.raises(PrerequisiteError, match="wgkill-no-such-binary not found"):
        runner.run(["wgkill-no-such-binary"])


def test_no_descriptor_is_left_open() -> None:
    before = set(os.listdir("/proc/self/fd"))
    runner.run([PY, "-c", "print(1)"], stdin="x")
    with pytest.raises(runner.CommandError):
        runner.run([PY, "-c", "import sys; sys.exit(3)"])
    assert set(os.listdir("/proc/self/fd")) == before
