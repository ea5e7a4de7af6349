"""Configs from wgkill-render, brought up as rendered: a working tunnel, then a kill switch that holds.

Each test overwrites the lab's client config with what wgkill-render wrote
(the lab's keys, the lab's VPN server), runs real wg-quick, and checks the
tunnel on the web server and the block on the isp's counters.
"""

import os
import subprocess
import sys
from pathlib import Path

from wgkill import render
from wgkill.render import Request
from wgkill_lab.netns import CLIENT4, VPN4, VPN6, Lab, Tunnel

BIN = Path(sys.executable).parent
ARTICLE_HOOKS = (
    "# Kill switch: block all traffic not going through WireGuard\n"
    "PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type "
    "LOCAL -j REJECT\n"
    "PostUp = ip6tables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type "
    "LOCAL -j REJECT\n"
    "PreDown = iptables -D OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type "
    "LOCAL -j REJECT\n"
    "PreDown = ip6tables -D OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -m addrtype ! --dst-type "
    "LOCAL -j REJECT\n"
)


def _server_public(tunnel: Tunnel) -> str:
    return subprocess.run(["wg", "pubkey"], input=tunnel.server_key, capture_output=True, text=True,
                          check=True).stdout.strip()


def _key_file(lab: Lab, tunnel: Tunnel) -> str:
    path = lab.tmp / f"{tunnel.iface}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(tunnel.client_key + "\n")
    return str(path)


def _render(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "wgkill-render"), *argv], capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def _flags(lab: Lab, tunnel: Tunnel, endpoint: str | None = None) -> list[str]:
    return ["--private-key-file", _key_file(lab, tunnel),
            "--address", f"{tunnel.client4}/32", "--address", f"{tunnel.client6}/128",
            "--public-key", _server_public(tunnel),
            "--endpoint", endpoint or f"{VPN4}:{tunnel.port}"]


def _works_then_holds(lab: Lab, tunnel: Tunnel, *, ipv6: bool = True) -> None:
    """Up, through the tunnel; unclean drop, nothing leaves; clean down, the uplink is back."""
    up = lab.wg_quick("up", tunnel)
    assert f"[#] wgkill-up {tunnel.iface}" in up.stderr
    lab.wait_handshake(tunnel)
    assert lab.whoami(4) == VPN4
    if ipv6:
        assert lab.whoami(6) == VPN6
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    assert lab.whoami(4, timeout=3) is None
    assert lab.whoami(6, timeout=3) is None
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    down = lab.wg_quick("down", tunnel)
    assert f"[#] wgkill-down {tunnel.iface}" in down.stderr
    assert lab.whoami(4) == CLIENT4


def test_new_full_tunnel_as_rendered(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    done = _render(*_flags(lab, tunnel), "--persistent-keepalive", "1", "--output", str(tunnel.config))
    assert done.stdout == "" and done.stderr == ""
    text = tunnel.config.read_text()
    assert "PostUp = wgkill-up %i\n" in text and "AllowedIPs = 0.0.0.0/0, ::/0\n" in text
    assert oct(tunnel.config.stat().st_mode & 0o777) == "0o600"
    _works_then_holds(lab, tunnel)


def test_new_split_tunnel_as_rendered(lab: Lab) -> None:
    tunnel = lab.add_tunnel()
    done = _render(*_flags(lab, tunnel), "--split", "203.0.113.80/32,2001:db8:80::80/128")
    tunnel.config.write_text(done.stdout)
    assert "AllowedIPs = 203.0.113.80/32, 2001:db8:80::80/128\n" in done.stdout
    _works_then_holds(lab, tunnel)


def test_new_ipv6_endpoint_pinned_from_a_hostname(lab: Lab) -> None:
    """--pin-endpoint: the name is resolved at render time (here by a stand-in resolver)."""
    tunnel = lab.add_tunnel(endpoint_family=6)
    flags = _flags(lab, tunnel)
    request = Request(private_key_file=flags[1], addresses=[flags[3], flags[5]], public_key=flags[7],
                      endpoint=f"vpn.lab.example:{tunnel.port}", pin_endpoint=True)
    result = render.build(request, str(BIN), resolve=lambda host, port: VPN6)
    assert result.warnings == ()
    assert f"Endpoint = [{VPN6}]:{tunnel.port}\n" in result.text
    render.write_config(tunnel.config, result.text.encode(), private=result.private)
    _works_then_holds(lab, tunnel)


def test_from_article_config_in_place(lab: Lab) -> None:
    """The article's hand-written hooks, upgraded in place: only wgkill's rules appear."""
    tunnel = lab.add_tunnel(hooks=ARTICLE_HOOKS)
    original = tunnel.config.read_bytes()
    done = _render("--from", str(tunnel.config), "--in-place")
    assert done.stderr == f"wgkill-render: wrote {tunnel.config} (previous version in {tunnel.config}.bak)\n"
    text = tunnel.config.read_text()
    assert "iptables" not in text and "PostUp = wgkill-up %i\n" in text
    assert Path(f"{tunnel.config}.bak").read_bytes() == original
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    saved = lab.save(4) + lab.save(6)
    assert f"table inet wgkill-{tunnel.iface} {{" in lab.ruleset() and "-A OUTPUT ! -o" not in saved
    lab.wg_quick("down", tunnel)
    _works_then_holds(lab, tunnel)


def test_new_large_split_tunnel_from_a_file_as_rendered(lab: Lab) -> None:
    """--split-file: Table = off and `wgkill-up --allowed-ips-file ... --routes` do the routing."""
    tunnel = lab.add_tunnel()
    listing = lab.tmp / "split.txt"
    listing.write_text("# provider list\n203.0.113.80/32\n2001:db8:80::80/128\n"
                       + "".join(f"198.18.{i // 256}.{i % 256}/32\n" for i in range(0, 4000, 2)))
    done = _render(*_flags(lab, tunnel), "--split-file", str(listing), "--persistent-keepalive", "1")
    assert "Table = off\n" in done.stdout and "AllowedIPs = 0.0.0.0/0, ::/0\n" in done.stdout
    assert f"PostUp = wgkill-up %i --allowed-ips-file {listing} --routes\n" in done.stdout
    tunnel.config.write_text(done.stdout)
    _works_then_holds(lab, tunnel)
    assert lab.client("ip", "rule").stdout.count("lookup") == 3  # local, main, default: ours is gone


def test_split_file_with_a_bad_line_prints_nothing(lab: Lab, tmp_path: Path) -> None:
    tunnel = lab.add_tunnel()
    bad = tmp_path / "bad.txt"
    bad.write_text("203.0.113.80/32\n203.0.113.0/99\n")
    done = subprocess.run([str(BIN / "wgkill-render"), *_flags(lab, tunnel), "--split-file", str(bad)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "line 2" in done.stderr and len(done.stderr.splitlines()) == 1


def test_new_config_with_lan_and_dns_options_as_rendered(lab: Lab) -> None:
    """The hook options wgkill-render passes through are ones wgkill-up accepts and honours."""
    tunnel = lab.add_tunnel()
    done = _render(*_flags(lab, tunnel), "--allow-lan", "--no-dns-lock", "--persistent-keepalive", "1")
    assert "PostUp = wgkill-up %i --allow-lan --no-dns-lock\n" in done.stdout
    tunnel.config.write_text(done.stdout)
    lab.wg_quick("up", tunnel)
    ruleset = lab.ruleset()
    assert "ip daddr 192.168.0.0/16 accept" in ruleset and "ip6 daddr fe80::/10 accept" in ruleset
    lab.wg_quick("down", tunnel)
    _works_then_holds(lab, tunnel)
