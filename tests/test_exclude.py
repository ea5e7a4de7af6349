"""Per-app exclusion without a machine: the record, the payloads, the decisions, the command's checks."""

import os
import subprocess
import sys
from pathlib import Path

import goldenfiles
import pytest
from payload_cases import render_body
from pyfakefs.fake_filesystem import FakeFilesystem

from wgkill.errors import CommandNotFoundError, ExecError, StateError, UsageError
from wgkill.exclude import ExclusionRecord, check_tunnel
from wgkill.exclude.launch import Account, environment, find_command
from wgkill.firewall.iptables import FilterSnapshot, parse_save
from wgkill.firewall.iptables_exclude import apply_payload
from wgkill.names import exclude_chain_names
from wgkill.policy import build_policy
from wgkill.recordclass import asdict
from wgkill.tunnel import LivePeer, TunnelFacts
from wgkill.wgconf import Endpoint

BIN = Path(sys.executable).parent
RECORD = ExclusionRecord("wg0", "wgkill-exclude", 51820, [4, 6])
EMPTY = {"mangle": FilterSnapshot(), "nat": FilterSnapshot()}
_check = goldenfiles.checker("payloads")


def test_record_round_trip_and_refusals() -> None:
    assert ExclusionRecord.from_dict(asdict(RECORD)) == RECORD
    for bad in ({**asdict(RECORD), "cgroup": "../init.scope"}, {**asdict(RECORD), "mark": 0},
                {**asdict(RECORD), "mark": "51820"}, {**asdict(RECORD), "families": [4, 4]},
                {**asdict(RECORD), "interface": "-j ACCEPT"}, {**asdict(RECORD), "version": 9},
                {**asdict(RECORD), "extra": 1}, None):
        with pytest.raises(StateError):
            ExclusionRecord.from_dict(bad)


def test_chain_names_fit_iptables() -> None:
    names = exclude_chain_names("a" * 15)
    assert max(len(n) for n in names.values()) <= 28
    assert len(set(names.values())) == 3


def test_apply_payload_fresh_and_in_place_is_golden() -> None:
    fresh = apply_payload(RECORD, EMPTY)
    _check("exclude-fresh.ipv4", fresh)
    applied = {"mangle": parse_save(_as_saved(fresh, "mangle"), "mangle"),
               "nat": parse_save(_as_saved(fresh, "nat"), "nat")}
    again = apply_payload(RECORD, applied)
    assert "-I " not in again and "-D " not in again  # jumps already first: only the bodies refilled
    _check("exclude-in-place.ipv4", again)


def _as_saved(payload: str, table: str) -> str:
    """What iptables-save would print after ``payload``: jumps appended as -A, bodies as they are."""
    lines, inside = [], False
    for line in payload.splitlines():
        if line.startswith("*"):
            inside = line == f"*{table}"
        if inside:
            for hook in ("OUTPUT", "PREROUTING", "POSTROUTING"):
                line = line.replace(f"-I {hook} 1 ", f"-A {hook} ")
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_kill_switch_lets_out_the_cgroup_and_the_mark_both() -> None:
    peer = LivePeer("k", Endpoint("198.51.100.2", 51820), ("0.0.0.0/0",))
    facts = TunnelFacts("wg0", 51820, 51820, (peer,))
    policy = build_policy("wg0", facts, None, exclude_cgroup="wgkill-exclude")
    body = render_body(policy.families[0])
    _check("full-tunnel-exclude.ipv4.rules", body)
    assert "-A wgkill-wg0 -m cgroup --path wgkill-exclude -m mark --mark 0xca6c -j RETURN\n" in body
    without_mark = build_policy("wg0", TunnelFacts("wg0", None, 51820, facts.peers), None,
                                exclude_cgroup="wgkill-exclude")
    assert "cgroup" not in render_body(without_mark.families[0])  # no mark, no exemption


@pytest.mark.parametrize(("fwmark", "full", "off", "why"), [
    (51820, False, False, "full tunnel"), (None, True, False, "fwmark"), (51820, True, True, "Table = off")])
def test_only_a_full_tunnel_routed_by_its_fwmark_can_exclude(fwmark: int | None, full: bool, off: bool,
                                                              why: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_tunnel(fwmark, full, off)
    assert why in str(caught.value)
    assert check_tunnel(51820, True, False) == 51820


def test_environment_is_minimal_and_documented() -> None:
    alice = Account("alice", 1000, 1000, "/home/alice", "/bin/zsh")
    caller = {"TERM": "xterm", "LANG": "C.UTF-8", "SSH_AUTH_SOCK": "/tmp/x", "LD_PRELOAD": "/x.so",
              "PATH": "/evil"}
    assert environment(alice, caller) == {
        "HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/zsh",
        "PATH": "/usr/local/bin:/usr/bin:/bin", "TERM": "xterm", "LANG": "C.UTF-8"}
    root = Account("root", 0, 0, "/root", "/bin/sh")
    assert environment(root, {})["PATH"].startswith("/usr/local/sbin:")


def test_find_command(tmp_path: Path) -> None:
    assert find_command("sh", "/usr/bin:/bin") in ("/usr/bin/sh", "/bin/sh")
    with pytest.raises(CommandNotFoundError):
        find_command("no-such-command-anywhere", "/usr/bin:/bin")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ExecError) as caught:
        find_command(str(plain), "/usr/bin")
    assert caught.value.exit_code == 126
    with pytest.raises(CommandNotFoundError) as missing:
        find_command(str(tmp_path / "gone"), "/usr/bin")
    assert missing.value.exit_code == 127


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "WGKILL_STATE_DIR": str(tmp_path / "state"),
           "LC_ALL": "C", "WGKILL_EXCLUDE_CGROUP": f"wgkill-exclude-unit-{os.getpid()}"}
    return subprocess.run([str(BIN / "wgkill-exclude"), *argv], capture_output=True, text=True, env=env,
                          check=False, timeout=60)


@pytest.mark.parametrize(("argv", "code", "said"), [
    ((), 2, "no command given"),
    (("--pid", "12", "--", "true"), 2, "no COMMAND"),
    (("--pid", "x"), 2, "invalid int"),
    (("--", "true"), 5, "no tunnel is protected with --allow-exclude"),
])
def test_exclude_refuses_in_one_line_before_any_change(tmp_path: Path, argv: tuple[str, ...], code: int,
                                                       said: str) -> None:
    done = _run(tmp_path, *argv)
    assert done.returncode == code, done.stderr
    assert len(done.stderr.splitlines()) == 1 and said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "exclude.log").exists()


def _state_with(interface: str, exclusion: ExclusionRecord | None) -> None:
    from wgkill import state as statefile

    statefile.save(statefile.State(interface=interface, applied_at="2027-01-15T08:00:00Z",
                                   exclude=exclusion))


def test_the_cgroup_goes_with_the_last_tunnel_that_allows_exclusion(
    fs: FakeFilesystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wgkill.exclude import release_cgroup

    monkeypatch.setenv("WGKILL_STATE_DIR", "/var/lib/wgkill")
    fs.create_file("/proc/self/mountinfo",
                   contents="41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    root = Path("/sys/fs/cgroup/unified")
    fs.create_file(root / "cgroup.procs")
    (root / "wgkill-exclude").mkdir()
    _state_with("wg0", RECORD)
    _state_with("wg1", ExclusionRecord("wg1", "wgkill-exclude", 51821, [4, 6]))
    _state_with("wg2", None)
    assert release_cgroup("wgkill-exclude", "wg0") is None  # wg1 still allows it: kept
    assert (root / "wgkill-exclude").is_dir()
    (Path("/var/lib/wgkill") / "wg1.json").write_text("{corrupt")
    assert release_cgroup("wgkill-exclude", "wg0") is None  # might still: kept
    (Path("/var/lib/wgkill") / "wg1.json").unlink()
    assert release_cgroup("wgkill-exclude", "wg0") == []  # only wg2 left, without exclusion: removed
    assert not (root / "wgkill-exclude").exists()


def test_nft_table_holds_the_exclusion_in_the_same_transaction() -> None:
    from wgkill.firewall import nft

    peer = LivePeer("k", Endpoint("198.51.100.2", 51820), ("0.0.0.0/0",))
    policy = build_policy("wg0", TunnelFacts("wg0", 51820, 51820, (peer,)), None,
                          exclude_cgroup="wgkill-exclude")
    text = nft.NftBackend.render(policy, None).payload
    _check("../nft/full-tunnel-exclude.nft", text)
    accept = 'socket cgroupv2 level 1 "wgkill-exclude" meta mark 0x0000ca6c accept'
    assert text.count(accept) == 2  # one per family
    assert 'socket cgroupv2 level 1 "wgkill-exclude" meta mark set 0x0000ca6c ct mark set 0x0000ca6c' in text
    assert "type nat hook postrouting priority srcnat" in text
    assert text.startswith("add table inet wgkill-wg0\n")  # the same one transaction


def test_nft_runs_in_a_mount_namespace_of_its_own_only_on_hybrid_hosts() -> None:
    from wgkill.cgroupns import argv_for

    assert argv_for(["/usr/sbin/nft", "-f", "-"], Path("/sys/fs/cgroup")) == ["/usr/sbin/nft", "-f", "-"]
    wrapped = argv_for(["/usr/sbin/nft", "-f", "-"], Path("/sys/fs/cgroup/unified"))
    assert wrapped[1:5] == ["--mount", "--propagation", "private", "--"]
    assert wrapped[-6:] == ["-m", "wgkill.cgroupns", "--", "/usr/sbin/nft", "-f", "-"]
