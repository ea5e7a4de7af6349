"""Which other tunnels a block names (lab: tests/lab/test_beside.py proves the packets)."""

from pathlib import Path

import pytest

from wgkill import compose


def test_peers_are_the_other_recorded_interfaces_by_valid_name(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path))
    for name in ("wg0", "wg1", "wg2", "not;a name", "-j ACCEPT"):
        (tmp_path / f"{name}.json").write_text("{}")  # a corrupt state still stands for a block
    assert compose.peers("wg1").interfaces == ("wg0", "wg2")
    assert compose.peers("wg9").interfaces == ("wg0", "wg1", "wg2")
    assert compose.peers("wg9").endpoints == ()  # corrupt: known by name only


def test_recompose_leaves_states_without_a_recorded_policy_alone(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A block recorded by 0.1 has no policy to re-render: its rules stay as they were."""
    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path))
    sample = Path(__file__).parent / "samples" / "state-v1.json"
    text = sample.read_text().replace('"wg0"', '"wg5"')
    (tmp_path / "wg5.json").write_text(text)
    (tmp_path / "wg6.json").write_text("{not json")
    assert compose.recompose("wg1") == [f"wg6: block not re-applied with its new peers: corrupt state file "
                                        f"{tmp_path}/wg6.json: not valid JSON (Expecting property name "
                                        "enclosed in double quotes: line 1 column 2 (char 1))"]
    assert (tmp_path / "wg5.json").read_text() == text


def test_peers_carry_the_other_tunnels_recorded_endpoints_and_fwmark(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block lets out the other tunnels' own UDP to their endpoints, as their blocks do."""
    from wgkill.policy import PeerEndpoint

    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path))
    sample = (Path(__file__).parent / "samples" / "state-v1.json").read_text()
    (tmp_path / "wg5.json").write_text(sample.replace('"wg0"', '"wg5"'))
    tampered = sample.replace('"wg0"', '"wg6"').replace('"198.51.100.2"', '"x; accept"')
    (tmp_path / "wg6.json").write_text(tampered)
    found = compose.peers("wg1")
    assert found.interfaces == ("wg5", "wg6")
    assert found.endpoints == (PeerEndpoint("198.51.100.2", 51820, 51820),)  # wg6's: no address, name only
    assert compose.peers("wg5").endpoints == ()
