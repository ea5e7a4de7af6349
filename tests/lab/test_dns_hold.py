"""DNS held while the tunnel is up (issue 20): another program rewrites resolv.conf, the guard
puts back what wgkill-up wrote, and meanwhile the DNS lock keeps every query off the uplink."""

import sys
import time
from pathlib import Path

from wgkill_lab.guarding import Guard
from wgkill_lab.netns import Lab
from wgkill_lab.resolvers import ISP_ANSWER4, ISP_DNS4, VPN_ANSWER4, start_isp_resolver, start_vpn_resolver

from .checks import backend_args, hooks, wgkill_lines

DHCP = f"# written by a DHCP client\nnameserver {ISP_DNS4}\n"


def _getent(lab: Lab, name: str) -> str | None:
    done = lab.client("getent", "ahostsv4", name, check=False, timeout=30)
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout else None


def _rewrite_from_inside(lab: Lab, text: str) -> None:
    """What a DHCP client in the client's namespace does: rewrite /etc/resolv.conf."""
    code = "import sys; open('/etc/resolv.conf', 'w').write(sys.argv[1])"
    lab.client(sys.executable, "-I", "-c", code, text)


def test_guard_puts_back_a_rewritten_resolv_conf_and_no_query_leaks(any_lab: Lab) -> None:
    lab = any_lab
    conf = Path("/etc/netns") / lab.client_ns / "resolv.conf"
    tunnel = lab.add_tunnel(hooks=hooks("--dns", "192.0.2.129", *backend_args(lab)))
    isp = start_isp_resolver(lab)
    start_vpn_resolver(lab, tunnel)
    lab.wg_quick("up", tunnel)
    lab.wait_handshake(tunnel)
    ours = conf.read_text()
    assert "nameserver 192.0.2.129" in ours
    guard = Guard(lab, interval=1.0)  # the default interval; the rewrite is heard by inotify, not polled
    isp.clear()

    _rewrite_from_inside(lab, DHCP)  # the guard's line below is the witness that it took
    rewritten = time.monotonic()
    repaired = guard.wait_repairs(1, timeout=10)
    while conf.read_text() != ours and time.monotonic() - rewritten < 10:
        time.sleep(0.02)
    assert conf.read_text() == ours, repaired
    print(f"resolv.conf back {time.monotonic() - rewritten:.2f} s after the rewrite: {repaired}")
    assert [line for line in repaired if "rewritten by another program" in line], repaired
    assert _getent(lab, "held.example") == VPN_ANSWER4
    assert isp.count() == 0  # the ISP resolver saw nothing, in between or after

    lab.wg_quick("down", tunnel)  # the rewrite is the original now: down restores it
    assert conf.read_text() == DHCP
    assert _getent(lab, "after.example") == ISP_ANSWER4
    assert guard.stop() == 0
    assert wgkill_lines(lab) == []
