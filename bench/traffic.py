"""Tiny TCP traffic for the per-packet benchmark, run inside the lab's namespaces only.

``serve`` (in the isp namespace, on the lab's web address): a connect/echo port
that answers one byte and closes, and a sink port that counts bytes and reports
the total back. ``connect`` and ``bulk`` (in the client namespace) drive them
through the tunnel and print one JSON line. Both loops are bounded in time, so
a broken tunnel makes a slow sample, never a hung benchmark.

Stdlib only and single-threaded on purpose: the client is one sequential
program, as a latency-bound application would be, and the same for both
variants of every A/B pair.
"""

import argparse
import json
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT piles up on the client


def _listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def _echo_loop(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                if conn.recv(1):
                    conn.sendall(b"!")
            except OSError:
                pass


def _sink_loop(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            total = 0
            try:
                while data := conn.recv(CHUNK * 4):
                    total += len(data)
                conn.sendall(f"{total}\n".encode())
            except OSError:
                pass


def serve(host: str, echo_port: int, sink_port: int) -> None:
    echo = _listener(host, echo_port)
    sink = _listener(host, sink_port)
    threading.Thread(target=_echo_loop, args=(echo,), daemon=True).start()
    print("ready", flush=True)
    _sink_loop(sink)


def _mark(sock: socket.socket, mark: int | None) -> None:
    if mark is not None:  # the tunnel's fwmark: routed around the tunnel, out the uplink
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)


def connect_rate(host: str, port: int, seconds: float, mark: int | None, timeout: float) -> dict[str, float]:
    """Sequential connect, one byte each way, reset-close, for ``seconds``."""
    done = failed = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        _mark(sock, mark)
        try:
            sock.connect((host, port))
            sock.sendall(b"?")
            if sock.recv(1) == b"!":
                done += 1
            else:
                failed += 1
        except OSError:
            failed += 1
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            sock.close()
    elapsed = time.perf_counter() - start
    return {"connections": done, "failed": failed, "seconds": elapsed, "per_second": done / elapsed}


def bulk(host: str, port: int, megabytes: int, seconds: float, mark: int | None) -> dict[str, float]:
    """Send up to ``megabytes`` (stopping at ``seconds``); the sink's count proves arrival."""
    block = b"\0" * CHUNK
    limit = megabytes * 1024 * 1024
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(seconds + 10)
        _mark(sock, mark)  # before connect: the route is chosen then
        sock.connect((host, port))
        start = time.perf_counter()
        deadline = start + seconds
        while sent < limit and time.perf_counter() < deadline:
            sock.sendall(block)
            sent += len(block)
        sock.shutdown(socket.SHUT_WR)
        received = int(sock.makefile().readline())
        elapsed = time.perf_counter() - start
    return {"sent": sent, "received": received, "seconds": elapsed,
            "mb_per_second": received / elapsed / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/traffic.py")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", required=True)
    s.add_argument("--echo-port", type=int, required=True)
    s.add_argument("--sink-port", type=int, required=True)
    c = sub.add_parser("connect")
    c.add_argument("host")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--seconds", type=float, default=1.0)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--mark", type=int)
    b = sub.add_parser("bulk")
    b.add_argument("host")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--megabytes", type=int, default=100)
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--mark", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.echo_port, args.sink_port)
        return 0
    if args.command == "connect":
        result = connect_rate(args.host, args.port, args.seconds, args.mark, args.timeout)
    else:
        result = bulk(args.host, args.port, args.megabytes, args.seconds, args.mark)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
