"""Reconnect at once under a held block (issue 20): the tunnel's first handshake gets out.

wg-quick brings the link up, and WireGuard sends its first handshake, before it
sets the fwmark; a block that let out only marked packets refused that
handshake and every reconnect waited for WireGuard's 5 s retry. The block now
passes unmarked WireGuard handshake messages from root's or the kernel's
sockets to the endpoint, and nothing else unmarked (test_nft_lab's exemption
test sends the rest).
"""

from wgkill_lab.netns import Lab, Tunnel

from .checks import (
    UplinkUdp,
    assert_blocked,
    assert_first_fetch_through_tunnel,
    simulate_reboot,
    wgkill_lines,
)


def _crashed(lab: Lab) -> Tunnel:
    """A tunnel up and through, then its daemon killed: the block holds."""
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.kill_daemon(tunnel)
    return tunnel


def _reconnects_at_once(lab: Lab, tunnel: Tunnel) -> None:
    assert_blocked(lab)
    handshakes = UplinkUdp(lab, tunnel.port, initiations=True)
    lab.wg_quick("up", tunnel)  # the block is held: the first handshake must get out
    assert_first_fetch_through_tunnel(lab, handshakes)
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_daemon_killed_then_wg_quick_up_answers_at_once(any_lab: Lab) -> None:
    _reconnects_at_once(any_lab, _crashed(any_lab))


def test_boot_with_a_held_block_then_wg_quick_up_answers_at_once(any_lab: Lab) -> None:
    lab = any_lab
    tunnel = _crashed(lab)
    simulate_reboot(lab)
    boot = lab.client("wgkill-boot")  # then wg-quick@, after wgkill-boot.service
    assert "recorded block re-applied" in boot.stderr
    _reconnects_at_once(lab, tunnel)
