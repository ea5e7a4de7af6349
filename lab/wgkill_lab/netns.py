"""A throwaway network of namespaces for the demo, the tests and the benchmark.

    client ──veth── isp ──veth── vpn
                    └ lo: 203.0.113.80, 2001:db8:80::80 ("what is my IP", UDP sink)

* client: the machine being protected; runs real ``wg-quick`` with the wgkill
  hooks and a userspace ``wireguard-go`` tunnel; its own /etc/wireguard and
  resolv.conf come from /etc/netns/NAME/.
* isp: the uplink router; counts, in its raw table, every packet arriving from
  the client that is not the tunnel's own UDP (``leak``), so "nothing got out"
  is testified by the far side, not inferred from a failed curl.
* vpn: the WireGuard server (``wireguard-go``), forwarding and masquerading
  tunnel traffic to the web server.

Every name carries the creating process's pid, so a stale lab (a run that was
killed) can be recognised and reaped. Everything runs through ``ip netns exec``
or ``ip -n``; ``Lab()`` refuses to start in the initial network namespace, so
a mistake here can never reach the machine's own firewall or routes.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
INIT_NETNS_INODE = 0xEFFFFFF9  # PROC_NET_INIT_INO: the kernel's initial network namespace
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
WG_SOCKETS = Path("/var/run/wireguard")
PREFIX = "wgk-"

WEB4, WEB6 = "203.0.113.80", "2001:db8:80::80"
CLIENT4, CLIENT6 = "192.0.2.2", "2001:db8:c::2"
ISP4, ISP6 = "192.0.2.1", "2001:db8:c::1"
VPN4, VPN6 = "198.51.100.2", "2001:db8:d::2"
BASE_PORT = 51820
WEB_PORT, UDP_PORT = 80, 9999


class LabError(RuntimeError):
    pass


class TimedOut(LabError):
    """What a test waited for did not happen in time."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Ask ``predicate`` until it returns something true, and return that; after ``timeout``
    seconds raise TimedOut naming ``what``. The one way the lab waits for an event (the last
    question is asked at the deadline, so a slow ``predicate`` still gets its chance)."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise TimedOut(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def in_initial_netns() -> bool:
    """True in the kernel's initial network namespace (or pid 1's, when we can see it)."""
    own = os.stat("/proc/self/ns/net").st_ino
    if own == INIT_NETNS_INODE:
        return True
    try:
        return own == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def refuse_initial_netns() -> None:
    if in_initial_netns():
        raise LabError(
            "refusing to run in the initial network namespace: run through `make test` / "
            "`make demo`, which start it under `unshare --net`"
        )


def _run(argv: list[str], *, check: bool = True, timeout: float = 60, env: dict | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          input=stdin, check=False)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_processes(ns: str) -> None:
    for _ in range(20):
        pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _remove_netns(ns: str) -> None:
    if (NETNS_DIR / ns).exists():
        _kill_netns_processes(ns)
        _run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)


def reap_stale() -> list[str]:
    """Remove labs whose creating process is gone; returns the namespaces removed."""
    removed = []
    names = {p.name for p in NETNS_DIR.glob(PREFIX + "*")} | {p.name for p in ETC_NETNS.glob(PREFIX + "*")}
    for name in sorted(names):
        match = re.match(rf"{PREFIX}(\d+)-", name)
        if match and not _pid_alive(int(match.group(1))):
            _remove_netns(name)
            removed.append(name)
    for sock in WG_SOCKETS.glob("wk*.sock"):
        if not _socket_alive(sock):
            sock.unlink(missing_ok=True)
    return removed


def _socket_alive(path: Path) -> bool:
    """A UAPI socket someone still listens on (another lab's live daemon) must stay."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@dataclass
class Tunnel:
    """One client tunnel and its server side."""

    index: int
    iface: str
    server_iface: str
    port: int
    client4: str
    client6: str
    server4: str
    server6: str
    config: Path
    client_key: str
    server_key: str


class Lab:
    """Build with ``with Lab() as lab:``; everything is removed on exit, even on failure."""

    def __init__(self, *, legacy: bool = False, bin_dir: str | None = None,
                 backend: str | None = None) -> None:
        """``legacy``: the plain iptables names run iptables-legacy; ``backend``: the default hooks
        pass ``--backend BACKEND`` to wgkill-up (None: wgkill chooses, nft where it works)."""
        refuse_initial_netns()
        self.backend = backend
        self.tag = f"{os.getpid()}-{secrets.token_hex(2)}"
        self.short = secrets.token_hex(2)
        self.client_ns = f"{PREFIX}{self.tag}-client"
        self.isp_ns = f"{PREFIX}{self.tag}-isp"
        self.vpn_ns = f"{PREFIX}{self.tag}-vpn"
        self.lan_ns: str | None = None
        self.legacy = legacy
        self.bin_dir = bin_dir or os.path.dirname(sys.executable)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"wgkill-lab-{self.tag}-"))
        self.tmp.chmod(0o700)
        self.state_dir = self.tmp / "state"
        self.web_log = self.tmp / "web.log"
        self.tunnels: list[Tunnel] = []
        self._servers: list[subprocess.Popen[str]] = []
        self._built = False
        # wgkill-exclude: the client's commands see this cgroup layout (wgkill_lab.cgroupfs), and
        # the exclusion cgroup (cgroups are shared by every namespace) is this lab's own
        self.cgroupfs: str | None = None
        self.exclude_cgroup = f"wgkill-exclude-{self.tag}"

    # ---- lifecycle -------------------------------------------------------
    def __enter__(self) -> "Lab":
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def namespaces(self) -> list[str]:
        return [self.client_ns, self.isp_ns, self.vpn_ns, *([self.lan_ns] if self.lan_ns else [])]

    def close(self) -> None:
        for server in self._servers:
            server.kill()
            server.wait(timeout=5)
        for ns in self.namespaces:
            _remove_netns(ns)
        for tunnel in self.tunnels:
            for name in (tunnel.iface, tunnel.server_iface):
                (WG_SOCKETS / f"{name}.sock").unlink(missing_ok=True)
        self._remove_exclude_cgroup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _remove_exclude_cgroup(self) -> None:
        """The lab's exclusion cgroup, if a test left it: its processes (the lab's, killed with
        the namespaces) moved back to the root first."""
        from wgkill.cgroups import Cgroup, unified_root

        try:
            Cgroup(unified_root(), self.exclude_cgroup).remove()
        except Exception:  # noqa: BLE001, S110 - cleanup: a host without cgroup v2 has nothing to remove
            pass

    def adopt(self, proc: "subprocess.Popen[str]") -> None:
        """Have ``close()`` kill and reap ``proc``, a server started inside one of our namespaces."""
        self._servers.append(proc)

    # ---- running things --------------------------------------------------
    def env(self) -> dict[str, str]:
        path = [self.bin_dir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        if self.legacy:
            path.insert(0, str(self._legacy_shims()))
        return {
            "PATH": ":".join(path),
            "LC_ALL": "C",
            "HOME": str(self.tmp),
            "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
            "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
            "WG_ENDPOINT_RESOLUTION_RETRIES": "1",
            "WGKILL_STATE_DIR": str(self.state_dir),
            "WGKILL_EXCLUDE_CGROUP": self.exclude_cgroup,
        }

    def _legacy_shims(self) -> Path:
        """A PATH directory where the plain iptables names run iptables-legacy."""
        shims = self.tmp / "legacy-bin"
        if not shims.exists():
            shims.mkdir()
            multi = shutil.which("xtables-legacy-multi")
            if multi is None:
                raise LabError("xtables-legacy-multi not found: install iptables")
            for tool in ("iptables", "ip6tables"):
                for suffix in ("", "-save", "-restore"):
                    (shims / f"{tool}{suffix}").symlink_to(multi)
        return shims

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside namespace ``ns`` (one of ours, never the machine's)."""
        return _run(self.argv(ns, *argv), check=check, timeout=timeout, env=self.env(), stdin=stdin)

    def argv(self, ns: str, *argv: str) -> list[str]:
        """The command line that runs ``argv`` in ``ns`` (for Popen); the client's under ``cgroupfs``."""
        if ns not in self.namespaces:
            raise LabError(f"{ns} is not a namespace of this lab")
        if ns == self.client_ns and self.cgroupfs:
            argv = (sys.executable, "-I", "-m", "wgkill_lab.cgroupfs", self.cgroupfs, "--", *argv)
        return ["ip", "netns", "exec", ns, *argv]

    def client(self, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(self.client_ns, *argv, **kw)  # type: ignore[arg-type]

    def isp(self, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(self.isp_ns, *argv, **kw)  # type: ignore[arg-type]

    def vpn(self, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(self.vpn_ns, *argv, **kw)  # type: ignore[arg-type]

    # ---- building --------------------------------------------------------
    def build(self) -> None:
        for ns in self.namespaces:
            (ETC_NETNS / ns / "wireguard").mkdir(parents=True, mode=0o700)
            (ETC_NETNS / ns / "resolv.conf").write_text("nameserver 203.0.113.53\n")
            (ETC_NETNS / ns / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
            _run(["ip", "netns", "add", ns])
        c, i, v = self.namespaces
        ip = ["ip"]
        _run([*ip, "link", "add", "uplink0", "netns", c, "type", "veth", "peer", "name", "cust0", "netns", i])
        _run([*ip, "link", "add", "transit0", "netns", i, "type", "veth", "peer", "name", "eth0", "netns", v])
        steps = [
            *((ns, ["link", "set", "lo", "up"]) for ns in (c, i, v)),
            (c, ["addr", "add", f"{CLIENT4}/28", "dev", "uplink0"]),
            (c, ["addr", "add", f"{CLIENT6}/64", "dev", "uplink0", "nodad"]),
            (c, ["link", "set", "uplink0", "up"]),
            (c, ["route", "add", "default", "via", ISP4]),
            (c, ["-6", "route", "add", "default", "via", ISP6]),
            (i, ["addr", "add", f"{ISP4}/28", "dev", "cust0"]),
            (i, ["addr", "add", f"{ISP6}/64", "dev", "cust0", "nodad"]),
            (i, ["addr", "add", "198.51.100.1/24", "dev", "transit0"]),
            (i, ["addr", "add", "2001:db8:d::1/64", "dev", "transit0", "nodad"]),
            (i, ["link", "set", "cust0", "up"]), (i, ["link", "set", "transit0", "up"]),
            (i, ["addr", "add", f"{WEB4}/32", "dev", "lo"]),
            (i, ["addr", "add", f"{WEB6}/128", "dev", "lo"]),
            (v, ["addr", "add", f"{VPN4}/24", "dev", "eth0"]),
            (v, ["addr", "add", f"{VPN6}/64", "dev", "eth0", "nodad"]),
            (v, ["link", "set", "eth0", "up"]),
            (v, ["route", "add", "default", "via", "198.51.100.1"]),
            (v, ["-6", "route", "add", "default", "via", "2001:db8:d::1"]),
        ]
        for ns, args in steps:
            _run(["ip", "-n", ns, *args])
        for ns in (i, v):
            self.run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        self.vpn("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")
        self.vpn("ip6tables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE")
        self._install_counters()
        self._start_web()
        self._built = True

    def _install_counters(self) -> None:
        """The isp's testimony: raw-table counters on everything arriving from the client."""
        ports = f"{BASE_PORT}:{BASE_PORT + 9}"
        dhcp = "-A WGKLAB -p udp -m udp --sport {} --dport {} -m comment --comment upkeep -j RETURN"
        ndp = [f"-A WGKLAB -p ipv6-icmp -m icmp6 --icmpv6-type {t} -m comment --comment upkeep -j RETURN"
               for t in (133, 135, 136, 143)]
        for tool, server, upkeep in (
            ("iptables", VPN4, [dhcp.format(68, 67)]),
            ("ip6tables", VPN6, [*ndp, dhcp.format(546, 547)]),
        ):
            payload = "\n".join([
                "*raw", ":WGKLAB - [0:0]", "-A PREROUTING -i cust0 -j WGKLAB",
                f"-A WGKLAB -d {server} -p udp -m udp --dport {ports} -m comment --comment carrier -j RETURN",
                *upkeep,
                "-A WGKLAB -m comment --comment leak -j RETURN", "COMMIT", "",
            ])
            self.isp(f"{tool}-restore", "-n", stdin=payload)

    def _start_web(self) -> None:
        argv = ["ip", "netns", "exec", self.isp_ns, sys.executable, "-I", "-m", "wgkill_lab.servers", "serve",
                "--port", str(WEB_PORT), "--udp-port", str(UDP_PORT), "--log", str(self.web_log)]
        server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  env=self.env())
        self._servers.append(server)
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            raise LabError("the lab web server did not start")

    def add_lan_host(self) -> str:
        """A host on a LAN behind the client (192.0.2.34, 2001:db8:e::34), routed through it:
        the client becomes a gateway (forwarding on). Returns the namespace."""
        self.lan_ns = f"{PREFIX}{self.tag}-lan"
        (ETC_NETNS / self.lan_ns).mkdir(parents=True, mode=0o700)
        (ETC_NETNS / self.lan_ns / "resolv.conf").write_text("nameserver 203.0.113.53\n")
        _run(["ip", "netns", "add", self.lan_ns])
        c, h = self.client_ns, self.lan_ns
        _run(["ip", "link", "add", "lan0", "netns", c, "type", "veth", "peer", "name", "eth0", "netns", h])
        for ns, args in (
            (h, ["link", "set", "lo", "up"]),
            (c, ["link", "set", "lan0", "up"]),
            (h, ["link", "set", "eth0", "up"]),
            (c, ["addr", "add", "192.0.2.33/28", "dev", "lan0"]),
            (c, ["addr", "add", "2001:db8:e::1/64", "dev", "lan0", "nodad"]),
            (h, ["addr", "add", "192.0.2.34/28", "dev", "eth0"]),
            (h, ["addr", "add", "2001:db8:e::34/64", "dev", "eth0", "nodad"]),
            (h, ["route", "add", "default", "via", "192.0.2.33"]),
            (h, ["-6", "route", "add", "default", "via", "2001:db8:e::1"]),
            (self.isp_ns, ["route", "add", "192.0.2.32/28", "via", CLIENT4]),
            (self.isp_ns, ["-6", "route", "add", "2001:db8:e::/64", "via", CLIENT6]),
        ):
            _run(["ip", "-n", ns, *args])
        self.client("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        return self.lan_ns

    # ---- tunnels ---------------------------------------------------------
    def default_hooks(self) -> str:
        """wgkill's two hook lines, with this lab's ``--backend`` if it has one."""
        option = f" --backend {self.backend}" if self.backend else ""
        return f"PostUp = wgkill-up %i{option}\nPreDown = wgkill-down %i\n"

    def add_tunnel(self, *, hooks: str | None = None,
                   allowed_ips: str = "0.0.0.0/0, ::/0", endpoint_family: int = 4,
                   extra: str = "", iface: str | None = None) -> Tunnel:
        """Start a server interface in vpn and write the client's wg-quick config (not brought up)."""
        index = len(self.tunnels)
        port = BASE_PORT + index
        iface = iface or f"wk{self.short}c{index}"
        client_key = _wg("genkey").strip()
        server_key = _wg("genkey").strip()
        tunnel = Tunnel(
            index=index,
            iface=iface,
            server_iface=f"wk{self.short}s{index}",
            port=port,
            client4=f"192.0.2.{130 + 16 * index}", server4=f"192.0.2.{129 + 16 * index}",
            client6=f"2001:db8:7:{index}::2", server6=f"2001:db8:7:{index}::1",
            config=ETC_NETNS / self.client_ns / "wireguard" / f"{iface}.conf",
            client_key=client_key, server_key=server_key,
        )
        self.tunnels.append(tunnel)
        server_conf = self.tmp / f"{tunnel.server_iface}.conf"
        _write_secret(server_conf, (
            f"[Interface]\nPrivateKey = {server_key}\nListenPort = {port}\n\n"
            f"[Peer]\nPublicKey = {_wg('pubkey', stdin=client_key).strip()}\n"
            f"AllowedIPs = {tunnel.client4}/32, {tunnel.client6}/128\n"
        ))
        self.vpn("wireguard-go", tunnel.server_iface)
        self.vpn("wg", "setconf", tunnel.server_iface, str(server_conf))
        self.vpn("ip", "link", "set", tunnel.server_iface, "up")  # up first: IPv6 binds at once
        self.vpn("ip", "addr", "add", f"{tunnel.server4}/28", "dev", tunnel.server_iface)
        self.vpn("ip", "addr", "add", f"{tunnel.server6}/64", "dev", tunnel.server_iface, "nodad")
        endpoint = f"{VPN4}:{port}" if endpoint_family == 4 else f"[{VPN6}]:{port}"
        self.write_client_config(tunnel, hooks=self.default_hooks() if hooks is None else hooks,
                                 allowed_ips=allowed_ips, endpoint=endpoint, extra=extra)
        return tunnel

    def write_client_config(self, tunnel: Tunnel, *, hooks: str, allowed_ips: str, endpoint: str,
                            extra: str = "") -> None:
        _write_secret(tunnel.config, (
            f"[Interface]\nPrivateKey = {tunnel.client_key}\n"
            f"Address = {tunnel.client4}/32, {tunnel.client6}/128\n{extra}{hooks}\n"
            f"[Peer]\nPublicKey = {_wg('pubkey', stdin=tunnel.server_key).strip()}\n"
            f"Endpoint = {endpoint}\nAllowedIPs = {allowed_ips}\nPersistentKeepalive = 1\n"
        ))

    def wg_quick(self, verb: str, tunnel: Tunnel, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.client("wg-quick", verb, tunnel.iface, check=check, timeout=90)

    def kill_daemon(self, tunnel: Tunnel) -> None:
        """SIGKILL the client's wireguard-go for ``tunnel``: the interface vanishes uncleanly."""
        for pid in _run(["ip", "netns", "pids", self.client_ns]).stdout.split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[:1] and cmdline[0].endswith(b"wireguard-go") and tunnel.iface.encode() in cmdline:
                os.kill(int(pid), signal.SIGKILL)
        wait_until(lambda: self.client("ip", "link", "show", tunnel.iface, check=False).returncode != 0, 5,
                   f"{tunnel.iface} gone after killing its daemon")

    # ---- observing -------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        """Packets the isp saw from the client since the last reset, by family and kind."""
        seen: dict[str, dict[str, int]] = {}
        for family, tool in (("ipv4", "iptables-save"), ("ipv6", "ip6tables-save")):
            seen[family] = {}
            for line in self.isp(tool, "-c", "-t", "raw").stdout.splitlines():
                match = re.match(r"\[(\d+):\d+\] -A WGKLAB .*--comment (\w+)", line)
                if match:
                    kind = match.group(2)
                    seen[family][kind] = seen[family].get(kind, 0) + int(match.group(1))
        return seen

    def reset_counters(self) -> None:
        self.isp("iptables", "-t", "raw", "-Z", "WGKLAB")
        self.isp("ip6tables", "-t", "raw", "-Z", "WGKLAB")

    def leaks(self) -> dict[str, int]:
        return {family: kinds.get("leak", 0) for family, kinds in self.counters().items()}

    def whoami(self, family: int = 4, timeout: float = 5, target: str | None = None) -> str | None:
        """What the web server says our address is, or None if the request failed."""
        target = target or (WEB4 if family == 4 else WEB6)
        url = f"http://[{target}]/" if ":" in target else f"http://{target}/"
        done = self.client("curl", "-s", "--max-time", str(timeout), url, check=False, timeout=timeout + 5)
        return done.stdout.strip() if done.returncode == 0 else None

    def probe(self, timeout: float = 3) -> dict[str, str]:
        done = self.client(sys.executable, "-I", "-m", "wgkill_lab.servers", "probe", WEB4, WEB6,
                           "--timeout", str(timeout), timeout=4 * timeout + 10)
        return json.loads(done.stdout)

    def web_hits(self) -> list[dict[str, object]]:
        if not self.web_log.exists():
            return []
        return [json.loads(line) for line in self.web_log.read_text().splitlines() if line]

    def wait_handshake(self, tunnel: Tunnel, timeout: float = 15) -> None:
        """Drive traffic until the web server answers through the tunnel."""
        wait_until(lambda: self.whoami(4, timeout=2) == VPN4, timeout,
                   f"{tunnel.iface}: traffic through the tunnel", interval=0.2)

    def ruleset(self) -> str:
        """The client's nftables ruleset (iptables-nft's tables included), without counters and
        without wg-quick's own ``wg-quick-IFACE`` tables (wg-quick's business; a killed daemon
        leaves its lines doubled there)."""
        text = self.client("/usr/sbin/nft", "-s", "list", "ruleset").stdout
        blocks = re.split(r"(?m)^(?=table )", text)
        return "".join(b for b in blocks if not re.match(r"table \S+ wg-quick-", b))

    def save(self, family: int = 4) -> str:
        """The client's filter table, without comments and counters, for byte comparison."""
        tool = "iptables-save" if family == 4 else "ip6tables-save"
        text = self.client(tool, "-t", "filter").stdout
        lines = [re.sub(r"\[\d+:\d+\]", "[0:0]", ln) for ln in text.splitlines() if not ln.startswith("#")]
        return "\n".join(lines) + "\n"


def _wg(verb: str, stdin: str | None = None) -> str:
    return _run(["wg", verb], stdin=stdin).stdout


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

