"""Beyond the article: lockdown, reboot persistence, gateway mode, LAN access, link upkeep."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from wgkill_lab.netns import CLIENT4, VPN4, VPN6, WEB4, Lab
from wgkill_lab.resolvers import LAN_DNS4, dig, start_lan_resolver

from .checks import (
    assert_blocked,
    assert_open_uplink,
    assert_through_tunnel,
    backend_args,
    gateway_nat,
    hooked,
    hooks,
    routed,
    simulate_reboot,
    state,
    wgkill_lines,
)


def test_lockdown_keeps_blocking_after_a_clean_down_until_released(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks=hooks("--lockdown"))
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    down = lab.wg_quick("down", tunnel)
    assert "lockdown: the block stays" in down.stderr
    assert state(lab, tunnel)["lockdown"] is True  # type: ignore[index]
    assert_blocked(lab)
    lab.wg_quick("up", tunnel)  # back up with the block held: no duplicates, still lockdown
    lab.wait_handshake(tunnel)
    assert hooked(lab) == 2  # one jump per family
    lab.wg_quick("down", tunnel)
    assert_blocked(lab)
    released = lab.client("wgkill-release", tunnel.iface)
    assert f"released {tunnel.iface}" in released.stderr
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    assert_open_uplink(lab)


def _hammer(lab: Lab, duration: float) -> "subprocess.Popen[str]":
    argv = ["ip", "netns", "exec", lab.client_ns, sys.executable, "-I", "-m", "wgkill_lab.servers", "hammer",
            WEB4, "--duration", str(duration)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=lab.env())


def test_reboot_reapplies_the_block_and_wg_quick_takes_over_without_a_gap(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.kill_daemon(tunnel)  # crash...
    simulate_reboot(lab)  # ...and reboot: everything in the kernel is gone
    assert lab.whoami(4) == CLIENT4  # without the boot unit, this is the leak
    boot = lab.client("wgkill-boot")
    assert "recorded block re-applied" in boot.stderr
    assert_blocked(lab)

    lab.reset_counters()
    hits = len(lab.web_hits())
    probe = _hammer(lab, duration=8)
    time.sleep(0.5)
    lab.wg_quick("up", tunnel)  # wg-quick@ starts later: PostUp takes the chains over in place
    out, _ = probe.communicate(timeout=30)
    outcomes = json.loads(out)
    assert outcomes.get("connected", 0) > 0 and outcomes.get("refused", 0) > 0, outcomes
    assert [h["src"] for h in lab.web_hits()[hits:] if h["src"] == CLIENT4] == []  # never via uplink
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    assert hooked(lab) == 2
    assert_through_tunnel(lab)
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_corrupt_state_at_boot_blocks(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.kill_daemon(tunnel)
    simulate_reboot(lab)
    (lab.state_dir / f"{tunnel.iface}.json").write_text("{ not json")
    boot = lab.client("wgkill-boot")
    assert "state unreadable: full block applied" in boot.stderr
    assert_blocked(lab)
    lab.client("wgkill-down", "--force", tunnel.iface)
    assert wgkill_lines(lab) == []
    assert_open_uplink(lab)


def test_gateway_mode_holds_routed_clients_to_the_tunnel(any_lab: Lab) -> None:
    lab = any_lab
    lan = lab.add_lan_host()
    tunnel = lab.add_tunnel(hooks=hooks("--gateway", *backend_args(lab)))
    lab.wg_quick("up", tunnel)
    gateway_nat(lab, tunnel)

    assert routed(lab, lan, WEB4) == VPN4 and routed(lab, lan, "2001:db8:80::80") == VPN6
    lab.kill_daemon(tunnel)
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert routed(lab, lan, WEB4) is None and routed(lab, lan, "2001:db8:80::80") is None
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}  # nothing from the LAN host reached the isp either
    assert len(lab.web_hits()) == hits
    lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []
    assert routed(lab, lan, WEB4) == "192.0.2.34"  # released: routed over the uplink again


def test_allow_lan_reaches_the_lan_but_not_its_resolver(lab: Lab) -> None:
    resolver = start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks=hooks("--lan", "192.0.2.0/28"))
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    assert lab.whoami(4, target=LAN_DNS4) == CLIENT4  # the router's web page, on the LAN
    assert dig(lab, LAN_DNS4, "router-dns.example") == []
    assert dig(lab, LAN_DNS4, "router-dns-tcp.example", tcp=True) == []
    assert resolver.count() == 0
    lab.wg_quick("down", tunnel)
    assert dig(lab, LAN_DNS4, "after.example") != []


def test_without_allow_lan_the_lan_is_blocked_too(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert lab.whoami(4, timeout=3, target=LAN_DNS4) is None
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}  # the router (the isp's side of the link) saw nothing
    assert len(lab.web_hits()) == hits  # and its web page got no request
    lab.wg_quick("down", tunnel)


def test_neighbour_discovery_keeps_working_during_a_drop(lab: Lab) -> None:
    tunnel = lab.add_tunnel(endpoint_family=6)
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.client("ip", "-6", "neigh", "flush", "dev", "uplink0")
    lab.reset_counters()
    send = ("import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 51820); "  # as WireGuard marks its own
            f"s.sendto(b'x', ('2001:db8:d::2', {tunnel.port}))")
    lab.client(sys.executable, "-I", "-c", send)  # allowed (the endpoint), so the router must be resolved
    deadline = time.monotonic() + 5
    while lab.counters()["ipv6"]["carrier"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    neigh = lab.client("ip", "-6", "neigh", "show", "dev", "uplink0").stdout
    assert "2001:db8:c::1 lladdr" in neigh  # a neighbour solicitation went out and was answered
    assert lab.counters()["ipv6"]["carrier"] >= 1 and lab.leaks()["ipv6"] == 0
    assert_blocked(lab)
    lab.wg_quick("down", tunnel)


def _dhcp(lab: Lab) -> tuple[Path, "subprocess.Popen[str]"]:
    """A real DHCP server (dnsmasq) on the isp and a real client (busybox udhcpc) holding a lease."""
    log = lab.tmp / "dhcp.log"
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.isp_ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
         "--no-resolv", "--port=0", "--interface=cust0", "--bind-interfaces", "--user=root", "--group=root",
         "--dhcp-range=192.0.2.8,192.0.2.12,255.255.255.240,2m", f"--dhcp-leasefile={lab.tmp}/leases",
         f"--log-facility={log}", "--log-dhcp"], env=lab.env())
    lab.adopt(server)
    script = lab.tmp / "udhcpc.sh"
    script.write_text('#!/bin/sh\n'
                      'case "$1" in bound|renew) ip addr replace "$ip/28" dev "$interface";; esac\n')
    script.chmod(0o755)
    client = subprocess.Popen(
        ["ip", "netns", "exec", lab.client_ns, "busybox", "udhcpc", "-f", "-i", "uplink0", "-s", str(script),
         "-t", "10", "-T", "1"], env=lab.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.adopt(client)
    _wait_for(lambda: _acks(log) >= 1, 30, "no DHCP lease")
    return log, client


def _acks(log: Path) -> int:
    return log.read_text().count("DHCPACK(cust0)") if log.exists() else 0


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_dhcp_lease_renewal_passes_the_block(lab: Lab) -> None:
    log, client = _dhcp(lab)
    tunnel = lab.add_tunnel()
    lab.wg_quick("up", tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    before = _acks(log)
    client.send_signal(signal.SIGUSR1)  # renew now: a unicast DHCPREQUEST from port 68 to 67
    _wait_for(lambda: _acks(log) > before, 15, "the lease was not renewed during the drop")
    assert_blocked(lab)  # the server acknowledged the renewal while everything else is refused
    lab.wg_quick("down", tunnel)
