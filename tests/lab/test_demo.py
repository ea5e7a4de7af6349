"""`make demo` is one of the README's two commands: it must keep working at every commit."""

import subprocess
import sys

import pytest

from wgkill_lab.netns import NETNS_DIR, PREFIX

pytestmark = pytest.mark.lab


def test_demo_holds_the_block_and_removes_its_lab() -> None:
    demo = subprocess.Popen([sys.executable, "-m", "wgkill_lab.demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stdout, stderr = demo.communicate(timeout=300)
    done = subprocess.CompletedProcess(demo.args, demo.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "curl ipv4: FAILED (good)" in done.stdout
    assert "ipv4 leak=0 tunnel=0, ipv6 leak=0" in done.stdout  # read off the isp's counters
    assert "Kill switch held: zero packets leaked." in done.stdout
    assert not list(NETNS_DIR.glob(f"{PREFIX}{demo.pid}-*"))  # the demo's namespaces are gone
