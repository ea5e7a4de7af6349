import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from wgkill import state as statefile
from wgkill.errors import StateError
from wgkill.records import EndpointRule

DIR = Path("/var/lib/wgkill")


def _state(interface: str = "wg0") -> statefile.State:
    return statefile.State(
        interface=interface,
        applied_at="2026-11-25T00:00:00Z",
        backend="iptables",
        fwmark=51820,
        config=f"/etc/wireguard/{interface}.conf",
        endpoints=(EndpointRule("198.51.100.2", 51820),),
        allowed_ips=["0.0.0.0/0", "::/0"],
        families={
            4: statefile.FamilyRecord(
                table="filter", chains=[f"wgkill-{interface}"],
                jumps=[{"chain": "OUTPUT", "spec": f"-j wgkill-{interface}"}],
                rules=9,
            )
        },
    )


def test_round_trip_and_modes(fs) -> None:
    path = statefile.save(_state(), DIR)
    assert stat.S_IMODE(DIR.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = statefile.load("wg0", DIR)
    assert loaded == _state()
    data = json.loads(path.read_text())
    assert data["version"] == statefile.VERSION
    assert data["families"]["4"]["chains"] == ["wgkill-wg0"]
    assert sorted(p.name for p in DIR.iterdir()) == ["wg0.json"]  # no temp file left behind


def test_fields_earlier_versions_wrote_and_nobody_reads_still_load(fs) -> None:
    """payload_sha256 and the top-level allow_interfaces/allow_marks are no longer written; a state
    an earlier wgkill wrote with them loads as if they were not there."""
    statefile.save(_state(), DIR)
    data = json.loads((DIR / "wg0.json").read_text())
    data["families"]["4"]["payload_sha256"] = "ab" * 32
    data["allow_interfaces"], data["allow_marks"] = ["br-+"], ["0x1/0x1"]
    (DIR / "wg0.json").write_text(json.dumps(data))
    assert statefile.load("wg0", DIR) == _state()


def test_a_corrupt_exclusion_record_refuses_the_state_at_load(fs) -> None:
    """Typed at load: a bad record is refused before any operation starts, not halfway through."""
    from wgkill.exclusion import ExclusionRecord

    state = _state()
    state.exclude = ExclusionRecord("wg0", "wgkill-exclude", 0xCA6C, [4, 6])
    statefile.save(state, DIR)
    assert statefile.load("wg0", DIR) == state
    data = json.loads((DIR / "wg0.json").read_text())
    data["exclude"]["cgroup"] = "../escape"
    (DIR / "wg0.json").write_text(json.dumps(data))
    with pytest.raises(StateError, match=r"corrupt state file .*bad cgroup name"):
        statefile.load("wg0", DIR)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("policies", [{"family": 4, "interface": "wg0"}], "corrupt recorded policy"),
    ("policies", ["not an object"], "corrupt recorded policy"),
    ("endpoints", [{"address": "198.51.100.2; accept", "port": 51820, "name": None}], "corrupt endpoints"),
    ("endpoints", [{"address": "198.51.100.2", "port": 70000, "name": None}], "corrupt endpoints"),
    ("routes", {"version": 2, "interface": "wg0"}, "corrupt route record"),
    ("routes", [], "route record of unknown version"),
    ("dns", {"servers": ["192.0.2.1; x"], "record": None}, "corrupt dns record"),
    ("dns", {"servers": [], "record": {"path": "/etc/passwd"}}, "names no backend wgkill has"),
    ("dns", ["not", "an", "object"], "corrupt dns record"),
])
def test_a_corrupt_sub_record_refuses_the_state_at_load(fs, key: str, value: object, says: str) -> None:
    """Every record below the top level is typed at load: one that is not what wgkill writes refuses
    the whole state (exit 4) before an operation starts; nothing downstream parses dicts."""
    statefile.save(_state(), DIR)
    data = json.loads((DIR / "wg0.json").read_text())
    data[key] = value
    (DIR / "wg0.json").write_text(json.dumps(data))
    with pytest.raises(StateError, match=f"corrupt state file .*{says}") as caught:
        statefile.load("wg0", DIR)
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)


def test_sub_records_load_typed() -> None:
    """What other modules get: records, never dicts (their JSON is what 0.1 and 0.2 wrote)."""
    for name in ("endpoints", "policies", "routes", "exclude", "dns"):
        kind = statefile.State.__annotations__[name]
        assert "dict" not in kind, (name, kind)


def test_existing_loose_directory_is_tightened(fs) -> None:
    fs.create_dir(DIR, perm_bits=0o755)
    statefile.save(_state(), DIR)
    assert stat.S_IMODE(DIR.stat().st_mode) == 0o700


def test_failed_write_keeps_the_old_file(fs, monkeypatch: pytest.MonkeyPatch) -> None:
    statefile.save(_state(), DIR)
    before = (DIR / "wg0.json").read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    changed = _state()
    changed.fwmark = 1
    with pytest.raises(StateError, match="No space left"):
        statefile.save(changed, DIR)
    assert (DIR / "wg0.json").read_bytes() == before
    assert sorted(p.name for p in DIR.iterdir()) == ["wg0.json"]


def test_nothing_recorded_is_none(fs) -> None:
    assert statefile.load("wg0", DIR) is None
    assert statefile.recorded_interfaces(DIR) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b'{"version": 1, "interface": "wg0", "fami', "not valid JSON"),  # truncated
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 99, "interface": "wg0"}', "unknown version"),
        (b'{"version": 1, "interface": "wg1"}', "records interface 'wg1'"),
        (b'{"version": 1, "interface": "wg0", "families": {}}', "'applied_at'"),
        (b'{"version": 1, "interface": "wg0", "families": {"ipv9": {}}}', "bad family"),
    ],
)
def test_corrupt_files_are_errors(fs, content: bytes, reason: str) -> None:
    fs.create_file(DIR / "wg0.json", contents=content)
    with pytest.raises(StateError, match=reason) as caught:
        statefile.load("wg0", DIR)
    assert "\n" not in str(caught.value)


def test_bad_chain_list_is_an_error(fs) -> None:
    data = json.loads(_state().to_json())
    data["families"]["4"]["chains"] = [1]
    fs.create_file(DIR / "wg0.json", contents=json.dumps(data))
    with pytest.raises(StateError, match="bad chains"):
        statefile.load("wg0", DIR)


def test_unreadable_file_is_an_error(fs) -> None:
    fs.create_dir(DIR / "wg0.json")  # a directory where the file should be
    with pytest.raises(StateError, match="cannot read state file"):
        statefile.load("wg0", DIR)


def test_env_overrides_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path / "s"))
    assert statefile.state_dir() == tmp_path / "s"
    monkeypatch.delenv("WGKILL_STATE_DIR")
    assert statefile.state_dir() == Path(statefile.DEFAULT_DIR)


def _hook(directory: str, interface: str, rounds: int) -> None:
    """Act like a hook: under the lock, read-modify-write a shared counter, save own state."""
    for _ in range(rounds):
        with statefile.lock(Path(directory)):
            counter = Path(directory) / "counter"
            value = int(counter.read_text()) if counter.exists() else 0
            statefile.save(_state(interface), Path(directory))
            counter.write_text(str(value + 1))


def test_concurrent_hooks_never_lose_each_others_work(tmp_path: Path) -> None:
    """Real processes and a real flock: wg0 and wg1 hooks at once, no lost update."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hook, args=(str(tmp_path), name, 50)) for name in ("wg0", "wg1")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert (tmp_path / "counter").read_text() == "100"
    assert statefile.recorded_interfaces(tmp_path) == ["wg0", "wg1"]
    assert statefile.load("wg0", tmp_path) == _state("wg0")
    assert statefile.load("wg1", tmp_path) == _state("wg1")
