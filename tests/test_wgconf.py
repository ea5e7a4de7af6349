import re
from pathlib import Path

import pytest

from wgkill.errors import ConfigError
from wgkill.policy import build_policy
from wgkill.wgconf import Endpoint, load_config, parse_config, parse_endpoint, parse_fwmark, read_endpoint

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


@pytest.mark.parametrize(("text", "host", "port"), [
    ("[2001:db8::1]:51820", "2001:db8::1", 51820),
    ("2001:db8::1:51820", "2001:db8::1", 51820),  # no brackets: wg splits at the last colon
    ("[198.51.100.2]:51820", "198.51.100.2", 51820),  # wg takes any host in brackets
    ("[vpn.example]:51820", "vpn.example", 51820),
    ("198.51.100.2:0", "198.51.100.2", 0),  # strtoul's range, 0 included, as getaddrinfo takes it
    ("vpn.example:65535", "vpn.example", 65535),
    ("vpn.example:051820", "vpn.example", 51820),  # decimal, leading zeros and all
    ("vpn_1.example.:51820", "vpn_1.example.", 51820),
    (" \t198.51.100.2:51820\n", "198.51.100.2", 51820),  # wg's blanks
])
def test_endpoints_read_as_wg_reads_them(text: str, host: str, port: int) -> None:
    """wireguard-tools src/config.c parse_endpoint: brackets to the first ], else the last colon."""
    assert parse_endpoint(text) == Endpoint(host, port) == read_endpoint(text)


def test_endpoint_port_by_udp_service_name() -> None:
    """wg hands the port to getaddrinfo as a service: a name in /etc/services is a port."""
    import socket

    assert parse_endpoint("vpn.example:domain").port == socket.getservbyname("domain", "udp")


@pytest.mark.parametrize(("text", "says"), [
    ("", "expected HOST:PORT"),
    ("host", "expected HOST:PORT"),
    ("host:", "expected HOST:PORT"),
    ("host:51820:", "expected HOST:PORT"),  # the last colon: an empty port
    ("[::1]", "no port after ]"),
    ("[::1]:", "no port after ]"),
    ("[::1]51820", "no port after ]"),
    ("[::1:51820", "no ] after ["),
    (":51820", "neither an IP address nor a hostname"),
    ("[]:51820", "neither an IP address nor a hostname"),
    ("vpn..example:51820", "neither an IP address nor a hostname"),
    ("host:70000", "port above 65535"),  # glibc would wrap it to 4464
    ("host:+51820", "nor a UDP service name"),  # strtoul would take the sign: refused
    ("host:-1", "nor a UDP service name"),
    ("host:0x10", "nor a UDP service name"),  # base 10 only
    ("host:no-such-service", "nor a UDP service name"),
])
def test_bad_endpoints(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="invalid Endpoint") as caught:
        parse_endpoint(text)
    assert says in str(caught.value)
    with pytest.raises(ValueError, match=re.escape(says)):
        read_endpoint(text)


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


# ---- lines as wg-quick reads them, keys and sections as wg reads them -------------------------------

PEER_KEY = "rIncF/NfKymcZ2qEtcVVNJh2ElkAbzMaXs2zXo0S7RM="


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_only_newline_ends_a_line(separator: str) -> None:
    """A comment holding a separator Python's splitlines() breaks on is still one comment to wg-quick."""
    config = parse_config(f"[Interface]\nDNS = 192.0.2.53 # old{separator}DNS = 198.51.100.53\n")
    assert config.dns_servers == ("192.0.2.53",)


def test_crlf_reads_like_lf_and_a_cr_only_file_is_refused() -> None:
    text = f"[Interface]\nAddress = 192.0.2.2/32\n[Peer]\nPublicKey = {PEER_KEY}\nAllowedIPs = 0.0.0.0/0\n"
    assert parse_config(text.replace("\n", "\r\n")) == parse_config(text)
    with pytest.raises(ConfigError, match=r"^<config>:1: .*a carriage return inside a line"):
        parse_config(text.replace("\n", "\r"))


def test_load_config_keeps_a_lone_cr(tmp_path: Path) -> None:
    """read_text() would turn CR into a line end and read a file wg-quick cannot."""
    path = tmp_path / "wg0.conf"
    path.write_bytes(b"[Interface]\rAddress = 192.0.2.2/32\r")
    with pytest.raises(ConfigError, match="carriage return"):
        load_config(path)


def test_blanks_inside_a_wg_key_are_removed_as_wg_removes_them() -> None:
    config = parse_config(f"[Interface]\n[Peer]\nPublic Key = {PEER_KEY}\n\tAllowed IPs\t= 192.0.2.0/24 , "
                          "198.51.100.0/24\nEndpoint = 192.0.2.1 : 51820\n")
    (peer,) = config.peers
    assert peer.public_key == PEER_KEY and peer.endpoint == Endpoint("192.0.2.1", 51820)
    assert peer.allowed_ips == ("192.0.2.0/24", "198.51.100.0/24")


@pytest.mark.parametrize(("text", "says"), [
    (f"[Interface]\n[Peer]\nPublicKey = {PEER_KEY}\nDontLetTheFeelingFade = 1\n",
     "<config>:4: unknown key 'DontLetTheFeelingFade' in [Peer]"),
    ("[Interface]\nPostUpp = true\n", "<config>:2: unknown key 'PostUpp' in [Interface]"),
    ("[Interface]\n[Peer]\nAllowedIPs = 0.0.0.0/0\n", "<config>:2: this [Peer] has no PublicKey"),
    (f"[Interface]\n[Peer]\nPublicKey = {PEER_KEY}\nPostUp = wgkill-up %i\n",
     "<config>:4: PostUp belongs in"),
    (f"[Interface]\n[Peer]\nPublicKey = {PEER_KEY}\nPrivateKey = {PEER_KEY}\n",
     "<config>:4: PrivateKey belongs in [Interface], not in [Peer]"),
    ("Address = 192.0.2.2/32\n[Interface]\n", "<config>:1: 'Address' before any section"),
    ("[Interface]\n[Peers]\n", "<config>:2: unknown section '[Peers]'"),
    ("[Interface]\nPrivateKey =\n", "<config>:2: PrivateKey has no value"),
    ("[ Interface ]\nAddress = 192.0.2.2/32\n", "<config>:2: wg-quick reads Address only after a header"),
    ("[Interface]\nDNS\u2028= 192.0.2.53\n", "<config>:2: unknown key 'DNS\\u2028'"),
    ("[Interface]\nAddress = 192.0.2.2/32\x00\n", "<config>:2: a NUL byte"),
    ("\ufeff[Interface]\n", "<config>:1: '\\ufeff[Interface]' before any section"),
])
def test_what_wg_quick_or_wg_refuses_is_refused(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)


def test_what_wg_quick_and_wg_accept_is_accepted() -> None:
    """Headers and keys in any case, a header wg reads with blanks inside, and a peer's keys in any order."""
    config = parse_config(f"[INTERFACE]\nlistenport = 51820\nTABLE = off\n[ Peer ]\n"
                          f"ENDPOINT = [2001:db8::1]:1\npublickey = {PEER_KEY}\n[peer]\n"
                          f"PublicKey={PEER_KEY}#no blank\n")
    assert config.routes_off and [p.public_key for p in config.peers] == [PEER_KEY, PEER_KEY]


@pytest.mark.parametrize(("text", "mark"), [("off", 0), ("OFF", 0), ("51820", 51820), ("0xca6c", 0xCA6C),
                                             ("0xCA6C", 0xCA6C), ("4294967295", 0xFFFFFFFF)])
def test_fwmark_as_wg_reads_it(text: str, mark: int) -> None:
    assert parse_fwmark(text) == mark


@pytest.mark.parametrize("text", ["0b101", "1_000", "0o17", "0x", "-1", " 1", "0x1g", "4294967296", "0X10",
                                  ""])
def test_fwmark_wg_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected off or 0-0xffffffff"):
        parse_fwmark(text)


def test_the_policy_refuses_a_fwmark_wg_refuses() -> None:
    config = parse_config("[Interface]\nFwMark = 0b101\n", "/etc/wireguard/wg0.conf")
    with pytest.raises(ConfigError, match="invalid FwMark '0b101'"):
        build_policy("wg0", None, config)
