"""The kill switch for real: wg-quick, wireguard-go, iptables, packets, in namespaces."""

import stat
import subprocess
import sys
from pathlib import Path

from wgkill_lab.netns import Lab

from .checks import (
    assert_blocked,
    assert_open_uplink,
    assert_through_tunnel,
    names_peer,
    rules,
    state,
    wgkill_lines,
)


def _up(lab: Lab, **kw: object):  # type: ignore[no-untyped-def]
    tunnel = lab.add_tunnel(**kw)  # type: ignore[arg-type]
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    return tunnel


def _backend(lab: Lab) -> list[str]:
    return ["--backend", lab.backend] if lab.backend else []


def test_article_procedure_link_down(any_lab: Lab) -> None:
    """The article's test, with the far side as witness: no packet leaks while the link is down."""
    lab = any_lab
    before = rules(lab)
    assert_open_uplink(lab)
    tunnel = _up(lab)
    assert_through_tunnel(lab)
    record = state(lab, tunnel)
    assert record is not None and record["fwmark"] == 51820
    assert record["version"] == 2
    if lab.backend is None:  # nft works here: auto chooses it
        assert record["backend"] == "nft" and record["families"] == {}
        assert record["nft"]["table"] == f"wgkill-{tunnel.iface}"
    else:
        variant = "legacy" if lab.legacy else "nf_tables"
        assert record["backend"] == "iptables" and record["nft"] is None
        assert {f: r["variant"] for f, r in record["families"].items()} == {"4": variant, "6": variant}
    assert record["endpoints"] == [{"address": "198.51.100.2", "port": tunnel.port, "name": None}]
    mode = (Path(lab.state_dir) / f"{tunnel.iface}.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600 and stat.S_IMODE(Path(lab.state_dir).stat().st_mode) == 0o700

    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)

    down = lab.wg_quick("down", tunnel)
    assert "[#] wgkill-down" in down.stderr
    assert_open_uplink(lab)
    if lab.backend == "iptables":  # iptables-nft keeps the (empty) filter tables it created
        assert rules(lab)[:2] == before[:2]
    else:
        assert rules(lab) == before
    assert state(lab, tunnel) is None


def test_daemon_killed_blocks_then_wg_quick_up_reconnects_without_duplicates(lab: Lab) -> None:
    tunnel = _up(lab)
    applied = rules(lab)
    lab.kill_daemon(tunnel)
    assert_blocked(lab)
    down = lab.wg_quick("down", tunnel, check=False)  # wg-quick refuses: the interface is gone
    assert down.returncode != 0
    assert_blocked(lab)

    lab.wg_quick("up", tunnel)  # with the block held: the endpoint rule lets it reconnect
    lab.wait_handshake(tunnel)
    assert_through_tunnel(lab)
    assert rules(lab) == applied
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []
    assert_open_uplink(lab)


def test_interface_deleted_then_wgkill_down_cleans_up(lab: Lab) -> None:
    tunnel = _up(lab)
    lab.client("ip", "link", "del", tunnel.iface)
    assert_blocked(lab)
    done = lab.client("wgkill-down", tunnel.iface)
    assert done.returncode == 0
    assert wgkill_lines(lab) == []
    assert state(lab, tunnel) is None
    assert_open_uplink(lab)
    again = lab.client("wgkill-down", tunnel.iface)  # idempotent: nothing recorded, exit 0
    assert "nothing recorded" in again.stderr


def test_applying_twice_is_byte_identical(any_lab: Lab) -> None:
    lab = any_lab
    tunnel = _up(lab)
    once = rules(lab)
    lab.client("wgkill-up", tunnel.iface)
    assert rules(lab) == once
    lab.wg_quick("down", tunnel)
    assert wgkill_lines(lab) == []


def test_iptables_reapply_restores_jump_position(iptables_lab: Lab) -> None:
    lab = iptables_lab
    tunnel = _up(lab)
    once = rules(lab)
    # another tool inserts an ACCEPT above our jump: re-running puts the jump back on top, once
    lab.client("iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT")
    lab.client("wgkill-up", tunnel.iface)
    output = [ln for ln in lab.save(4).splitlines() if ln.startswith("-A OUTPUT")]
    assert output[0].endswith(f"-j wgkill-{tunnel.iface}") and output[1] == "-A OUTPUT -j ACCEPT"
    assert len(output) == 2
    lab.client("iptables", "-D", "OUTPUT", "-j", "ACCEPT")
    assert rules(lab) == once


def test_two_tunnels_each_remove_only_their_own(any_lab: Lab) -> None:
    lab = any_lab
    first = lab.add_tunnel()
    second = lab.add_tunnel(allowed_ips="192.0.2.144/28")  # split: no fwmark
    other_rules = "-A OUTPUT -p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset"
    lab.client("iptables", *other_rules.split())  # someone else's rule must survive us
    for order in ((first, second), (second, first)):
        for tunnel in (first, second):
            lab.wg_quick("up", tunnel)
        both = wgkill_lines(lab)
        assert any(first.iface in ln for ln in both) and any(second.iface in ln for ln in both)
        assert state(lab, first) and state(lab, second)
        gone, kept = order
        assert names_peer(lab, kept, gone) and names_peer(lab, gone, kept)  # each block names the other
        # the kept block stops naming the one that went (its interface, and its endpoint's own UDP
        # exemption: iptables lines to its port), and keeps everything else
        kept_lines = [ln for ln in both if kept.iface in ln and gone.iface not in ln
                      and f"--dport {gone.port} " not in ln]
        lab.wg_quick("down", gone)
        assert wgkill_lines(lab) == kept_lines
        assert state(lab, gone) is None and state(lab, kept) is not None
        lab.wg_quick("down", kept)
        assert wgkill_lines(lab) == []
        assert other_rules in lab.save(4)


def test_concurrent_hooks_both_recorded(any_lab: Lab) -> None:
    lab = any_lab
    tunnels = [lab.add_tunnel(hooks=""), lab.add_tunnel(hooks="", allowed_ips="192.0.2.144/28")]
    for tunnel in tunnels:
        lab.wg_quick("up", tunnel)
    env = lab.env()
    procs = [
        subprocess.Popen(["ip", "netns", "exec", lab.client_ns, "wgkill-up", t.iface, *_backend(lab)],
                         env=env,
                         stderr=subprocess.PIPE, text=True)
        for t in tunnels
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    for tunnel in tunnels:
        assert state(lab, tunnel) is not None
        if lab.backend == "iptables":
            assert sum(f"-A OUTPUT -m comment --comment \"wgkill:{tunnel.iface}\"" in ln
                       for ln in lab.save(4).splitlines()) == 1
        else:
            assert lab.ruleset().count(f"table inet wgkill-{tunnel.iface} {{") == 1
    for tunnel in tunnels:
        lab.client("wgkill-down", tunnel.iface)
    assert wgkill_lines(lab) == []


def test_split_tunnel_with_fwmark_off(lab: Lab) -> None:
    """The article's `--mark $(wg show %i fwmark)` breaks when fwmark is off; ours does not."""
    tunnel = _up(lab, allowed_ips="203.0.113.0/24, 2001:db8:80::/64")
    assert lab.client("wg", "show", tunnel.iface, "fwmark").stdout.strip() == "off"
    article = lab.client("sh", "-c", f"iptables -I OUTPUT ! -o {tunnel.iface} -m mark ! --mark "
                         f"$(wg show {tunnel.iface} fwmark) -m addrtype ! --dst-type LOCAL -j REJECT",
                         check=False)
    assert article.returncode != 0  # the article's rule cannot even be added
    record = state(lab, tunnel)
    assert record is not None and record["fwmark"] is None
    assert_through_tunnel(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    lab.wg_quick("down", tunnel)
    assert_open_uplink(lab)


def test_table_off(lab: Lab) -> None:
    tunnel = lab.add_tunnel(extra="Table = off\n")
    lab.wg_quick("up", tunnel)
    assert state(lab, tunnel)["fwmark"] is None  # type: ignore[index]
    lab.client("ip", "route", "add", "203.0.113.80/32", "dev", tunnel.iface)
    lab.wait_handshake(tunnel)
    lab.kill_daemon(tunnel)
    assert_blocked(lab)
    lab.client("wgkill-down", tunnel.iface)
    assert_open_uplink(lab)


def test_ipv6_endpoint(lab: Lab) -> None:
    tunnel = _up(lab, endpoint_family=6)
    assert state(lab, tunnel)["endpoints"][0]["address"] == "2001:db8:d::2"  # type: ignore[index]
    lab.reset_counters()
    assert lab.whoami(6) == "2001:db8:d::2"
    assert lab.counters()["ipv6"]["carrier"] > 0
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    lab.wg_quick("down", tunnel)
    assert_open_uplink(lab)


def test_legacy_iptables(legacy_lab: Lab) -> None:
    lab = legacy_lab
    tunnel = _up(lab)
    record = state(lab, tunnel)
    assert record is not None and record["backend"] == "iptables"
    assert {f: r["variant"] for f, r in record["families"].items()} == {"4": "legacy", "6": "legacy"}
    legacy = lab.client("iptables-legacy-save", "-t", "filter").stdout
    assert f"-A OUTPUT -m comment --comment \"wgkill:{tunnel.iface}\"" in legacy
    nft = lab.client("/usr/sbin/iptables-nft-save", "-t", "filter").stdout
    assert "wgkill" not in nft
    assert_through_tunnel(lab)
    lab.client("ip", "link", "set", tunnel.iface, "down")
    assert_blocked(lab)
    once = lab.save(4)
    rerun = lab.client("wgkill-up", tunnel.iface, check=False)  # interface down: wg show still answers
    assert rerun.returncode == 0, rerun.stderr
    assert lab.save(4) == once
    lab.wg_quick("down", tunnel)
    assert "wgkill" not in lab.client("iptables-legacy-save").stdout
    assert_open_uplink(lab)


def test_rerun_with_unchanged_inputs_skips_jinja(lab: Lab) -> None:
    """A reconnect (same tunnel, same options) replays cached rule text: no template engine loaded."""
    tunnel = lab.add_tunnel(hooks="")
    lab.wg_quick("up", tunnel)
    code = ("import sys; sys.argv = ['wgkill-up', sys.argv[1]]; "
            "from wgkill.cli.up import main; main()")
    first = lab.client(sys.executable, "-I", "-X", "importtime", "-c", code, tunnel.iface)
    applied = rules(lab)
    lab.client("wgkill-down", tunnel.iface)
    second = lab.client(sys.executable, "-I", "-X", "importtime", "-c", code, tunnel.iface)
    assert "jinja2" in first.stderr and "jinja2" not in second.stderr
    assert rules(lab) == applied
    down_code = code.replace("wgkill-up", "wgkill-down").replace("cli.up", "cli.down")
    down = lab.client(sys.executable, "-I", "-X", "importtime", "-c", down_code, tunnel.iface)
    assert "jinja2" not in down.stderr
    assert wgkill_lines(lab) == []
