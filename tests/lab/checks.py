"""Assertions shared by lab tests: what the client saw and what the far side saw."""

import json
import re
from pathlib import Path

import pytest

from wgkill_lab.netns import CLIENT4, CLIENT6, VPN4, VPN6, Lab, LabError, Tunnel, wait_until


def assert_blocked(lab: Lab) -> dict[str, dict[str, int]]:
    """Every kind of traffic is refused locally, fast, and the isp sees none of it."""
    lab.reset_counters()
    hits = len(lab.web_hits())
    assert lab.whoami(4, timeout=3) is None
    assert lab.whoami(6, timeout=3) is None
    outcomes = lab.probe(timeout=3)
    assert set(outcomes.values()) == {"refused"}, outcomes
    seen = lab.counters()
    assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0, seen
    assert len(lab.web_hits()) == hits
    return seen


def assert_through_tunnel(lab: Lab) -> None:
    """The web server sees the VPN server's addresses, and the isp sees only tunnel packets."""
    lab.reset_counters()
    assert lab.whoami(4) == VPN4
    assert lab.whoami(6) == VPN6
    seen = lab.counters()
    assert seen["ipv4"]["leak"] == 0 and seen["ipv6"]["leak"] == 0, seen
    assert seen["ipv4"]["carrier"] > 0


def assert_open_uplink(lab: Lab) -> None:
    assert lab.whoami(4) == CLIENT4
    assert lab.whoami(6) == CLIENT6


def state(lab: Lab, tunnel: Tunnel) -> dict | None:
    path = Path(lab.state_dir) / f"{tunnel.iface}.json"
    return json.loads(path.read_text()) if path.exists() else None


def wgkill_lines(lab: Lab) -> list[str]:
    """Every rule, chain or table of wgkill's in the client: iptables (both families) and nftables."""
    texts = [lab.save(4), lab.save(6), lab.ruleset()]
    return [ln for text in texts for ln in text.splitlines() if "wgkill" in ln]


def block_text(lab: Lab, tunnel: Tunnel) -> str:
    """The rules of ``tunnel``'s block as the kernel holds them: its iptables chains' lines (both
    families), or its nft table as ``nft list`` prints it."""
    from wgkill.names import nft_table_name

    chain = f"-A wgkill-{tunnel.iface} "
    lines = [ln for family in (4, 6) for ln in lab.save(family).splitlines() if ln.startswith(chain)]
    for block in re.split(r"(?m)^(?=table )", lab.ruleset()):
        if block.startswith(f"table inet {nft_table_name(tunnel.iface)} "):
            lines += block.splitlines()
    return "\n".join(lines)


def names_peer(lab: Lab, tunnel: Tunnel, peer: Tunnel) -> bool:
    """Whether ``tunnel``'s block lets out what leaves through ``peer`` (another protected tunnel)."""
    text = block_text(lab, tunnel)
    return f"-o {peer.iface} -j RETURN" in text or f'oifname "{peer.iface}" accept' in text


def hooked(lab: Lab) -> int:
    """How many times wgkill's blocks hook the host's output, one per family and tunnel:
    iptables OUTPUT jumps to our chains, and the per-family jumps of our nft tables' output chains."""
    jumps = sum(ln.startswith("-A OUTPUT") and "wgkill" in ln
                for family in (4, 6) for ln in lab.save(family).splitlines())
    for block in re.split(r"(?m)^(?=table )", lab.ruleset()):
        if block.startswith("table inet wgkill-"):
            output = block.partition("chain output {")[2].partition("}")[0]
            jumps += sum(ln.strip().startswith("meta nfproto") for ln in output.splitlines())
    return jumps


def rules(lab: Lab) -> tuple[str, str, str]:
    """What the client's firewall holds, for byte comparison: iptables-save of both families
    and ``nft list ruleset``."""
    return lab.save(4), lab.save(6), lab.ruleset()


def dns_straight_at_uplink(lab: Lab, tag: str) -> None:
    """Programs that ignore the system resolver: UDP and TCP to the ISP and the home router
    must get no answer (the resolvers' logs say whether anything reached them)."""
    from wgkill_lab.resolvers import ISP_DNS4, LAN_DNS4, dig

    for server in (ISP_DNS4, LAN_DNS4):
        assert dig(lab, server, f"{tag}-udp.example") == []
        assert dig(lab, server, f"{tag}-tcp.example", tcp=True) == []


def wait_reachable(lab: Lab, server: str, timeout: float = 15) -> None:
    """Until ``server`` answers (a split tunnel has no web traffic to drive the handshake)."""
    from wgkill_lab.resolvers import dig

    wait_until(lambda: dig(lab, server, "handshake.example", timeout=1), timeout,
               f"{server} answering through the tunnel")


def gateway_nat(lab: Lab, tunnel: Tunnel) -> None:
    """The gateway's own NAT into the tunnel (the user's part in gateway mode), then a handshake."""
    for tool in ("iptables", "ip6tables"):
        lab.client(tool, "-t", "nat", "-A", "POSTROUTING", "-o", tunnel.iface, "-j", "MASQUERADE")
    lab.wait_handshake(tunnel)


def routed(lab: Lab, ns: str, target: str) -> str | None:
    """The address the web server at ``target`` saw, fetched from namespace ``ns``; None if refused."""
    url = f"http://[{target}]/" if ":" in target else f"http://{target}/"
    done = lab.run(ns, "curl", "-s", "--max-time", "3", url, check=False, timeout=10)
    return done.stdout.strip() if done.returncode == 0 else None


def backend_args(lab: Lab) -> tuple[str, ...]:
    """``--backend X`` for a lab that fixes the backend (``any_lab``, ``iptables_lab``); none otherwise."""
    return ("--backend", lab.backend) if lab.backend else ()


def hooks(*options: str) -> str:
    """wgkill's two hook lines, with ``options`` passed to wgkill-up."""
    extra = "".join(f" {o}" for o in options)
    return f"PostUp = wgkill-up %i{extra}\nPreDown = wgkill-down %i\n"


def configure(lab: Lab, tunnel: Tunnel, hook_lines: str, *, allowed_ips: str = "0.0.0.0/0, ::/0",
              extra: str = "") -> None:
    """Rewrite the client's config once the tunnel (and so its resolver's address) exists."""
    lab.write_client_config(tunnel, hooks=hook_lines, allowed_ips=allowed_ips,
                            endpoint=f"{VPN4}:{tunnel.port}", extra=extra)


def require_dns_lab(*bundles: str) -> None:
    """DNS lab tests fail (never skip) with one line naming what is missing."""
    from wgkill_lab.bundles import bundle_root
    from wgkill_lab.resolvers import missing_binaries

    missing = missing_binaries()
    if missing:
        pytest.fail(f"DNS lab prerequisites missing: {' '.join(missing)} (`make deps` installs them)")
    for bundle in bundles:
        try:
            bundle_root(bundle)
        except LabError as exc:
            pytest.fail(str(exc))


def simulate_reboot(lab: Lab) -> None:
    """What a reboot leaves: no rules, no sets, no wg-quick policy routing, no daemon (the
    caller kills the daemon first). iptables-legacy's tables are not nftables': flushed apart."""
    for family in ("-4", "-6"):
        for rule in (["table", "51820"], ["table", "main", "suppress_prefixlength", "0"]):
            lab.client("ip", family, "rule", "del", *rule, check=False)
    lab.client("nft", "flush", "ruleset")
    if lab.legacy:
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "mangle", "nat"):
                lab.client(tool, "-t", table, "-F")
                lab.client(tool, "-t", table, "-X")
    lab.client("ipset", "destroy", check=False)
    assert wgkill_lines(lab) == []


class UplinkUdp:
    """The client's own count of its UDP to the server's ``port`` out the uplink (every datagram,
    or with ``initiations`` WireGuard's handshake initiations alone, message type 1), taken twice in
    one table: first in the output hook, before any block (sent: what the far side would see without
    one), and last, after every block (passed). Both are read in one listing, so what a block
    refused is their difference, counted where it happens, with no clock: a refused first
    handshake is what made a reconnect wait for WireGuard's 5 s retry."""

    def __init__(self, lab: Lab, port: int, *, initiations: bool = False) -> None:
        self.lab, self.table = lab, f"wgklab-{'hs' if initiations else 'udp'}-{port}"
        match = f'oifname "uplink0" udp dport {port}' + (" @th,64,32 0x1000000" if initiations else "")
        chains = "".join(f"\tchain {name} {{\n\t\ttype filter hook output priority {priority};"
                         f" policy accept;\n\t\t{match} counter\n\t}}\n"
                         for name, priority in (("sent", -400), ("passed", 400)))
        lab.client("nft", "-f", "-", stdin=f"table inet {self.table} {{\n{chains}}}\n")

    def counts(self) -> tuple[int, int]:
        """(sent, passed), from one listing."""
        listed = self.lab.client("nft", "list", "table", "inet", self.table).stdout
        sent, passed = (int(n) for n in re.findall(r"counter packets (\d+)", listed))
        return sent, passed

    def sent(self) -> int:
        return self.counts()[0]

    def assert_none_refused(self) -> None:
        """At least one was sent, and every one passed. A refused one stays counted as sent and
        never as passed; the wait only lets one caught between the two chains finish."""
        def all_passed() -> bool:
            sent, passed = self.counts()
            return 0 < sent == passed
        try:
            wait_until(all_passed, 2, f"every datagram counted in {self.table} passing the blocks")
        except LabError:
            pytest.fail(f"{self.table} (sent, passed): {self.counts()}")


def assert_first_fetch_through_tunnel(lab: Lab, handshakes: UplinkUdp) -> None:
    """No handshake initiation was refused on the way out (none waits for WireGuard's retry),
    and the first requests after ``wg-quick up`` returns, IPv4 then IPv6, are answered through
    the tunnel."""
    handshakes.assert_none_refused()
    assert lab.whoami(4) == VPN4
    assert lab.whoami(6) == VPN6
