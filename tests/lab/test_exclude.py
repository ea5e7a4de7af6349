"""Per-app exclusion for real: wgkill-exclude, cgroup v2, marks and NAT, the far side as witness.

The client's commands see this machine's hybrid layout (cgroup v1 on a tmpfs at
/sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified; ``wgkill_lab.cgroupfs``), and
each lab has its own exclusion cgroup (``Lab.exclude_cgroup``), removed with it.
The core scenarios run with each backend (``any_lab``: nft, iptables-nft,
iptables-legacy), the rest with the default one (nft).
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgkill.cgroups import unified_root
from wgkill_lab.cgroupfs import cgroup_of
from wgkill_lab.netns import CLIENT4, CLIENT6, VPN4, VPN6, WEB4, WEB6, Lab, Tunnel, wait_until

from .checks import backend_args, hooks, rules, simulate_reboot, state

EXCLUDED_PORT, OTHER_PORT = {4: 40001, 6: 40003}, {4: 40002, 6: 40004}  # per family: no TIME_WAIT clash


@pytest.fixture
def xlab(lab: Lab) -> Iterator[Lab]:
    lab.cgroupfs = "hybrid"
    yield lab


@pytest.fixture
def any_xlab(any_lab: Lab) -> Iterator[Lab]:
    any_lab.cgroupfs = "hybrid"
    yield any_lab


def _cgroup_dir(lab: Lab) -> Path:
    return unified_root() / lab.exclude_cgroup


def _up(lab: Lab, *options: str) -> Tunnel:
    tunnel = lab.add_tunnel(hooks=hooks("--allow-exclude", *backend_args(lab), *options))
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    return tunnel


def _url(target: str, port: int = 80) -> str:
    return f"http://[{target}]:{port}/" if ":" in target else f"http://{target}:{port}/"


def _curl(lab: Lab, target: str, *, excluded: bool, user: str | None = None,
          local_port: int | None = None) -> subprocess.Popen[str]:
    """A curl started now (not waited for): inside wgkill-exclude or as any program."""
    curl = ["curl", "-s", "--max-time", "5", *(["--local-port", str(local_port)] if local_port else []),
            _url(target)]
    if excluded:
        argv = ["wgkill-exclude", *(["--user", user] if user else []), "--", *curl]
    else:
        argv = ["runuser", "-u", user, "--", *curl] if user else curl
    return subprocess.Popen(lab.argv(lab.client_ns, *argv), env=lab.env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _answer(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.strip(), err


def _all_rules(lab: Lab) -> str:
    """Every table of both iptables families, and the nft ruleset (wg-quick's own tables aside)."""
    saved = "".join(lab.client(tool).stdout for tool in ("iptables-save", "ip6tables-save"))
    return saved + rules(lab)[2]


def _wgkill_rules(lab: Lab) -> list[str]:
    return [ln for ln in _all_rules(lab).splitlines()
            if "wgkill" in ln or "cgroup" in ln or "0xca6c" in ln.lower()]


def _nothing_left(lab: Lab) -> None:
    """No rule in any iptables table, no wgkill table, chain, cgroup match or mark in nftables."""
    text = _all_rules(lab)
    assert "-A " not in text and _wgkill_rules(lab) == [], text


def test_excluded_curl_sees_the_uplink_while_a_normal_one_sees_the_vpn_v4_v6_at_once(any_xlab: Lab) -> None:
    lab = any_xlab
    lab.client("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")  # strict: replies need the ct mark
    _up(lab)
    procs = {(family, excluded): _curl(lab, target, excluded=excluded)
             for family, target in ((4, WEB4), (6, WEB6)) for excluded in (True, False)}
    seen = {key: _answer(proc) for key, proc in procs.items()}
    assert seen[(4, True)][:2] == (0, CLIENT4), seen
    assert seen[(6, True)][:2] == (0, CLIENT6), seen
    assert seen[(4, False)][:2] == (0, VPN4), seen
    assert seen[(6, False)][:2] == (0, VPN6), seen
    hits = {(h["src"], h["dst"]) for h in lab.web_hits()}  # the far side's own log says the same
    assert {(CLIENT4, WEB4), (CLIENT6, WEB6), (VPN4, WEB4), (VPN6, WEB6)} <= hits
    line = seen[(4, True)][2]
    assert re.search(r"wgkill-exclude: \S+ wgkill-exclude: pid \d+ in .*unified/" + lab.exclude_cgroup
                     + r" by uid 0 as root .*: curl -s", line), line
    if lab.backend is None:  # nft: loaded with cgroup2 at /sys/fs/cgroup, listed back as the host sees it
        assert f'socket cgroupv2 level 1 "unified/{lab.exclude_cgroup}"' in rules(lab)[2]
    log = (lab.state_dir / "exclude.log").read_text().splitlines()
    assert len(log) == 2 and all("curl -s --max-time 5" in entry for entry in log)


def _witness(lab: Lab) -> None:
    """At the isp: packets from the client's uplink address to the web server, by source port."""
    for family, tool, src, dst in ((4, "iptables", CLIENT4, WEB4), (6, "ip6tables", CLIENT6, WEB6)):
        lab.isp(f"{tool}-restore", "-n", stdin="\n".join([
            "*raw", ":WGKEX - [0:0]", "-I PREROUTING 1 -i cust0 -j WGKEX",
            f"-A WGKEX -s {src} -d {dst} -p tcp -m tcp --sport {EXCLUDED_PORT[family]} "
            "-m comment --comment excluded -j RETURN",
            f"-A WGKEX -s {src} -d {dst} -m comment --comment others -j RETURN", "COMMIT", ""]))


def _witnessed(lab: Lab) -> dict[str, dict[str, int]]:
    seen: dict[str, dict[str, int]] = {}
    for family, tool in (("ipv4", "iptables-save"), ("ipv6", "ip6tables-save")):
        seen[family] = {}
        for line in lab.isp(tool, "-c", "-t", "raw").stdout.splitlines():
            match = re.match(r"\[(\d+):\d+\] -A WGKEX .*--comment (\w+)", line)
            if match:
                seen[family][match.group(2)] = int(match.group(1))
    return seen


def test_after_a_drop_the_excluded_program_gets_out_and_no_other_packet_does(any_xlab: Lab) -> None:
    lab = any_xlab
    tunnel = _up(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    _witness(lab)
    for family, target, uplink in ((4, WEB4, CLIENT4), (6, WEB6, CLIENT6)):
        excluded = _curl(lab, target, excluded=True, local_port=EXCLUDED_PORT[family])
        other = _curl(lab, target, excluded=False, local_port=OTHER_PORT[family])  # same destination, port
        assert _answer(excluded)[:2] == (0, uplink)
        code, out, _ = _answer(other)
        assert code != 0 and out == ""
    seen = _witnessed(lab)
    assert seen["ipv4"]["others"] == 0 and seen["ipv6"]["others"] == 0, seen
    assert seen["ipv4"]["excluded"] > 0 and seen["ipv6"]["excluded"] > 0, seen
    lab.reset_counters()
    assert lab.probe(timeout=3) == {k: "refused" for k in lab.probe(timeout=3)}  # everything else: held
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}


def test_captive_portal_login_under_lockdown_with_no_tunnel_up(any_xlab: Lab) -> None:
    """Hotel Wi-Fi: --lockdown --allow-exclude and a clean `wg-quick down` (no tunnel up);
    `wgkill-exclude -- BROWSER` reaches the portal by the uplink, nothing else gets out."""
    lab = any_xlab
    tunnel = _up(lab, "--lockdown")
    lab.wg_quick("down", tunnel)  # the block stays (lockdown), the tunnel is gone
    _witness(lab)
    for family, target, uplink in ((4, WEB4, CLIENT4), (6, WEB6, CLIENT6)):
        excluded = _curl(lab, target, excluded=True, local_port=EXCLUDED_PORT[family])
        other = _curl(lab, target, excluded=False, local_port=OTHER_PORT[family])
        assert _answer(excluded)[:2] == (0, uplink)  # the portal, by the uplink
        code, out, _ = _answer(other)
        assert code != 0 and out == ""
    seen = _witnessed(lab)
    assert seen["ipv4"]["excluded"] > 0 and seen["ipv6"]["excluded"] > 0, seen  # the witness counts
    assert seen["ipv4"]["others"] == 0 and seen["ipv6"]["others"] == 0, seen
    lab.reset_counters()
    assert set(lab.probe(timeout=3).values()) == {"refused"}
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    lab.client("wgkill-release", tunnel.iface)
    _nothing_left(lab)


def test_user_runs_with_that_uid_and_the_same_user_outside_is_not_excluded(xlab: Lab) -> None:
    lab = xlab
    _up(lab)
    assert lab.client("wgkill-exclude", "--user", "nobody", "--", "id", "-u").stdout == "65534\n"
    assert lab.client("wgkill-exclude", "--user", "nobody", "--", "id", "-g").stdout == "65534\n"
    assert lab.client("wgkill-exclude", "--user", "nobody", "--", "id", "-G").stdout.split() == ["65534"]
    env = lab.client("wgkill-exclude", "--user", "nobody", "--", "env").stdout.splitlines()
    assert dict(line.split("=", 1) for line in env) == {
        "HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody", "SHELL": "/usr/sbin/nologin",
        "PATH": "/usr/local/bin:/usr/bin:/bin"}
    cgroup = lab.client("wgkill-exclude", "--user", "nobody", "--", "cat", "/proc/self/cgroup").stdout
    assert f"0::/{lab.exclude_cgroup}\n" in cgroup
    inside = _curl(lab, WEB4, excluded=True, user="nobody")
    outside = _curl(lab, WEB4, excluded=False, user="nobody")
    assert _answer(inside)[:2] == (0, CLIENT4)
    assert _answer(outside)[:2] == (0, VPN4)
    code = lab.client("wgkill-exclude", "--user", "nobody", "--", "sh", "-c", "exit 42", check=False)
    assert code.returncode == 42  # its exit code is ours
    missing = lab.client("wgkill-exclude", "--", "no-such-program-here", check=False)
    assert missing.returncode == 127 and missing.stderr.count("\n") == 1
    unknown = lab.client("wgkill-exclude", "--user", "no-such-user", "--", "id", check=False)
    assert unknown.returncode == 2 and "no such user" in unknown.stderr


def test_pid_moves_new_sockets_and_children_out_but_open_connections_stay_in_the_tunnel(xlab: Lab) -> None:
    lab = xlab
    _up(lab)
    holder = subprocess.Popen(
        lab.argv(lab.client_ns, sys.executable, "-I", "-m", "wgkill_lab.servers", "hold", WEB4),
        env=lab.env(), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lab.adopt(holder)
    assert holder.stdin is not None and holder.stdout is not None

    def ask(what: str) -> str:
        holder.stdin.write(what + "\n")
        holder.stdin.flush()
        return holder.stdout.readline().strip()

    assert holder.stdout.readline().strip() == VPN4  # the held connection, opened in the tunnel
    pid = _holder_pid(lab, holder.pid)
    moved = lab.client("wgkill-exclude", "--pid", str(pid))
    assert f"pid {pid} moved into" in moved.stderr and "wgkill_lab.servers hold" in moved.stderr
    assert ask("old") == VPN4  # the socket keeps the cgroup it was created in: still the tunnel
    assert ask("new") == CLIENT4  # a socket created after the move: excluded
    assert ask("child") == CLIENT4  # a child born after the move: excluded
    assert ask("old") == VPN4
    bad = lab.client("wgkill-exclude", "--pid", "1", check=False)
    assert bad.returncode == 2


def _holder_pid(lab: Lab, launcher: int) -> int:
    """The python process itself (``ip netns exec`` and cgroupfs exec into it: the same pid)."""
    cmdline = Path(f"/proc/{launcher}/cmdline").read_bytes()
    assert b"wgkill_lab.servers" in cmdline, cmdline
    return launcher


def test_without_cgroup_v2_it_is_refused_and_nothing_changes(xlab: Lab) -> None:
    lab = xlab
    tunnel = _up(lab)
    before = (_all_rules(lab), state(lab, tunnel), sorted(p.name for p in _cgroup_dir(lab).iterdir()))
    for layout in ("v1", "none"):
        lab.cgroupfs = layout
        refused = lab.client("wgkill-exclude", "--", "curl", "-s", _url(WEB4), check=False)
        assert refused.returncode == 5, refused
        assert refused.stdout == "" and refused.stderr.count("\n") == 1
        assert "cgroup v2 is not mounted" in refused.stderr and "nothing changed" in refused.stderr
        pid = lab.client("wgkill-exclude", "--pid", str(_sleeper(lab)), check=False)
        assert pid.returncode == 5
        again = lab.client("wgkill-up", tunnel.iface, "--allow-exclude", check=False)
        assert again.returncode == 5 and again.stderr.count("\n") == 1
    lab.cgroupfs = "hybrid"
    after = (_all_rules(lab), state(lab, tunnel), sorted(p.name for p in _cgroup_dir(lab).iterdir()))
    assert _normalised(after) == _normalised(before)
    assert (_cgroup_dir(lab) / "cgroup.procs").read_text() == ""
    assert not (lab.state_dir / "exclude.log").exists()


def _normalised(snapshot: tuple[str, object, list[str]]) -> tuple[str, object, list[str]]:
    rules, recorded, files = snapshot
    return re.sub(r"^# .*\n", "", rules, flags=re.M), recorded, files


def _sleeper(lab: Lab) -> int:
    proc = subprocess.Popen(lab.argv(lab.client_ns, "sleep", "30"), env=lab.env())
    lab.adopt(proc)
    return proc.pid


def test_split_tunnel_and_table_off_are_refused(xlab: Lab) -> None:
    lab = xlab
    split = lab.add_tunnel(hooks="", allowed_ips="192.0.2.144/28")
    lab.wg_quick("up", split)
    refused = lab.client("wgkill-up", split.iface, "--allow-exclude", check=False)
    assert refused.returncode == 2 and "full tunnel" in refused.stderr
    assert state(lab, split) is None and _wgkill_rules(lab) == []
    assert not _cgroup_dir(lab).exists()


def _excluded_sleeper(lab: Lab) -> int:
    """Start `wgkill-exclude -- sleep 60` (the lab reaps it) and return its pid once it is in the cgroup."""
    sleeper = subprocess.Popen(lab.argv(lab.client_ns, "wgkill-exclude", "--", "sleep", "60"),
                               env=lab.env(), stderr=subprocess.PIPE, text=True)
    lab.adopt(sleeper)
    procs = wait_until(lambda: (_cgroup_dir(lab) / "cgroup.procs").read_text().split(), 10,
                       "the excluded sleeper in the cgroup")
    [pid] = map(int, procs)
    return pid


def test_status_shows_the_exclusion_and_wg_quick_down_leaves_nothing(any_xlab: Lab) -> None:
    lab = any_xlab
    before = _all_rules(lab)
    tunnel = _up(lab)
    pid = _excluded_sleeper(lab)

    text = lab.client("wgkill-status", tunnel.iface)
    assert text.stdout.startswith(f"WGKILL OK - {tunnel.iface} protected")
    assert "1 process(es) excluded" in text.stdout
    [line] = [ln for ln in text.stdout.splitlines() if ln.startswith("  exclusion")]
    assert f"unified/{lab.exclude_cgroup}" in line and f"{pid} sleep 60" in line
    assert "ipv4 marked, ipv6 marked" in line
    doc = json.loads(lab.client("wgkill-status", "--json", "--probe", "--probe-excluded",
                                "--probe-timeout", "1").stdout)
    assert doc["verdict"] == "OK", doc["problems"]
    [item] = doc["interfaces"]
    assert item["exclusion"]["processes"] == 1
    assert item["exclusion"]["members"] == [{"pid": pid, "command": "sleep 60"}]
    assert {p["outcome"] for p in doc["probe"]} == {"refused"}
    assert {p["name"]: p["outcome"] for p in doc["probe_excluded"]} == {
        "tcp4-excluded": "left", "udp4-excluded": "left", "tcp6-excluded": "left", "udp6-excluded": "left"}
    assert all("seen leaving uplink0" in p["detail"] for p in doc["probe_excluded"])
    metrics = lab.client("wgkill-status", "--prometheus").stdout
    assert f'wgkill_excluded_processes{{interface="{tunnel.iface}"}} 1' in metrics

    # an exclusion never turns CRITICAL into OK
    if lab.backend == "iptables":
        lab.client("iptables", "-F", f"wgkill-{tunnel.iface}")
    else:
        lab.client("nft", "flush", "chain", "inet", f"wgkill-{tunnel.iface}", "ipv4")
    flushed = lab.client("wgkill-status", "--probe-excluded", check=False)
    assert flushed.returncode == 2 and flushed.stdout.startswith("WGKILL CRITICAL")
    lab.client("wgkill-up", tunnel.iface, "--allow-exclude", *backend_args(lab))
    assert lab.client("wgkill-status", check=False).returncode == 0

    down = lab.wg_quick("down", tunnel)
    assert f"1 process(es) in it moved back to the root cgroup (pids {pid})" in down.stderr
    assert not _cgroup_dir(lab).exists()
    assert cgroup_of(pid) == "/"
    assert "-A " not in before
    _nothing_left(lab)  # no mark, no rule, in any table
    assert state(lab, tunnel) is None
    gone = lab.client("wgkill-exclude", "--", "true", check=False)
    assert gone.returncode == 5 and "no tunnel is protected with --allow-exclude" in gone.stderr


def test_processes_kept_excluded_only_while_a_tunnel_allows_it(xlab: Lab) -> None:
    """Full wg0 with --allow-exclude and split wg1 without: wg0 down moves the excluded processes
    back to the root cgroup, where wg1's block holds them like everything else."""
    lab = xlab
    full = _up(lab)
    split = lab.add_tunnel(allowed_ips="203.0.113.80/32, 2001:db8:80::80/128")
    lab.wg_quick("up", split)
    pid = _excluded_sleeper(lab)
    down = lab.wg_quick("down", full)
    assert "moved back to the root cgroup" in down.stderr
    assert cgroup_of(pid) == "/"
    assert not _cgroup_dir(lab).exists()
    refused = lab.client("wgkill-exclude", "--", "true", check=False)
    assert refused.returncode == 5
    lab.wg_quick("down", split)
    assert _wgkill_rules(lab) == []


def test_lockdown_release_and_reboot_leave_no_cgroup_mark_or_rule(any_xlab: Lab) -> None:
    lab = any_xlab
    tunnel = _up(lab, "--lockdown")
    lab.kill_daemon(tunnel)  # crash...
    simulate_reboot(lab)  # ...and reboot: nothing of the kernel's state survives
    _cgroup_dir(lab).rmdir()
    assert _wgkill_rules(lab) == []
    boot = lab.client("wgkill-boot")
    assert "recorded block re-applied (lockdown)" in boot.stderr
    assert (_cgroup_dir(lab) / "cgroup.procs").read_text() == ""  # made again, empty, for the rules
    assert any("-m cgroup --path" in ln or "socket cgroupv2" in ln for ln in _wgkill_rules(lab))
    assert lab.whoami(4, timeout=3) is None  # held
    assert _answer(_curl(lab, WEB4, excluded=True))[:2] == (0, CLIENT4)  # the exclusion holds with it
    released = lab.client("wgkill-release", tunnel.iface)
    assert f"released {tunnel.iface}" in released.stderr
    _nothing_left(lab)
    assert not _cgroup_dir(lab).exists() and state(lab, tunnel) is None
    assert lab.whoami(4) == CLIENT4


def test_boot_without_cgroup_v2_gives_a_full_block_instead(any_xlab: Lab) -> None:
    lab = any_xlab
    tunnel = _up(lab)
    lab.kill_daemon(tunnel)
    simulate_reboot(lab)
    lab.cgroupfs = "v1"
    boot = lab.client("wgkill-boot")
    assert "exclusion cannot be restored" in boot.stderr and "full block applied" in boot.stderr
    assert lab.whoami(4, timeout=3) is None and lab.whoami(6, timeout=3) is None
    lab.cgroupfs = "hybrid"
    lab.client("wgkill-down", tunnel.iface)
    assert not _cgroup_dir(lab).exists()
    _nothing_left(lab)


def test_an_excluded_program_still_asks_the_hosts_resolver_under_the_dns_lock(xlab: Lab) -> None:
    from wgkill_lab.resolvers import ISP_DNS4, VPN_ANSWER4, start_isp_resolver, start_vpn_resolver

    from .checks import require_dns_lab

    require_dns_lab()
    lab = xlab
    tunnel = lab.add_tunnel(hooks=hooks("--allow-exclude", "--dns", "192.0.2.129"))
    isp, vpn = start_isp_resolver(lab), start_vpn_resolver(lab, tunnel)
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    looked_up = lab.client("wgkill-exclude", "--", "getent", "ahostsv4", "excluded.example", check=False)
    assert looked_up.returncode == 0 and looked_up.stdout.split()[0] == VPN_ANSWER4  # the tunnel's resolver
    assert vpn.count("excluded.example") > 0
    for tcp in ((), ("+tcp",)):  # straight at the uplink's resolver: refused like everyone's
        asked = lab.client("wgkill-exclude", "--", "dig", *tcp, "+short", "+time=2", "+tries=1",
                           f"@{ISP_DNS4}", "straight.example", check=False)
        assert asked.stdout.strip() == "" or asked.returncode != 0
    assert isp.count() == 0
    assert _answer(_curl(lab, WEB4, excluded=True))[:2] == (0, CLIENT4)  # everything else: the uplink


def test_dry_run_prints_the_exclusion_and_changes_nothing(any_xlab: Lab) -> None:
    lab = any_xlab
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    before = _all_rules(lab)
    done = lab.client("wgkill-up", tunnel.iface, "--allow-exclude", "--dry-run", *backend_args(lab))
    if lab.backend == "iptables":
        assert f"-A wgkill-{tunnel.iface}-ex -m cgroup --path {lab.exclude_cgroup} -j MARK" in done.stdout
        assert f"-m cgroup --path {lab.exclude_cgroup} -m mark --mark 0xca6c -j RETURN" in done.stdout
    else:
        assert f'socket cgroupv2 level 1 "{lab.exclude_cgroup}" meta mark set 0x0000ca6c' in done.stdout
    # (iptables-legacy shows the empty nat and mangle tables that reading them loaded: no rule)
    assert _rule_lines(_all_rules(lab)) == _rule_lines(before) and _wgkill_rules(lab) == []
    assert state(lab, tunnel) is None and not _cgroup_dir(lab).exists()


def _rule_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.startswith(("#", "*", ":", "COMMIT"))]
