from pathlib import Path

import pytest

from wgkill.errors import ConfigError
from wgkill.wgconf import Endpoint, load_config, parse_config, parse_endpoint

ARTICLE = """\
[Interface]
PrivateKey = YOUR_PRIVATE_KEY_HERE
Address = 10.0.0.2/24
DNS = 1.1.1.1

# Kill switch: block all traffic not going through WireGuard
PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -j REJECT

[Peer]
PublicKey = SERVER_PUBLIC_KEY
Endpoint = vpn.example.com:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
"""


def test_article_config() -> None:
    config = parse_config(ARTICLE, "wg0.conf")
    assert config.addresses == ("10.0.0.2/24",)
    assert config.dns_servers == ("1.1.1.1",)
    assert config.table is None and not config.routes_off
    (peer,) = config.peers
    assert peer.public_key == "SERVER_PUBLIC_KEY"
    assert peer.endpoint == Endpoint("vpn.example.com", 51820)
    assert not peer.endpoint.is_address
    assert peer.allowed_ips == ("0.0.0.0/0", "::/0")


def test_keys_are_case_insensitive_and_comments_anywhere() -> None:
    config = parse_config(
        "[interface]\naddress=192.0.2.2/32,2001:db8::2/128 # two\n"
        "dns = 192.0.2.53, corp.example , 2001:db8::53\nTABLE = Off\nFwMark = 0x1234\n"
        "[PEER]\nPublicKey = k1\nendpoint=[2001:db8::1]:51820\n"
        "allowedips = 192.0.2.0/24\nallowedips = 198.51.100.0/24\n"
        "[Peer]\nPublicKey = k2\n"
    )
    assert config.addresses == ("192.0.2.2/32", "2001:db8::2/128")
    assert config.dns_servers == ("192.0.2.53", "2001:db8::53")
    assert config.dns_search == ("corp.example",)
    assert config.routes_off and config.fwmark == "0x1234"
    first, second = config.peers
    assert first.endpoint == Endpoint("2001:db8::1", 51820) and first.endpoint.is_address
    assert str(first.endpoint) == "[2001:db8::1]:51820"
    assert first.allowed_ips == ("192.0.2.0/24", "198.51.100.0/24")
    assert second.endpoint is None and second.public_key == "k2"


@pytest.mark.parametrize("text", ["host", "host:0", "host:70000", "2001:db8::1:51820", "[::1]"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_endpoint(text)


@pytest.mark.parametrize(
    "text", ["Address = 1.2.3.4\n", "[Interface]\nnot a pair\n", "[Interface]\n[Wat]\n"]
)
def test_malformed_configs(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read wg-quick config"):
        load_config(tmp_path / "nope.conf")


def test_load_config_reads_file(fs) -> None:
    fs.create_file("/etc/wireguard/wg0.conf", contents=ARTICLE)
    assert load_config("/etc/wireguard/wg0.conf").path == "/etc/wireguard/wg0.conf"
