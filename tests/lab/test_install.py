"""Installing wgkill for real (issue 14): the Debian package and ``make install``.

Each is built from this checkout, installed on this machine, and proven with the
kill-switch drop procedure in the namespace lab, run by the INSTALLED commands
(/usr/sbin/wgkill-* on /usr/bin/python3, or the make-install links), with no
virtualenv on the lab's PATH: 0 packets at the far side. Then it is removed
again, even on failure, and exactly its files are gone. Removing never lifts an
engaged block: the far side still sees nothing after the package is gone.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill.cli import manpage
from wgkill_lab.netns import Lab, Tunnel

from .checks import assert_blocked, assert_open_uplink, assert_through_tunnel, state
from .packaging import APT, HELPER_STATE, installed, snapshot

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # root's, and wg-quick@.service's, without /usr/local
STATE_DIR = Path("/var/lib/wgkill")
NAMES = sorted(c.name for c in manpage.commands())
UNITS = sorted(p.name for p in (ROOT / "hooks").glob("*.service")) + sorted(
    p.name for p in (ROOT / "hooks").glob("*.timer"))
# Enabled at install: the boot and guard units. The textfile timer ships disabled (opt-in).
ENABLED = sorted(p.name for p in (ROOT / "hooks").glob("*.service")
                 if "WantedBy=sysinit.target" in p.read_text())
TIMERS = sorted(p.name for p in (ROOT / "hooks").glob("*.timer"))
def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600,
         cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    base = {"PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd,
                          env={**base, **(env or {})})


def _ok(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = _run(argv, **kw)  # type: ignore[arg-type]
    assert done.returncode == 0, (f"{' '.join(argv)} -> {done.returncode}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _hooks(sbin: str) -> str:
    return f"PostUp = {sbin}/wgkill-up %i\nPreDown = {sbin}/wgkill-down %i\n"


def _drop_procedure(lab: Lab, sbin: str) -> Tunnel:
    """The article's test with the installed hooks: up, through the tunnel, link down, blocked
    (the far side counts 0 leaked packets), clean down, open. Returns the tunnel, down."""
    tunnel = lab.add_tunnel(hooks=_hooks(sbin))
    assert_open_uplink(lab)
    up = lab.wg_quick("up", tunnel)
    assert f"[#] {sbin}/wgkill-up {tunnel.iface}" in up.stderr
    lab.wait_handshake(tunnel)
    assert_through_tunnel(lab)
    assert state(lab, tunnel) is not None
    lab.client("ip", "link", "set", tunnel.iface, "down")
    seen = assert_blocked(lab)
    assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0
    down = lab.wg_quick("down", tunnel)
    assert f"[#] {sbin}/wgkill-down {tunnel.iface}" in down.stderr
    assert_open_uplink(lab)
    assert state(lab, tunnel) is None
    return tunnel


def _engage_and_drop(lab: Lab, tunnel: Tunnel) -> None:
    """Up again, then an unclean drop (the daemon killed): the block is engaged and holds."""
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.kill_daemon(tunnel)
    assert_blocked(lab)
    assert state(lab, tunnel) is not None


def _verify_units(paths: list[Path], env: dict[str, str] | None = None) -> None:
    assert paths
    for unit in paths:
        done = _ok(["systemd-analyze", "verify", str(unit)], env=env)
        assert done.stderr == "" and done.stdout == "", done.stderr  # not even a warning


# ---- the Debian package ------------------------------------------------------------------


@pytest.fixture
def system_lab() -> Iterator[Lab]:
    """A lab whose PATH starts with /usr/sbin, no virtualenv on it (what wg-quick@.service sees),
    and whose hooks keep their state where the package's maintainer scripts look: /var/lib/wgkill."""
    if STATE_DIR.exists():
        pytest.fail(f"{STATE_DIR} exists on this machine: this test needs it absent (it creates and "
                    "removes it)")
    with Lab(bin_dir="/usr/sbin") as built:
        built.state_dir = STATE_DIR
        try:
            yield built
        finally:
            subprocess.run(["rm", "-rf", str(STATE_DIR)], check=True)


@pytest.fixture
def package(deb: Path, package_lock: None) -> Iterator[Path]:
    """Nothing of wgkill's on the machine before; purged again afterwards, even on failure (the
    ``deb`` and ``package_lock`` fixtures: tests/lab/conftest.py)."""
    if installed():
        pytest.fail("the wgkill package is installed on this machine already: refusing to replace it")
    try:
        yield deb
    finally:
        if _run(["dpkg-query", "-W", "wgkill"]).returncode == 0:
            _run([*APT, "purge", "wgkill"])
        assert not installed()


def test_package_metadata(deb: Path) -> None:
    info = _ok(["dpkg-deb", "--info", str(deb)]).stdout
    fields = dict(line.strip().split(": ", 1) for line in info.splitlines()
                  if line.startswith(" ") and ": " in line and not line.startswith("  "))
    assert fields["Package"] == "wgkill" and fields["Architecture"] == "all"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert {"python3-jinja2", "python3-pyroute2", "wireguard-tools", "nftables | iptables"} <= set(depends)
    assert any(d.startswith("python3:any") for d in depends), depends  # ${python3:Depends}
    assert fields["Recommends"] == "ipset, libnftables1"  # libnftables1: the guard's owned table
    for script in ("postinst", "prerm", "postrm"):
        assert f" {script} " in info  # dh_python3 byte-compiles, dh_installsystemd enables, ours keeps state

    contents = _ok(["dpkg-deb", "--contents", str(deb)]).stdout
    paths = {line.split()[5].removeprefix(".") for line in contents.splitlines()}
    files = {p for p in paths if not p.endswith("/")}
    assert {p for p in files if p.startswith("/usr/sbin/")} == {f"/usr/sbin/{n}" for n in NAMES}
    assert not any(p.startswith("/usr/bin/") for p in paths)
    assert {p for p in files if p.startswith("/lib/systemd/")} == {f"/lib/systemd/system/{u}" for u in UNITS}
    assert {p for p in files if p.startswith("/usr/share/man/")} == {
        f"/usr/share/man/man8/{n}.8.gz" for n in NAMES}
    assert {"/usr/share/doc/wgkill/README.md.gz", "/usr/share/doc/wgkill/copyright"} <= files
    assert {"/usr/share/doc/wgkill/examples/wgkill.rules.yml",  # the alert rules, beside their tests
            "/usr/share/doc/wgkill/examples/wgkill.rules.test.yml"} <= files
    python = {p for p in files if p.startswith("/usr/lib/python3/")}
    assert python and all(p.startswith(("/usr/lib/python3/dist-packages/wgkill/",
                                        "/usr/lib/python3/dist-packages/wgkill-")) for p in python), python
    assert not any("/tests/" in p or "wgkill_lab" in p for p in paths)  # the product only: no lab, no demo
    assert not any(p.endswith(("/wgkill/lab.py", "/wgkill/demo.py", "/wgkill/netns.py")) for p in paths)
    assert not any(p.startswith("/var/lib/wgkill") for p in paths)  # state is never the package's
    assert all(p.startswith(("/usr/sbin/", "/lib/systemd/system/", "/usr/share/", "/usr/lib/python3/"))
               for p in files), files


def test_lintian_finds_no_errors_or_warnings(deb: Path) -> None:
    done = _run(["lintian", "--fail-on", "error,warning", "--no-tag-display-limit", str(deb)])
    tags = [ln for ln in done.stdout.splitlines() if ln[:2] in ("E:", "W:")]
    assert done.returncode == 0 and tags == [], done.stdout + done.stderr


def test_every_packaged_unit_passes_systemd_analyze_verify(deb: Path, tmp_path: Path) -> None:
    """Unpacked, not installed: each unit checked against the package's own tree (its
    ExecStart binary, its Documentation= man page)."""
    _ok(["dpkg-deb", "-x", str(deb), str(tmp_path)])
    units = sorted((tmp_path / "lib/systemd/system").glob("*"))
    assert sorted(u.name for u in units) == sorted(UNITS)
    env = {"MANPATH": str(tmp_path / "usr/share/man")}
    for unit in units:
        done = _ok(["systemd-analyze", "verify", f"--root={tmp_path}", str(unit)], env=env)
        assert done.stderr == "" and done.stdout == "", done.stderr


def test_installed_package_holds_the_block_and_goes_without_lifting_it(
        package: Path, system_lab: Lab) -> None:
    lab = system_lab
    before = snapshot()
    _ok([*APT, "install", f"./{package.relative_to(ROOT)}"])
    assert installed()

    # what the package put in place: system Python, /usr/sbin, man pages, the unit enabled
    for name in NAMES:
        assert (Path("/usr/sbin") / name).read_text().splitlines()[0] == "#!/usr/bin/python3"
    where = _ok(["/usr/bin/python3", "-c", "import wgkill; print(wgkill.__file__)"], cwd=Path("/")).stdout
    assert where.strip() == "/usr/lib/python3/dist-packages/wgkill/__init__.py"
    assert _ok(["man", "-w", "wgkill-up"]).stdout.strip() == "/usr/share/man/man8/wgkill-up.8.gz"
    page = _ok(["man", "-P", "cat", "wgkill-up"], env={"MANWIDTH": "200"}).stdout
    assert page.startswith("WGKILL-UP(8)") and "--dns-backend" in page
    assert ENABLED == ["wgkill-boot.service", "wgkill-guard.service"] and TIMERS
    for unit in ENABLED:
        wants = Path("/etc/systemd/system/sysinit.target.wants") / unit
        assert wants.is_symlink() and os.readlink(wants) == f"/lib/systemd/system/{unit}"
    for timer in TIMERS:  # shipped, not enabled
        assert (Path("/lib/systemd/system") / timer).is_file()
        assert not (Path("/etc/systemd/system/timers.target.wants") / timer).exists()
    assert "ExecStart=/usr/sbin/wgkill-boot" in Path("/lib/systemd/system/wgkill-boot.service").read_text()
    _verify_units([Path("/lib/systemd/system") / u for u in UNITS])

    tunnel = _drop_procedure(lab, "/usr/sbin")
    _engage_and_drop(lab, tunnel)
    owned = _ok(["dpkg", "-L", "wgkill"]).stdout.splitlines()

    # remove: the programs go, the block and its state stay, and the user is told
    removed = _ok([*APT, "remove", "wgkill"])
    said = removed.stdout + removed.stderr
    assert f"a kill switch is still engaged for: {tunnel.iface}" in said
    assert "wgkill-release IFACE" in said
    assert not installed()
    for path in owned[1:]:  # the first line is "/."
        if os.path.islink(path) and os.path.isdir(path):
            continue  # /lib -> usr/lib on a merged-/usr system: the system's, not ours
        if os.path.isdir(path):
            assert _run(["dpkg-query", "-S", path]).returncode == 0, f"{path} left behind"
        else:
            assert not os.path.lexists(path), f"{path} left behind"
    assert not Path("/usr/lib/python3/dist-packages/wgkill").exists()  # byte-code included
    left = snapshot() - before  # Debian keeps a removed package's enablement until purge
    assert {p for p in left if not p.startswith(f"{HELPER_STATE}/")} == {
        f"/etc/systemd/system/sysinit.target.wants/{u}" for u in ENABLED}
    assert before - snapshot() == set()
    assert_blocked(lab)
    assert (STATE_DIR / f"{tunnel.iface}.json").exists()

    # purge with the block engaged: the state directory stays, and says why
    purged = _ok([*APT, "purge", "wgkill"])
    said = purged.stdout + purged.stderr  # apt passes the maintainer scripts' stderr on its stdout
    assert f"{STATE_DIR} kept: a kill switch is still engaged for: {tunnel.iface}" in said
    assert (STATE_DIR / f"{tunnel.iface}.json").exists()
    assert snapshot() == before  # the unit's enablement went with the purge
    assert_blocked(lab)

    # the way out the message names: install again, wgkill-release; then purge removes the state
    _ok([*APT, "install", f"./{package.relative_to(ROOT)}"])
    released = lab.client("/usr/sbin/wgkill-release", tunnel.iface)
    assert f"released {tunnel.iface}" in released.stderr
    assert_open_uplink(lab)
    purged = _ok([*APT, "purge", "wgkill"])
    assert "wgkill:" not in purged.stdout + purged.stderr  # nothing engaged, nothing to say
    assert not STATE_DIR.exists()
    assert snapshot() == before
    assert not installed()


# ---- make install ------------------------------------------------------------------------


@pytest.fixture
def make_install(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`make install` into a temporary root: the same recipe as /opt/wgkill and /usr/local/sbin,
    pip offline from the wheels `make test` fetched before the lab's `unshare --net`."""
    wheels = ROOT / "build" / "wheels"
    if not any(wheels.glob("jinja2-*.whl")):
        pytest.fail(f"{wheels} has no wheels: run `make wheels` (`make test` and `make lab` do)")
    where = {"PREFIX": str(tmp_path / "opt" / "wgkill"), "SBINDIR": str(tmp_path / "sbin"),
             "MANDIR": str(tmp_path / "man"), "UNITDIR": str(tmp_path / "systemd" / "system"),
             "PIP_ARGS": f"--no-index --find-links={wheels}"}
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "someone-elses").write_text("#!/bin/sh\n")
    try:
        yield where
    finally:
        if Path(where["PREFIX"], "installed-files").exists():
            _run(["make", "-C", str(ROOT), "uninstall", *(f"{k}={v}" for k, v in where.items())])


def _tree(top: Path) -> dict[str, str]:
    return {str(p.relative_to(top)): (os.readlink(p) if p.is_symlink() else p.read_text() if p.is_file()
                                      else "dir") for p in top.rglob("*")}


def test_make_install_holds_the_block_and_uninstall_removes_exactly_it(
        make_install: dict[str, str], tmp_path: Path) -> None:
    before = _tree(tmp_path)
    args = [f"{k}={v}" for k, v in make_install.items()]
    _ok(["make", "-C", str(ROOT), "install", *args], env={"MAKEFLAGS": ""})
    prefix, sbin = Path(make_install["PREFIX"]), Path(make_install["SBINDIR"])
    for name in NAMES:
        assert os.readlink(sbin / name) == str(prefix / "bin" / name)
    base = _ok([str(prefix / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"]).stdout
    assert base.strip() == "/usr"  # a virtualenv on the system's Python
    units = Path(make_install["UNITDIR"])
    assert f"ExecStart={sbin}/wgkill-boot" in (units / "wgkill-boot.service").read_text()
    for unit in ENABLED:
        assert os.readlink(units / "sysinit.target.wants" / unit) == str(units / unit)
    for timer in TIMERS:  # installed, not enabled
        assert (units / timer).is_file() and not (units / "timers.target.wants").exists()
    textfile = (units / "wgkill-textfile.service").read_text()
    assert f"ExecStart={sbin}/wgkill-status --prometheus-file" in textfile
    manpath = {"MANPATH": make_install["MANDIR"]}
    assert _ok(["man", "-w", "wgkill-up"], env=manpath).stdout.strip().endswith("/wgkill-up.8")
    _verify_units([units / u for u in UNITS], env=manpath)

    with Lab(bin_dir=str(sbin)) as lab:
        tunnel = _drop_procedure(lab, str(sbin))
        _engage_and_drop(lab, tunnel)
        done = _ok(["make", "-C", str(ROOT), "uninstall", *args],
                   env={"WGKILL_STATE_DIR": str(lab.state_dir)})
        assert f"a kill switch is still engaged for: {tunnel.iface}" in done.stderr
        assert_blocked(lab)  # uninstalling never lifts a block
        assert (Path(lab.state_dir) / f"{tunnel.iface}.json").exists()
    assert _tree(tmp_path) == before  # exactly what it made is gone, someone else's file stays
