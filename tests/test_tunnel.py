import pytest

from wgkill.errors import TunnelError
from wgkill.tunnel import parse_dump
from wgkill.wgconf import Endpoint

DUMP = (
    "PRIV\tPUB\t55333\t0xca6c\n"
    "peerA\t(none)\t[2001:db8::1]:51820\t0.0.0.0/0,::/0\t0\t0\t0\toff\n"
    "peerB\t(none)\t(none)\t192.0.2.0/24\t1799999990\t0\t0\t25\n"
)


def test_full_tunnel_dump() -> None:
    facts = parse_dump("wg0", DUMP)
    assert facts.fwmark == 0xCA6C and facts.listen_port == 55333
    assert facts.peers[0].endpoint == Endpoint("2001:db8::1", 51820)
    assert facts.peers[0].allowed_ips == ("0.0.0.0/0", "::/0")
    assert facts.peers[1].endpoint is None
    assert (facts.peers[0].latest_handshake, facts.peers[1].latest_handshake) == (0, 1799999990)


def test_fwmark_off_and_no_peers() -> None:
    facts = parse_dump("wg0", "PRIV\tPUB\t0\toff\n")
    assert facts.fwmark is None and facts.listen_port is None and facts.peers == ()


@pytest.mark.parametrize("text", ["", "just one field\n", "a\tb\tc\toff\nshort\tline\n"])
def test_garbage_is_an_error(text: str) -> None:
    with pytest.raises(TunnelError):
        parse_dump("wg0", text)
