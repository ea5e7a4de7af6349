"""Fixtures for the lab tests that install the .deb machine-wide (test_install, test_ansible_role).

The package lands in /usr/sbin, /lib/systemd and dpkg's database: one suite at a
time on a machine. Every such test holds the package lock from install to purge.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill_lab.bundles import locked

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_LOCK = Path("/run/lock/wgkill-package-tests.lock")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def deb() -> Path:
    """`make deb`, once per session: dist/wgkill_VERSION_all.deb."""
    done = subprocess.run(["make", "-C", str(ROOT), "deb"], capture_output=True, text=True, timeout=900,
                          check=False, env={"PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root",
                                            "MAKEFLAGS": "", "DEBIAN_FRONTEND": "noninteractive"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    built = sorted((ROOT / "dist").glob("wgkill_*_all.deb"))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture
def package_lock() -> Iterator[None]:
    """Held while a test installs, uses and purges the package (other suites on this machine wait)."""
    PACKAGE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with locked(PACKAGE_LOCK):
        yield
