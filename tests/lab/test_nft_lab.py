"""What the nftables backend guarantees that the iptables one cannot, proven at the far side.

Another tool's rules (an ACCEPT at the top of OUTPUT or FORWARD, a flush or a
policy change in iptables) cannot open a block in a table of its own; the two
families are one transaction, so an interrupted wgkill-up never leaves one
blocked without the other; a 0.1 (version-1) state still comes down cleanly;
the endpoint exemption passes WireGuard alone; endpoint-name lookups are exact.
"""

import json
import random
import re
import subprocess
import sys
import time

import pytest

from wgkill_lab.netns import VPN4, VPN6, WEB4, Lab, Tunnel, wait_until

from .checks import (
    assert_blocked,
    assert_open_uplink,
    assert_through_tunnel,
    gateway_nat,
    hooks,
    routed,
    rules,
    state,
    wgkill_lines,
)

# (what another tool did, the commands) — each run in the client during a drop.
FOREIGN = {
    "accept-on-top-of-output": [[t, "-I", "OUTPUT", "1", "-j", "ACCEPT"] for t in ("iptables", "ip6tables")],
    "flush-and-delete-every-iptables-table": [
        [tool, "-t", table, verb] for tool in ("iptables", "ip6tables")
        for table in ("filter", "nat", "mangle", "raw") for verb in ("-F", "-X")],
    "output-policy-accept": [[t, "-P", "OUTPUT", "ACCEPT"] for t in ("iptables", "ip6tables")],
}


def _drop(lab: Lab, **kw: object) -> Tunnel:
    tunnel = lab.add_tunnel(**kw)  # type: ignore[arg-type]
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    assert_through_tunnel(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)  # the control: nothing done by anyone else
    return tunnel


@pytest.mark.parametrize("action", sorted(FOREIGN))
def test_foreign_rules_cannot_open_the_nft_block(lab: Lab, action: str) -> None:
    tunnel = _drop(lab)
    for argv in FOREIGN[action]:
        lab.client(*argv)
    seen = assert_blocked(lab)  # 0 leak packets at the isp, v4 and v6, every probe refused
    assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []
    assert_open_uplink(lab)


def test_contrast_a_foreign_accept_on_top_opens_the_iptables_block(iptables_lab: Lab) -> None:
    """Why nft is the default: the same ACCEPT above the iptables backend's jump leaks, v4 and v6."""
    lab = iptables_lab
    tunnel = _drop(lab)
    for argv in FOREIGN["accept-on-top-of-output"]:
        lab.client(*argv)
    lab.reset_counters()
    assert lab.whoami(4) is not None and lab.whoami(6) is not None
    leaks = lab.leaks()
    assert leaks["ipv4"] > 0 and leaks["ipv6"] > 0, leaks  # the leak the nft backend prevents
    lab.wg_quick("down", tunnel)


def test_gateway_foreign_forward_accept_lets_no_routed_packet_out(lab: Lab) -> None:
    lan = lab.add_lan_host()
    tunnel = lab.add_tunnel(hooks=hooks("--gateway"))
    lab.wg_quick("up", tunnel)
    gateway_nat(lab, tunnel)

    assert routed(lab, lan, WEB4) == VPN4 and routed(lab, lan, "2001:db8:80::80") == VPN6
    lab.kill_daemon(tunnel)
    for tool in ("iptables", "ip6tables"):  # what Docker does
        lab.client(tool, "-I", "FORWARD", "1", "-j", "ACCEPT")
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert routed(lab, lan, WEB4) is None and routed(lab, lan, "2001:db8:80::80") is None
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}
    assert len(lab.web_hits()) == hits
    lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []


def _families_in(ruleset: str, table: str) -> set[str]:
    """Which families our table blocks right now: its per-family jumps from the output chain."""
    for block in re.split(r"(?m)^(?=table )", ruleset):
        if block.startswith(f"table inet {table} {{"):
            output = block.partition("chain output {")[2].partition("}")[0]
            chains = set(re.findall(r"(?m)^\s*chain (\w+) \{", block))
            jumps = set(re.findall(r"meta nfproto (ipv[46]) jump (ipv[46])", output))
            return {f for f, chain in jumps if chain in chains and f"{chain} {{" in block}
    return set()


def test_sigkill_of_wgkill_up_never_leaves_one_family_blocked_without_the_other(lab: Lab) -> None:
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    before = rules(lab)
    table = f"wgkill-{tunnel.iface}"
    env = lab.env()
    rng = random.Random(1212)  # noqa: S311 - moments to kill at, not secrets
    outcomes = {"none": 0, "both": 0}
    for _ in range(100):
        proc = subprocess.Popen(["ip", "netns", "exec", lab.client_ns, "wgkill-up", tunnel.iface], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(10)
        ruleset = lab.ruleset()
        families = _families_in(ruleset, table)
        assert families in (set(), {"ipv4", "ipv6"}), families  # never one without the other
        outcomes["both" if families else "none"] += 1
        down = lab.client("wgkill-down", tunnel.iface, check=False)
        assert down.returncode == 0, down.stderr
        assert rules(lab) == before  # a plain wgkill-down restores the ruleset byte for byte
        assert state(lab, tunnel) is None
    assert outcomes["none"] > 0 and outcomes["both"] > 0, outcomes  # both kinds of moment were hit
    print(json.dumps(outcomes))


def test_upgrade_from_a_v1_state_comes_down_cleanly(lab: Lab) -> None:
    """A tunnel brought up by 0.1 (iptables, state version 1) is taken down by this code."""
    before = (lab.save(4), lab.save(6))
    tunnel = lab.add_tunnel(hooks=hooks("--backend", "iptables"))
    lab.wg_quick("up", tunnel)
    path = lab.state_dir / f"{tunnel.iface}.json"
    record = json.loads(path.read_text())
    variants = {r["variant"] for r in record["families"].values()}
    assert len(variants) == 1
    v1 = {k: v for k, v in record.items() if k not in ("backend", "nft")}  # the 0.1 field set
    v1.update(version=1, iptables_variant=variants.pop(), families={
        f"ipv{f}": {k: v for k, v in r.items() if k != "variant"} for f, r in record["families"].items()})
    path.write_text(json.dumps(v1, indent=2, sort_keys=True) + "\n")
    assert wgkill_lines(lab) != []
    lab.wg_quick("down", tunnel)
    assert (lab.save(4), lab.save(6)) == before
    assert wgkill_lines(lab) == [] and state(lab, tunnel) is None


HANDSHAKE = bytes([1, 0, 0, 0]) + bytes(144)  # the shape of WireGuard's handshake initiation


def _send_udp(lab: Lab, target: str, port: int, *, user: str | None = None, mark: int | None = None,
              payload: bytes = b"plaintext") -> None:
    code = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "mark = int(sys.argv[3])\n"
            "if mark: s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)\n"
            "for _ in range(5):\n"
            "    try: s.sendto(bytes.fromhex(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))\n"
            "    except OSError: pass\n")
    argv = [sys.executable, "-I", "-c", code, target, str(port), str(mark or 0), payload.hex()]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]  # numeric ids
    lab.client(*argv)


def _wait_handshake_seen(lab: Lab, tunnel: Tunnel, timeout: float = 20) -> None:
    def seen() -> bool:
        shown = lab.client("wg", "show", tunnel.iface, "latest-handshakes").stdout.split()
        return len(shown) >= 2 and shown[1] != "0"

    wait_until(seen, timeout, f"{tunnel.iface}: a handshake with the block held", interval=0.2)


@pytest.mark.parametrize("fwmark", [True, False], ids=["fwmark", "no-fwmark"])
def test_endpoint_exemption_passes_wireguard_alone(any_lab: Lab, fwmark: bool) -> None:
    lab = any_lab
    extra = "" if fwmark else "Table = off\n"  # Table = off: wg-quick sets no fwmark
    tunnel = lab.add_tunnel(extra=extra)
    lab.wg_quick("up", tunnel)
    if not fwmark:
        lab.client("ip", "route", "add", "203.0.113.80/32", "dev", tunnel.iface)
    assert (state(lab, tunnel)["fwmark"] is not None) == fwmark  # type: ignore[index]
    lab.kill_daemon(tunnel)  # nothing of WireGuard's left sending
    lab.reset_counters()
    _send_udp(lab, VPN4, tunnel.port, user="65534")
    _send_udp(lab, VPN4, tunnel.port, user="65534", payload=HANDSHAKE)
    assert lab.counters()["ipv4"].get("carrier", 0) == 0  # an unprivileged program: refused
    if fwmark:  # unmarked, even root's: only WireGuard's handshake (sent before wg-quick sets the mark)
        _send_udp(lab, VPN4, tunnel.port)
        assert lab.counters()["ipv4"].get("carrier", 0) == 0
        _send_udp(lab, VPN4, tunnel.port, payload=HANDSHAKE)
        assert lab.counters()["ipv4"].get("carrier", 0) == 5
        lab.reset_counters()
    _send_udp(lab, VPN4, tunnel.port, mark=51820 if fwmark else None)  # what WireGuard itself sends
    assert lab.counters()["ipv4"].get("carrier", 0) == 5
    lab.wg_quick("up", tunnel)  # reconnect with the block held
    if fwmark:
        lab.wait_handshake(tunnel)
        assert_through_tunnel(lab)
    else:
        lab.client("ip", "route", "add", "203.0.113.80/32", "dev", tunnel.iface)
        _wait_handshake_seen(lab, tunnel)
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_endpoint_name_lookup_is_exact(lab: Lab, backend: str) -> None:
    from wgkill_lab.resolvers import ISP_ANSWER4, ISP_DNS4, dig, start_isp_resolver

    tunnel = lab.add_tunnel(hooks=hooks("--backend", backend))
    isp = start_isp_resolver(lab, answers={"vpn.lab.test": "198.51.100.2", "#": ISP_ANSWER4})
    lab.write_client_config(tunnel, hooks=hooks("--backend", backend), allowed_ips="0.0.0.0/0, ::/0",
                            endpoint=f"vpn.lab.test:{tunnel.port}")
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    assert state(lab, tunnel)["backend"] == backend  # type: ignore[index]
    lab.kill_daemon(tunnel)
    isp.clear()
    for name in ("x.vpn.lab.test", "xvpn.lab.test", "vpn.lab.test.evil", "anything.vpn.lab.test"):
        assert dig(lab, ISP_DNS4, name) == [], name
    assert dig(lab, ISP_DNS4, "VPN.lab.TEST") == ["198.51.100.2"]  # its own name, in any case
    assert {q.name.lower() for q in isp.queries()} == {"vpn.lab.test"}
    lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []
