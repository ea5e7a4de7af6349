"""DNS leak prevention against real resolvers that log every query they see."""

from pathlib import Path

import pytest

from wgkill.dns.resolvfile import is_immutable
from wgkill_lab.netns import Lab, Tunnel
from wgkill_lab.resolvers import (
    ISP_ANSWER4,
    ISP_DNS4,
    LAN_DNS4,
    VPN_ANSWER4,
    LoggingResolver,
    dig,
    start_isp_resolver,
    start_lan_resolver,
    start_vpn_resolver,
)

from .checks import assert_blocked, hooks, state, wgkill_lines


def _resolvers(lab: Lab, tunnel: Tunnel,
               **isp_kw: object) -> tuple[LoggingResolver, LoggingResolver, LoggingResolver]:
    return start_isp_resolver(lab, **isp_kw), start_lan_resolver(lab), start_vpn_resolver(lab, tunnel)


def _getent(lab: Lab, name: str) -> str | None:
    done = lab.client("getent", "ahostsv4", name, check=False, timeout=30)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def _resolv_conf(lab: Lab) -> Path:
    return Path("/etc/netns") / lab.client_ns / "resolv.conf"


def _leak_attempts(lab: Lab) -> None:
    """Queries the way programs make them, plus straight at the ISP and the home router."""
    _getent(lab, "leak-getent.example")
    for server in (ISP_DNS4, LAN_DNS4):
        assert dig(lab, server, "leak-udp.example") == []
        assert dig(lab, server, "leak-tcp.example", tcp=True) == []


def test_full_tunnel_plain_resolv_conf(lab: Lab) -> None:
    original = _resolv_conf(lab).read_bytes()
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129", "--dns", "2001:db8:7:0::1"))
    isp, lan, vpn = _resolvers(lab, tunnel)
    assert _getent(lab, "before.example") == ISP_ANSWER4  # the uplink's resolver, before
    isp.clear()

    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    conf = _resolv_conf(lab).read_text()
    assert "nameserver 192.0.2.129\nnameserver 2001:db8:7::1\n" in conf
    assert _getent(lab, "up.example") == VPN_ANSWER4
    assert dig(lab, "2001:db8:7:0::1", "up6.example", "AAAA") != []
    _leak_attempts(lab)
    assert isp.count() == 0 and lan.count() == 0
    assert [q.name for q in vpn.queries("up.example")] == ["up.example"]
    record = state(lab, tunnel)
    assert record and record["dns"]["lock"] is True and record["dns"]["backend"] == "file"

    lab.kill_daemon(tunnel)  # unclean drop: nothing may reach any resolver
    vpn.clear()
    assert _getent(lab, "drop.example") is None
    _leak_attempts(lab)
    assert isp.count() == 0 and lan.count() == 0 and vpn.count() == 0
    assert_blocked(lab)

    lab.client("wgkill-down", tunnel.iface)  # after an unclean drop: restores resolv.conf too
    assert _resolv_conf(lab).read_bytes() == original
    assert _getent(lab, "after.example") == ISP_ANSWER4


def test_clean_down_restores_resolv_conf_byte_for_byte(lab: Lab) -> None:
    _resolv_conf(lab).write_bytes(b"# mine\nnameserver 203.0.113.53\noptions   edns0 \n")
    original = _resolv_conf(lab).read_bytes()
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129"))
    lab.wg_quick("up", tunnel)
    lab.client("wgkill-up", tunnel.iface, "--dns", "192.0.2.129")  # re-run keeps the first original
    lab.wg_quick("down", tunnel)
    assert _resolv_conf(lab).read_bytes() == original


def test_only_the_tunnels_resolvers_even_inside_the_tunnel(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129"))
    isp, _lan, vpn = _resolvers(lab, tunnel)
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    assert lab.whoami(4) == "198.51.100.2"  # the ISP resolver is routable through the tunnel...
    assert dig(lab, ISP_DNS4, "via-tunnel.example") == []  # ...but the lock refuses it
    assert dig(lab, ISP_DNS4, "via-tunnel-tls.example", tls=True) == []
    assert isp.count() == 0
    assert dig(lab, "192.0.2.129", "allowed.example") == [VPN_ANSWER4]
    assert vpn.count("allowed.example") == 1


def test_no_dns_lock_is_recorded_and_lets_dns_through_the_tunnel(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129", "--no-dns-lock"))
    isp, _lan, _vpn = _resolvers(lab, tunnel)
    up = lab.wg_quick("up", tunnel)
    assert "DNS lock is off" in up.stderr
    lab.wait_handshake(tunnel)
    assert dig(lab, ISP_DNS4, "unlocked.example") == [ISP_ANSWER4]
    assert [q.source for q in isp.queries("unlocked.example")] == ["198.51.100.2"]  # via the VPN
    assert state(lab, tunnel)["dns"]["lock"] is False  # type: ignore[index]
    lab.wg_quick("down", tunnel)


def _hostname_tunnel(lab: Lab, hooks: str) -> tuple[Tunnel, LoggingResolver, LoggingResolver]:
    tunnel = lab.add_tunnel(hooks=hooks)
    isp, lan, _vpn = _resolvers(lab, tunnel, answers={"vpn.lab.test": "198.51.100.2", "#": ISP_ANSWER4})
    lab.write_client_config(tunnel, hooks=hooks, allowed_ips="0.0.0.0/0, ::/0",
                            endpoint=f"vpn.lab.test:{tunnel.port}")
    up = lab.wg_quick("up", tunnel)
    assert "endpoint vpn.lab.test is a hostname" in up.stderr
    lab.wait_handshake(tunnel)
    assert state(lab, tunnel)["endpoints"][0]["name"] == "vpn.lab.test"  # type: ignore[index]
    lab.kill_daemon(tunnel)
    isp.clear()
    return tunnel, isp, lan


def test_hostname_endpoint_reconnects_while_only_its_own_name_leaves(lab: Lab) -> None:
    """System resolver on the uplink: the block lets out lookups of the endpoint's name, only."""
    tunnel, isp, lan = _hostname_tunnel(lab, hooks())
    assert dig(lab, ISP_DNS4, "other.example") == []
    assert dig(lab, ISP_DNS4, "vpn.lab.test") == ["198.51.100.2"]
    assert {q.name for q in isp.queries()} == {"vpn.lab.test"}
    isp.clear()
    lab.wg_quick("up", tunnel)  # wg setconf looks vpn.lab.test up through the block
    lab.wait_handshake(tunnel)
    assert {q.name for q in isp.queries()} == {"vpn.lab.test"}
    assert lan.count() == 0
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_hostname_endpoint_with_tunnel_dns_reconnects_through_the_pin(lab: Lab) -> None:
    """DNS points at the (now unreachable) tunnel resolver: PreUp = wgkill-pin makes it need no DNS."""
    hook_lines = "PreUp = wgkill-pin %i\n" + hooks("--dns", "192.0.2.129")
    tunnel, isp, lan = _hostname_tunnel(lab, hook_lines)
    hosts = Path("/etc/netns") / lab.client_ns / "hosts"
    before = hosts.read_text()
    up = lab.wg_quick("up", tunnel)
    assert "wgkill-pin: pinned 198.51.100.2 vpn.lab.test" in up.stderr
    lab.wait_handshake(tunnel)
    assert hosts.read_text() == before  # PostUp removed the pin
    assert isp.count() == 0 and lan.count() == 0  # not even the endpoint's name left
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == [] and hosts.read_text() == before


def test_lock_resolv_conf_sets_and_lifts_immutable(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129", "--lock-resolv-conf"))
    lab.wg_quick("up", tunnel)
    assert is_immutable(_resolv_conf(lab))
    lab.client("wgkill-up", tunnel.iface, "--dns", "192.0.2.129", "--lock-resolv-conf")  # re-run is fine
    lab.wg_quick("down", tunnel)
    assert not is_immutable(_resolv_conf(lab))


def test_already_immutable_resolv_conf_refused_before_any_change(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    path = _resolv_conf(lab)
    before = path.read_bytes()
    lab.client("chattr", "+i", "/etc/resolv.conf")
    try:
        done = lab.client("wgkill-up", tunnel.iface, "--dns", "192.0.2.129", check=False)
        assert done.returncode == 8
        assert len(done.stderr.splitlines()) == 1 and "immutable already" in done.stderr
        assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    finally:
        lab.client("chattr", "-i", "/etc/resolv.conf")
    assert path.read_bytes() == before


@pytest.mark.parametrize(("dns", "message"), [("bad.example", "is not an IP address"),
                                              ("192.0.2.999", "is not an IP address")])
def test_bad_dns_values_refused(lab: Lab, dns: str, message: str) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    done = lab.client("wgkill-up", tunnel.iface, "--dns", dns, check=False)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1
    assert wgkill_lines(lab) == []


def test_config_dns_with_search_domain_and_too_many_resolvers(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    config = lab.tmp / f"{tunnel.iface}.conf"
    config.write_text(tunnel.config.read_text().replace(
        "[Peer]", "DNS = 192.0.2.129, corp.example, 192.0.2.130, 192.0.2.131, 2001:db8:7:0::1\n[Peer]"))
    done = lab.client("wgkill-up", tunnel.iface, "--config", str(config))
    assert "glibc reads only the first 3" in done.stderr
    conf = _resolv_conf(lab).read_text()
    assert "search corp.example\n" in conf and conf.count("nameserver") == 4
    lab.client("wgkill-down", tunnel.iface)
