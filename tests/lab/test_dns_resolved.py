"""DNS leak prevention with a real systemd-resolved as the client's system resolver.

resolved runs in the client namespace in a private mount namespace (wgkill_lab.resolved_harness);
wg-quick and its wgkill hooks run there too, so they see resolved exactly as on a
machine that has it. Every check counts what the ISP, LAN and VPN resolvers logged.
"""

import ipaddress
import re
from collections.abc import Iterator

import pytest

from wgkill_lab.netns import Lab, Tunnel
from wgkill_lab.resolved_harness import ResolvedHandle, start_resolved
from wgkill_lab.resolvers import (
    ISP_ANSWER4,
    ISP_DNS4,
    ISP_DNS6,
    LAN_DNS4,
    VPN_ANSWER4,
    VPN_ANSWER6,
    LoggingResolver,
    dig,
    start_isp_resolver,
    start_lan_resolver,
    start_resolver,
    start_vpn_resolver,
)

from .checks import (
    configure,
    dns_straight_at_uplink,
    hooks,
    require_dns_lab,
    state,
    wait_reachable,
    wgkill_lines,
)

CORP_ANSWER4 = "198.51.100.10"  # what the VPN resolver says for *.company.internal


@pytest.fixture
def resolved(lab: Lab) -> Iterator[ResolvedHandle]:
    require_dns_lab()
    handle = start_resolved(lab)
    try:
        yield handle
    finally:
        handle.stop()


def getent(handle: ResolvedHandle, name: str, family: str = "ahostsv4") -> str | None:
    """A lookup the way programs make one: glibc -> /etc/resolv.conf -> resolved's stub."""
    done = handle.run("getent", family, name, check=False, timeout=40)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def stub_dig(handle: ResolvedHandle, name: str, qtype: str = "A") -> list[str]:
    """``dig`` at resolved's stub listener, 127.0.0.53."""
    done = handle.run("dig", "+short", "+time=3", "+tries=1", "@127.0.0.53", name, qtype,
                      check=False, timeout=30)
    return [ln for ln in done.stdout.splitlines() if ln and not ln.startswith(";")]


def link_settings(handle: ResolvedHandle, link: str = "uplink0") -> dict[str, str]:
    """Everything resolvectl says about ``link``, for an exact before/after comparison."""
    said = {verb: handle.resolvectl(verb, link).stdout
            for verb in ("status", "dns", "domain", "default-route", "llmnr", "mdns", "dnssec")}
    said["all-links"] = handle.resolvectl("dns").stdout
    return said


def default_route(handle: ResolvedHandle, link: str) -> str:
    return handle.resolvectl("default-route", link).stdout.rsplit(":", 1)[-1].strip()


def routes_all_to_tunnel(handle: ResolvedHandle, tunnel: Tunnel) -> bool:
    """The article's resolved recipe on the tunnel's link: its server, ``~.``, the default route."""
    return (handle.link_dns(tunnel.iface) == [tunnel.server4] and handle.link_domains(tunnel.iface) == ["~."]
            and default_route(handle, tunnel.iface) == "yes")


def link_known(handle: ResolvedHandle, link: str) -> bool:
    """Whether resolved lists ``link`` at all (``resolvectl status GONE`` exits 0, "ignoring")."""
    listed = handle.resolvectl("status").stdout
    return re.search(rf"^Link \d+ \({re.escape(link)}\)$", listed, re.M) is not None


def quiet(*resolvers: LoggingResolver) -> list[int]:
    return [r.count() for r in resolvers]


# ---- full tunnel -------------------------------------------------------------------------

def _full_tunnel_up(lab: Lab, handle: ResolvedHandle, tunnel: Tunnel, isp: LoggingResolver,
                    lan: LoggingResolver, vpn: LoggingResolver) -> dict[str, str]:
    """Bring the tunnel up and prove every route to a resolver ends at the VPN's; returns the
    uplink's resolved settings from before."""
    assert getent(handle, "before.example") == ISP_ANSWER4  # the uplink's resolver, before
    before = link_settings(handle)
    assert handle.link_dns("uplink0") == [ISP_DNS4]
    isp.clear()

    handle.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    record = state(lab, tunnel)
    assert record is not None and record["dns"]["backend"] == "resolved", record
    assert record["dns"]["lock"] is True and record["dns"]["servers"] == [tunnel.server4]
    assert routes_all_to_tunnel(handle, tunnel), handle.resolvectl("status", tunnel.iface).stdout

    assert getent(handle, "up-getent.example") == VPN_ANSWER4
    assert stub_dig(handle, "up-stub.example") == [VPN_ANSWER4]
    assert stub_dig(handle, "up-stub6.example", "AAAA") == [VPN_ANSWER6]
    dns_straight_at_uplink(lab, "up")
    assert quiet(isp, lan) == [0, 0]
    seen = {(q.name, q.source) for q in vpn.queries()}
    assert {("up-getent.example", tunnel.client4), ("up-stub.example", tunnel.client4),
            ("up-stub6.example", tunnel.client4)} <= seen, seen
    return before


def _nothing_resolves(lab: Lab, handle: ResolvedHandle, isp: LoggingResolver, lan: LoggingResolver,
                      vpn: LoggingResolver, tag: str) -> None:
    """During an unclean drop: resolved falls back to the uplink's server, and the lock stops it."""
    vpn.clear()
    assert getent(handle, f"{tag}-getent.example") is None
    assert stub_dig(handle, f"{tag}-stub.example") == []
    dns_straight_at_uplink(lab, tag)
    assert quiet(isp, lan, vpn) == [0, 0, 0]
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}


def test_full_tunnel_dns_option(lab: Lab, resolved: ResolvedHandle) -> None:
    """``--dns`` in PostUp: link gets the server, ~. and the default route; link down leaks nothing;
    a clean down leaves the uplink exactly as it was."""
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", tunnel.server4))
    vpn = start_vpn_resolver(lab, tunnel)
    before = _full_tunnel_up(lab, resolved, tunnel, isp, lan, vpn)

    lab.client("ip", "link", "set", tunnel.iface, "down")  # unclean: the link stays, its routes go
    lab.reset_counters()
    _nothing_resolves(lab, resolved, isp, lan, vpn, "linkdown")

    resolved.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    assert not link_known(resolved, tunnel.iface)
    assert link_settings(resolved) == before
    assert getent(resolved, "after.example") == ISP_ANSWER4
    assert [q.name for q in isp.queries()] == ["after.example"]
    assert lan.count() == 0


def test_full_tunnel_config_dns_through_resolvconf_emulation(lab: Lab, resolved: ResolvedHandle) -> None:
    """``DNS =`` in the config: wg-quick hands it to resolved's resolvconf, wgkill locks it down;
    the daemon killed, nothing resolves; reconnect and a clean down restore everything."""
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks(), extra=f"DNS = {tunnel.server4}\n")
    vpn = start_vpn_resolver(lab, tunnel)
    before = _full_tunnel_up(lab, resolved, tunnel, isp, lan, vpn)

    lab.kill_daemon(tunnel)  # unclean: the link vanishes, resolved forgets its settings
    assert not link_known(resolved, tunnel.iface)
    lab.reset_counters()
    _nothing_resolves(lab, resolved, isp, lan, vpn, "killed")

    up = resolved.wg_quick("up", tunnel)  # reconnect while the block holds
    assert "resolvconf -a" in up.stderr
    lab.wait_handshake(tunnel)
    assert routes_all_to_tunnel(resolved, tunnel)
    assert getent(resolved, "again.example") == VPN_ANSWER4
    assert quiet(isp, lan) == [0, 0]

    resolved.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    assert not link_known(resolved, tunnel.iface)
    assert link_settings(resolved) == before
    assert getent(resolved, "after.example") == ISP_ANSWER4


# ---- split tunnel, split DNS ------------------------------------------------------------

def test_split_tunnel_split_dns(lab: Lab, resolved: ResolvedHandle) -> None:
    """Only company.internal goes to the VPN resolver; the rest keeps the uplink's. The ISP and LAN
    never see a company name, also while the tunnel is dead; asked directly, the lock refuses."""
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    # The VPN resolver (tunnel.server4) is reachable only through the tunnel: the isp has no route
    # to it. A documentation prefix rides along so the tunnel is a real split tunnel.
    configure(lab, tunnel, hooks("--dns", tunnel.server4, "--dns-domain", "company.internal"),
              allowed_ips=f"{tunnel.server4}/32, {tunnel.server6}/128, 198.51.100.128/25")
    assert dig(lab, tunnel.server4, "unreachable.company.internal", timeout=1) == []
    vpn = start_resolver(lab, lab.vpn_ns, (tunnel.server4, tunnel.server6), name="vpn-corp",
                         answers={"*.company.internal": CORP_ANSWER4, "#": VPN_ANSWER4})
    assert getent(resolved, "before.example") == ISP_ANSWER4
    before = link_settings(resolved)
    isp.clear()

    resolved.wg_quick("up", tunnel)
    wait_reachable(lab, tunnel.server4)
    vpn.clear()
    record = state(lab, tunnel)
    assert record is not None and record["dns"]["backend"] == "resolved"
    assert record["dns"]["domains"] == ["company.internal"]
    assert resolved.link_dns(tunnel.iface) == [tunnel.server4]
    assert resolved.link_domains(tunnel.iface) == ["~company.internal"]
    assert default_route(resolved, tunnel.iface) == "no"

    assert getent(resolved, "git.company.internal") == CORP_ANSWER4
    assert stub_dig(resolved, "wiki.company.internal") == [CORP_ANSWER4]
    assert getent(resolved, "news.example") == ISP_ANSWER4
    assert stub_dig(resolved, "shop.example") == [ISP_ANSWER4]
    assert dig(lab, ISP_DNS4, "direct.company.internal") == []  # refused by the firewall
    assert dig(lab, ISP_DNS4, "direct-tcp.company.internal", tcp=True) == []
    assert dig(lab, LAN_DNS4, "router.company.internal") == []
    assert dig(lab, ISP_DNS4, "direct.example") == [ISP_ANSWER4]  # other names still may
    assert {q.name for q in vpn.queries()} == {"git.company.internal", "wiki.company.internal"}
    assert {q.source for q in vpn.queries()} == {tunnel.client4}
    assert {q.name for q in isp.queries()} == {"news.example", "shop.example", "direct.example"}
    assert isp.count("company.internal") == 0 and lan.count() == 0

    lab.kill_daemon(tunnel)  # unclean: resolved forgets ~company.internal and asks the uplink
    isp.clear()
    vpn.clear()
    assert getent(resolved, "git.company.internal") is None  # fails, never falls back to the ISP
    assert stub_dig(resolved, "wiki.company.internal") == []
    assert dig(lab, ISP_DNS4, "direct.company.internal") == []
    assert dig(lab, ISP_DNS4, "direct-tcp.company.internal", tcp=True) == []
    assert dig(lab, LAN_DNS4, "router.company.internal") == []
    assert isp.count("company.internal") == 0 and lan.count() == 0 and vpn.count() == 0
    assert dig(lab, tunnel.server4, "held.company.internal", timeout=1) == []  # the block holds

    resolved.run("wgkill-down", tunnel.iface)  # the interface is gone: wg-quick down would refuse
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    assert not link_known(resolved, tunnel.iface)
    assert link_settings(resolved) == before


def test_split_dns_clean_down_restores_uplink(lab: Lab, resolved: ResolvedHandle) -> None:
    isp = start_isp_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", tunnel.server4, "--dns-domain", "company.internal",
                                 "--dns-domain", "corp.example"),
              allowed_ips=f"{tunnel.server4}/32, {tunnel.server6}/128")
    assert getent(resolved, "before.example") == ISP_ANSWER4
    before = link_settings(resolved)
    resolved.wg_quick("up", tunnel)
    assert sorted(resolved.link_domains(tunnel.iface)) == ["~company.internal", "~corp.example"]
    resolved.wg_quick("down", tunnel)
    assert not link_known(resolved, tunnel.iface) and wgkill_lines(lab) == []
    assert link_settings(resolved) == before
    assert isp.count("company.internal") == 0


# ---- bad input --------------------------------------------------------------------------

def test_resolved_backend_requested_but_not_running(lab: Lab, resolved: ResolvedHandle) -> None:
    """resolved stopped (its bus still up, its socket file possibly left): one line, exit 5,
    no rule, no state."""
    tunnel = lab.add_tunnel(hooks="")
    resolved.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    daemon = resolved.daemons[-1]
    assert b"systemd-resolved" in b" ".join(a.encode() for a in daemon.args)
    daemon.terminate()
    daemon.wait(timeout=10)
    done = resolved.run("wgkill-up", tunnel.iface, "--dns", tunnel.server4, "--dns-backend", "resolved",
                        check=False)
    assert done.returncode == 5, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "systemd-resolved is not running" in done.stderr
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    resolved.wg_quick("down", tunnel)


def test_ipv6_resolver_through_resolved(lab: Lab, resolved: ResolvedHandle) -> None:
    """An IPv6-only tunnel resolver: resolved asks it over IPv6 through the tunnel, nothing else."""
    isp = start_isp_resolver(lab)
    lan = start_lan_resolver(lab)
    resolved.resolvectl("dns", "uplink0", ISP_DNS4, ISP_DNS6)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", tunnel.server6))
    vpn = start_vpn_resolver(lab, tunnel)
    isp.clear()
    resolved.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    assert resolved.link_dns(tunnel.iface) == [str(ipaddress.ip_address(tunnel.server6))]
    assert getent(resolved, "six.example") == VPN_ANSWER4
    assert getent(resolved, "six6.example", "ahostsv6") == VPN_ANSWER6
    assert stub_dig(resolved, "stub6.example", "AAAA") == [VPN_ANSWER6]
    assert dig(lab, ISP_DNS6, "direct6.example", "AAAA") == []
    assert dig(lab, LAN_DNS4, "router.example") == []
    sources = {q.source for q in vpn.queries()}
    assert sources == {str(ipaddress.ip_address(tunnel.client6))}, sources
    assert quiet(isp, lan) == [0, 0]
    assert re.search(r"six6?\.example", " ".join(q.name for q in vpn.queries()))
    resolved.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_guard_puts_back_the_links_settings_another_program_changed(lab: Lab,
                                                                     resolved: ResolvedHandle) -> None:
    """With the tunnel up, another program points the tunnel's link at the ISP's resolver: the
    guard sets the link back, and the DNS lock keeps every query off the uplink meanwhile."""
    from wgkill_lab.guarding import Guard

    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", tunnel.server4))
    vpn = start_vpn_resolver(lab, tunnel)
    _full_tunnel_up(lab, resolved, tunnel, isp, lan, vpn)
    guard = Guard(lab, 1.0, where=resolved.argv, env=resolved.env())  # the default poll
    isp.clear()

    resolved.resolvectl("dns", tunnel.iface, ISP_DNS4)
    resolved.resolvectl("domain", tunnel.iface, "")
    repaired = guard.wait_repairs(1, timeout=5)  # the witness that the change took
    said = f"systemd-resolved's settings for {tunnel.iface} changed by another program"
    assert any(said in line for line in repaired), repaired
    assert routes_all_to_tunnel(resolved, tunnel), resolved.resolvectl("status", tunnel.iface).stdout
    assert getent(resolved, "held.example") == VPN_ANSWER4
    assert quiet(isp, lan) == [0, 0]
    guard.stop()
    resolved.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []
