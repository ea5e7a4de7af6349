"""The Ansible role (contrib/ansible/roles/wgkill) applied to the lab's client, as a fleet applies it.

ansible-core runs from a throwaway virtualenv (offline, from the wheels `make
test` fetched before the lab's `unshare --net`), with ``-c local`` inside the
client's namespace, where /etc/wireguard is the lab's (``ip netns exec``
bind-mounts /etc/netns/NAME/* over /etc). The playbook is the role README's,
its variables overridden: wgkill_deb is the .deb of `make deb`. The package is
installed machine-wide, so the package lock is held and it is purged afterwards,
even on failure, leaving the watched directories as they were.
"""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill_lab.netns import Lab

from .checks import assert_blocked, assert_through_tunnel
from .packaging import APT, installed, snapshot

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "contrib" / "ansible" / "roles"
WHEELS = ROOT / "build" / "ansible-wheels"
BAD_KEY = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtc2hvd24="


def _readme_playbook() -> str:
    text = (ROLES / "wgkill" / "README.md").read_text()
    return re.search(r"```yaml\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def ansible_playbook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ansible-core in a throwaway virtualenv on the system's Python; removed afterwards."""
    if not any(WHEELS.glob("ansible_core-*.whl")):
        pytest.fail(f"{WHEELS} has no ansible-core wheel: run `make wheels` (`make test` and `make lab` do)")
    venv = tmp_path_factory.mktemp("ansible") / "venv"
    try:
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        "--no-index", f"--find-links={WHEELS}", "ansible-core"], check=True,
                       capture_output=True, timeout=600)
        yield venv / "bin" / "ansible-playbook"
    finally:
        shutil.rmtree(venv.parent, ignore_errors=True)


def _play(lab: Lab, playbook: Path, work: Path, extra: dict[str, object],
          *options: str) -> subprocess.CompletedProcess[str]:
    (work / "inventory.ini").write_text(
        "[wireguard_gateways]\n"
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    (work / "site.yml").write_text(_readme_playbook())
    (work / "vars.json").write_text(json.dumps({**extra, "ansible_become": False}))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(work),
           "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
           "ANSIBLE_REMOTE_TMP": str(work / "tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    argv = lab.argv(lab.client_ns, "env", *(f"{k}={v}" for k, v in env.items()), str(playbook),
                    "-i", str(work / "inventory.ini"), "-e", f"@{work / 'vars.json'}", "-v", *options,
                    str(work / "site.yml"))
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env)


def _recap(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    match = re.search(r"^localhost\s+:\s+(.*)$", done.stdout, re.M)
    assert match and done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_role_installs_hooks_the_config_idempotently_and_the_tunnel_holds(
        deb: Path, package_lock: None, ansible_playbook: Path, tmp_path: Path) -> None:
    if installed():
        pytest.fail("the wgkill package is installed on this machine already: refusing to replace it")
    before = snapshot()
    try:
        with Lab(bin_dir="/usr/sbin") as lab:
            tunnel = lab.add_tunnel(hooks="")  # a plain wg-quick config: the role adds the hooks
            tunnels = [{"name": tunnel.iface, "options": "--allow-lan"}]
            extra = {"wgkill_deb_src": "", "wgkill_deb": str(deb), "wgkill_textfile_dir": "",
                     "wgkill_tunnels": tunnels}
            first = _play(lab, ansible_playbook, tmp_path, extra)
            assert _recap(first)["changed"] >= 2, first.stdout  # the package, the config
            assert installed()
            config = tunnel.config.read_text()
            assert "PostUp = wgkill-up %i --allow-lan\n" in config and "PreDown = wgkill-down %i\n" in config
            assert tunnel.client_key not in first.stdout + first.stderr  # never in Ansible's output
            assert "wgkill-render:" not in first.stdout  # nor what wgkill-render says (it may quote it)
            assert "not systemd" in first.stdout and "were not touched" in first.stdout  # no systemd here

            second = _play(lab, ansible_playbook, tmp_path, extra)
            assert _recap(second)["changed"] == 0, second.stdout
            assert tunnel.config.read_text() == config
            assert _recap(_play(lab, ansible_playbook, tmp_path, extra, "--check"))["changed"] == 0

            # a config wgkill-render refuses (a malformed key line): the play stops and names it,
            # and shows nothing of what wgkill-render said about it
            bad = tunnel.config.with_name("wkbad0.conf")
            bad.write_text(f"[Interface]\nPrivateKey = {BAD_KEY} extra\n")
            bad.chmod(0o600)
            refused = _play(lab, ansible_playbook, tmp_path,
                            {**extra, "wgkill_tunnels": [*tunnels, {"name": "wkbad0"}]})
            assert refused.returncode != 0
            said = refused.stdout
            assert "wgkill-render refused /etc/wireguard/wkbad0.conf" in said, said[-3000:]
            assert BAD_KEY not in refused.stdout + refused.stderr
            assert bad.read_text() == f"[Interface]\nPrivateKey = {BAD_KEY} extra\n"

            assert lab.client("sh", "-c", "command -v wgkill-up").stdout.strip() == "/usr/sbin/wgkill-up"
            up = lab.wg_quick("up", tunnel)
            assert f"[#] wgkill-up {tunnel.iface} --allow-lan" in up.stderr
            lab.wait_handshake(tunnel)
            assert_through_tunnel(lab)
            lab.kill_daemon(tunnel)  # the drop
            seen = assert_blocked(lab)
            assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0
            lab.client("/usr/sbin/wgkill-release", tunnel.iface)
    finally:
        if subprocess.run(["dpkg-query", "-W", "wgkill"], capture_output=True, check=False).returncode == 0:
            subprocess.run([*APT, "purge", "wgkill"], capture_output=True, check=False, timeout=600,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"})
    assert not installed()
    assert snapshot() == before  # the package's files and its enablement gone, nothing else changed
