"""The lab's resolvers: DNS servers that testify, in the lab's namespaces.

A DNS leak is proven by the resolver that should not have seen a query, so
every resolver here logs every query it receives (name, type, source, and
whether it came over UDP, TCP or TLS), and answers with its own addresses so
a test can also tell from the answer who was asked:

* ISP resolver, 203.0.113.53 / 2001:db8:53::53 on the isp's ``lo``: the
  uplink's DNS, what the client uses when nothing else is configured.
* LAN resolver, 192.0.2.1 / 2001:db8:c::1 on the isp's ``cust0``: the home
  router, on-link to the client, the classic leak that routes don't cover.
* VPN resolver, the tunnel's server address (``tunnel.server4/6``) in vpn:
  reachable only through the tunnel.

dnsmasq serves plain DNS (UDP and TCP on 53); unbound (from the lab's package
cache, ``bundles``) serves DNS over TLS (853), and as a client-side encrypting
stub forwards over TLS to it. The real systemd-resolved is ``resolved_harness``.
"""

import ipaddress
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundles import bundle_root, checked, multiarch_libs
from .netns import Lab, LabError, TimedOut, Tunnel, wait_until

ISP_DNS4, ISP_DNS6 = "203.0.113.53", "2001:db8:53::53"
LAN_DNS4, LAN_DNS6 = "192.0.2.1", "2001:db8:c::1"

# What each resolver answers for every name: who answered is visible in the answer.
ISP_ANSWER4, ISP_ANSWER6 = "203.0.113.77", "2001:db8:113::77"
LAN_ANSWER4, LAN_ANSWER6 = "192.0.2.7", "2001:db8:c::7"
VPN_ANSWER4, VPN_ANSWER6 = "198.51.100.77", "2001:db8:77::77"

STUB_PORT = 5300
DOT_NAME = "dns.vpn.test"  # the name in the DoT resolver's self-signed certificate


# Binaries from installed Debian packages (dnsmasq-base, bind9-dnsutils, util-linux, openssl,
# iproute2, dbus-daemon, libc-bin); the unpacked bundles are checked by bundle_root().
BINARIES = ("dnsmasq", "dig", "nsenter", "unshare", "openssl", "ss", "dbus-daemon", "getent")


def missing_binaries() -> list[str]:
    """What the DNS lab (these resolvers, the resolved harness) runs that is not installed
    (`make deps` installs it)."""
    return [b for b in BINARIES if shutil.which(b) is None]


# ---- query logs ------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    """One query as the resolver saw it."""

    name: str
    qtype: str
    source: str
    proto: str  # udp, tcp, tls, or plain (the stub's log cannot tell udp from tcp)


_DNSMASQ_START = re.compile(r"dnsmasq\[(\d+)\]: started")
_DNSMASQ_QUERY = re.compile(r"dnsmasq\[(\d+)\]: (?:\d+ \S+ )?query\[(\w+)\] (\S+) from (\S+)$")
_UNBOUND_QUERY = re.compile(r"unbound\[\d+:\d+\] info: (\S+) (\S+) (\S+) IN$")


def parse_dnsmasq_log(text: str) -> list[Query]:
    """Queries in a ``--log-queries`` log; TCP ones are those a forked child (another pid) logged."""
    main_pid = None
    queries = []
    for line in text.splitlines():
        start = _DNSMASQ_START.search(line)
        if start:
            main_pid = start.group(1)
            continue
        match = _DNSMASQ_QUERY.search(line)
        if match:
            pid, qtype, name, source = match.groups()
            proto = "udp" if main_pid in (None, pid) else "tcp"
            queries.append(Query(name.rstrip(".").lower(), qtype, source, proto))
    return queries


def parse_unbound_log(text: str, proto: str = "tls") -> list[Query]:
    """Queries in an unbound ``log-queries: yes`` log; it does not say the transport, the caller knows."""
    queries = []
    for line in text.splitlines():
        match = _UNBOUND_QUERY.search(line)
        if match:
            source, name, qtype = match.groups()
            queries.append(Query(name.rstrip(".").lower(), qtype, source, proto))
    return queries


# ---- resolvers -------------------------------------------------------------

@dataclass
class LoggingResolver:
    """A logging resolver running in one lab namespace."""

    name: str
    ns: str
    listen: tuple[str, ...]
    answer4: str
    answer6: str
    log_path: Path
    proc: subprocess.Popen[str]
    kind: str = "dnsmasq"
    port: int = 53

    @property
    def address(self) -> str:
        return self.listen[0]

    def queries(self, name: str | None = None, *, settle: float = 0.2) -> list[Query]:
        """Every query seen so far (optionally for one name and its subdomains).

        ``settle``: log lines are written just after the answer is sent, so wait
        that long for the count to stop changing before trusting a zero.
        """
        seen = self._read()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = self._read()
            if len(again) != len(seen):
                seen, deadline = again, time.monotonic() + settle
        if name is not None:
            name = name.rstrip(".").lower()
            seen = [q for q in seen if q.name == name or q.name.endswith("." + name)]
        return seen

    def _read(self) -> list[Query]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        if self.kind == "dnsmasq":
            return parse_dnsmasq_log(text)
        return parse_unbound_log(text, "tls" if self.port == 853 else "plain")

    def count(self, name: str | None = None) -> int:
        return len(self.queries(name))

    def clear(self) -> None:
        """Forget the queries seen so far (truncates the log; the resolver keeps appending)."""
        if self.kind == "dnsmasq":  # keep the "started" line: it tells UDP from TCP
            head = [ln for ln in self.log_path.read_text().splitlines() if _DNSMASQ_START.search(ln)]
            self.log_path.write_text("".join(ln + "\n" for ln in head))
        else:
            self.log_path.write_text("")

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Signal ``proc`` and reap it, killing it if it has not gone within five seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def answer_options(answers: Mapping[str, str | Sequence[str]]) -> list[str]:
    """dnsmasq ``--address`` options: ``#`` is every name, ``*.x`` (or ``x``) is x and below,
    and no address (``[]`` or ``""``) answers NXDOMAIN."""
    options = []
    for name, addresses in answers.items():
        domain = name.removeprefix("*.").rstrip(".")
        listed = [addresses] if isinstance(addresses, str) else list(addresses)
        options.extend(f"--address=/{domain}/{address}" for address in listed or [""])
    return options


def start_resolver(lab: Lab, ns: str, listen: str | Sequence[str], log_path: Path | None = None, *,
                   name: str, answers: Mapping[str, str | Sequence[str]] | None = None,
                   answer4: str = "", answer6: str = "", timeout: float = 10) -> LoggingResolver:
    """Run dnsmasq in ``ns`` on ``listen`` (UDP+TCP 53), logging every query it sees.

    ``answers`` maps names to addresses (``#`` = every name, as dnsmasq spells it);
    by default every name resolves to ``answer4`` / ``answer6``. The addresses
    must exist in ``ns`` already (``--bind-interfaces`` binds exactly them, so
    several resolvers can share a namespace).
    """
    addresses = (listen,) if isinstance(listen, str) else tuple(listen)
    if answers is None:
        answers = {"#": [a for a in (answer4, answer6) if a]}
    work = lab.tmp / "dns"
    work.mkdir(exist_ok=True)
    log_path = log_path or work / f"{name}.log"
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--log-queries=extra", f"--log-facility={log_path}",
            f"--pid-file={work / (name + '.pid')}", "--user=root", "--group=root", "--bind-interfaces",
            "--cache-size=0", *(f"--listen-address={a}" for a in addresses), *answer_options(answers)]
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=lab.env())
    lab.adopt(proc)
    resolver = LoggingResolver(name=name, ns=ns, listen=addresses, answer4=answer4, answer6=answer6,
                        log_path=log_path, proc=proc)
    _wait_listening(lab, resolver, proc, timeout)
    return resolver


def _wait_listening(lab: Lab, resolver: LoggingResolver, proc: subprocess.Popen[str], timeout: float) -> None:
    """Until every address is bound: a test's first query must not race the start."""
    protocol = "-tln" if resolver.kind == "unbound" else "-uln"
    wanted = [str(ipaddress.ip_address(a)) for a in resolver.listen]  # as ss spells them

    def listening() -> bool:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            log = resolver.log_path.read_text() if resolver.log_path.exists() else ""
            raise LabError(f"{resolver.name} ({resolver.kind}) exited {proc.returncode}: "
                           f"{(err + log).strip()[-400:]}")
        bound = lab.run(resolver.ns, "ss", "-H", protocol, check=False).stdout
        return all(re.search(rf"[\s\[]{re.escape(a)}(%\S+)?\]?:{resolver.port}\s", bound) for a in wanted)

    try:
        wait_until(listening, timeout, f"{resolver.name} listening on {', '.join(resolver.listen)}")
    except TimedOut:
        stop_process(proc)
        raise


def _add_address(lab: Lab, ns: str, dev: str, address: str) -> None:
    if address not in lab.run(ns, "ip", "-o", "addr", "show", "dev", dev).stdout:
        extra = ["nodad"] if ":" in address else []
        lab.run(ns, "ip", "addr", "add", f"{address}/{128 if ':' in address else 32}", "dev", dev, *extra)


def start_isp_resolver(lab: Lab, **kw: object) -> LoggingResolver:
    """The uplink's resolver (203.0.113.53, 2001:db8:53::53 on the isp's lo), answering 203.0.113.77."""
    for address in (ISP_DNS4, ISP_DNS6):
        _add_address(lab, lab.isp_ns, "lo", address)
    return start_resolver(lab, lab.isp_ns, (ISP_DNS4, ISP_DNS6), name="isp", answer4=ISP_ANSWER4,
                          answer6=ISP_ANSWER6, **kw)  # type: ignore[arg-type]


def start_lan_resolver(lab: Lab, **kw: object) -> LoggingResolver:
    """The home router's resolver: the client's on-link gateway (192.0.2.1 on cust0), answering 192.0.2.7."""
    return start_resolver(lab, lab.isp_ns, (LAN_DNS4, LAN_DNS6), name="lan", answer4=LAN_ANSWER4,
                          answer6=LAN_ANSWER6, **kw)  # type: ignore[arg-type]


def start_vpn_resolver(lab: Lab, tunnel: Tunnel, **kw: object) -> LoggingResolver:
    """The tunnel's resolver on its server address (vpn side), answering 198.51.100.77."""
    return start_resolver(lab, lab.vpn_ns, (tunnel.server4, tunnel.server6), name=f"vpn{tunnel.index}",
                          answer4=VPN_ANSWER4, answer6=VPN_ANSWER6, **kw)  # type: ignore[arg-type]


def dig(lab: Lab, server: str, name: str, qtype: str = "A", *, port: int = 53, tcp: bool = False,
        tls: bool = False, timeout: float = 3, ns: str | None = None) -> list[str]:
    """Ask ``server`` from the client (or ``ns``); the answer's records, [] on no answer or error."""
    argv = ["dig", "+short", f"+time={max(1, int(timeout))}", "+tries=1", f"@{server}", "-p", str(port),
            name, qtype]
    if tcp:
        argv.insert(1, "+tcp")
    if tls:
        argv.insert(1, "+tls")  # unverified: the DoT resolver's own log is the evidence
    done = lab.run(ns or lab.client_ns, *argv, check=False, timeout=timeout * 3 + 5)
    if done.returncode != 0:
        return []
    return [ln for ln in done.stdout.splitlines() if ln and not ln.startswith(";")]


# ---- DNS over TLS (unbound) ----------------------------------------------------

def _unbound_env(lab: Lab) -> dict[str, str]:
    root = bundle_root("unbound")
    env = lab.env()
    env["LD_LIBRARY_PATH"] = str(multiarch_libs(root))
    return env


def make_certificate(directory: Path, name: str = DOT_NAME,
                     addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """A self-signed certificate for the DoT resolver; (cert, key). Clients pin it as their CA."""
    cert, key = directory / "dot-cert.pem", directory / "dot-key.pem"
    san = ",".join([f"DNS:{name}", *(f"IP:{a}" for a in addresses)])
    checked(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
              "-keyout", str(key), "-out", str(cert)])
    key.chmod(0o600)
    return cert, key


def _unbound_conf(work: Path, name: str, server: list[str], tail: list[str]) -> Path:
    conf = work / f"{name}.conf"
    lines = ["server:", "  do-daemonize: no", '  username: ""', '  chroot: ""', f'  directory: "{work}"',
             f'  pidfile: "{work / (name + ".pid")}"', f'  logfile: "{work / (name + ".log")}"',
             "  use-syslog: no", "  log-queries: yes", "  verbosity: 1", "  do-ip6: yes",
             "  access-control: 0.0.0.0/0 allow", "  access-control: ::/0 allow",
             "  do-not-query-localhost: no", "  module-config: \"iterator\"", "  cache-max-ttl: 0",
             "  cache-max-negative-ttl: 0", "  prefetch: no", "  harden-dnssec-stripped: no",
             '  auto-trust-anchor-file: ""', "  trust-anchor-signaling: no", "  root-key-sentinel: no",
             *(f"  {ln}" for ln in server), *tail]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _start_unbound(lab: Lab, ns: str, name: str, conf: Path, listen: tuple[str, ...], port: int,
                   answer4: str, answer6: str, timeout: float) -> LoggingResolver:
    binary = bundle_root("unbound") / "usr" / "sbin" / "unbound"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, str(binary), "-d", "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_unbound_env(lab))
    lab.adopt(proc)
    resolver = LoggingResolver(name=name, ns=ns, listen=listen, answer4=answer4, answer6=answer6,
                        log_path=conf.parent / f"{name}.log", proc=proc, kind="unbound", port=port)
    _wait_listening(lab, resolver, proc, timeout)
    return resolver


def start_dot_resolver(lab: Lab, ns: str, listen: str | Sequence[str], *, name: str,
                       answer4: str = VPN_ANSWER4, answer6: str = VPN_ANSWER6,
                       cert: tuple[Path, Path] | None = None, timeout: float = 15) -> LoggingResolver:
    """unbound serving DNS over TLS on ``listen``:853, answering every name itself and logging it."""
    addresses = (listen,) if isinstance(listen, str) else tuple(listen)
    work = lab.tmp / "dns"
    work.mkdir(exist_ok=True)
    cert_path, key_path = cert or make_certificate(work, addresses=addresses)
    server = [*(f"interface: {a}@853" for a in addresses), "tls-port: 853",
              f'tls-service-key: "{key_path}"', f'tls-service-pem: "{cert_path}"',
              'local-zone: "." redirect', f'local-data: ". 0 IN A {answer4}"',
              f'local-data: ". 0 IN AAAA {answer6}"']
    conf = _unbound_conf(work, name, server, [])
    return _start_unbound(lab, ns, name, conf, addresses, 853, answer4, answer6, timeout)


def start_vpn_dot_resolver(lab: Lab, tunnel: Tunnel, **kw: object) -> LoggingResolver:
    """The tunnel's DoT resolver on its server addresses, answering like the VPN resolver."""
    return start_dot_resolver(lab, lab.vpn_ns, (tunnel.server4, tunnel.server6),
                              name=f"vpn{tunnel.index}-dot", **kw)  # type: ignore[arg-type]


def start_tls_stub(lab: Lab, upstream: str | Sequence[str], cert: Path, *, listen: str = "127.0.0.1",
                   port: int = STUB_PORT, ns: str | None = None, name: str = "stub",
                   timeout: float = 15) -> LoggingResolver:
    """An encrypting stub in the client (unbound, ``listen``:``port``) forwarding only over TLS.

    Plays the article's dnscrypt-proxy: programs ask it in plain DNS on
    loopback, it asks ``upstream``:853 over TLS, verifying ``cert`` for DOT_NAME.
    Its log shows what programs asked; the upstream's log, what left the box.
    """
    upstreams = (upstream,) if isinstance(upstream, str) else tuple(upstream)
    work = lab.tmp / "dns"
    work.mkdir(exist_ok=True)
    server = [f"interface: {listen}@{port}", f'tls-cert-bundle: "{cert}"', "tcp-upstream: no"]
    tail = ["forward-zone:", '  name: "."', "  forward-tls-upstream: yes",
            *(f"  forward-addr: {a}@853#{DOT_NAME}" for a in upstreams)]
    conf = _unbound_conf(work, name, server, tail)
    return _start_unbound(lab, ns or lab.client_ns, name, conf, (listen,), port, "", "", timeout)

