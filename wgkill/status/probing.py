"""The probe: real packets sent the way a leak would go, and the uplink watched to see which got out.

Each probe is bound to the uplink with ``SO_BINDTODEVICE`` (as a process
ignoring the tunnel would be) and the uplink itself is watched with
``AF_PACKET``: the rules can look right and still not hold.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import cast

from ..recordclass import dataclass
from .facts import (
    DEFAULT_PROBE_PORT,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_TARGETS,
    HostFacts,
    canonical,
    family_name,
    is_loopback,
)


@dataclass
class ProbeResult:
    name: str  # "tcp4", "udp6", "dns4", ...
    protocol: str  # tcp / udp / dns
    family: int
    target: str
    port: int
    device: str | None
    outcome: str  # "refused" (stopped on this host), "left" (got out), "skipped"
    detail: str


def dns_query(name: str, query_id: int) -> bytes:
    """A minimal DNS query (A, IN, recursion desired), built by hand: no resolver library involved."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split("."))
    return header + labels + b"\0" + struct.pack("!HH", 1, 1)


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    protocol: str  # tcp / udp / dns
    family: int
    target: str
    port: int
    device: str | None  # the uplink: bound to it (``bind``) and watched
    bind: bool = True  # False: routed as any program's packet would be (the excluded probes)


def plan_probes(host: HostFacts, targets: dict[int, str] | None = None, port: int = DEFAULT_PROBE_PORT,
                dns_servers: Sequence[str] | None = None) -> list[ProbeSpec]:
    """TCP, UDP and DNS per family, out the uplink; DNS goes to a resolver outside the tunnel if one is
    configured, else to the target."""
    targets = targets or DEFAULT_TARGETS
    if dns_servers is None:
        tunnel = {canonical(s) for f in host.interfaces if f.state for s in f.state.dns.servers}
        dns_servers = [r.address for r in host.resolvers
                       if r.address not in tunnel and not is_loopback(r.address)]
    specs = []
    for family in (4, 6):
        device = host.uplinks.get(family_name(family))
        resolver = next((s for s in dns_servers if ipaddress.ip_address(s).version == family),
                        targets[family])
        specs += [
            ProbeSpec(f"tcp{family}", "tcp", family, targets[family], port, device),
            ProbeSpec(f"udp{family}", "udp", family, targets[family], port, device),
            ProbeSpec(f"dns{family}", "dns", family, resolver, 53, device),
        ]
    return specs


def plan_excluded_probes(host: HostFacts, targets: dict[int, str] | None = None,
                         port: int = DEFAULT_PROBE_PORT) -> list[ProbeSpec]:
    """TCP and UDP per family, routed like any program's (not bound), watched on the uplink: sent
    from the exclusion cgroup they must leave by it. No DNS: an excluded program's DNS is not excluded."""
    targets = targets or DEFAULT_TARGETS
    return [ProbeSpec(f"{proto}{family}-excluded", proto, family, targets[family], port,
                      host.uplinks.get(family_name(family)), bind=False)
            for family in (4, 6) for proto in ("tcp", "udp")]


def probe_in_cgroup(cgroup_procs: str, specs: Sequence[ProbeSpec],
                    timeout: float = DEFAULT_PROBE_TIMEOUT) -> list[ProbeResult]:
    """``probe`` run by a child process moved into the cgroup first (sockets take the cgroup of
    the process that creates them); the results come back as JSON through a pipe."""
    import json

    from ..recordclass import asdict

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: into the cgroup, probe, report, and leave without cleanup
        code = 0
        try:
            os.close(read_end)
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, b"0\n")  # "0": the writing process itself
            os.close(fd)
            data = json.dumps([asdict(r) for r in probe(specs, timeout)]).encode()
        except BaseException as exc:  # noqa: BLE001 - the parent gets every failure as text
            data = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
            code = 1
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as got:
        raw = got.read()
    os.waitpid(pid, 0)
    answer = json.loads(raw or b'{"error": "the probe process said nothing"}')
    if isinstance(answer, dict):
        return [_result(spec, "skipped", f"cannot probe from the exclusion cgroup: {answer['error']}")
                for spec in specs]
    return [ProbeResult(**item) for item in answer]


class _Capture:
    """Outgoing packets on the uplinks (``AF_PACKET``), the witness for "it got out"."""

    ETH_P_ALL = 0x0003
    PACKET_OUTGOING = 4

    def __init__(self, devices: Iterable[str]) -> None:
        self.sockets: list[socket.socket] = []
        self.error: str | None = None
        for device in sorted(set(devices)):
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(self.ETH_P_ALL))
                sock.bind((device, self.ETH_P_ALL))
                sock.setblocking(False)
                self.sockets.append(sock)
            except OSError as exc:
                self.error = f"cannot watch {device}: {exc.strerror}"

    def seen(self) -> set[tuple[int, str, int, int]]:
        """(family, destination, IP protocol, source port) of every outgoing packet so far."""
        out = set()
        for sock in self.sockets:
            while True:
                try:
                    data, address = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if address[2] == self.PACKET_OUTGOING:
                    parsed = parse_packet(data)
                    if parsed is not None:
                        out.add(parsed)
            sock.close()
        return out


def parse_packet(data: bytes) -> tuple[int, str, int, int] | None:
    """(family, destination, protocol, source port) of an IPv4/IPv6 packet carrying TCP or UDP."""
    if len(data) >= 20 and data[0] >> 4 == 4:
        ihl = (data[0] & 0x0F) * 4
        proto = data[9]
        dst = socket.inet_ntop(socket.AF_INET, data[16:20])
        offset, family = ihl, 4
    elif len(data) >= 40 and data[0] >> 4 == 6:
        proto = data[6]
        dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
        offset, family = 40, 6
    else:
        return None
    if proto not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) or len(data) < offset + 4:
        return None
    return family, dst, proto, struct.unpack("!H", data[offset:offset + 2])[0]


_REFUSALS = {errno.ECONNREFUSED, errno.EPERM, errno.EACCES, errno.ECONNRESET, errno.EHOSTUNREACH,
             errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def probe(specs: Sequence[ProbeSpec], timeout: float = DEFAULT_PROBE_TIMEOUT) -> list[ProbeResult]:
    """Try each leak at once; each must be refused on this host within ``timeout``.

    "left" means the packet got out: a connection or an answer, no error
    within ``timeout`` (no local refusal is that slow), or the packet seen
    leaving the uplink. "refused" means an immediate local error and nothing
    seen on the uplink.
    """
    results: dict[str, ProbeResult] = {}
    ports: dict[str, int] = {}
    selector = selectors.DefaultSelector()
    capture = _Capture(s.device for s in specs if s.device)
    socks: list[socket.socket] = []
    try:
        for spec in specs:
            if spec.device is None:
                results[spec.name] = _result(
                    spec, "skipped", "no uplink: no default route outside the tunnel in the main table")
                continue
            af = socket.AF_INET if spec.family == 4 else socket.AF_INET6
            kind = socket.SOCK_STREAM if spec.protocol == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(af, kind)
            socks.append(sock)
            try:
                if spec.bind:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, spec.device.encode())
                sock.bind(("0.0.0.0" if spec.family == 4 else "::", 0))  # noqa: S104 - the device binds it
                ports[spec.name] = sock.getsockname()[1]
                sock.setblocking(False)
                if spec.protocol == "tcp":
                    code = sock.connect_ex((spec.target, spec.port))
                    if code not in (0, errno.EINPROGRESS):
                        raise OSError(code, os.strerror(code))
                    selector.register(sock, selectors.EVENT_WRITE, spec)
                else:
                    sock.connect((spec.target, spec.port))
                    payload = (dns_query(f"wgkill-probe-{os.urandom(4).hex()}.invalid",
                                         int.from_bytes(os.urandom(2), "big"))
                               if spec.protocol == "dns" else b"wgkill-status probe\n")
                    sock.send(payload)
                    selector.register(sock, selectors.EVENT_READ, spec)
            except OSError as exc:
                results[spec.name] = _error_result(spec, exc.errno)
        deadline = time.monotonic() + timeout
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _events in selector.select(left):
                spec, sock = key.data, cast(socket.socket, key.fileobj)  # registered above
                selector.unregister(sock)
                if spec.protocol == "tcp":
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    results[spec.name] = (_result(spec, "left", "connected") if code == 0
                                          else _error_result(spec, code))
                else:
                    try:
                        sock.recv(4096)
                        results[spec.name] = _result(spec, "left", "answered")
                    except OSError as exc:
                        results[spec.name] = _error_result(spec, exc.errno)
        for key in list(selector.get_map().values()):
            results[key.data.name] = _result(key.data, "left", f"no refusal within {timeout:g}s")
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    seen = capture.seen()
    for spec in specs:
        result = results[spec.name]
        proto = socket.IPPROTO_TCP if spec.protocol == "tcp" else socket.IPPROTO_UDP
        if (spec.family, canonical(spec.target), proto, ports.get(spec.name)) in seen:
            result.outcome = "left"
            result.detail += f"; seen leaving {spec.device}"
        elif capture.error and result.outcome == "refused":
            result.detail += f" ({capture.error})"
    return [results[s.name] for s in specs]


def _result(spec: ProbeSpec, outcome: str, detail: str) -> ProbeResult:
    return ProbeResult(spec.name, spec.protocol, spec.family, spec.target, spec.port, spec.device,
                       outcome, detail)


def _error_result(spec: ProbeSpec, code: int | None) -> ProbeResult:
    if code in _REFUSALS:
        return _result(spec, "refused", _errname(code))
    return _result(spec, "left", f"unexpected error {_errname(code or 0)}: treated as not refused")
