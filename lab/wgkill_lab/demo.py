"""``make demo``: the article's test procedure, run for real in a throwaway lab.

Builds client / isp / vpn namespaces, brings a userspace WireGuard tunnel up
with the wgkill hooks, and walks the procedure step by step, printing what the
client saw and what the far side (the isp router's counters and the web
server's log) saw. Everything it created is removed at the end, even on error.
"""

import signal
import sys
from types import FrameType

from .netns import CLIENT4, VPN4, Lab, LabError

WIDTH = 72


def _step(number: int, title: str) -> None:
    print(f"\n== {number}. {title} ".ljust(WIDTH, "="))


def _far_side(lab: Lab) -> str:
    seen = lab.counters()
    return (
        f"isp saw from the client: ipv4 leak={seen['ipv4'].get('leak', 0)} "
        f"tunnel={seen['ipv4'].get('carrier', 0)}, "
        f"ipv6 leak={seen['ipv6'].get('leak', 0)}"
    )


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    print("wgkill demo: a throwaway lab of network namespaces (nothing outside them is touched)")
    with Lab() as lab:
        tunnel = lab.add_tunnel()
        print(f"client tunnel {tunnel.iface}: PostUp = wgkill-up %i / PreDown = wgkill-down %i")

        _step(1, "IP before the VPN: curl the 'what is my IP' server")
        print(f"  ipv4: {lab.whoami(4)}   ipv6: {lab.whoami(6)}   (the uplink address {CLIENT4})")

        _step(2, f"wg-quick up {tunnel.iface}")
        for line in lab.wg_quick("up", tunnel).stderr.splitlines():
            if line.startswith("[#]"):
                print("  " + line)
        lab.wait_handshake(tunnel)

        _step(3, "IP through the tunnel")
        print(f"  ipv4: {lab.whoami(4)}   ipv6: {lab.whoami(6)}   (the VPN server's address {VPN4})")

        _step(4, f"simulated drop: ip link set {tunnel.iface} down (PreDown does not run)")
        lab.client("ip", "link", "set", tunnel.iface, "down")
        lab.reset_counters()
        hits = len(lab.web_hits())

        _step(5, "traffic must stop")
        result = lab.whoami(4, timeout=5)
        print(f"  curl ipv4: {'FAILED (good)' if result is None else 'GOT ' + result + ' (LEAK!)'}")
        for probe, outcome in lab.probe().items():
            print(f"  {probe:<24} {outcome}")
        print("  " + _far_side(lab))
        print(f"  web server requests during the drop: {len(lab.web_hits()) - hits}")
        blocked = result is None and all(n == 0 for n in lab.leaks().values())

        _step(6, f"wg-quick down {tunnel.iface} (runs PreDown = wgkill-down)")
        for line in lab.wg_quick("down", tunnel).stderr.splitlines():
            if line.startswith("[#]"):
                print("  " + line)

        _step(7, "traffic works again, over the uplink")
        print(f"  ipv4: {lab.whoami(4)}   ipv6: {lab.whoami(6)}")

    print("\nlab removed.", "Kill switch held: zero packets leaked." if blocked else "LEAK DETECTED.")
    return 0 if blocked else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as exc:
        print(f"wgkill demo: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
