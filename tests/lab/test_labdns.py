"""The lab's DNS pieces work for real: each resolver answers, logs, and is told apart.

No wgkill here (tunnels come up without hooks): these tests prove the
witnesses that the DNS-leak tests rely on, so a zero in a resolver's log
means "no query arrived", never "the resolver was not there".
"""

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill_lab.bundles import bundle_root
from wgkill_lab.netns import CLIENT4, CLIENT6, ETC_NETNS, Lab, LabError, Tunnel
from wgkill_lab.resolved_harness import ResolvedHandle, start_resolved
from wgkill_lab.resolvers import (
    ISP_ANSWER4,
    ISP_ANSWER6,
    ISP_DNS4,
    ISP_DNS6,
    LAN_ANSWER4,
    LAN_DNS4,
    LAN_DNS6,
    STUB_PORT,
    VPN_ANSWER4,
    VPN_ANSWER6,
    LoggingResolver,
    Query,
    answer_options,
    dig,
    make_certificate,
    parse_dnsmasq_log,
    parse_unbound_log,
    start_dot_resolver,
    start_isp_resolver,
    start_lan_resolver,
    start_resolver,
    start_tls_stub,
    start_vpn_dot_resolver,
    start_vpn_resolver,
)

from .checks import require_dns_lab


def _canon(address: str) -> str:
    """An address as logs print it (2001:db8:7::2, not 2001:db8:7:0::2)."""
    return str(ipaddress.ip_address(address))


def _bundle(name: str) -> Path:
    """The unpacked package, or a one-line failure saying how to get it (never a skip)."""
    try:
        return bundle_root(name)
    except LabError as exc:
        pytest.fail(str(exc))


@pytest.fixture(autouse=True)
def _dns_prerequisites(request: pytest.FixtureRequest) -> None:
    """Lab tests fail (never skip) with one line naming what is missing."""
    if "lab" in request.fixturenames:
        require_dns_lab()


def _tunnel_up(lab: Lab) -> Tunnel:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    return tunnel


@pytest.fixture
def resolved(lab: Lab) -> Iterator[ResolvedHandle]:
    _bundle("resolved")
    handle = start_resolved(lab)
    try:
        yield handle
    finally:
        handle.stop()


# ---- the log parser (no lab) ------------------------------------------------

def test_parse_dnsmasq_log_tells_udp_from_tcp() -> None:
    text = (
        "Nov 25 13:37:01 dnsmasq[7382]: started, version 2.90 cachesize 150\n"
        "Nov 25 13:37:02 dnsmasq[7382]: 1 192.0.2.2/39382 query[A] Example.COM from 192.0.2.2\n"
        "Nov 25 13:37:02 dnsmasq[7382]: 1 192.0.2.2/39382 config example.com is 203.0.113.77\n"
        "Nov 25 13:37:02 dnsmasq[7390]: 2 2001:db8:c::2/42547 query[AAAA] a.example.com from 2001:db8:c::2\n"
    )
    assert parse_dnsmasq_log(text) == [
        Query("example.com", "A", "192.0.2.2", "udp"),
        Query("a.example.com", "AAAA", "2001:db8:c::2", "tcp"),
    ]


def test_parse_unbound_log() -> None:
    text = (
        "[1795614068] unbound[16172:0] info: start of service (unbound 1.17.1).\n"
        "[1795614068] unbound[16172:0] info: 192.0.2.130 Example.com. AAAA IN\n"
    )
    assert parse_unbound_log(text) == [Query("example.com", "AAAA", "192.0.2.130", "tls")]


def test_answers_become_dnsmasq_options() -> None:
    answers = {"*.company.internal": "198.51.100.10", "blocked.test": [], "#": ["192.0.2.7", "2001:db8::7"]}
    assert answer_options(answers) == [
        "--address=/company.internal/198.51.100.10", "--address=/blocked.test/",
        "--address=/#/192.0.2.7", "--address=/#/2001:db8::7",
    ]


# ---- plain resolvers ------------------------------------------------------------

def test_isp_resolver_answers_and_logs(lab: Lab) -> None:
    isp = start_isp_resolver(lab)
    assert dig(lab, ISP_DNS4, "example.com") == [ISP_ANSWER4]
    assert dig(lab, ISP_DNS6, "www.example.com", "AAAA") == [ISP_ANSWER6]
    assert dig(lab, ISP_DNS4, "tcp.example.com", tcp=True) == [ISP_ANSWER4]
    assert isp.queries() == [
        Query("example.com", "A", CLIENT4, "udp"),
        Query("www.example.com", "AAAA", CLIENT6, "udp"),
        Query("tcp.example.com", "A", CLIENT4, "tcp"),
    ]
    assert isp.count("example.com") == 3
    isp.clear()
    assert isp.count() == 0
    assert dig(lab, ISP_DNS4, "again.example.net") == [ISP_ANSWER4]
    assert isp.queries() == [Query("again.example.net", "A", CLIENT4, "udp")]


def test_lan_resolver_is_the_on_link_router(lab: Lab) -> None:
    """The router resolver is reachable without routing: it is the client's gateway, on cust0."""
    lan = start_lan_resolver(lab)
    isp = start_isp_resolver(lab)
    assert dig(lab, LAN_DNS4, "example.com") == [LAN_ANSWER4]
    assert dig(lab, LAN_DNS6, "example.com") == [LAN_ANSWER4]
    assert [(q.name, q.source) for q in lan.queries()] == [("example.com", CLIENT4), ("example.com", CLIENT6)]
    assert isp.count() == 0  # two resolvers in one namespace, each on its own addresses


def test_vpn_resolver_answers_through_the_tunnel(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    vpn = start_vpn_resolver(lab, tunnel)
    isp = start_isp_resolver(lab)
    assert dig(lab, tunnel.server4, "example.com", timeout=1) == []  # tunnel down: unreachable
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    lab.reset_counters()
    assert dig(lab, tunnel.server4, "example.com") == [VPN_ANSWER4]
    assert dig(lab, tunnel.server6, "example.com", "AAAA", tcp=True) == [VPN_ANSWER6]
    assert vpn.queries() == [
        Query("example.com", "A", tunnel.client4, "udp"),
        Query("example.com", "AAAA", _canon(tunnel.client6), "tcp"),
    ]
    assert isp.count() == 0
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}  # the isp saw only the tunnel's packets


def test_custom_answers_for_split_dns(lab: Lab) -> None:
    """Per-name answers: the VPN resolver knows company.internal, the ISP's says NXDOMAIN for it."""
    tunnel = _tunnel_up(lab)
    vpn = start_resolver(lab, lab.vpn_ns, tunnel.server4, name="corp",
                         answers={"*.company.internal": "198.51.100.10", "#": VPN_ANSWER4})
    lab.isp("ip", "addr", "add", f"{ISP_DNS4}/32", "dev", "lo")
    isp = start_resolver(lab, lab.isp_ns, ISP_DNS4, name="isp-plain",
                         answers={"company.internal": [], "#": ISP_ANSWER4})
    assert dig(lab, tunnel.server4, "git.company.internal") == ["198.51.100.10"]
    assert dig(lab, tunnel.server4, "example.com") == [VPN_ANSWER4]
    assert dig(lab, ISP_DNS4, "git.company.internal") == []
    assert dig(lab, ISP_DNS4, "example.com") == [ISP_ANSWER4]
    assert [q.name for q in vpn.queries("company.internal")] == ["git.company.internal"]
    assert isp.count() == 2


def test_resolver_that_cannot_bind_fails_with_one_line(lab: Lab) -> None:
    with pytest.raises(LabError, match="nowhere"):
        start_resolver(lab, lab.isp_ns, "198.18.0.1", name="nowhere", answer4=ISP_ANSWER4, timeout=3)


# ---- systemd-resolved ---------------------------------------------------------

def test_resolved_uses_the_uplink_then_the_tunnel(lab: Lab, resolved: ResolvedHandle) -> None:
    isp = start_isp_resolver(lab)
    lan = start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    vpn = start_vpn_resolver(lab, tunnel)

    status = resolved.resolvectl("status").stdout
    assert re.search(r"Link \d+ \(uplink0\)", status), status
    assert resolved.link_dns("uplink0") == [ISP_DNS4]
    link = resolved.run("readlink", "/etc/resolv.conf").stdout.strip()
    assert link == "../run/systemd/resolve/stub-resolv.conf"
    assert "nameserver 127.0.0.53" in resolved.run("cat", "/etc/resolv.conf").stdout

    # The starting point: everything goes to the uplink's resolver.
    assert resolved.run("getent", "ahostsv4", "example.com").stdout.split()[0] == ISP_ANSWER4
    assert resolved.run("dig", "+short", "@127.0.0.53", "www.example.com").stdout.split() == [ISP_ANSWER4]
    assert {q.name for q in isp.queries()} == {"example.com", "www.example.com"}

    # The article's resolved recipe on the tunnel's link: now the VPN resolver answers, and only it.
    resolved.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    resolved.resolvectl("dns", tunnel.iface, tunnel.server4)
    resolved.resolvectl("domain", tunnel.iface, "~.")
    resolved.resolvectl("default-route", tunnel.iface, "true")
    assert resolved.link_dns(tunnel.iface) == [tunnel.server4]
    assert resolved.link_domains(tunnel.iface) == ["~."]
    isp.clear()
    assert resolved.run("getent", "ahostsv4", "example.com").stdout.split()[0] == VPN_ANSWER4
    assert resolved.run("dig", "+short", "example.org").stdout.split() == [VPN_ANSWER4]
    assert {(q.name, q.source) for q in vpn.queries()} >= {("example.com", tunnel.client4),
                                                           ("example.org", tunnel.client4)}
    assert isp.count() == 0 and lan.count() == 0

    # Reverting the link puts the uplink back.
    resolved.resolvectl("revert", tunnel.iface)
    assert resolved.link_dns(tunnel.iface) == []
    assert resolved.run("getent", "ahostsv4", "example.net").stdout.split()[0] == ISP_ANSWER4
    resolved.wg_quick("down", tunnel)


def test_resolved_resolvconf_emulation_serves_wg_quick_dns(lab: Lab, resolved: ResolvedHandle) -> None:
    """wg-quick's ``DNS =`` goes through resolved's resolvconf, as on a machine with the package."""
    start_isp_resolver(lab)
    tunnel = lab.add_tunnel(hooks="", extra="DNS = 192.0.2.129\n")
    vpn = start_vpn_resolver(lab, tunnel)
    up = resolved.wg_quick("up", tunnel)
    assert "resolvconf -a" in up.stderr
    lab.wait_handshake(tunnel)
    assert resolved.link_dns(tunnel.iface) == [tunnel.server4]
    assert resolved.link_domains(tunnel.iface) == ["~."]
    assert resolved.run("getent", "ahostsv4", "example.com").stdout.split()[0] == VPN_ANSWER4
    assert vpn.count("example.com") >= 1
    resolved.wg_quick("down", tunnel)
    assert resolved.link_dns("uplink0") == [ISP_DNS4]


def test_resolved_stays_inside_the_lab(lab: Lab) -> None:
    """The machine's /etc and /run are untouched, and stop() leaves nothing running or mounted."""
    _bundle("resolved")
    real = {p: (os.path.islink(p), Path(p).read_bytes() if Path(p).exists() else None)
            for p in ("/etc/resolv.conf", "/etc/passwd", "/etc/group", "/etc/systemd/resolved.conf")}
    handle = start_resolved(lab)
    try:
        inside = handle.run("getent", "passwd", "systemd-resolve").stdout
        assert inside.startswith("systemd-resolve:")
        assert handle.path("/run/dbus/system_bus_socket").exists()
        assert not Path("/run/systemd/resolve/stub-resolv.conf").exists()
        # Outside the handle the client keeps the lab's plain resolv.conf.
        assert lab.client("cat", "/etc/resolv.conf").stdout == \
            (ETC_NETNS / lab.client_ns / "resolv.conf").read_text() == f"nameserver {ISP_DNS4}\n"
        # wg-quick here and the lab outside see the same configs and sockets.
        tunnel = lab.add_tunnel(hooks="")
        handle.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        assert tunnel.iface in lab.client("wg", "show", "interfaces").stdout
        handle.wg_quick("down", tunnel)
    finally:
        handle.stop()
    after = {p: (os.path.islink(p), Path(p).read_bytes() if Path(p).exists() else None) for p in real}
    assert after == real
    pids = lab.client("ip", "netns", "pids", lab.client_ns, check=False).stdout.split()
    assert all(b"resolve" not in Path(f"/proc/{p}/cmdline").read_bytes() for p in pids
               if Path(f"/proc/{p}").exists())
    with pytest.raises(LabError):
        handle.run("true")


# ---- DNS over TLS ---------------------------------------------------------------

def test_dot_resolver_and_encrypting_stub(lab: Lab) -> None:
    """The article's dnscrypt layering with packaged parts: a local stub, TLS through the tunnel."""
    _bundle("unbound")
    tunnel = _tunnel_up(lab)
    isp = start_isp_resolver(lab)
    cert, key = make_certificate(lab.tmp, addresses=(tunnel.server4, tunnel.server6))
    dot = start_vpn_dot_resolver(lab, tunnel, cert=(cert, key))
    assert dig(lab, tunnel.server4, "direct.example.com", port=853, tls=True) == [VPN_ANSWER4]
    stub = start_tls_stub(lab, tunnel.server4, cert)
    lab.reset_counters()
    first = dig(lab, "127.0.0.1", "example.com", port=STUB_PORT, timeout=5)  # the first opens TLS
    assert first == [VPN_ANSWER4], stub.log_path.read_text()[-800:]
    assert dig(lab, "127.0.0.1", "example.com", "AAAA", port=STUB_PORT) == [VPN_ANSWER6]
    assert ("example.com", "A") in {(q.name, q.qtype) for q in stub.queries()}
    over_tls = dot.queries("example.com")
    assert {(q.source, q.proto) for q in over_tls} == {(tunnel.client4, "tls")}, over_tls
    assert {q.qtype for q in over_tls} >= {"A", "AAAA"}
    assert isp.count() == 0
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}


def test_dot_upstream_down_means_no_answer(lab: Lab) -> None:
    """With the tunnel down the stub cannot reach its upstream and answers nothing (no plain fallback)."""
    _bundle("unbound")
    tunnel = lab.add_tunnel(hooks="")
    isp = start_isp_resolver(lab)
    lan = start_lan_resolver(lab)
    cert, key = make_certificate(lab.tmp, addresses=(tunnel.server4,))
    start_vpn_dot_resolver(lab, tunnel, cert=(cert, key))
    stub: LoggingResolver = start_tls_stub(lab, tunnel.server4, cert)
    assert dig(lab, "127.0.0.1", "example.com", port=STUB_PORT, timeout=3) == []
    assert stub.count("example.com") >= 1
    assert isp.count() == 0 and lan.count() == 0


def test_dot_resolver_at_the_isp_counts_tls_queries(lab: Lab) -> None:
    """853 at the ISP: a DoT query that leaks there is seen and counted as TLS."""
    _bundle("unbound")
    start_isp_resolver(lab)  # puts 203.0.113.53 on the isp's lo
    dot = start_dot_resolver(lab, lab.isp_ns, ISP_DNS4, name="isp-dot", answer4=ISP_ANSWER4,
                             answer6=ISP_ANSWER6)
    assert dig(lab, ISP_DNS4, "example.com", port=853, tls=True) == [ISP_ANSWER4]
    assert dot.queries() == [Query("example.com", "A", CLIENT4, "tls")]
