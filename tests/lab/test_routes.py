"""Large split tunnels: wgkill-up --routes brings 100,000 prefixes up through one set and one rule."""

import time
from pathlib import Path

import pytest

from wgkill_lab.netns import CLIENT4, VPN4, Lab

from .checks import state, wgkill_lines

OTHER4 = "203.0.113.81"


def _list(path: Path, count4: int, count6: int = 0) -> Path:
    lines = [f"{(i >> 16) + 100}.{(i >> 8) & 255}.{i & 255}.0/25  # n{i}" for i in range(count4)]
    lines += [f"2001:db8:{i:x}::/48" for i in range(1, count6 + 1)]
    lines += ["203.0.113.80/32", "2001:db8:80::80/128"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _routing(lab: Lab) -> tuple[str, ...]:
    return tuple(lab.client("ip", f, what, "show", *extra).stdout for f in ("-4", "-6")
                 for what, extra in (("rule", ()), ("route", ("table", "all"))))


def _set_size(lab: Lab, tunnel, backend: str) -> int:  # type: ignore[no-untyped-def]
    if backend == "nft":
        text = lab.client("/usr/sbin/nft", "list", "set", "inet", f"wgkill-{tunnel.iface}", "dst4").stdout
        return text.partition("elements = {")[2].partition("}")[0].count(",") + 1
    header = lab.client("ipset", "list", "-t", f"wgkill-{tunnel.iface}-4").stdout
    return int(header.partition("Number of entries: ")[2].split()[0])


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_100k_prefixes_routed_and_killswitched(lab: Lab, backend: str) -> None:
    lab.isp("ip", "addr", "add", f"{OTHER4}/32", "dev", "lo")
    listing = _list(lab.tmp / "list.txt", 100_000, 10_000)
    tunnel = lab.add_tunnel(hooks="", extra="Table = off\n")
    lab.wg_quick("up", tunnel)
    before = _routing(lab)
    argv = ["wgkill-up", tunnel.iface, "--allowed-ips-file", str(listing), "--routes", "--backend", backend]
    started = time.monotonic()
    lab.client(*argv, timeout=120)
    took = time.monotonic() - started  # reported by the benchmark; here only a sanity bound
    assert took < 60
    record = state(lab, tunnel)
    assert record and record["routes"] and record["backend"] == backend
    assert record["routes"]["backend"] == backend
    assert _set_size(lab, tunnel, backend) == 100001
    lab.wait_handshake(tunnel)
    assert lab.whoami(4) == VPN4  # listed: routed through the tunnel by wgkill, not wg-quick
    assert lab.whoami(4, target=OTHER4) == CLIENT4  # not listed: the uplink
    lab.client(*argv, timeout=120)
    assert lab.whoami(4) == VPN4  # re-run: idempotent

    lab.kill_daemon(tunnel)
    lab.reset_counters()
    assert lab.whoami(4, timeout=3) is None  # listed: refused after the drop
    assert lab.whoami(4, target=OTHER4) == CLIENT4
    assert lab.leaks()["ipv6"] == 0

    lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == [] and lab.client("ipset", "list", "-n").stdout.strip() == ""
    assert "wgkill" not in lab.ruleset()
    after = _routing(lab)
    assert after[0] == before[0] and after[2] == before[2]  # ip rule unchanged, both families


def test_routes_need_a_split_tunnel(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    done = lab.client("wgkill-up", tunnel.iface, "--routes", check=False)
    assert done.returncode == 2 and "--routes needs a split tunnel" in done.stderr
    assert wgkill_lines(lab) == []
