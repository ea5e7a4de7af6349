"""Bad input and broken pieces in the lab: one line, a documented code, never a leak."""

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from wgkill_lab.netns import Lab

from .checks import assert_blocked, assert_open_uplink, rules, state, wgkill_lines


@pytest.mark.parametrize("name", ["wg0;touch PWNED", "-j ACCEPT", "A" * 16, "$(touch PWNED)"])
def test_hostile_interface_names_create_nothing(lab: Lab, name: str) -> None:
    before = rules(lab)
    name = name.replace("PWNED", str(lab.tmp / "pwned"))
    for command in ("wgkill-up", "wgkill-down"):
        done = lab.client(command, "--", name, check=False)
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1 and "invalid interface name" in done.stderr
    assert not (lab.tmp / "pwned").exists()
    assert rules(lab) == before
    assert not lab.state_dir.exists()


def test_corrupt_state_keeps_blocking_until_force(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    applied = rules(lab)
    (lab.state_dir / f"{tunnel.iface}.json").write_text('{"version": 1, "interf')
    done = lab.client("wgkill-down", tunnel.iface, check=False)
    assert done.returncode == 4 and len(done.stderr.splitlines()) == 1
    assert "corrupt state file" in done.stderr
    assert rules(lab) == applied
    down = lab.wg_quick("down", tunnel, check=False)  # PreDown fails: wg-quick keeps the tunnel
    assert down.returncode != 0
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    forced = lab.client("wgkill-down", "--force", tunnel.iface)
    assert forced.returncode == 0
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    lab.wg_quick("down", tunnel)  # nothing recorded now: PreDown succeeds
    assert_open_uplink(lab)


@pytest.mark.parametrize(("where", "corrupt"), [
    ("policy", lambda d: d["policies"][0].update(chain="OUTPUT")),
    ("endpoint", lambda d: d["endpoints"][0].update(port="51820; accept")),
    ("dns", lambda d: d.update(dns=["not", "an", "object"])),
])
def test_a_corrupt_record_inside_the_state_refuses_at_load_and_changes_nothing(
        lab: Lab, where: str, corrupt) -> None:  # type: ignore[no-untyped-def]
    """The state is parsed into typed records at load: a bad sub-record refuses the whole state,
    exit 4, before wgkill-down removes anything (not halfway through, the DNS put back first)."""
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    applied = rules(lab)
    path = lab.state_dir / f"{tunnel.iface}.json"
    data = json.loads(path.read_text())
    corrupt(data)
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    done = lab.client("wgkill-down", tunnel.iface, check=False)
    assert done.returncode == 4, (where, done.stderr)
    assert len(done.stderr.splitlines()) == 1 and "corrupt state file" in done.stderr
    assert rules(lab) == applied and path.read_bytes() == before
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    lab.client("wgkill-down", "--force", tunnel.iface)
    lab.wg_quick("down", tunnel)


def _failing_shim(lab: Lab, name: str) -> str:
    """A PATH where ``name`` fails; for ``nft`` only its transactions fail (``nft list`` still works,
    so wgkill chooses nft and then cannot apply)."""
    shim = lab.tmp / "failing-bin"
    shim.mkdir(exist_ok=True)
    script = shim / name
    passthrough = 'case "$1" in list) exec /usr/sbin/nft "$@";; esac\n' if name == "nft" else ""
    script.write_text(f"#!/bin/sh\n{passthrough}echo 'simulated failure' >&2\nexit 1\n")
    script.chmod(0o755)
    return f"{shim}:{lab.env()['PATH']}"


def test_nft_transaction_failure_applies_nothing_and_fails_the_bring_up(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    before = rules(lab)
    # the binary, not libnftables in-process: the shim is what fails
    done = lab.client("env", f"PATH={_failing_shim(lab, 'nft')}", "WGKILL_LIBNFTABLES=0", "wgkill-up",
                      tunnel.iface, check=False)
    assert done.returncode == 6
    errors = [ln for ln in done.stderr.splitlines() if not ln.startswith("[#]")]
    assert len(errors) == 1 and "ruleset unchanged" in errors[0]
    assert rules(lab) == before and wgkill_lines(lab) == []  # both families or neither: neither
    assert state(lab, tunnel) is None  # nothing applied, nothing recorded


def test_second_family_failure_keeps_first_and_fails_the_bring_up(iptables_lab: Lab) -> None:
    lab = iptables_lab
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    path = _failing_shim(lab, "ip6tables-nft-restore")
    done = lab.client("env", f"PATH={path}", "wgkill-up", tunnel.iface, "--backend", "iptables", check=False)
    assert done.returncode == 6
    errors = [ln for ln in done.stderr.splitlines() if not ln.startswith("[#]")]
    assert len(errors) == 1 and "ipv4 block stays in place" in errors[0]
    assert f"wgkill-{tunnel.iface}" in lab.save(4)
    assert "wgkill" not in lab.save(6)
    assert state(lab, tunnel) is not None  # so that wgkill-down can find what was applied
    lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []


@pytest.mark.parametrize("backend, failing", [("nft", "nft"), ("iptables", "iptables-nft-restore")])
def test_failing_post_up_aborts_wg_quick(lab: Lab, backend: str, failing: str) -> None:
    tunnel = lab.add_tunnel(hooks="")
    path = _failing_shim(lab, failing)
    lab.write_client_config(
        tunnel,
        # WGKILL_LIBNFTABLES=0: the nft binary, not libnftables in-process: the shim is what fails
        hooks=f"PostUp = env PATH={path} WGKILL_LIBNFTABLES=0 wgkill-up %i --backend {backend}\n"
              "PreDown = wgkill-down %i\n",
        allowed_ips="0.0.0.0/0, ::/0", endpoint=f"198.51.100.2:{tunnel.port}",
    )
    up = lab.wg_quick("up", tunnel, check=False)
    assert up.returncode != 0
    assert lab.client("ip", "link", "show", tunnel.iface, check=False).returncode != 0
    assert wgkill_lines(lab) == []
    assert state(lab, tunnel) is None  # nothing was applied, so nothing is recorded


def test_missing_binary_one_line(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    bare = lab.tmp / "bare-bin"
    bare.mkdir()
    (bare / "wg").symlink_to("/usr/bin/wg")
    done = lab.client("/usr/bin/env", f"PATH={bare}", lab.bin_dir + "/wgkill-up", tunnel.iface, check=False)
    assert done.returncode == 5
    assert done.stderr.count("\n") == 1 and "iptables-restore not found" in done.stderr
    assert wgkill_lines(lab) == []


@pytest.mark.parametrize("backend", ["auto", "iptables"])
def test_dry_run_prints_payloads_and_changes_nothing(lab: Lab, backend: str) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    before = rules(lab)
    done = lab.client("wgkill-up", "--dry-run", tunnel.iface, "--backend", backend)
    if backend == "auto":  # nft works here
        assert done.stdout.startswith(f"# nft -f -\nadd table inet wgkill-{tunnel.iface}\n")
        assert f"table inet wgkill-{tunnel.iface} {{" in done.stdout
    else:
        assert "# iptables-restore -w -n" in done.stdout and "*filter" in done.stdout
        assert f"-I OUTPUT 1 -m comment --comment \"wgkill:{tunnel.iface}\"" in done.stdout
    assert rules(lab) == before
    assert not lab.state_dir.exists()


def test_dry_run_over_an_applied_block_prints_what_apply_would_feed_now(iptables_lab: Lab) -> None:
    """iptables' restore input depends on the jumps already there: --dry-run reads the live tables
    for it (Backend.preview, as apply does), the plan does not. The block in place with its jump
    first: nothing is inserted or deleted, and nothing changes."""
    lab = iptables_lab
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    before = rules(lab)
    done = lab.client("wgkill-up", "--dry-run", tunnel.iface, "--backend", "iptables")
    assert "# iptables-restore -w -n" in done.stdout and f":wgkill-{tunnel.iface} - [0:0]" in done.stdout
    assert "-I OUTPUT" not in done.stdout and "-D OUTPUT" not in done.stdout
    assert rules(lab) == before
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    """The process umask (inherited by wg-quick and its hooks) for the block only."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_directory_is_private(lab: Lab) -> None:
    """Under umask 000, which would leave anything created open: a new state directory is 0700, and
    one another tool left open (0777) is closed to 0700; the record is 0600 either way."""
    tunnel = lab.add_tunnel()
    with _umask(0o000):
        lab.wg_quick("up", tunnel)  # the directory does not exist yet
        assert _mode(lab.state_dir) == 0o700 and _mode(lab.state_dir / f"{tunnel.iface}.json") == 0o600
        lab.wg_quick("down", tunnel)
        lab.state_dir.chmod(0o777)  # left open, as a umask of 000 lets a mkdir leave it
        assert _mode(lab.state_dir) == 0o777
        lab.wg_quick("up", tunnel)
        assert _mode(lab.state_dir) == 0o700 and _mode(lab.state_dir / f"{tunnel.iface}.json") == 0o600
        lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []
