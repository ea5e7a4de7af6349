"""Shared fixtures. Lab tests need root and namespaces; they fail, never skip, without them."""

import os
import shutil
from collections.abc import Iterator

import pytest

from wgkill_lab.netns import Lab, LabError, in_initial_netns, reap_stale

LAB_BINARIES = ("ip", "wg", "wg-quick", "wireguard-go", "iptables-restore", "ip6tables-restore",
                "iptables-legacy", "nft", "curl", "unshare", "ipset", "sysctl", "dig", "dnsmasq", "chattr",
                "busybox")


def _lab_prerequisites() -> None:
    """Fail (not skip) the test with one line saying what is missing."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root: run `make test` as root")
    if in_initial_netns():
        pytest.fail("refusing to run a lab test body in the initial network namespace: use `make test`")
    missing = [b for b in LAB_BINARIES if shutil.which(b) is None]
    if missing:
        pytest.fail(f"lab prerequisites missing: {' '.join(missing)} (`make deps` installs them)")


@pytest.fixture(scope="session", autouse=True)
def _reap_stale_labs() -> None:
    if os.geteuid() == 0:
        reap_stale()


@pytest.fixture
def lab() -> Iterator[Lab]:
    _lab_prerequisites()
    try:
        with Lab() as built:
            yield built
    except LabError as exc:
        pytest.fail(f"lab: {exc}")


@pytest.fixture
def legacy_lab() -> Iterator[Lab]:
    _lab_prerequisites()
    with Lab(legacy=True) as built:
        yield built


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()) or "legacy_lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing here may silently not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure")
