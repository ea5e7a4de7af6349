"""Shared fixtures. Lab tests need root and namespaces; they fail, never skip, without them."""

import os
import shutil
from collections.abc import Iterator

import pytest

from wgkill_lab.netns import Lab, LabError, in_initial_netns, reap_stale

pytest.register_assert_rewrite("goldenfiles")  # a helper module: its assertions show a diff too

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


def _environment() -> dict[str, str]:
    """os.environ less what pytest itself sets while a test runs."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture(autouse=True)
def _process_settings_restored() -> Iterator[None]:
    """A test that changes the umask, the working directory or the environment puts them back:
    later tests, and the hooks they run (which inherit all three), would test something else."""
    umask = os.umask(0o022)
    os.umask(umask)
    cwd, env = os.getcwd(), _environment()
    yield
    leaked = []
    now = os.umask(umask)
    if now != umask:
        leaked.append(f"umask {now:03o} (was {umask:03o})")
    if os.getcwd() != cwd:
        leaked.append(f"working directory {os.getcwd()} (was {cwd})")
        os.chdir(cwd)
    if _environment() != env:
        now_env = _environment()
        changed = sorted(k for k in env.keys() | now_env.keys() if env.get(k) != now_env.get(k))
        leaked.append(f"environment ({', '.join(changed)})")
        for name in now_env.keys() - env.keys():
            del os.environ[name]
        os.environ.update(env)
    if leaked:
        pytest.fail(f"the test left process-wide settings changed: {'; '.join(leaked)}")


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
    """The iptables backend with iptables-legacy (the plain names run it)."""
    _lab_prerequisites()
    with Lab(legacy=True, backend="iptables") as built:
        yield built


@pytest.fixture
def iptables_lab() -> Iterator[Lab]:
    """The iptables backend with iptables-nft (the machine's iptables)."""
    _lab_prerequisites()
    with Lab(backend="iptables") as built:
        yield built


ANY_BACKEND = {"nft": {}, "iptables-nft": {"backend": "iptables"},
               "iptables-legacy": {"backend": "iptables", "legacy": True}}


@pytest.fixture(params=sorted(ANY_BACKEND))
def any_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The same scenario with each backend: nft, and iptables with either variant."""
    _lab_prerequisites()
    with Lab(**ANY_BACKEND[request.param]) as built:  # type: ignore[arg-type]
        yield built


LAB_FIXTURES = {"lab", "legacy_lab", "iptables_lab", "any_lab"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing here may silently not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure")
