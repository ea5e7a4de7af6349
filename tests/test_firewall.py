"""Choosing a backend: an explicit request, else the recorded one, else nft where it works."""

import pytest

from wgkill import firewall
from wgkill import state as statefile
from wgkill.errors import UsageError


def _recorded(backend: str) -> statefile.State:
    return statefile.State(interface="wg0", applied_at="t", backend=backend)


@pytest.mark.parametrize("works, expected", [(True, "nft"), (False, "iptables")])
def test_auto_prefers_nft_where_it_works(monkeypatch: pytest.MonkeyPatch, works: bool, expected: str) -> None:
    monkeypatch.setattr(firewall, "nft_works", lambda: works)
    assert firewall.choose("auto") == expected


def test_recorded_backend_wins_over_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe() -> bool:
        raise AssertionError("the probe must not run when the state records the backend")

    monkeypatch.setattr(firewall, "nft_works", no_probe)
    assert firewall.choose("auto", _recorded("iptables")) == "iptables"
    assert firewall.choose("auto", _recorded("nft")) == "nft"


def test_explicit_request_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "nft_works", lambda: True)
    assert firewall.choose("iptables", _recorded("nft")) == "iptables"
    with pytest.raises(UsageError):
        firewall.choose("pf")


def test_nft_missing_means_it_does_not_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert firewall.nft_works() is False
