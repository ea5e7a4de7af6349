"""Small programs the lab runs inside its namespaces (never outside them).

``serve``: a "what is my IP" HTTP server and a UDP sink, dual-stack, that log
every request and datagram they see with its source address, so the far side
can testify to what reached it.
``probe``: tries TCP, UDP and HTTP the way programs do and reports, as JSON,
whether each got through, was refused locally, or timed out.
``hold``: keeps one HTTP/1.1 connection open and, per line on stdin, asks on it
(``old``), on a new connection (``new``) or from a child process (``child``),
printing the address the server saw (wgkill-exclude --pid).
"""

import argparse
import json
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _source(address: str) -> str:
    return address.removeprefix("::ffff:")


class _DualStackHTTP(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(port: int, udp_port: int, log_path: str) -> None:
    log_lock = threading.Lock()

    def log(kind: str, source: str, destination: str) -> None:
        entry = {"t": time.time(), "kind": kind, "src": source, "dst": destination}
        with log_lock, open(log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    class WhoAmI(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a connection can be held open (``hold``)

        def do_GET(self) -> None:
            source = _source(self.client_address[0])
            log("http", source, _source(self.connection.getsockname()[0]))
            body = (source + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    class Sink(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            log("udp", _source(self.client_address[0]), "")

    class DualStackUDP(socketserver.ThreadingUDPServer):
        address_family = socket.AF_INET6

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    udp = DualStackUDP(("::", udp_port), Sink)
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    http = _DualStackHTTP(("::", port), WhoAmI)
    print("ready", flush=True)
    http.serve_forever()


def _tcp(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error:{exc.errno}"


def _udp(host: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
            sock.send(b"wgkill-lab-probe")
            time.sleep(0.2)
            sock.send(b"wgkill-lab-probe")  # a queued ICMP error surfaces on the next call
            return "sent"
        except (ConnectionRefusedError, PermissionError):
            return "refused"  # an ICMP error, or EPERM: the local firewall dropped it on output
        except OSError as exc:
            return f"error:{exc.errno}"


def probe(targets: list[str], port: int, udp_port: int, timeout: float) -> dict[str, str]:
    """TCP and UDP to each target; ``refused`` means stopped locally, fast."""
    results = {}
    for host in targets:
        results[f"tcp {host}"] = _tcp(host, port, timeout)
        results[f"udp {host}"] = _udp(host, udp_port)
    return results


def hold(target: str, port: int) -> None:
    """One connection held open; each stdin line (old/new/child) asks once and prints the answer."""
    import http.client
    import subprocess

    def ask(conn: http.client.HTTPConnection) -> str:
        try:
            conn.request("GET", "/")
            return conn.getresponse().read().decode().strip()
        except OSError as exc:
            return f"error:{exc.errno}"

    held = http.client.HTTPConnection(target, port, timeout=5)
    print(ask(held), flush=True)
    for line in sys.stdin:
        what = line.strip()
        if what == "old":
            print(ask(held), flush=True)
        elif what == "new":
            print(ask(http.client.HTTPConnection(target, port, timeout=5)), flush=True)
        elif what == "child":
            url = f"http://[{target}]:{port}/" if ":" in target else f"http://{target}:{port}/"
            done = subprocess.run(["curl", "-s", "--max-time", "5", url], capture_output=True, text=True,
                                  check=False)
            print(done.stdout.strip() or f"curl:{done.returncode}", flush=True)


def hammer(target: str, port: int, duration: float, interval: float) -> dict[str, int]:
    """Connect to ``target`` again and again for ``duration`` seconds: a continuous probe
    that would catch even a short gap in the block."""
    outcomes: dict[str, int] = {}
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        outcome = _tcp(target, port, 0.5)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        time.sleep(interval)
    return outcomes


def stream(target: str, port: int, duration: float, interval: float) -> dict[str, int]:
    """UDP datagrams to ``target`` every ``interval`` seconds for ``duration``: a continuous
    sender whose packets the far side counts, so a gap in the block shows as a number."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    outcomes = {"sent": 0, "refused": 0}
    deadline = time.monotonic() + duration
    next_at = time.monotonic()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((target, port))
        print("ready", flush=True)
        while time.monotonic() < deadline:
            try:
                sock.send(b"wgkill-lab-stream")
                outcomes["sent"] += 1
            except OSError:
                outcomes["refused"] += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgkill_lab.servers")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=80)
    s.add_argument("--udp-port", type=int, default=9999)
    s.add_argument("--log", required=True)
    p = sub.add_parser("probe")
    p.add_argument("targets", nargs="+")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--udp-port", type=int, default=9999)
    p.add_argument("--timeout", type=float, default=3.0)
    hd = sub.add_parser("hold")
    hd.add_argument("target")
    hd.add_argument("--port", type=int, default=80)
    h = sub.add_parser("hammer")
    h.add_argument("target")
    h.add_argument("--port", type=int, default=80)
    h.add_argument("--duration", type=float, default=5.0)
    h.add_argument("--interval", type=float, default=0.02)
    st = sub.add_parser("stream")
    st.add_argument("target")
    st.add_argument("--port", type=int, default=9999)
    st.add_argument("--duration", type=float, default=5.0)
    st.add_argument("--interval", type=float, default=0.001)
    args = parser.parse_args(argv)
    if args.command == "stream":
        print(json.dumps(stream(args.target, args.port, args.duration, args.interval)))
        return 0
    if args.command == "hold":
        hold(args.target, args.port)
        return 0
    if args.command == "hammer":
        print(json.dumps(hammer(args.target, args.port, args.duration, args.interval)))
        return 0
    if args.command == "serve":
        serve(args.port, args.udp_port, args.log)
        return 0
    print(json.dumps(probe(args.targets, args.port, args.udp_port, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
