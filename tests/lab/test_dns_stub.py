"""Encrypted DNS layering (the article's dnscrypt-proxy section) with a packaged encrypting stub.

unbound on the client's loopback plays dnscrypt-proxy: programs ask it in plain DNS, it asks
the VPN side's DNS-over-TLS resolver (unbound on the tunnel's server address, port 853). The
DoT resolver's log is the evidence of what left the box, and from where; the isp's raw
counters and the ISP/LAN resolvers' logs that nothing else did.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill.dns import parse_resolver, plan
from wgkill.errors import UsageError
from wgkill_lab import resolvconf_harness
from wgkill_lab.netns import CLIENT4, VPN4, Lab, Tunnel
from wgkill_lab.resolved_harness import ResolvedHandle, start_resolved
from wgkill_lab.resolvers import (
    ISP_DNS4,
    LAN_DNS4,
    STUB_PORT,
    VPN_ANSWER4,
    VPN_ANSWER6,
    LoggingResolver,
    dig,
    make_certificate,
    start_isp_resolver,
    start_lan_resolver,
    start_tls_stub,
    start_vpn_dot_resolver,
)

from .checks import configure, hooks, require_dns_lab, state, wgkill_lines


@pytest.fixture(autouse=True)
def _dns_prerequisites(request: pytest.FixtureRequest) -> None:
    if "lab" in request.fixturenames:
        require_dns_lab("unbound")


def dot_and_stub(lab: Lab, tunnel: Tunnel, port: int) -> tuple[LoggingResolver, LoggingResolver]:
    """The VPN's DoT resolver and the client's stub on 127.0.0.1:``port`` forwarding to it."""
    cert, key = make_certificate(lab.tmp, addresses=(tunnel.server4, tunnel.server6))
    dot = start_vpn_dot_resolver(lab, tunnel, cert=(cert, key))
    stub = start_tls_stub(lab, tunnel.server4, cert, port=port)
    return dot, stub


def getent_with(run, name: str, family: str = "ahostsv4") -> str | None:  # type: ignore[no-untyped-def]
    done = run("getent", family, name, check=False, timeout=40)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def assert_layered(lab: Lab, tunnel: Tunnel, run, stub: LoggingResolver, dot: LoggingResolver,  # type: ignore[no-untyped-def]
                   isp: LoggingResolver, lan: LoggingResolver, tag: str) -> None:
    """Programs ask the system resolver; the stub sees it; only TLS from the tunnel reaches the DoT
    resolver; the isp sees no packet but the tunnel's, the ISP and LAN resolvers no query."""
    lab.reset_counters()
    assert getent_with(run, f"{tag}.example") == VPN_ANSWER4  # the first opens the TLS session
    assert getent_with(run, f"{tag}6.example", "ahostsv6") == VPN_ANSWER6
    assert {f"{tag}.example", f"{tag}6.example"} <= {q.name for q in stub.queries()}
    over_tls = dot.queries(f"{tag}.example") + dot.queries(f"{tag}6.example")
    assert over_tls and {(q.source, q.proto) for q in over_tls} == {(tunnel.client4, "tls")}, over_tls
    assert dig(lab, LAN_DNS4, f"{tag}-lan.example") == []
    assert dig(lab, LAN_DNS4, f"{tag}-lan-tls.example", port=853, tls=True) == []
    assert isp.count() == 0 and lan.count() == 0
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}


def assert_dropped_silent(lab: Lab, run, stub: LoggingResolver, dot: LoggingResolver, isp: LoggingResolver,  # type: ignore[no-untyped-def]
                          lan: LoggingResolver, *, stub_asked: bool = True) -> None:
    """After an unclean drop nothing at all leaves. ``stub_asked``: resolv.conf still names the
    stub, which hears programs and cannot reach its upstream; resolved instead forgot the dead
    link (and the stub with it) and falls back to the uplink's server, which the lock refuses."""
    dot.clear()
    stub.clear()
    lab.reset_counters()
    assert getent_with(run, "dropped.example") is None
    asked = stub.count("dropped.example")
    assert (asked >= 1) if stub_asked else (asked == 0), asked
    for server in (ISP_DNS4, LAN_DNS4):
        assert dig(lab, server, "dropped-direct.example") == []
        assert dig(lab, server, "dropped-tls.example", port=853, tls=True) == []
    assert dot.count() == 0 and isp.count() == 0 and lan.count() == 0
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}


# ---- systemd-resolved in front of a stub on 127.0.0.1:5300 -----------------------------------

@pytest.fixture
def resolved(lab: Lab) -> Iterator[ResolvedHandle]:
    handle = start_resolved(lab)
    try:
        yield handle
    finally:
        handle.stop()


def test_resolved_forwards_to_stub_on_port_5300(lab: Lab, resolved: ResolvedHandle) -> None:
    """``--dns 127.0.0.1:5300``: resolved's link gets the stub with its port; programs ask
    127.0.0.53 as always, and the stub's upstream leaves only through the tunnel, over TLS."""
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", f"127.0.0.1:{STUB_PORT}"))
    dot, stub = dot_and_stub(lab, tunnel, STUB_PORT)
    resolved.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    record = state(lab, tunnel)
    assert record is not None and record["dns"]["backend"] == "resolved"
    assert record["dns"]["servers"] == ["127.0.0.1"]  # the address is what the firewall knows
    assert record["dns"]["record"]["servers"] == [f"127.0.0.1:{STUB_PORT}"]  # the port, resolved's
    assert resolved.link_dns(tunnel.iface) == [f"127.0.0.1:{STUB_PORT}"]
    assert resolved.link_domains(tunnel.iface) == ["~."]
    assert_layered(lab, tunnel, resolved.run, stub, dot, isp, lan, "resolved-stub")

    # With a local stub the lock cannot tell its upstream from other programs' DNS: port 53/853
    # may leave through the tunnel to any address. The ISP's resolver then sees the VPN's
    # address, never the client's, and the isp's wire nothing but the tunnel.
    lab.reset_counters()
    assert dig(lab, ISP_DNS4, "direct-via-tunnel.example") != []
    assert {q.source for q in isp.queries()} == {VPN4}
    assert CLIENT4 not in {q.source for q in isp.queries()}
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    isp.clear()

    lab.kill_daemon(tunnel)
    assert_dropped_silent(lab, resolved.run, stub, dot, isp, lan, stub_asked=False)
    resolved.run("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None


# ---- plain resolv.conf: the stub must listen on port 53 ----------------------------------

def test_plain_resolv_conf_stub_on_port_53(lab: Lab) -> None:
    """No resolved: resolv.conf cannot name a port, so the stub listens on 127.0.0.1:53 and
    ``--dns 127.0.0.1`` writes ``nameserver 127.0.0.1``."""
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks("--dns", "127.0.0.1"))
    dot, stub = dot_and_stub(lab, tunnel, 53)
    before = (Path("/etc/netns") / lab.client_ns / "resolv.conf").read_bytes()
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    assert state(lab, tunnel)["dns"]["backend"] == "file"  # type: ignore[index]
    assert "nameserver 127.0.0.1\n" in lab.client("cat", "/etc/resolv.conf").stdout
    assert_layered(lab, tunnel, lab.client, stub, dot, isp, lan, "plain-stub")
    lab.kill_daemon(tunnel)
    assert_dropped_silent(lab, lab.client, stub, dot, isp, lan)
    lab.client("wgkill-down", tunnel.iface)
    assert (Path("/etc/netns") / lab.client_ns / "resolv.conf").read_bytes() == before


def test_config_dns_loopback_through_resolvconf(lab: Lab) -> None:
    """The wg config says ``DNS = 127.0.0.1`` (wg-quick hands it to a real resolvconf); the stub
    listens on 127.0.0.1:53; wgkill leaves wg-quick's record alone and locks the stub's upstream."""
    openresolv = resolvconf_harness.install(lab)
    isp, lan = start_isp_resolver(lab), start_lan_resolver(lab)
    tunnel = lab.add_tunnel(hooks="")
    configure(lab, tunnel, hooks(), extra="DNS = 127.0.0.1\n")
    dot, stub = dot_and_stub(lab, tunnel, 53)
    openresolv.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    record = state(lab, tunnel)
    assert record is not None and record["dns"]["record"]["ours"] is False
    assert lab.client("cat", "/etc/resolv.conf").stdout.endswith("nameserver 127.0.0.1\n")
    assert_layered(lab, tunnel, openresolv.run, stub, dot, isp, lan, "resolvconf-stub")
    lab.kill_daemon(tunnel)
    assert_dropped_silent(lab, openresolv.run, stub, dot, isp, lan)
    openresolv.run("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []


def test_port_refused_for_resolv_conf(lab: Lab) -> None:
    """``--dns 127.0.0.1:5300`` without resolved: exit 2, one line, nothing touched."""
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    before = lab.client("cat", "/etc/resolv.conf").stdout
    done = lab.client("wgkill-up", tunnel.iface, "--dns", f"127.0.0.1:{STUB_PORT}", check=False)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "cannot name" in done.stderr, done.stderr
    assert f"127.0.0.1:{STUB_PORT}" in done.stderr
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None
    assert lab.client("cat", "/etc/resolv.conf").stdout == before
    lab.wg_quick("down", tunnel)


# ---- the ADDR:PORT syntax (no lab) ---------------------------------------------------------

@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5300", ("127.0.0.1", 5300)),
    ("[::1]:5300", ("::1", 5300)),
    ("[2001:db8:7:0::1]", ("2001:db8:7::1", 53)),
    ("2001:db8:7::1", ("2001:db8:7::1", 53)),
])
def test_parse_resolver(text: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver(text) == parsed


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:70000", "[::1]:", "host.example:53",
                                  "[1.2.3]:53"])
def test_parse_resolver_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_resolver(text)
    with pytest.raises(UsageError, match="is not an IP address"):
        plan(None, dns=[text])


def test_plan_keeps_addresses_for_the_firewall_and_ports_for_the_backend() -> None:
    dns = plan(None, dns=["127.0.0.1:5300", "[::1]:5300", "192.0.2.129:53", "192.0.2.129"])
    assert dns.servers == ("127.0.0.1", "::1", "192.0.2.129")
    assert dns.resolvers == ("127.0.0.1:5300", "[::1]:5300", "192.0.2.129")
    assert dns.ports and dns.local_stub
    assert not plan(None, dns=["192.0.2.129:53"]).ports
