"""The block the guard holds in a table of its own (``flags owner``): no window at all.

Each case: the tunnel dropped (so that without a block packets would take the
uplink), a UDP datagram every millisecond to the web server over IPv4 and over
IPv6, one common action of another tool while they run, and the isp's counter
as the far side's testimony. The same sender first shows, before any block,
that the counter does count those datagrams. With the guard's owned copy the
durable table's removal opens nothing, even for the milliseconds the guard
takes to put it back: 0 datagrams, where bench/guard_repair.py measured 16-32
without the copy.
"""

import contextlib
import re

import pytest

from wgkill.names import guard_table_name, nft_table_name
from wgkill_lab.guarding import DEBIAN_NFTABLES_CONF, Guard, act, stream
from wgkill_lab.netns import CLIENT4, CLIENT6, WEB4, WEB6, Lab, Tunnel

from .checks import assert_blocked, backend_args, hooks, wgkill_lines

STREAM_SECONDS = 1.0


def _actions(tunnel: Tunnel) -> dict[str, list[list[str]]]:
    return {
        "nft flush ruleset": [["nft", "flush", "ruleset"]],
        "nft -f debian nftables.conf": [["nft", "-f", "-", "<" + DEBIAN_NFTABLES_CONF]],
        "nft delete table": [["nft", "delete", "table", "inet", nft_table_name(tunnel.iface)]],
        "iptables -P OUTPUT ACCEPT": [["iptables", "-P", "OUTPUT", "ACCEPT"],
                                      ["ip6tables", "-P", "OUTPUT", "ACCEPT"]],
        "iptables -I OUTPUT -j ACCEPT": [["iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT"],
                                         ["ip6tables", "-I", "OUTPUT", "1", "-j", "ACCEPT"]],
        "iptables -F": [["iptables", "-F"], ["ip6tables", "-F"]],
    }


@contextlib.contextmanager
def _both_families(lab: Lab, seconds: float = STREAM_SECONDS):  # type: ignore[no-untyped-def]
    """A datagram a millisecond to the web server over IPv4 and over IPv6 while the body runs."""
    with stream(lab, seconds, target=WEB4) as sent4, stream(lab, seconds, target=WEB6) as sent6:
        yield sent4, sent6


def _witness_counts(lab: Lab) -> None:
    """Before any block: the same senders' datagrams are counted at the far side, both families."""
    lab.reset_counters()
    with _both_families(lab, 0.3) as (sent4, sent6):
        pass
    leaked = lab.leaks()
    assert sent4["sent"] > 0 and sent6["sent"] > 0
    assert leaked["ipv4"] > 0 and leaked["ipv6"] > 0, (leaked, sent4, sent6)


def _dropped_and_held(lab: Lab) -> tuple[Tunnel, Guard]:
    _witness_counts(lab)
    tunnel = lab.add_tunnel(hooks=hooks(*backend_args(lab)))
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    guard = Guard(lab)
    assert guard.holding() == [tunnel.iface]
    assert _owned_present(lab, tunnel)
    return tunnel, guard


def _owned_present(lab: Lab, tunnel: Tunnel) -> bool:
    tables = lab.client("nft", "list", "tables", "inet").stdout
    return re.search(rf"(?m)^table inet {re.escape(guard_table_name(tunnel.iface))}\b", tables) is not None


def _tries(outcome: dict[str, int]) -> int:
    """Datagrams the sender tried: sent, or refused locally by the block."""
    return outcome["sent"] + outcome["refused"]


def _hit(lab: Lab, action: str, steps: list[list[str]]) -> None:
    """Run ``action`` while both senders run; the far side must count 0 of their datagrams."""
    lab.reset_counters()
    with _both_families(lab) as (sent4, sent6):
        act(lab, steps)
    leaked = lab.leaks()
    print(f"\n{action} ({lab.backend or 'nft'}{' legacy' if lab.legacy else ''}): far side {leaked} "
          f"of {_tries(sent4)}+{_tries(sent6)}")
    assert _tries(sent4) > 100 and _tries(sent6) > 100
    assert leaked == {"ipv4": 0, "ipv6": 0}


NFT_ACTIONS = ["nft flush ruleset", "nft -f debian nftables.conf", "nft delete table",
               "iptables -P OUTPUT ACCEPT"]


@pytest.mark.parametrize("action", NFT_ACTIONS)
def test_owned_copy_leaves_no_window(lab: Lab, action: str) -> None:
    tunnel, guard = _dropped_and_held(lab)
    _hit(lab, action, _actions(tunnel)[action])
    assert _owned_present(lab, tunnel)  # nobody else can remove it
    if action != "iptables -P OUTPUT ACCEPT":  # that one does not touch the nft table: nothing to repair
        assert guard.wait_repairs(1) and "repaired" in guard.repairs()[0]
    assert_blocked(lab)
    assert guard.stop() == 0


IPTABLES_ACTIONS = ["nft flush ruleset", "iptables -F", "iptables -I OUTPUT -j ACCEPT",
                    "iptables -P OUTPUT ACCEPT"]


@pytest.mark.parametrize("action", IPTABLES_ACTIONS)
def test_owned_copy_holds_the_iptables_backend_too(iptables_lab: Lab, action: str) -> None:
    """The iptables backend's block, rendered for nft in the guard's owned table: another tool's
    ACCEPT above our jump (the leak that backend documents) and the flushes open nothing."""
    lab = iptables_lab
    tunnel, guard = _dropped_and_held(lab)
    _hit(lab, action, _actions(tunnel)[action])
    assert _owned_present(lab, tunnel)
    act(lab, [["iptables", "-P", "OUTPUT", "ACCEPT"], ["ip6tables", "-P", "OUTPUT", "ACCEPT"]])
    guard.stop()


@pytest.mark.parametrize("action", ["iptables -F", "iptables -I OUTPUT -j ACCEPT"])
def test_owned_copy_holds_iptables_legacy_too(legacy_lab: Lab, action: str) -> None:
    """iptables-legacy's tables are apart from nftables; the guard's nft copy holds beside them."""
    lab = legacy_lab
    tunnel, guard = _dropped_and_held(lab)
    _hit(lab, action, _actions(tunnel)[action])
    assert _owned_present(lab, tunnel)
    guard.stop()


def test_owned_copy_cannot_be_deleted_by_others(lab: Lab) -> None:
    tunnel, guard = _dropped_and_held(lab)
    refused = lab.client("nft", "delete", "table", "inet", guard_table_name(tunnel.iface), check=False)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    assert _owned_present(lab, tunnel)
    guard.stop()


def test_killed_guard_leaves_the_durable_block_and_a_new_one_holds_again(lab: Lab) -> None:
    tunnel, guard = _dropped_and_held(lab)
    lab.reset_counters()
    with _both_families(lab) as (sent4, sent6):
        guard.kill()
    assert _tries(sent4) > 100 and _tries(sent6) > 100
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    assert not _owned_present(lab, tunnel)  # gone with its socket; the hooks' table stays
    assert_blocked(lab)
    again = Guard(lab)
    assert again.holding() == [tunnel.iface] and _owned_present(lab, tunnel)
    _hit(lab, "nft flush ruleset", [["nft", "flush", "ruleset"]])
    assert again.stop() == 0


def test_wg_quick_down_with_the_guard_gives_the_uplink_back_at_once(lab: Lab) -> None:
    _witness_counts(lab)
    tunnel = lab.add_tunnel(hooks=hooks())
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    guard = Guard(lab)
    assert guard.holding() == [tunnel.iface]
    down = lab.wg_quick("down", tunnel)
    # neither table is left the moment wg-quick down returns
    assert wgkill_lines(lab) == [], (down.stderr, guard.lines)
    assert lab.whoami(4) == CLIENT4  # (at once: the line above; a slow answer is not a leak)
    assert lab.whoami(6) == CLIENT6
    assert any(": block released" in line for line in guard.lines)
    assert guard.stop() == 0


def test_wgkill_up_again_changes_both(lab: Lab) -> None:
    """A re-run of wgkill-up with another policy: the owned copy follows before it returns."""
    tunnel, guard = _dropped_and_held(lab)
    before = lab.client("nft", "list", "table", "inet", guard_table_name(tunnel.iface)).stdout
    lab.client("wgkill-up", tunnel.iface, "--config", str(tunnel.config), "--allow-lan")
    after = lab.client("nft", "list", "table", "inet", guard_table_name(tunnel.iface)).stdout
    assert after != before and "192.168.0.0/16" in after
    assert_blocked(lab)
    guard.stop()


def test_status_says_the_guard_holds_and_when_it_last_repaired(lab: Lab) -> None:
    tunnel, guard = _dropped_and_held(lab)
    metrics = lab.client("wgkill-status", "--prometheus", check=False).stdout
    assert f'wgkill_guard_holding{{interface="{tunnel.iface}"}} 1' in metrics
    assert "wgkill_repairs_total 0" in metrics and "wgkill_last_repair_timestamp_seconds" not in metrics
    act(lab, [["nft", "flush", "ruleset"]])
    assert guard.wait_repairs(1)
    metrics = lab.client("wgkill-status", "--prometheus", check=False).stdout
    assert "wgkill_repairs_total 1" in metrics and "wgkill_last_repair_timestamp_seconds " in metrics
    text = lab.client("wgkill-status", tunnel.iface, check=False).stdout
    assert "guard        holds the block in a table of its own" in text
    assert re.search(r"guard      running \(pid \d+\), 1 repair\(s\), the last \S+ ago", text), text
    guard.kill()
    metrics = lab.client("wgkill-status", "--prometheus", check=False).stdout
    assert f'wgkill_guard_holding{{interface="{tunnel.iface}"}} 0' in metrics
