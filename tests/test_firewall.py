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


def test_an_iptables_plan_reads_no_table_and_its_preview_reads_the_live_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans are pure: the restore input against the live tables (which a jump already there changes)
    is built only by ``preview`` (``--dry-run``), as ``apply`` builds it, never by ``plan``."""
    from payload_cases import CASES

    from wgkill.firewall.iptables import FilterSnapshot, IptablesBackend, IptablesFamily, chain_specs
    from wgkill.policy import build_policy

    policy = build_policy("wg0", CASES["full-tunnel"], None, families=(4,))
    specs = chain_specs(policy.families[0])
    jump = specs[0].jump
    live = FilterSnapshot(chains={specs[0].chain}, rules={specs[0].hook: ["-j ACCEPT", jump]})  # displaced
    read: list[int] = []

    def snapshot(self: IptablesFamily, table: str = "filter") -> FilterSnapshot:
        read.append(self.family)
        return live

    monkeypatch.setattr(IptablesFamily, "snapshot", snapshot)
    backend = IptablesBackend({4: "nf_tables", 6: "nf_tables"})
    plan = backend.plan(policy, None, cache=False)
    assert read == []
    assert plan.payloads == {"iptables-restore -w -n": IptablesFamily.apply_payload(specs, FilterSnapshot())}
    monkeypatch.setattr("os.geteuid", lambda: 0)
    shown = backend.preview(plan)
    assert read == [4]
    assert shown == {"iptables-restore -w -n": IptablesFamily.apply_payload(specs, live)}
    assert f"-D {specs[0].hook} {jump}" in shown["iptables-restore -w -n"]  # moved first, as apply would
