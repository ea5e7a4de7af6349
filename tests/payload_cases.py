"""The tunnels and policy features both backends' payload goldens are rendered from
(tests/test_payload_golden.py: iptables, tests/test_nft.py: nft). A helper module, not a test module."""

from wgkill.firewall.iptables import chain_specs
from wgkill.policy import FamilyPolicy, PeerEndpoint
from wgkill.tunnel import LivePeer, TunnelFacts
from wgkill.wgconf import Endpoint


def facts(fwmark: int | None, *endpoints: Endpoint | None) -> TunnelFacts:
    """A live tunnel wg0 with one full-tunnel peer per endpoint (None: a peer without one)."""
    peers = tuple(LivePeer(f"key{i}", ep, ("0.0.0.0/0",)) for i, ep in enumerate(endpoints))
    return TunnelFacts("wg0", fwmark, 51820, peers)


CASES = {
    "full-tunnel": facts(51820, Endpoint("198.51.100.2", 51820)),
    "fwmark-off": facts(None, Endpoint("198.51.100.2", 51820)),
    "multiple-peers": facts(
        51820,
        Endpoint("198.51.100.2", 51820),
        Endpoint("203.0.113.9", 443),
        Endpoint("2001:db8:d::2", 51821),
        Endpoint("198.51.100.2", 51820),  # duplicate: one rule
        None,  # a peer without an endpoint adds nothing
    ),
    "ipv6-endpoint": facts(0x1234, Endpoint("2001:db8:d::2", 51820)),
}


def _dns(**kw: object):  # type: ignore[no-untyped-def]
    from wgkill import dns

    return dns.plan(None, **kw)  # type: ignore[arg-type]


FEATURES = {
    "dns-lock": {"dns": _dns(dns=["192.0.2.129", "2001:db8:7::1"])},
    "dns-stub": {"dns": _dns(dns=["127.0.0.1"])},
    "split-dns": {"dns": _dns(dns=["192.0.2.129"], domains=["company.internal"])},
    "allow-lan": {"lan": ("10.0.0.0/8", "fe80::/10")},
    "allow-lan-no-lock": {"lan": ("192.168.0.0/16",), "dns": _dns(dns=["192.0.2.129"], no_lock=True)},
    "gateway": {"gateway": True, "dns": _dns(dns=["192.0.2.129"])},
    "routes": {"route_mark": "0x100/0xf00", "dns": _dns(dns=["192.0.2.129"])},
    "beside": {"allow_interfaces": ("docker0", "br-+", "docker0"), "allow_marks": ("0x80000/0xff0000",),
               "peer_interfaces": ("wg1", "wg0", "wg2"), "gateway": True, "dns": _dns(dns=["192.0.2.129"]),
               "peer_endpoints": (PeerEndpoint("192.0.2.77", 51821),
                                  PeerEndpoint("2001:db8:5::7", 51822, 0xca6d))},
}


def render_body(policy: FamilyPolicy) -> str:
    """All of one family's iptables rule text, as its chains carry it."""
    return "".join(spec.body for spec in chain_specs(policy))
