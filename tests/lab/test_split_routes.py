"""Large split tunnels in the lab: a kernel set drives routing, with real wg-quick and packets.

The tunnel comes up with ``Table = off`` and AllowedIPs ``0.0.0.0/0, ::/0`` (wg-quick adds
no route); ``python -m wgkill_lab.routes_driver`` then runs ipset.sync + routes.setup inside the
client namespace, as the hooks will. "Through the tunnel" is the web server seeing the VPN
server's address and the isp counting no leak; "over the uplink" is the web server seeing
the client's own address and the isp counting it.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from wgkill_lab.netns import CLIENT4, CLIENT6, VPN4, VPN6, Lab, Tunnel, wait_until
from wgkill_lab.routes_driver import generate

OUTSIDE4, OUTSIDE6 = "203.0.113.81", "2001:db8:80::81"  # on the isp's lo too, never listed
REAL = [
    "# what the tests reach, plus the VPN server's own network: its packets must stay outside",
    "203.0.113.80/32",
    "2001:db8:80::80/128   # the web server",
    "198.51.100.0/24",
    "2001:db8:d::/64",
    "",
]


def _settle(lab: Lab, interfaces: tuple[str, ...] = ("uplink0",)) -> None:
    """Wait until the client's IPv6 link-local addresses finished DAD: their `local fe80::`
    routes appear a second or two after a link comes up and would show up in the diff."""
    def settled() -> bool:
        tentative = lab.client("ip", "-6", "addr", "show", "tentative").stdout.strip()
        linklocal = [lab.client("ip", "-6", "addr", "show", "dev", name, "scope", "link").stdout
                     for name in interfaces]
        return not tentative and all("inet6 fe80::" in text for text in linklocal)

    wait_until(settled, 10, "the client's IPv6 addresses past DAD", interval=0.1)


def _start(lab: Lab) -> Tunnel:
    lab.isp("ip", "addr", "add", f"{OUTSIDE4}/32", "dev", "lo")
    lab.isp("ip", "addr", "add", f"{OUTSIDE6}/128", "dev", "lo")
    tunnel = lab.add_tunnel(hooks="", extra="Table = off\n")
    lab.wg_quick("up", tunnel)
    _settle(lab, ("uplink0", tunnel.iface))
    return tunnel


def _write_list(lab: Lab, name: str, count4: int, count6: int, real: list[str] = REAL) -> Path:
    path = lab.tmp / name
    with path.open("w") as handle:
        handle.write("\n".join(real) + "\n")
        handle.writelines(line + "\n" for line in generate(count4, count6))
    return path


def _driver(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return lab.client(sys.executable, "-I", "-m", "wgkill_lab.routes_driver", *args, check=check, timeout=300)


def _up(lab: Lab, tunnel: Tunnel, path: Path, previous: dict | None = None) -> dict:
    args = ["up", tunnel.iface, "--file", str(path)]
    if previous is not None:
        saved = lab.tmp / "previous.json"
        saved.write_text(json.dumps(previous))
        args += ["--previous", str(saved)]
    done = _driver(lab, *args)
    result = json.loads(done.stdout)
    result["stderr"] = done.stderr
    return result


def _down(lab: Lab, record: dict) -> dict:
    saved = lab.tmp / "record.json"
    saved.write_text(json.dumps(record))
    return json.loads(_driver(lab, "down", str(saved)).stdout)


def _snapshot(lab: Lab) -> dict[str, str]:
    """Everything routes/ipset may touch in the client: rules, every table, sets, iptables."""
    seen = {}
    for flag in ("-4", "-6"):
        seen[f"ip {flag} rule"] = lab.client("ip", flag, "rule", "show").stdout
        seen[f"ip {flag} route table all"] = lab.client("ip", flag, "route", "show", "table", "all").stdout
    seen["ipset -n"] = lab.client("ipset", "list", "-n").stdout
    for tool in ("iptables-save", "ip6tables-save"):
        for table in ("filter", "mangle", "nat", "raw"):
            text = lab.client(tool, "-t", table).stdout
            lines = (line for line in text.splitlines() if not line.startswith("#"))
            seen[f"{tool} -t {table}"] = "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in lines)
    seen["rp_filter"] = lab.client("sysctl", "net.ipv4.conf.all.rp_filter").stdout
    return seen


def _diff(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {key: (before[key], after.get(key, "")) for key in before if before[key] != after.get(key)}


def _curl(lab: Lab, address: str, timeout: float = 5) -> tuple[int, str, float]:
    url = f"http://[{address}]/" if ":" in address else f"http://{address}/"
    started = time.monotonic()
    done = lab.client("curl", "-s", "--max-time", str(timeout), url, check=False, timeout=timeout + 5)
    return done.returncode, done.stdout.strip(), time.monotonic() - started


def _assert_listed_through_tunnel(lab: Lab) -> None:
    lab.reset_counters()
    assert lab.whoami(4) == VPN4
    assert lab.whoami(6) == VPN6
    seen = lab.counters()
    assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0, seen
    assert seen["ipv4"]["carrier"] > 0, seen


def _assert_unlisted_over_uplink(lab: Lab) -> None:
    lab.reset_counters()
    assert _curl(lab, OUTSIDE4)[1] == CLIENT4
    assert _curl(lab, OUTSIDE6)[1] == CLIENT6
    seen = lab.counters()
    assert seen["ipv4"]["leak"] > 0 and seen["ipv6"]["leak"] > 0, seen  # the isp saw them, as it should


def _members(lab: Lab, name: str) -> int | None:
    code = f"from wgkill import ipset; print(ipset.members_count({name!r}))"
    out = lab.client(sys.executable, "-I", "-c", code).stdout.strip()
    return None if out == "None" else int(out)


def _mangle_rules(lab: Lab, family: int, chain: str) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    saved = lab.client(tool, "-t", "mangle").stdout.splitlines()
    return [line for line in saved if line.startswith(f"-A {chain} ")]


def test_1000_prefixes_route_through_the_tunnel_and_teardown_restores_everything(lab: Lab) -> None:
    tunnel = _start(lab)
    before = _snapshot(lab)
    assert lab.whoami(4) == CLIENT4  # Table = off: wg-quick routed nothing into the tunnel

    listed = _write_list(lab, "1k.txt", 1000, 0)
    result = _up(lab, tunnel, listed)
    assert result["counts"] == {"ipv4": 1002, "ipv6": 2}
    for announced in ("[#] ipset restore", "[#] ip -4 -batch -", "[#] ip -6 -batch -", "-restore -w -n"):
        assert announced in result["stderr"]
    record = result["record"]
    assert record["mark"] & ~record["mask"] == 0 and record["table"] not in range(51820, 51830)
    set4 = f"wgkill-{tunnel.iface}-4"
    assert _members(lab, set4) == 1002 and _members(lab, f"wgkill-{tunnel.iface}-6") == 2

    _assert_listed_through_tunnel(lab)  # 198.51.100.0/24 holds the endpoint: exempt, or nothing would flow
    _assert_unlisted_over_uplink(lab)

    # the set is referenced by our rule: it cannot be destroyed under it
    destroy = f"from wgkill import ipset; ipset.destroy({set4!r})"
    refused = lab.client(sys.executable, "-I", "-c", destroy, check=False)
    assert refused.returncode != 0 and "in use" in refused.stderr
    assert _members(lab, set4) == 1002

    # re-running with the record is a no-op for rules, tables and iptables
    applied = _snapshot(lab)
    again = _up(lab, tunnel, listed, previous=record)
    assert again["record"] == record
    assert _diff(applied, _snapshot(lab)) == {}

    # a new list is swapped in under the live rules: the web server is no longer listed
    shorter = _write_list(lab, "shorter.txt", 1000, 0, real=["2001:db8:80::/48", "198.51.100.0/24"])
    assert _up(lab, tunnel, shorter, previous=record)["counts"] == {"ipv4": 1001, "ipv6": 1}
    assert lab.whoami(4) == CLIENT4 and lab.whoami(6) == VPN6
    assert _up(lab, tunnel, listed, previous=record)["counts"]["ipv4"] == 1002
    assert lab.whoami(4) == VPN4

    down = _down(lab, record)
    assert sorted(down["destroyed"]) == [set4, f"wgkill-{tunnel.iface}-6"]
    assert _diff(before, _snapshot(lab)) == {}
    assert lab.whoami(4) == CLIENT4 and lab.whoami(6) == CLIENT6
    twice = _down(lab, record)  # already gone is fine
    assert twice["removed"] == [] and twice["destroyed"] == []


def test_100000_ipv4_and_10000_ipv6_prefixes_with_strict_rp_filter(lab: Lab) -> None:
    tunnel = _start(lab)
    lab.client("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")  # replies arrive on the tunnel
    before = _snapshot(lab)
    listed = _write_list(lab, "100k.txt", 100000, 10000)

    started = time.monotonic()
    result = _up(lab, tunnel, listed)
    wall = time.monotonic() - started
    print(f"\n100k v4 + 10k v6: wall {wall:.2f}s (python start included), steps "
          + ", ".join(f"{k} {v:.3f}s" for k, v in result["timings"].items()))
    assert result["counts"] == {"ipv4": 100002, "ipv6": 10002}
    assert result["timings"]["total"] < 5, result["timings"]  # ~0.6 s measured; catches a quadratic step
    record = result["record"]
    key = f"net/ipv4/conf/{tunnel.iface}/rp_filter"
    assert record["sysctls"] == [{"key": key, "old": "0", "new": "2"}]

    _assert_listed_through_tunnel(lab)
    _assert_unlisted_over_uplink(lab)
    # iptables does not grow with the list: one set match per family (after the endpoint's RETURN)
    for family, count in ((4, 2), (6, 1)):
        rules = _mangle_rules(lab, family, f"wgkill-{tunnel.iface}-rt")
        assert len(rules) == count and "--match-set" in rules[-1], rules
    assert _members(lab, f"wgkill-{tunnel.iface}-4") == 100002

    _down(lab, record)
    assert _diff(before, _snapshot(lab)) == {}
    assert lab.client("sysctl", "-n", key.replace("/", ".")).stdout.strip() == "0"
    assert lab.whoami(4) == CLIENT4


def test_tunnel_killed_listed_destinations_fail_fast_unlisted_still_flow(lab: Lab) -> None:
    lab.isp("ip", "addr", "add", f"{OUTSIDE4}/32", "dev", "lo")
    lab.isp("ip", "addr", "add", f"{OUTSIDE6}/128", "dev", "lo")
    _settle(lab)
    pristine = _snapshot(lab)
    tunnel = lab.add_tunnel(hooks="", extra="Table = off\n")
    lab.wg_quick("up", tunnel)
    record = _up(lab, tunnel, _write_list(lab, "small.txt", 10, 10))["record"]
    _assert_listed_through_tunnel(lab)

    lab.kill_daemon(tunnel)  # the interface vanishes, and the kernel drops `default dev IFACE`
    lab.reset_counters()
    for address in ("203.0.113.80", "2001:db8:80::80"):
        # The re-route by mark hits the unreachable route and the packet is dropped (silently:
        # the kill switch is what refuses fast); it must not fall through to the uplink.
        code, said, _ = _curl(lab, address, timeout=2)
        assert code != 0 and said == "", (address, code, said)
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    _assert_unlisted_over_uplink(lab)

    down = _down(lab, record)  # with the interface gone: removes the rest, no error
    assert "ipv4 route unreachable default metric 4294967295 table " + str(record["table"]) in down["removed"]
    assert not any("route default dev" in item for item in down["removed"])
    assert _diff(pristine, _snapshot(lab)) == {}


def test_an_invalid_line_refuses_the_whole_list_and_nothing_changes(lab: Lab) -> None:
    tunnel = _start(lab)
    before = _snapshot(lab)
    path = _write_list(lab, "bad.txt", 1000, 10)
    lines = path.read_text().splitlines()
    lines[500] = "10.0.0.0/33"
    path.write_text("\n".join(lines) + "\n")
    done = _driver(lab, "up", tunnel.iface, "--file", str(path), check=False)
    assert done.returncode == 3
    assert "1 invalid entry, nothing applied: line 501: '10.0.0.0/33'" in done.stderr
    assert "[#]" not in done.stderr
    assert _diff(before, _snapshot(lab)) == {}


def test_ipset_sync_failure_keeps_the_live_set_and_destroy_is_idempotent(lab: Lab) -> None:
    code = """
import json
from wgkill import ipset
from wgkill.errors import FirewallError
from wgkill.names import set_name
name = set_name("wk0", 4)
out = {"first": ipset.sync(name, 4, ["192.0.2.0/24", "198.51.100.0/24", "0.0.0.0/0"])}
out["count"] = ipset.members_count(name)
try:
    ipset.sync(name, 4, ["203.0.113.0/24", "203.0.113.0/24"])  # a duplicate makes restore fail
except FirewallError as exc:
    out["error"] = str(exc)
out["after_failure"] = ipset.members_count(name)
out["names"] = sorted(ipset.names())
out["destroyed"] = [ipset.destroy(name), ipset.destroy(name)]
out["gone"] = [ipset.exists(name), ipset.members_count(name)]
print(json.dumps(out))
"""
    out = json.loads(lab.client(sys.executable, "-I", "-c", code).stdout)
    assert out["first"] == 4 and out["count"] == 4  # /0 is held as its two /1 halves
    assert "the live set is unchanged" in out["error"] and "already added" in out["error"]
    assert out["after_failure"] == 4
    assert out["names"] == ["wgkill-wk0-4"]  # no temporary left behind
    assert out["destroyed"] == [True, False]
    assert out["gone"] == [False, None]


def test_two_tunnels_get_their_own_slots_and_teardown_of_one_leaves_the_other(lab: Lab) -> None:
    first = _start(lab)
    second = lab.add_tunnel(hooks="", extra="Table = off\n")
    lab.wg_quick("up", second)
    _settle(lab, ("uplink0", first.iface, second.iface))
    before = _snapshot(lab)
    one = _up(lab, first, _write_list(lab, "one.txt", 100, 0, real=["203.0.113.80/32", "198.51.100.0/24"]))
    after_one = _snapshot(lab)
    two = _up(lab, second, _write_list(lab, "two.txt", 0, 100, real=["2001:db8:80::80/128"]))
    slots = [(r["record"]["mark"], r["record"]["table"], r["record"]["priority"]) for r in (one, two)]
    assert len({s[0] for s in slots}) == len({s[1] for s in slots}) == len({s[2] for s in slots}) == 2
    for address, done, iface in (("203.0.113.80", one, first.iface), ("2001:db8:80::80", two, second.iface)):
        route = lab.client("ip", "route", "get", address, "mark", hex(done["record"]["mark"])).stdout
        assert f" dev {iface} " in route, route
    assert lab.whoami(4) == VPN4 and lab.whoami(6) == VPN6

    _down(lab, two["record"])
    assert _diff(after_one, _snapshot(lab)) == {}  # the first tunnel's pieces are untouched
    assert lab.whoami(4) == VPN4 and lab.whoami(6) == CLIENT6
    _down(lab, one["record"])
    assert _diff(before, _snapshot(lab)) == {}


def test_legacy_iptables(legacy_lab: Lab) -> None:
    lab = legacy_lab
    tunnel = _start(lab)
    before = _snapshot(lab)
    result = _up(lab, tunnel, _write_list(lab, "legacy.txt", 1000, 1000))
    assert result["record"]["iptables_variant"] == "legacy"
    assert "[#] iptables-legacy-restore -w -n" in result["stderr"]
    _assert_listed_through_tunnel(lab)
    _assert_unlisted_over_uplink(lab)
    _down(lab, result["record"])
    assert _diff(before, _snapshot(lab)) == {}
