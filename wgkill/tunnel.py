"""What the live tunnel says about itself, read with ``wg show IFACE dump``: the one parser of it.

``wg`` speaks to the kernel module over netlink and to ``wireguard-go`` over
its UAPI socket, so one code path serves both. The dump's first line carries
the private key; it is dropped on the spot and never logged or stored.
"""

from .errors import TunnelError
from .recordclass import dataclass
from .runner import CommandError, run, which
from .wgconf import Endpoint, parse_endpoint


@dataclass(frozen=True)
class LivePeer:
    """One peer as ``wg show dump`` reports it now: the endpoint WireGuard really uses."""

    public_key: str
    endpoint: Endpoint | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int = 0  # unix time; 0 = never


@dataclass(frozen=True)
class TunnelFacts:
    """The running interface, read before any change: its fwmark and peers decide the block."""

    interface: str
    fwmark: int | None
    listen_port: int | None
    peers: tuple[LivePeer, ...]


def parse_dump(interface: str, text: str) -> TunnelFacts:
    """Parse ``wg show IFACE dump`` output (tab-separated, interface line first)."""
    lines = [line.split("\t") for line in text.splitlines() if line.strip()]
    if not lines or len(lines[0]) < 4:
        raise TunnelError(f"{interface}: unexpected output from wg show dump")
    _private, _public, listen_port, fwmark = lines[0][:4]
    peers = []
    for fields in lines[1:]:
        if len(fields) < 4:
            raise TunnelError(f"{interface}: unexpected peer line from wg show dump")
        endpoint = None if fields[2] == "(none)" else parse_endpoint(fields[2])
        allowed = () if fields[3] == "(none)" else tuple(fields[3].split(","))
        handshake = int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0
        peers.append(LivePeer(fields[0], endpoint, allowed, handshake))
    return TunnelFacts(
        interface=interface,
        fwmark=None if fwmark == "off" else int(fwmark, 0),
        listen_port=int(listen_port) if listen_port.isdigit() and listen_port != "0" else None,
        peers=tuple(peers),
    )


def read_tunnel(interface: str) -> TunnelFacts:
    """Read the live interface; TunnelError if wg cannot reach it."""
    wg = which("wg")
    try:
        return parse_dump(interface, run([wg, "show", interface, "dump"]))
    except CommandError as exc:
        said = exc.stderr.strip().splitlines()
        raise TunnelError(
            f"cannot read WireGuard interface {interface}: {said[-1] if said else exc}"
        ) from exc
