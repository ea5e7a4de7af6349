"""The rtnetlink messages wgkill reads (links, addresses, routes, policy rules, one route lookup), asked
over one ``AF_NETLINK`` socket and unpacked with ``struct``: wgkill-status's facts, and whether a
link is up for the guard and ``--routes`` (``routes.link_up``).

Why not pyroute2: its import alone costs over 100 ms, four times the article's whole rule cycle, on
every monitoring check (issue 21); these four dumps and a lookup take about a millisecond. The parsing
is separate from the socket (``parse_*`` take the bytes the kernel sent) so unit tests feed it
captured replies; the records are ``recordclass`` dataclasses (``typing.NamedTuple`` would import
typing). Message layouts: linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h,
linux/fib_rules.h.
"""

from __future__ import annotations

import _socket as socket  # what socket.py wraps: its import turns every constant into an enum (~2 ms)
import errno
import os
import struct
from collections.abc import Iterable, Iterator

from .recordclass import dataclass

NETLINK_ROUTE = 0
IFF_UP = 0x1  # ifinfomsg flags: administratively up (``ip link set up``)
AF_UNSPEC, AF_INET, AF_INET6 = socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETRULE = 18, 22, 26, 34
IFLA_IFNAME, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 16, 18, 1
IFA_ADDRESS = 1
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 6, 9, 15
FRA_PRIORITY, FRA_FWMARK, FRA_SUPPRESS_PREFIXLEN, FRA_TABLE = 6, 10, 14, 15
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")  # IF_OPER_*

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
ATTR = struct.Struct("=HH")  # nlattr: length, type
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg and fib_rule_hdr share this layout
NEXTHOP = struct.Struct("=HBBi")  # rtnexthop: length, flags, hops, ifindex
U32 = struct.Struct("=I")
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


class KernelError(OSError):
    """The kernel answered a request with an error (NLMSG_ERROR): "no route" is one such answer."""


@dataclass(frozen=True)
class Link:
    """One link of RTM_GETLINK's dump."""

    ifindex: int
    name: str
    flags: int  # IFF_*
    kind: str | None  # IFLA_INFO_KIND: "wireguard", "tun", "veth"; None for loopback and the like
    operstate: str | None  # "UP", "DOWN", "UNKNOWN", ... (the kernel's IF_OPER_* names)


@dataclass(frozen=True)
class Address:
    """One address of RTM_GETADDR's dump."""

    ifindex: int
    address: str  # IFA_ADDRESS (the peer's, on a point-to-point link with a separate local address)
    prefixlen: int


@dataclass(frozen=True)
class Route:
    """One route of RTM_GETROUTE's dump (or a lookup's answer)."""

    family: int
    table: int
    type: int  # RTN_*: 1 unicast
    dst_len: int
    oif: int | None  # RTA_OIF, else the first next hop's device (a multipath route)
    priority: int | None  # the metric


@dataclass(frozen=True)
class Rule:
    """One policy rule of RTM_GETRULE's dump."""

    family: int
    priority: int | None  # absent for priority 0
    flags: int  # FIB_RULE_*: 0x2 inverted ("not")
    table: int
    fwmark: int | None
    suppress_prefixlen: int | None  # 0xFFFFFFFF: not set


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each message in one datagram; an error answer raises KernelError, a
    message cut short (bigger than the receive buffer) plain OSError: the answer cannot be read."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, _seq, _port = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            raise OSError(errno.EMSGSIZE, "a netlink message was cut short")
        payload = data[offset + HEADER.size:offset + length]
        if kind in (NLMSG_ERROR, NLMSG_DONE) and len(payload) >= 4:
            code = -struct.unpack_from("=i", payload)[0]
            if code > 0:
                raise KernelError(code, os.strerror(code))
        yield kind, payload
        offset += (length + 3) & ~3


def attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """The attributes from ``offset`` on, by type (the first of each type)."""
    found: dict[int, bytes] = {}
    while offset + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, offset)
        if length < ATTR.size:
            break
        found.setdefault(kind & NLA_TYPE_MASK, data[offset + ATTR.size:offset + length])
        offset += (length + 3) & ~3
    return found


def _u32(attrs: dict[int, bytes], kind: int) -> int | None:
    value = attrs.get(kind)
    return U32.unpack_from(value)[0] if value is not None and len(value) >= 4 else None


def _text(value: bytes | None) -> str | None:
    return value.split(b"\0", 1)[0].decode(errors="replace") if value is not None else None


def parse_link(payload: bytes) -> Link:
    _family, _type, index, flags, _change = IFINFO.unpack_from(payload)
    attrs = attributes(payload, IFINFO.size)
    info = attrs.get(IFLA_LINKINFO)
    kind = _text(attributes(info, 0).get(IFLA_INFO_KIND)) if info is not None else None
    state = attrs.get(IFLA_OPERSTATE)
    operstate = (OPERSTATES[state[0]] if state[0] < len(OPERSTATES) else str(state[0])) if state else None
    return Link(index, _text(attrs.get(IFLA_IFNAME)) or "", flags, kind, operstate)


def parse_address(payload: bytes) -> Address | None:
    family, prefixlen, _flags, _scope, index = IFADDR.unpack_from(payload)
    raw = attributes(payload, IFADDR.size).get(IFA_ADDRESS)
    if raw is None or family not in (AF_INET, AF_INET6):
        return None
    return Address(index, socket.inet_ntop(family, raw), prefixlen)


def parse_route(payload: bytes) -> Route:
    family, dst_len, _src_len, _tos, table, _protocol, _scope, kind, _flags = RTMSG.unpack_from(payload)
    attrs = attributes(payload, RTMSG.size)
    oif = _u32(attrs, RTA_OIF)
    hops = attrs.get(RTA_MULTIPATH)
    if oif is None and hops is not None and len(hops) >= NEXTHOP.size:
        oif = NEXTHOP.unpack_from(hops)[3]
    return Route(family, _u32(attrs, RTA_TABLE) or table, kind, dst_len, oif, _u32(attrs, RTA_PRIORITY))


def parse_rule(payload: bytes) -> Rule:
    family, _dst_len, _src_len, _tos, table, _r1, _r2, _action, flags = RTMSG.unpack_from(payload)
    attrs = attributes(payload, RTMSG.size)
    return Rule(family, _u32(attrs, FRA_PRIORITY), flags, _u32(attrs, FRA_TABLE) or table,
                _u32(attrs, FRA_FWMARK), _u32(attrs, FRA_SUPPRESS_PREFIXLEN))


def answer(datagrams: Iterable[bytes], dump: bool) -> list[bytes]:
    """The payloads of one answer read from ``datagrams``: every part of a dump up to NLMSG_DONE, or
    the one reply to a plain request."""
    payloads: list[bytes] = []
    for data in datagrams:
        for kind, payload in messages(data):
            if kind == NLMSG_DONE:
                return payloads
            if kind != NLMSG_ERROR:
                payloads.append(payload)
            if not dump:
                return payloads
    return payloads


def _rtmsg(family: int, dst_len: int = 0) -> bytes:
    return RTMSG.pack(family, dst_len, 0, 0, 0, 0, 0, 0, 0)


class Rtnetlink:
    """One NETLINK_ROUTE socket in this network namespace; requests answered one at a time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, kind: int, body: bytes, flags: int = NLM_F_DUMP) -> list[bytes]:
        """Send one request; the payloads of its answer."""
        self.seq += 1
        self.sock.send(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, self.seq, 0) + body)
        return answer(iter(lambda: self.sock.recv(1 << 16), b""), dump=bool(flags & NLM_F_DUMP))

    def links(self) -> list[Link]:
        return [parse_link(p) for p in self.request(RTM_GETLINK, IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0))]

    def addresses(self) -> list[Address]:
        answer = self.request(RTM_GETADDR, IFADDR.pack(AF_UNSPEC, 0, 0, 0, 0))
        return [a for a in map(parse_address, answer) if a is not None]

    def routes(self, family: int) -> list[Route]:
        return [parse_route(p) for p in self.request(RTM_GETROUTE, _rtmsg(family))]

    def rules(self, family: int) -> list[Rule]:
        return [parse_rule(p) for p in self.request(RTM_GETRULE, _rtmsg(family))]

    def route_to(self, address: str) -> int | None:
        """The device (index) a packet to ``address`` leaves by, as ``ip route get`` says; None when
        the kernel answers with an error (no route: unreachable is an answer here)."""
        family = AF_INET6 if ":" in address else AF_INET
        raw = socket.inet_pton(family, address)
        body = _rtmsg(family, len(raw) * 8) + ATTR.pack(ATTR.size + len(raw), RTA_DST) + raw
        try:
            answer = self.request(RTM_GETROUTE, body, flags=0)
        except KernelError:  # ENETUNREACH, or no IPv6 here
            return None
        return parse_route(answer[0]).oif if answer else None
