"""Beside the tunnel: a second protected tunnel, a container bridge, a Tailscale-like tunnel.

The far side's testimony is the isp's raw-table counters; for the second tunnel's
own UDP a counter of its own (``second``, its server port) is put first in them,
so what of its packets left by the uplink is read, not inferred. Each test first shows
that counter counting that UDP, and the client counts what it sent that way
(before its block): a test waits until some was sent, never a fixed time.
"""

import sys
from collections.abc import Callable

from wgkill_lab.netns import ETC_NETNS, ISP4, VPN4, WEB4, Lab, Tunnel, _run, wait_until

from .checks import (
    UplinkUdp,
    assert_through_tunnel,
    backend_args,
    block_text,
    hooks,
    names_peer,
    state,
    wgkill_lines,
)

BRIDGE4, CONTAINER4 = "192.0.2.65", "192.0.2.66"
BRIDGE6, CONTAINER6 = "2001:db8:b::1", "2001:db8:b::66"


def _ping(lab: Lab, address: str, ns: str | None = None, count: int = 1) -> bool:
    """One ICMP echo answered within 2 s (busybox ping: no other ping in the lab)."""
    done = lab.run(ns or lab.client_ns, "busybox", "ping", "-c", str(count), "-W", "2", address,
                   check=False, timeout=10)
    return done.returncode == 0


def _wait_reachable(lab: Lab, address: str, what: str, within: float = 10) -> None:
    """Answered within ``within`` seconds (a tunnel just up, or roaming, needs a handshake first)."""
    wait_until(lambda: _ping(lab, address), within, what)


def _count_second(lab: Lab, tunnel: Tunnel) -> None:
    """A far-side counter for ``tunnel``'s own UDP arriving from the client, ahead of the others."""
    lab.isp("iptables", "-t", "raw", "-I", "WGKLAB", "1", "-d", VPN4, "-p", "udp",
            "--dport", str(tunnel.port), "-m", "comment", "--comment", "second", "-j", "RETURN")


def _second_seen(lab: Lab) -> int:
    return lab.counters()["ipv4"].get("second", 0)


def _tries(sent: Callable[[], int], more: int, what: str) -> None:
    """Until ``more`` further datagrams of ``what`` headed out the uplink (and met the block)."""
    wanted = sent() + more
    wait_until(lambda: sent() >= wanted, 10, f"{more} datagrams of {what} heading for the uplink")


def _send_plaintext(lab: Lab, tunnel: Tunnel, *as_user: str, count: int = 5) -> None:
    """A program's UDP to ``tunnel``'s endpoint (root's, or ``setpriv`` arguments for another)."""
    code = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    try: s.sendto(b'plaintext', (sys.argv[1], int(sys.argv[2])))\n"
            "    except OSError: pass\n")
    lab.client(*as_user, sys.executable, "-I", "-c", code, VPN4, str(tunnel.port), str(count))


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _count_plaintext(lab: Lab, tunnel: Tunnel) -> None:
    """A far-side counter for that plaintext alone, ahead of every other (WireGuard's own differ)."""
    lab.isp("iptables", "-t", "raw", "-I", "WGKLAB", "1", "-d", VPN4, "-p", "udp",
            "--dport", str(tunnel.port), "-m", "string", "--string", "plaintext", "--algo", "bm",
            "-m", "comment", "--comment", "plain", "-j", "RETURN")


def _only_its_own_endpoint_traffic(lab: Lab, tunnel: Tunnel) -> None:
    """Root's UDP to ``tunnel``'s endpoint passes (as that tunnel's own block lets it): the far
    side counts it; an unprivileged program's is held: it counts none of that."""
    _count_plaintext(lab, tunnel)
    lab.reset_counters()
    _send_plaintext(lab, tunnel)
    assert lab.counters()["ipv4"].get("plain", 0) == 5  # the witness counts it
    lab.reset_counters()
    _send_plaintext(lab, tunnel, *NOBODY)
    assert lab.whoami(4, timeout=2) is None
    seen = lab.counters()
    assert seen["ipv4"].get("plain", 0) == 0, seen
    assert seen["ipv4"].get("leak", 0) == 0 and seen["ipv6"].get("leak", 0) == 0, seen


def test_two_tunnels_compose_and_the_second_keeps_only_its_endpoint_when_the_first_drops(
        any_lab: Lab) -> None:
    lab = any_lab
    full = lab.add_tunnel()
    split = lab.add_tunnel(allowed_ips="192.0.2.145/32")  # the second server's own address
    _count_second(lab, split)
    sent = UplinkUdp(lab, split.port).sent  # before any block: what was sent that way
    lab.client(sys.executable, "-I", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
               f".sendto(b'x', ('{VPN4}', {split.port}))")  # no block yet: one datagram, and both
    assert _second_seen(lab) == 1 and sent() == 1, lab.counters()  # witnesses count it
    lab.wg_quick("up", full)
    lab.wait_handshake(full)
    lab.wg_quick("up", split)
    # the full tunnel's block now names the second tunnel and its endpoint: wg-quick up of wg1 re-applied it
    assert names_peer(lab, full, split)
    recorded = state(lab, full)["policies"][0]  # type: ignore[index]
    assert recorded["peer_interfaces"] == [split.iface]
    assert recorded["peer_endpoints"] == [{"address": VPN4, "port": split.port, "fwmark": None}]
    _wait_reachable(lab, split.server4, "the second tunnel's peer beside a full tunnel")
    assert_through_tunnel(lab)  # and the full tunnel still carries everything else

    lab.reset_counters()
    lab.client("ip", "link", "set", full.iface, "down")  # the full tunnel drops
    # wireguard-go keeps sending from the address it last heard on (the full tunnel's, now down)
    # and fails; the kernel's WireGuard drops a source whose route changed and takes the uplink. As it:
    peer = lab.client("wg", "show", split.iface, "peers").stdout.strip()
    lab.client("wg", "set", split.iface, "peer", peer, "endpoint", f"{VPN4}:{split.port}")
    # its own UDP now leaves by the uplink, as its own block lets it: the second tunnel goes on
    _wait_reachable(lab, split.server4, "the second tunnel's peer by the uplink")
    assert _second_seen(lab) > 0, lab.counters()
    _only_its_own_endpoint_traffic(lab, split)

    lab.client("ip", "link", "set", full.iface, "up")
    lab.wg_quick("down", split)  # the other block stops naming it
    assert split.iface not in block_text(lab, full)
    assert state(lab, full)["policies"][0]["peer_interfaces"] == []  # type: ignore[index]
    lab.wg_quick("down", full)
    assert wgkill_lines(lab) == []


def test_second_tunnel_with_an_on_link_endpoint_beside_a_full_tunnel(any_lab: Lab) -> None:
    """wg1's endpoint reached outside wg0 (an explicit route: a box on the LAN): wg0's block lets
    wg1's own UDP out as wg1's block does, at once on a reconnect, and after wg0 drops."""
    lab = any_lab
    full = lab.add_tunnel()
    split = lab.add_tunnel(allowed_ips="192.0.2.145/32")
    _count_second(lab, split)
    lab.wg_quick("up", full)
    lab.wait_handshake(full)
    lab.client("ip", "route", "add", f"{VPN4}/32", "via", ISP4)  # on-link: not through wg0
    lab.wg_quick("up", split)
    _wait_reachable(lab, split.server4, "the second tunnel's peer, first bring-up")
    lab.kill_daemon(split)  # a reconnect: wg0's block already names wg1's endpoint
    handshakes = UplinkUdp(lab, split.port, initiations=True)
    lab.wg_quick("up", split)
    _wait_reachable(lab, split.server4, "the second tunnel's peer after a reconnect")
    handshakes.assert_none_refused()  # at once: its first handshake was not held for the retry
    lab.reset_counters()
    assert _ping(lab, split.server4)
    assert _second_seen(lab) > 0  # by the uplink, as the route says
    assert_through_tunnel(lab)  # everything else still through wg0
    lab.client("ip", "link", "set", full.iface, "down")  # wg0 drops: wg1 goes on, nothing else
    _wait_reachable(lab, split.server4, "the second tunnel's peer after the first dropped")
    _only_its_own_endpoint_traffic(lab, split)
    lab.client("ip", "link", "set", full.iface, "up")
    lab.wg_quick("down", split)
    lab.wg_quick("down", full)
    assert wgkill_lines(lab) == []


def test_second_tunnel_up_first_is_named_by_the_full_tunnel_that_follows(any_lab: Lab) -> None:
    lab = any_lab
    full = lab.add_tunnel()
    split = lab.add_tunnel(allowed_ips="192.0.2.145/32")
    lab.wg_quick("up", split)
    lab.wg_quick("up", full)
    lab.wait_handshake(full)
    assert names_peer(lab, full, split) and names_peer(lab, split, full)
    # (not pinged here: wireguard-go keeps the source address its first handshake used, the
    # uplink's, which the server's wg0 peer then refuses inside wg0: a lab artefact, not the block)
    lab.wg_quick("down", full)
    assert full.iface not in block_text(lab, split)
    lab.wg_quick("down", split)


def _container(lab: Lab) -> str:
    """A bridge br0 in the client with a "container" namespace behind it (its own veth)."""
    ns = f"{lab.client_ns[:-len('client')]}ctr"
    lab.lan_ns = ns  # the lab removes it with its own namespaces
    (ETC_NETNS / ns).mkdir(parents=True, mode=0o700)
    _run(["ip", "netns", "add", ns])
    c = lab.client_ns
    _run(["ip", "-n", c, "link", "add", "br0", "type", "bridge"])
    _run(["ip", "link", "add", "vethc", "netns", c, "type", "veth", "peer", "name", "eth0", "netns", ns])
    for where, args in (
        (c, ["link", "set", "vethc", "master", "br0"]), (c, ["link", "set", "vethc", "up"]),
        (c, ["link", "set", "br0", "up"]), (c, ["addr", "add", f"{BRIDGE4}/28", "dev", "br0"]),
        (c, ["addr", "add", f"{BRIDGE6}/64", "dev", "br0", "nodad"]),
        (ns, ["link", "set", "lo", "up"]), (ns, ["link", "set", "eth0", "up"]),
        (ns, ["addr", "add", f"{CONTAINER4}/28", "dev", "eth0"]),
        (ns, ["addr", "add", f"{CONTAINER6}/64", "dev", "eth0", "nodad"]),
        (ns, ["route", "add", "default", "via", BRIDGE4]),
        (lab.isp_ns, ["route", "add", "192.0.2.64/28", "via", "192.0.2.2"]),
    ):
        _run(["ip", "-n", where, *args])
    lab.client("sysctl", "-qw", "net.ipv4.ip_forward=1")
    _wait_reachable(lab, CONTAINER4, "the container behind br0")
    return ns


def _container_reaches_the_web(lab: Lab, ns: str) -> bool:
    done = lab.run(ns, "curl", "-s", "--max-time", "3", f"http://{WEB4}/", check=False, timeout=10)
    return done.returncode == 0


def test_bridge_reachable_during_a_drop_only_with_allow_iface(lab: Lab) -> None:
    ns = _container(lab)
    assert _container_reaches_the_web(lab, ns)  # control: routed by the client, nothing holds it yet
    tunnel = lab.add_tunnel(hooks=hooks("--allow-iface", "br0", "--gateway"))
    lab.wg_quick("up", tunnel)
    dry = lab.client("wgkill-up", tunnel.iface, "--dry-run", "--allow-iface", "uplink+")
    assert "warning: --allow-iface uplink+ (uplink0) matches the uplink" in dry.stderr
    lab.wait_handshake(tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert _ping(lab, CONTAINER4), "--allow-iface br0: the container stays reachable from the host"
    lab.reset_counters()
    assert not _container_reaches_the_web(lab, ns)  # gateway mode: its internet traffic is held
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    lab.client("ip", "link", "set", tunnel.iface, "up")
    lab.wg_quick("down", tunnel)

    lab.write_client_config(tunnel, hooks=hooks(), allowed_ips="0.0.0.0/0, ::/0",
                            endpoint=f"{VPN4}:{tunnel.port}")
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    assert not _ping(lab, CONTAINER4), "without --allow-iface the bridge is refused like the uplink"
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    lab.client("ip", "link", "set", tunnel.iface, "up")
    lab.wg_quick("down", tunnel)


def _tailscale(lab: Lab) -> Tunnel:
    """A second WireGuard tunnel standing in for Tailscale: its underlay packets carry 0x80000,
    and, as tailscaled does, a rule sends them by the main table (around the full tunnel)."""
    ts = lab.add_tunnel(hooks="", allowed_ips="192.0.2.145/32", extra="FwMark = 0x80000\nTable = off\n")
    _count_second(lab, ts)
    lab.client("ip", "rule", "add", "fwmark", "0x80000/0xff0000", "lookup", "main", "priority", "5210")
    lab.wg_quick("up", ts)
    lab.client("ip", "route", "add", f"{ts.server4}/32", "dev", ts.iface)
    return ts


def test_tailscale_connects_during_a_drop_only_with_allow_mark(lab: Lab) -> None:
    full = lab.add_tunnel()
    ts = _tailscale(lab)
    sent = UplinkUdp(lab, ts.port).sent
    # allowed first: that the far side's counter counts its underlay is shown before it must read 0
    for options, connects in ((("--allow-iface", ts.iface, "--allow-mark", "0x80000/0xff0000"), True),
                              (("--allow-iface", ts.iface), False)):
        lab.write_client_config(full, hooks=hooks(*options), allowed_ips="0.0.0.0/0, ::/0",
                                endpoint=f"{VPN4}:{full.port}")
        lab.wg_quick("up", full)
        lab.wait_handshake(full)
        lab.reset_counters()
        lab.client("ip", "link", "set", full.iface, "down")
        if connects:
            _wait_reachable(lab, ts.server4, f"{ts.iface}'s peer with {options}")
            assert _second_seen(lab) > 0  # its underlay packets went out the uplink, as the user allowed
        else:
            assert not _ping(lab, ts.server4, count=2), (options, lab.counters())
            _tries(sent, 2, f"{ts.iface}'s underlay")
            assert _second_seen(lab) == 0, lab.counters()  # not one of them at the far side
        assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
        lab.client("ip", "link", "set", full.iface, "up")
        lab.wg_quick("down", full)
    lab.wg_quick("down", ts)


ALLOWED = {  # how each backend writes --allow-iface br-+ --allow-mark 0x80000/0xff0000
    "nft": ('oifname "br-*" accept', "meta mark & 0x00ff0000 == 0x00080000 accept"),
    "iptables": ("-o br-+ -j RETURN", "-m mark --mark 0x80000/0xff0000 -j RETURN"),
}


def test_allow_iface_and_mark_are_recorded_and_kept_by_boot(any_lab: Lab) -> None:
    lab = any_lab
    options = (*backend_args(lab), "--allow-iface", "br-+", "--allow-mark", "0x80000/0xff0000")
    tunnel = lab.add_tunnel(hooks=hooks(*options))
    up = lab.wg_quick("up", tunnel)
    # wg-quick's own fwmark, 51820 = 0xca6c, has kube-proxy's bits set, but no Kubernetes is here
    assert "shares bits" not in up.stderr, up.stderr
    recorded = state(lab, tunnel) or {}
    policies = recorded["policies"]  # each family's recorded policy: what boot and composition read
    assert policies and all(p["allow_interfaces"] == ["br-+"] and p["allow_marks"] == ["0x80000/0xff0000"]
                            for p in policies)
    wanted = ALLOWED[recorded["backend"]]
    assert all(rule in block_text(lab, tunnel) for rule in wanted), block_text(lab, tunnel)
    lab.kill_daemon(tunnel)
    for argv in (["nft", "flush", "ruleset"], ["iptables", "-F"], ["ip6tables", "-F"]):  # a reboot, for
        lab.client(*argv)  # the firewall (iptables-legacy is not in the nftables ruleset)
    assert wanted[0] not in block_text(lab, tunnel)
    lab.client("wgkill-boot")
    assert all(rule in block_text(lab, tunnel) for rule in wanted)
    lab.client("wgkill-down", tunnel.iface)


def test_fwmark_overlap_warned_only_where_the_mark_user_is_present(lab: Lab) -> None:
    """wg-quick's default fwmark has Kubernetes' 0x4000/0x8000 bits: warned where a CNI bridge exists."""
    lab.client("ip", "link", "add", "cni0", "type", "bridge")
    tunnel = lab.add_tunnel()
    up = lab.wg_quick("up", tunnel)
    assert "warning: the tunnel's fwmark 0xca6c shares bits with Kubernetes (0xc000)" in up.stderr, up.stderr
    lab.wg_quick("down", tunnel)
    lab.client("ip", "link", "del", "cni0")
