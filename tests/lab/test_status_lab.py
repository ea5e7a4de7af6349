"""wgkill-status for real: each verdict produced by the situation it names, and a probe that leaks.

The isp's raw-table counters are the far side's testimony: when the probe says
"refused", the isp saw nothing; when it says "left", the isp saw the packets.
Probe targets are the default documentation addresses (routed nowhere, and
nowhere outside the lab's namespaces in any case).
"""

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wgkill.names import nft_table_name
from wgkill_lab.netns import Lab, Tunnel
from wgkill_lab.resolved_harness import start_resolved
from wgkill_lab.resolvers import ISP_DNS4, LAN_DNS4

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "status.schema.json").read_text())
PROBES = {"tcp4", "udp4", "dns4", "tcp6", "udp6", "dns6"}


def _up(lab: Lab, **kw: object) -> Tunnel:
    tunnel = lab.add_tunnel(**kw)  # type: ignore[arg-type]
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    return tunnel


def _status(lab: Lab, *argv: str) -> subprocess.CompletedProcess[str]:
    done = lab.client("wgkill-status", *argv, check=False, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _json(lab: Lab, *argv: str) -> dict:
    done = _status(lab, "--json", *argv)
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert done.returncode == doc["exit_code"]
    return doc


def _codes(doc: dict) -> list[str]:
    return [p["code"] for p in doc["problems"]]


def _fix(doc: dict, code: str) -> str:
    return next(p["fix"] for p in doc["problems"] if p["code"] == code)


def _resolv_conf(lab: Lab) -> Path:
    return Path("/etc/netns") / lab.client_ns / "resolv.conf"


def test_up_and_protected_is_ok_in_every_format(lab: Lab) -> None:
    tunnel = _up(lab)
    done = _status(lab)
    assert done.returncode == 0, done.stdout
    first = done.stdout.splitlines()[0]
    assert re.fullmatch(rf"WGKILL OK - {tunnel.iface} protected \(handshake \d+s ago\)", first), first
    assert f"{tunnel.iface}: OK, up 192.0.2.130/32" in done.stdout
    assert _status(lab, tunnel.iface).returncode == 0

    doc = _json(lab)
    assert doc["verdict"] == "OK" and doc["problems"] == []
    (iface,) = doc["interfaces"]
    assert iface["link"]["up"] and iface["link"]["wireguard"] and iface["handshake"]["peers"] == 1
    chains = iface["killswitch"]["chains"]
    assert {(c["family"], c["present"], c["jump_position"], c["drifted"]) for c in chains} == {
        ("ipv4", True, 0, False), ("ipv6", True, 0, False)}
    assert doc["host"]["uplinks"] == {"ipv4": "uplink0", "ipv6": "uplink0"}
    assert doc["host"]["routes"] == {"ipv4": tunnel.iface, "ipv6": tunnel.iface}  # the tunnel carries them

    prom = lab.tmp / "wgkill.prom"
    metrics = _status(lab, "--prometheus", "--prometheus-file", str(prom))
    assert metrics.returncode == 0 and prom.read_text() == metrics.stdout
    samples = {(s.name, tuple(s.labels.values())): s.value
               for family in text_string_to_metric_families(prom.read_text()) for s in family.samples}
    assert samples[("wgkill_protected", (tunnel.iface,))] == 1
    assert samples[("wgkill_blocking", (tunnel.iface,))] == 0
    assert samples[("wgkill_drifted", (tunnel.iface,))] == 0
    assert samples[("wgkill_handshake_age_seconds", (tunnel.iface,))] >= 0


def test_link_down_is_warning(lab: Lab) -> None:
    tunnel = _up(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    done = _status(lab)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"WGKILL WARNING - {tunnel.iface} down, block holding (safe, offline)"
    assert lines[1].startswith(f"WARNING {tunnel.iface}: ")
    assert f"fix: ip link set {tunnel.iface} up" in lines[1]
    lab.client("ip", "link", "set", tunnel.iface, "up")
    assert _status(lab).returncode == 0


def test_daemon_killed_is_warning(lab: Lab) -> None:
    tunnel = _up(lab)
    lab.kill_daemon(tunnel)
    doc = _json(lab)
    assert doc["verdict"] == "WARNING" and _codes(doc) == ["tunnel-gone"]
    assert doc["interfaces"][0]["link"] is None
    assert f"wg-quick up {tunnel.iface}" in _fix(doc, "tunnel-gone")
    assert _status(lab).stdout.startswith(f"WGKILL WARNING - {tunnel.iface} gone, block holding")


def _critical_until_fixed(lab: Lab, tunnel: Tunnel, argv: list[str], code: str, fix: str) -> None:
    """After ``argv`` status is CRITICAL for ``code`` and names ``fix``; running that fix restores OK."""
    lab.client(*argv)
    doc = _json(lab)
    assert doc["verdict"] == "CRITICAL" and code in _codes(doc), (argv, doc["problems"])
    assert _fix(doc, code) == fix
    assert _status(lab).stdout.startswith(f"WGKILL CRITICAL - {tunnel.iface} ")
    lab.client(*fix.split())
    assert _json(lab)["verdict"] == "OK"


def test_flushed_chain_or_output_is_critical_and_the_fix_restores_ok(lab: Lab) -> None:
    tunnel = _up(lab)
    table = f"wgkill-{tunnel.iface}"
    for argv, code in (
        (["nft", "flush", "chain", "inet", table, "ipv4"], "drifted"),
        (["nft", "flush", "chain", "inet", table, "ipv6"], "drifted"),
        (["nft", "flush", "chain", "inet", table, "output"], "jump-missing"),
        (["nft", "delete", "table", "inet", table], "chain-missing"),  # the whole table
        (["nft", "flush", "ruleset"], "chain-missing"),
    ):
        _critical_until_fixed(lab, tunnel, argv, code, f"wgkill-up {tunnel.iface}")


def test_iptables_flushed_chain_or_output_is_critical_and_the_fix_restores_ok(iptables_lab: Lab) -> None:
    lab = iptables_lab
    tunnel = _up(lab)
    chain = f"wgkill-{tunnel.iface}"
    for argv, code in (
        (["iptables", "-F", chain], "drifted"),
        (["ip6tables", "-F", chain], "drifted"),
        (["iptables", "-F", "OUTPUT"], "jump-missing"),
        (["iptables", "-F"], "drifted"),  # everything in filter: the chain and the jump
    ):
        _critical_until_fixed(lab, tunnel, argv, code, f"wgkill-up {tunnel.iface} --backend iptables")


def _handle(lab: Lab, table: str, chain: str, rule: str) -> str:
    listing = lab.client("nft", "-a", "list", "chain", "inet", table, chain).stdout
    return next(ln.rsplit("# handle ", 1)[1] for ln in listing.splitlines() if ln.strip().startswith(rule))


def test_jump_removed_or_pushed_down_is_critical(lab: Lab) -> None:
    tunnel = _up(lab)
    table = f"wgkill-{tunnel.iface}"
    handle = _handle(lab, table, "output", "meta nfproto ipv6 jump ipv6")
    lab.client("nft", "delete", "rule", "inet", table, "output", "handle", handle)
    doc = _json(lab)
    assert _codes(doc) == ["jump-missing"] and "(ipv6)" in doc["problems"][0]["message"]
    assert doc["interfaces"][0]["killswitch"]["chains"][1]["jump_position"] is None
    lab.client("wgkill-up", tunnel.iface)
    lab.client("nft", "insert", "rule", "inet", table, "output", "accept")
    doc = _json(lab)
    assert set(_codes(doc)) == {"jump-displaced"} and "accept" in doc["problems"][0]["message"]
    assert doc["interfaces"][0]["killswitch"]["chains"][0]["jump_position"] == 1
    assert doc["interfaces"][0]["killswitch"]["backend"] == "nft"


def test_iptables_jump_removed_or_pushed_down_is_critical(iptables_lab: Lab) -> None:
    lab = iptables_lab
    tunnel = _up(lab)
    jump = ["-m", "comment", "--comment", f"wgkill:{tunnel.iface}", "-j", f"wgkill-{tunnel.iface}"]
    lab.client("ip6tables", "-D", "OUTPUT", *jump)
    doc = _json(lab)
    assert _codes(doc) == ["jump-missing"] and "(ipv6)" in doc["problems"][0]["message"]
    assert doc["interfaces"][0]["killswitch"]["chains"][1]["jump_position"] is None
    lab.client("wgkill-up", tunnel.iface)
    lab.client("iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT")
    doc = _json(lab)
    assert _codes(doc) == ["jump-displaced"] and "-j ACCEPT" in doc["problems"][0]["message"]
    assert doc["interfaces"][0]["killswitch"]["chains"][0]["jump_position"] == 1
    assert doc["interfaces"][0]["killswitch"]["backend"] == "iptables"


def test_tunnel_up_without_hooks_is_critical(lab: Lab) -> None:
    tunnel = _up(lab, hooks="")
    doc = _json(lab)
    assert doc["verdict"] == "CRITICAL" and _codes(doc) == ["unprotected"]
    assert doc["interfaces"][0]["recorded"] is False and doc["interfaces"][0]["link"]["kind"] == "tun"
    assert _status(lab).stdout.startswith(f"WGKILL CRITICAL - {tunnel.iface} up without wgkill")
    lab.client(*_fix(doc, "unprotected").split())
    assert _status(lab).returncode == 0


def test_dns_lock_off_with_a_lan_resolver_is_critical(lab: Lab) -> None:
    """``--dns-backend none`` leaves resolv.conf alone: it still names the home router's resolver."""
    hooks = ("PostUp = wgkill-up %i --dns 192.0.2.129 --no-dns-lock --dns-backend none\n"
             "PreDown = wgkill-down %i\n")
    _resolv_conf(lab).write_text(f"nameserver {LAN_DNS4}\n")
    tunnel = _up(lab, hooks=hooks)
    doc = _json(lab)
    assert doc["verdict"] == "CRITICAL" and _codes(doc) == ["dns-unlocked"]
    assert doc["interfaces"][0]["dns"] == {"servers": ["192.0.2.129"], "lock": False, "backend": "none",
                                           "outside": [LAN_DNS4]}
    fix = _fix(doc, "dns-unlocked")
    assert fix == f"wgkill-up {tunnel.iface} --dns 192.0.2.129 --dns-backend none"

    _resolv_conf(lab).write_text("nameserver 192.0.2.129\n")  # only the tunnel's resolver: nothing to leak to
    assert _status(lab).returncode == 0
    _resolv_conf(lab).write_text(f"nameserver {LAN_DNS4}\n")
    lab.client(*fix.split())  # the lock on: the LAN resolver is refused, so it is no leak
    doc = _json(lab)
    assert doc["verdict"] == "OK" and doc["interfaces"][0]["dns"]["lock"] is True


def test_dns_lock_off_with_resolved_asking_the_uplinks_server_is_critical(lab: Lab) -> None:
    """systemd-resolved as the system resolver: resolv.conf names only its stub, so the servers come
    from resolved itself, per link: the uplink's ISP resolver is outside the tunnel."""
    resolved = start_resolved(lab)
    try:
        tunnel = lab.add_tunnel(hooks="PostUp = wgkill-up %i --dns 192.0.2.129 --no-dns-lock\n"
                                      "PreDown = wgkill-down %i\n")
        resolved.wg_quick("up", tunnel)
        done = resolved.run("wgkill-status", "--json", check=False)
        doc = json.loads(done.stdout)
        jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
        assert done.returncode == 2 and _codes(doc) == ["dns-unlocked"], doc["problems"]
        assert {(r["address"], r["source"]) for r in doc["host"]["resolvers"]} >= {
            ("127.0.0.53", "resolv.conf"), (ISP_DNS4, "resolved:uplink0"),
            (tunnel.server4, f"resolved:{tunnel.iface}")}
        assert doc["interfaces"][0]["dns"]["backend"] == "resolved"
        assert doc["interfaces"][0]["dns"]["outside"] == [ISP_DNS4]
        resolved.run("wgkill-up", tunnel.iface, "--dns", tunnel.server4)  # the lock back on
        assert resolved.run("wgkill-status", check=False).returncode == 0
        resolved.wg_quick("down", tunnel)
    finally:
        resolved.stop()


def test_not_root_is_unknown(lab: Lab) -> None:
    _up(lab)
    # nobody, keeping only the right to read files: CI's checkout (and so the venv) may sit in
    # a 0700 directory that uid 65534 could not even open the script in
    done = lab.client("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "wgkill-status",
                      check=False)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[0] == "WGKILL UNKNOWN - must be run as root"
    assert "fix: sudo wgkill-status" in done.stdout


def test_corrupt_state_is_unknown_and_wgkill_up_rewrites_it(lab: Lab) -> None:
    tunnel = _up(lab)
    (lab.state_dir / f"{tunnel.iface}.json").write_text("{not json")
    doc = _json(lab)
    assert doc["verdict"] == "UNKNOWN" and _codes(doc) == ["state-unreadable"]
    assert _status(lab).stdout.startswith(f"WGKILL UNKNOWN - {tunnel.iface} state unreadable")
    lab.client(*_fix(doc, "state-unreadable").split(" (")[0].split())
    assert _status(lab).returncode == 0


def _probe(lab: Lab) -> dict:
    doc = _json(lab, "--probe", "--probe-timeout", "1")
    assert {p["name"] for p in doc["probe"]} == PROBES
    assert {p["device"] for p in doc["probe"]} == {"uplink0"}
    return doc


def test_probe_refused_while_blocked_then_finds_the_leak_of_a_flushed_table(lab: Lab) -> None:
    tunnel = _up(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    lab.reset_counters()
    doc = _probe(lab)
    assert {p["name"]: p["outcome"] for p in doc["probe"]} == dict.fromkeys(PROBES, "refused")
    assert doc["verdict"] == "WARNING"
    assert lab.leaks() == {"ipv4": 0, "ipv6": 0}  # the far side agrees: nothing arrived

    lab.client("nft", "flush", "table", "inet", f"wgkill-{tunnel.iface}")  # the state still records it
    doc = _probe(lab)
    assert {p["name"]: p["outcome"] for p in doc["probe"]} == dict.fromkeys(PROBES, "left")
    assert doc["verdict"] == "CRITICAL" and "probe-leaked" in _codes(doc)
    seen = lab.leaks()
    assert seen["ipv4"] >= 3 and seen["ipv6"] >= 3, seen  # the isp saw them: they really got out
    text = _status(lab, "--probe", "--probe-timeout", "1").stdout
    assert "probe: 6 of 6 got out" in text.splitlines()[0]


def test_probe_finds_a_leak_the_rules_alone_hide(lab: Lab) -> None:
    """Another tool marks every packet with the tunnel's fwmark: our chain is byte-identical to what
    was applied, so only packets can tell that everything now leaves by the uplink."""
    tunnel = _up(lab)
    for tool in ("iptables", "ip6tables"):
        lab.client(tool, "-t", "mangle", "-A", "OUTPUT", "-j", "MARK", "--set-mark", "0xca6c")
    assert _status(lab).returncode == 0  # the rules look right
    lab.reset_counters()
    doc = _probe(lab)
    left = {p["name"] for p in doc["probe"] if p["outcome"] == "left"}
    assert left == PROBES, doc["probe"]
    assert doc["verdict"] == "CRITICAL" and _codes(doc) == ["probe-leaked"]
    assert _fix(doc, "probe-leaked") == f"wgkill-up {tunnel.iface}"
    assert lab.leaks()["ipv4"] > 0 and lab.leaks()["ipv6"] > 0


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_healthy_ipv4_only_split_list_is_ok_and_an_emptied_set_is_not(lab: Lab, backend: str) -> None:
    """The IPv6 set of a list without IPv6 prefixes is empty by design: not a problem to page for."""
    tunnel = _up(lab, allowed_ips="203.0.113.80/32, 192.0.2.129/32",
                 hooks=f"PostUp = wgkill-up %i --backend {backend}\nPreDown = wgkill-down %i\n")
    doc = _json(lab, tunnel.iface)
    assert doc["verdict"] == "OK" and doc["exit_code"] == 0, doc["problems"]
    sets = {s["name"]: s["entries"] for s in doc["interfaces"][0]["killswitch"]["sets"]}
    if backend == "nft":
        table = nft_table_name(tunnel.iface)
        assert sets == {f"{table} dst4": 2, f"{table} dst6": 0}
        lab.client("nft", "flush", "set", "inet", nft_table_name(tunnel.iface), "dst4")  # emptied
    else:
        assert sets == {f"wgkill-{tunnel.iface}-4": 2, f"wgkill-{tunnel.iface}-6": 0}
        lab.client("ipset", "flush", f"wgkill-{tunnel.iface}-4")  # the one that holds the list, emptied
    doc = _json(lab, tunnel.iface)
    assert doc["verdict"] == "CRITICAL" and "set-empty" in _codes(doc), doc["problems"]


def test_usage_error_is_unknown(lab: Lab) -> None:
    for argv in (("--no-such-option",), ("--probe-port", "70000"), ("bad/name",)):
        done = _status(lab, *argv)
        assert done.returncode == 3, (argv, done.stdout)
        assert done.stdout.startswith("WGKILL UNKNOWN - wgkill-status: error: ")
        assert done.stdout.count("\n") == 1
