"""Split tunnels: only the tunnel's destinations are held to it, through a kernel set."""

from pathlib import Path

from wgkill_lab.netns import CLIENT4, VPN4, WEB4, Lab

from .checks import state, wgkill_lines

NFT = "/usr/sbin/nft"

OTHER4 = "203.0.113.81"  # on the isp too, but not a tunnel destination


def _prefix_file(path: Path, count: int) -> Path:
    """``count`` non-adjacent /32s in 198.18.0.0/15 (benchmarking range): collapsing keeps them all."""
    lines = ["# generated", *(f"198.18.{(2 * i) // 256}.{(2 * i) % 256}/32" for i in range(count))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tunnel(lab: Lab, count: int):  # type: ignore[no-untyped-def]
    listing = _prefix_file(lab.tmp / f"list-{count}.txt", count)
    backend = f" --backend {lab.backend}" if lab.backend else ""
    hooks = f"PostUp = wgkill-up %i --allowed-ips-file {listing}{backend}\nPreDown = wgkill-down %i\n"
    return lab.add_tunnel(hooks=hooks, allowed_ips=f"{WEB4}/32, 2001:db8:80::80/128")


def _members(lab: Lab, tunnel) -> int:  # type: ignore[no-untyped-def]
    """How many prefixes the IPv4 set holds: our nft table's ``dst4``, or ipset ``wgkill-IFACE-4``."""
    if lab.backend is None:
        text = lab.client(NFT, "list", "set", "inet", f"wgkill-{tunnel.iface}", "dst4").stdout
        return len([e for e in text.partition("elements = {")[2].partition("}")[0].split(",") if e.strip()])
    header = lab.client("ipset", "list", "-t", f"wgkill-{tunnel.iface}-4").stdout
    return int(header.partition("Number of entries: ")[2].split()[0])


def _member(lab: Lab, tunnel, address: str) -> bool:  # type: ignore[no-untyped-def]
    if lab.backend is None:
        argv = [NFT, "get", "element", "inet", f"wgkill-{tunnel.iface}", "dst4", f"{{ {address} }}"]
    else:
        argv = ["ipset", "test", f"wgkill-{tunnel.iface}-4", address]
    return lab.client(*argv, check=False).returncode == 0


def _no_sets_left(lab: Lab) -> bool:
    return lab.client("ipset", "list", "-n").stdout.strip() == "" and "set dst" not in lab.ruleset()


def test_split_tunnel_holds_only_its_destinations(any_lab: Lab) -> None:
    lab = any_lab
    lab.isp("ip", "addr", "add", f"{OTHER4}/32", "dev", "lo")
    tunnel = _tunnel(lab, 10_000)
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    record = state(lab, tunnel)
    if lab.backend is None:
        assert record and record["nft"]["sets"] == {"4": "dst4", "6": "dst6"}
    else:
        assert record and record["families"]["4"]["sets"] == [f"wgkill-{tunnel.iface}-4"]
    assert _members(lab, tunnel) == 10001  # the list plus the web server's AllowedIPs entry
    assert lab.whoami(4) == VPN4  # listed: through the tunnel
    assert lab.whoami(6) == "2001:db8:d::2"
    assert lab.whoami(4, target=OTHER4) == CLIENT4  # not listed: the uplink, as a split tunnel should

    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert lab.whoami(4, timeout=3) is None and lab.whoami(6, timeout=3) is None
    probe = lab.probe(timeout=3)
    assert set(probe.values()) == {"refused"}, probe
    assert lab.whoami(4, target=OTHER4) == CLIENT4  # everything else still flows
    during = lab.web_hits()[hits:]
    assert [h["dst"] for h in during] == [OTHER4]  # the far side saw nothing for listed addresses
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []
    assert _no_sets_left(lab)
    assert lab.whoami(4) == CLIENT4


def _assert_set_holds(lab: Lab, tunnel, count: int) -> None:  # type: ignore[no-untyped-def]
    """The set is installed with the list's members (and only them), and the rules match on it."""
    assert _members(lab, tunnel) == count + 1
    last = f"198.18.{(2 * (count - 1)) // 256}.{(2 * (count - 1)) % 256}"
    for member in ("198.18.0.0", last, WEB4):
        assert _member(lab, tunnel, member), member
    assert not _member(lab, tunnel, "198.18.0.1")  # odd: not listed
    if lab.backend is None:
        assert "ip daddr @dst4 reject" in lab.ruleset()
    else:
        assert f"--match-set wgkill-{tunnel.iface}-4 dst" in lab.save(4)


def _assert_drop_holds_on_the_far_side(lab: Lab, tunnel) -> None:  # type: ignore[no-untyped-def]
    """Link down: a listed destination is refused, and neither the isp nor the web server sees it."""
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert lab.whoami(4, timeout=3) is None
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    assert len(lab.web_hits()) == hits


def test_ruleset_size_does_not_grow_with_the_list(lab: Lab) -> None:
    sizes = []
    for count in (3, 10_000):
        tunnel = _tunnel(lab, count)
        lab.wg_quick("up", tunnel)
        lab.wait_handshake(tunnel)
        _assert_set_holds(lab, tunnel, count)
        terse = lab.client(NFT, "-t", "list", "table", "inet", f"wgkill-{tunnel.iface}").stdout  # no elements
        sizes.append(len(terse.replace(tunnel.iface, "IFACE").splitlines()))
        _assert_drop_holds_on_the_far_side(lab, tunnel)
        lab.wg_quick("down", tunnel)
        assert _no_sets_left(lab)
    assert sizes[0] == sizes[1]


def test_split_then_full_rerun_drops_the_set(lab: Lab) -> None:
    tunnel = _tunnel(lab, 3)
    lab.wg_quick("up", tunnel)
    lab.client("wgkill-up", tunnel.iface, "--block-all")
    assert _no_sets_left(lab)
    assert state(lab, tunnel)["nft"]["sets"] == {}  # type: ignore[index]
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_invalid_prefix_line_refuses_the_whole_list(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="", allowed_ips=f"{WEB4}/32")
    lab.wg_quick("up", tunnel)
    bad = lab.tmp / "bad.txt"
    bad.write_text("198.18.0.0/24\n198.18.1.0/33\n# fine\nnot-a-prefix\n")
    done = lab.client("wgkill-up", tunnel.iface, "--allowed-ips-file", str(bad), check=False)
    assert done.returncode == 3
    assert "line 2" in done.stderr and "line 4" in done.stderr and len(done.stderr.splitlines()) == 1
    assert wgkill_lines(lab) == [] and _no_sets_left(lab)
