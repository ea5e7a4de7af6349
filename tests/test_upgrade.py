"""A state written by wgkill 0.1 (version 1) is read into the version-2 records and released by
the iptables backend it names. tests/samples/state-v1.json was written by main's (0.1) state.py;
the lab proves the release on real rules
(tests/lab/test_nft_lab.py::test_upgrade_from_a_v1_state_comes_down_cleanly)."""

import json
from pathlib import Path

import pytest

from wgkill import state as statefile
from wgkill.errors import StateError

DIR = Path("/var/lib/wgkill")
SAMPLE = (Path(__file__).parent / "samples" / "state-v1.json").read_text()  # read before pyfakefs


@pytest.fixture
def v1(fs) -> dict:  # type: ignore[no-untyped-def]
    fs.create_file(DIR / "wg0.json", contents=SAMPLE)
    return json.loads(SAMPLE)


def test_v1_state_is_read_as_iptables_with_its_variant_per_family(v1: dict) -> None:
    assert v1["version"] == 1 and v1["iptables_variant"] == "legacy"
    loaded = statefile.load("wg0", DIR)
    assert loaded is not None
    assert loaded.backend == "iptables" and loaded.nft is None
    assert sorted(loaded.families) == [4, 6]
    assert {f: r.variant for f, r in loaded.families.items()} == {4: "legacy", 6: "legacy"}
    assert loaded.families[4].remove_payload == v1["families"]["ipv4"]["remove_payload"]
    assert loaded.families_covered() == {4, 6}


def test_v1_state_saved_again_is_version_2(v1: dict) -> None:
    loaded = statefile.load("wg0", DIR)
    assert loaded is not None
    statefile.save(loaded, DIR)
    data = json.loads((DIR / "wg0.json").read_text())
    assert data["version"] == 2 and data["backend"] == "iptables" and "iptables_variant" not in data
    assert sorted(data["families"]) == ["4", "6"] and data["families"]["6"]["variant"] == "legacy"
    assert statefile.load("wg0", DIR) == loaded


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("iptables_variant"), "iptables_variant"),
    (lambda d: d["families"].update({"4": d["families"]["ipv4"]}), "bad family"),
    (lambda d: d.update(version=3), "unknown version"),
])
def test_broken_v1_states_are_refused(v1: dict, change, message: str) -> None:  # type: ignore[no-untyped-def]
    change(v1)
    (DIR / "wg0.json").write_text(json.dumps(v1))
    with pytest.raises(StateError, match=message):
        statefile.load("wg0", DIR)


def test_v2_nft_state_round_trips(fs) -> None:  # type: ignore[no-untyped-def]
    state = statefile.State(
        interface="wg0", applied_at="t", backend="nft",
        nft=statefile.NftRecord("wgkill-wg0", "add table inet wgkill-wg0\n",
                                {"output": 2, "ipv4": 9}, {4: "dst4"}),
    )
    statefile.save(state, DIR)
    assert statefile.load("wg0", DIR) == state
    data = json.loads((DIR / "wg0.json").read_text())
    del data["nft"]
    (DIR / "wg0.json").write_text(json.dumps(data))
    with pytest.raises(StateError, match="without its table record"):
        statefile.load("wg0", DIR)
