"""What wakes wgkill-guard, without a machine: which blocks need the poll, and which inotify
events concern it (lab: tests/lab/test_guard.py, tests/lab/test_dns_hold.py; cost: bench/guard_idle.py)."""

import os
from pathlib import Path

import pytest

from wgkill import events, guard
from wgkill import state as statefile


def _iptables(variant: str, sets: list[str] | None = None) -> statefile.State:
    return statefile.State(interface="wg0", applied_at="2026-12-03T00:00:00Z", backend="iptables",
                           families={4: statefile.FamilyRecord(table="filter", chains=["wgkill-wg0"],
                                                               jumps=[], rules=3, sets=sets or [],
                                                               variant=variant)})


def _nft(dns: str | None = None) -> statefile.State:
    record = statefile.DnsState(record={"backend": dns, "path": "/etc/resolv.conf", "link": "wg0"}) if dns \
        else statefile.DnsState()
    return statefile.State(interface="wg0", applied_at="2026-12-03T00:00:00Z", backend="nft",
                           nft=statefile.NftRecord(table="wgkill-wg0", payload="", sets={4: "dst4"}),
                           dns=record)


@pytest.mark.parametrize(("recorded", "unheard"), [
    (_nft(), []),  # nftables: every change is an event, its split set's too
    (_iptables("nf_tables"), []),  # iptables-nft's rules are nftables events
    (_iptables("legacy"), ["iptables-legacy"]),
    (_iptables("nf_tables", ["wgkill-wg0-4"]), ["ipset"]),
    (_iptables("legacy", ["wgkill-wg0-4"]), ["iptables-legacy", "ipset"]),
    (_nft("file"), []),  # a held resolv.conf: inotify
    (_nft("resolved"), ["systemd-resolved"]),
    (_nft("resolvconf"), []),  # nothing held
])
def test_only_what_sends_no_event_needs_the_poll(recorded: statefile.State, unheard: list[str]) -> None:
    assert guard.unheard(recorded) == unheard


def test_a_watched_directory_wakes_only_for_its_names() -> None:
    directory = next(watch for watch in events.held_file("/etc/resolv.conf").values() if watch)
    watches = {1: None, 2: directory, 3: next(iter(events.state_files(Path("/var/lib/wgkill")).values()))}
    assert events.concerns(watches, 1, events.IN_CLOSE_WRITE, "")  # the held file itself
    assert events.concerns(watches, 2, events.IN_MOVED_TO, "resolv.conf")
    assert not events.concerns(watches, 2, events.IN_CREATE, "mtab")  # another file in /etc
    assert events.concerns(watches, 3, events.IN_MOVED_TO, "wg0.json")
    assert not events.concerns(watches, 3, events.IN_MOVED_TO, "guard.record")  # the guard's own figures
    assert not events.concerns(watches, 3, events.IN_CREATE, ".wg0.json.wgkill.x1y2")  # a temp file
    assert not events.concerns(watches, 9, events.IN_CLOSE_WRITE, "")  # a watch removed since
    assert events.concerns(watches, -1, events.IN_Q_OVERFLOW, "")  # events lost: check


def test_inotify_hears_a_file_written_in_place_or_replaced(tmp_path: Path) -> None:
    held, states = tmp_path / "resolv.conf", tmp_path / "state"
    held.write_text("nameserver 192.0.2.1\n")
    states.mkdir()
    inotify = events.Inotify.open()
    assert inotify is not None
    try:
        inotify.arm({**events.held_file(str(held)), **events.state_files(states)})
        assert not inotify.changed()  # nothing yet
        (tmp_path / "other").write_text("x")
        assert not inotify.changed()  # another name in the directory
        held.write_text("nameserver 198.51.100.1\n")  # in place (a bind mount, a DHCP client)
        assert inotify.changed()
        replacement = tmp_path / "new"
        replacement.write_text("nameserver 203.0.113.1\n")
        os.replace(replacement, held)
        assert inotify.changed()
        inotify.arm({**events.held_file(str(held)), **events.state_files(states)})  # the new inode
        held.write_text("nameserver 192.0.2.1\n")
        assert inotify.changed()
        (states / "wg0.json").write_text("{}")
        assert inotify.changed()
        inotify.arm({})
        held.write_text("nameserver 198.51.100.1\n")
        assert not inotify.changed()  # no longer watched
    finally:
        inotify.close()


def test_a_burst_is_one_wake_up_and_what_does_not_concern_it_none(tmp_path: Path) -> None:
    """A rewrite in many writes (as a flush and re-add is many netlink messages) wakes the guard
    once; a file beside the held one does not wake it at all."""
    held = tmp_path / "resolv.conf"
    held.write_text("nameserver 192.0.2.1\n")
    watch = guard.Watch(inotify=events.Inotify.open())
    assert watch.inotify is not None
    try:
        watch.inotify.arm(events.held_file(str(held)))
        (tmp_path / "other").write_text("x")
        assert watch.wait(0.05) is None  # not ours: slept through it
        with held.open("w") as out:
            for line in range(50):
                out.write(f"nameserver 198.51.100.{line}\n")
                out.flush()
        assert watch.wait(1) is not None
        assert watch.wait(0.05) is None  # the whole burst was drained with the first event
    finally:
        watch.close()
