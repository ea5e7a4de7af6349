"""wgkill-guard without a machine: what it logs, and what it leaves alone (lab: tests/lab/test_guard.py)."""

import time
from pathlib import Path

import pytest

from wgkill import guard
from wgkill.errors import FirewallError, UsageError
from wgkill.status.verdicts import Problem, Verdict


def test_repair_line_says_what_was_wrong_and_how_long_it_took() -> None:
    done = guard.Repair("wg0", ["chain wgkill-wg0 (ipv4) is gone", "ipset wgkill-wg0-4 is empty"], 0.0234)
    assert done.line() == ("wg0: repaired in 23 ms: chain wgkill-wg0 (ipv4) is gone; "
                           "ipset wgkill-wg0-4 is empty")
    failed = guard.Repair("wg0", ["x"], 0.5, failed="iptables-restore: exit status 4")
    assert failed.line() == "wg0: repair failed after 500 ms: iptables-restore: exit status 4 (found: x)"


def test_nothing_recorded_or_unreadable_is_left_alone(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGKILL_STATE_DIR", str(tmp_path))
    assert guard.repair("wg0") is None  # no state: nothing to guard, nothing engaged
    (tmp_path / "wg1.json").write_text("{not json")
    assert guard.repair("wg1") is None  # unreadable: wgkill-boot's to block, not the guard's to guess
    (tmp_path / "-j ACCEPT.json").write_text("{}")
    assert guard.check_all() == []


@pytest.mark.parametrize("interval", [0, -1, 3601])
def test_interval_out_of_range_is_a_usage_error(interval: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "require_root", lambda: None)
    with pytest.raises(UsageError):
        guard.run(lambda line: None, interval)


def test_a_repair_that_does_not_hold_is_not_tried_again_until_something_changes() -> None:
    """Its own repair wakes the guard: what it cannot fix must not become a loop."""
    seen = [[Problem(Verdict.CRITICAL, "chain-missing", "chain gone")]]
    applied: list[set[str]] = []
    stuck: dict[str, frozenset[str]] = {}

    def attempt() -> guard.Repair | None:  # the check and the re-application stand in for the kernel
        return guard.attempt("wg0", lambda: seen[-1], applied.append, time.monotonic(), stuck)

    first = attempt()
    assert first is not None and first.failed == "still: chain gone" and applied == [{"chain-missing"}]
    assert attempt() is None and len(applied) == 1  # the same: not again
    seen.append([Problem(Verdict.CRITICAL, "set-empty", "set empty")])  # something else changed
    assert attempt() is not None and len(applied) == 2
    seen.append([])
    assert attempt() is None and stuck == {}


def test_a_repair_that_holds_or_fails_says_so() -> None:
    broken = [Problem(Verdict.CRITICAL, "chain-missing", "chain gone")]
    checks = [broken, []]
    stuck: dict[str, frozenset[str]] = {"wg0": frozenset(["set empty"])}
    done = guard.attempt("wg0", lambda: checks.pop(0), lambda codes: None, time.monotonic(), stuck)
    assert done is not None and done.failed is None and done.problems == ["chain gone"] and stuck == {}

    def refused(codes: set[str]) -> None:
        raise FirewallError("iptables-restore: exit status 4")

    done = guard.attempt("wg0", lambda: broken, refused, time.monotonic(), stuck)
    assert done is not None and done.failed == "iptables-restore: exit status 4"
    assert stuck == {"wg0": frozenset(["chain gone"])}  # not tried again until it changes


def test_damage_that_comes_while_repairing_is_repaired_in_the_same_wake_up() -> None:
    """`iptables -F; ip6tables -F`: the second flush lands after the first repair. It is new
    damage, not a repair that did not hold: it is repaired at once, not left as stuck."""
    readings = [[Problem(Verdict.CRITICAL, "chain-missing", "ipv4 flushed")],
                [Problem(Verdict.CRITICAL, "jump-missing", "ipv6 flushed")], []]
    applied: list[set[str]] = []
    stuck: dict[str, frozenset[str]] = {}
    done = guard.attempt("wg0", lambda: readings.pop(0), applied.append, time.monotonic(), stuck)
    assert done is not None and done.failed is None and done.problems == ["ipv4 flushed", "ipv6 flushed"]
    assert applied == [{"chain-missing"}, {"jump-missing"}] and stuck == {}
