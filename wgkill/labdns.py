"""DNS for the namespace lab: resolvers that testify, and a real systemd-resolved.

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

dnsmasq serves plain DNS (UDP and TCP on 53); unbound serves DNS over TLS
(853), and as a client-side encrypting stub forwards over TLS to it.

``start_resolved`` runs the real systemd-resolved daemon in the client
namespace, without installing the package (which would take over the
machine's own /etc/resolv.conf): its files are unpacked from the .deb into a
cache, and the daemon runs in a private mount namespace with its own /run
(private D-Bus system bus, /run/systemd/resolve) and an overlay on /etc
(resolv.conf -> the stub, the ``systemd-resolve`` user, the bus policy).
Nothing is written to the real /etc or /run; everything lives in the lab's
namespaces and ``lab.tmp`` and goes away with ``lab.close()``.

The cache is filled by ``python -m wgkill.labdns fetch``, which must run
outside ``unshare --net`` (the lab's own process has no network).
"""

import argparse
import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .lab import ETC_NETNS, WG_SOCKETS, Lab, LabError, Tunnel

CACHE_DIR = Path(os.environ.get("WGKILL_LAB_CACHE", "/var/cache/wgkill-lab"))

ISP_DNS4, ISP_DNS6 = "203.0.113.53", "2001:db8:53::53"
LAN_DNS4, LAN_DNS6 = "192.0.2.1", "2001:db8:c::1"

# What each resolver answers for every name: who answered is visible in the answer.
ISP_ANSWER4, ISP_ANSWER6 = "203.0.113.77", "2001:db8:113::77"
LAN_ANSWER4, LAN_ANSWER6 = "192.0.2.7", "2001:db8:c::7"
VPN_ANSWER4, VPN_ANSWER6 = "198.51.100.77", "2001:db8:77::77"

STUB_PORT = 5300
DOT_NAME = "dns.vpn.test"  # the name in the DoT resolver's self-signed certificate

# Unpacked (never installed) Debian packages: bundle -> packages, all of one version when pinned.
BUNDLES: dict[str, tuple[tuple[str, ...], bool]] = {
    # systemd-resolved must run with the libsystemd-shared of its own build.
    "resolved": (("systemd-resolved", "libsystemd-shared"), True),
    # unbound's package starts a system-wide daemon when installed; unpacking it does not.
    "unbound": (("unbound", "libprotobuf-c1"), False),
    # openresolv, for the resolvconf cooperation tests: run from a copy, never installed.
    "openresolv": (("openresolv",), False),
}


# Binaries from installed Debian packages (dnsmasq-base, bind9-dnsutils, util-linux, openssl,
# iproute2, dbus-daemon, libc-bin); the unpacked bundles are checked by bundle_root().
BINARIES = ("dnsmasq", "dig", "nsenter", "unshare", "openssl", "ss", "dbus-daemon", "getent")


def missing_binaries() -> list[str]:
    """What this module runs that is not installed (`make deps` installs it)."""
    return [b for b in BINARIES if shutil.which(b) is None]


# ---- the package cache ----------------------------------------------------

def bundle_root(bundle: str, cache: Path | None = None) -> Path:
    """The unpacked tree of ``bundle``; fails with one line saying how to fill the cache."""
    base = (cache or CACHE_DIR) / bundle
    if not (base / "MANIFEST").is_file():
        raise LabError(f"{bundle} is not unpacked in {base.parent}: run `python -m wgkill.labdns fetch` "
                       "outside the lab (it needs the network; `make deps` does it)")
    return base / "root"


def fetch(bundles: Sequence[str] = tuple(BUNDLES), cache: Path | None = None, *,
          refresh: bool = False) -> list[Path]:
    """Download and unpack the bundles' packages once; later runs reuse the cache (downloads are slow)."""
    cache = cache or CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    roots = []
    with _locked(cache / ".lock"):
        for bundle in bundles:
            base = cache / bundle
            if refresh or not (base / "MANIFEST").is_file():
                _unpack_bundle(bundle, base)
            roots.append(base / "root")
    return roots


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_env() -> dict[str, str]:
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
            "DEBIAN_FRONTEND": "noninteractive"}


def _candidate(package: str) -> str | None:
    done = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True,
                          text=True, env=_apt_env(), check=False)
    match = re.search(r"^Version: (\S+)$", done.stdout, re.M)
    return match.group(1) if match else None


def _download(packages: Sequence[str], pinned: bool, into: Path) -> None:
    """``apt-get download`` the packages (all at the first one's candidate version when pinned)."""
    version = _candidate(packages[0])
    if version is None:
        raise LabError(f"apt knows no package {packages[0]}")
    wanted = [f"{p}={version}" if pinned else p for p in packages]
    # Sandbox::User=root: _apt cannot write into a root-only staging directory.
    _checked(["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", *wanted], cwd=into, timeout=600)


def _unpack_bundle(bundle: str, base: Path) -> None:
    packages, pinned = BUNDLES[bundle]
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle}-", dir=base.parent))
    try:
        debs = staging / "debs"
        debs.mkdir()
        try:
            _download(packages, pinned, debs)
        except LabError:  # a fresh machine's lists are missing or stale: refresh them once
            _checked(["apt-get", "update", "-qq"], timeout=600)
            _download(packages, pinned, debs)
        manifest = []
        for deb in sorted(debs.glob("*.deb")):
            _checked(["dpkg-deb", "-x", str(deb), str(staging / "root")])
            fields = _checked(["dpkg-deb", "-f", str(deb), "Package", "Version"]).stdout.split()
            manifest.append(" ".join(fields[1::2]))
        shutil.rmtree(debs)
        (staging / "MANIFEST").write_text("\n".join(manifest) + "\n")
        staging.chmod(0o755)
        if base.exists():
            shutil.rmtree(base)
        staging.rename(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checked(argv: list[str], *, cwd: Path | None = None, timeout: float = 120,
             env: Mapping[str, str] | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False,
                          env=dict(env) if env is not None else _apt_env(), input=stdin)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def _multiarch_libs(root: Path) -> Path:
    """The unpacked tree's lib directory (x86_64-linux-gnu, aarch64-linux-gnu, ...)."""
    found = sorted((root / "usr" / "lib").glob("*-linux-*"))
    if not found:
        raise LabError(f"no multiarch library directory under {root}/usr/lib")
    return found[0]


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
class Resolver:
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
        _stop(self.proc)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _adopt(lab: Lab, proc: subprocess.Popen[str]) -> None:
    """Have ``lab.close()`` kill and reap ``proc`` (it would kill it anyway, but not reap it)."""
    lab.adopt(proc)


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
                   answer4: str = "", answer6: str = "", timeout: float = 10) -> Resolver:
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
    _adopt(lab, proc)
    resolver = Resolver(name=name, ns=ns, listen=addresses, answer4=answer4, answer6=answer6,
                        log_path=log_path, proc=proc)
    _wait_listening(lab, resolver, proc, timeout)
    return resolver


def _wait_listening(lab: Lab, resolver: Resolver, proc: subprocess.Popen[str], timeout: float) -> None:
    """Until every address is bound: a test's first query must not race the start."""
    protocol = "-tln" if resolver.kind == "unbound" else "-uln"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            log = resolver.log_path.read_text() if resolver.log_path.exists() else ""
            raise LabError(f"{resolver.name} ({resolver.kind}) exited {proc.returncode}: "
                           f"{(err + log).strip()[-400:]}")
        bound = lab.run(resolver.ns, "ss", "-H", protocol, check=False).stdout
        wanted = [str(ipaddress.ip_address(a)) for a in resolver.listen]  # as ss spells them
        if all(re.search(rf"[\s\[]{re.escape(a)}(%\S+)?\]?:{resolver.port}\s", bound) for a in wanted):
            return
        time.sleep(0.05)
    _stop(proc)
    raise LabError(f"{resolver.name} did not listen on {', '.join(resolver.listen)} within {timeout}s")


def _add_address(lab: Lab, ns: str, dev: str, address: str) -> None:
    if address not in lab.run(ns, "ip", "-o", "addr", "show", "dev", dev).stdout:
        extra = ["nodad"] if ":" in address else []
        lab.run(ns, "ip", "addr", "add", f"{address}/{128 if ':' in address else 32}", "dev", dev, *extra)


def start_isp_resolver(lab: Lab, **kw: object) -> Resolver:
    """The uplink's resolver (203.0.113.53, 2001:db8:53::53 on the isp's lo), answering 203.0.113.77."""
    for address in (ISP_DNS4, ISP_DNS6):
        _add_address(lab, lab.isp_ns, "lo", address)
    return start_resolver(lab, lab.isp_ns, (ISP_DNS4, ISP_DNS6), name="isp", answer4=ISP_ANSWER4,
                          answer6=ISP_ANSWER6, **kw)  # type: ignore[arg-type]


def start_lan_resolver(lab: Lab, **kw: object) -> Resolver:
    """The home router's resolver: the client's on-link gateway (192.0.2.1 on cust0), answering 192.0.2.7."""
    return start_resolver(lab, lab.isp_ns, (LAN_DNS4, LAN_DNS6), name="lan", answer4=LAN_ANSWER4,
                          answer6=LAN_ANSWER6, **kw)  # type: ignore[arg-type]


def start_vpn_resolver(lab: Lab, tunnel: Tunnel, **kw: object) -> Resolver:
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
    env["LD_LIBRARY_PATH"] = str(_multiarch_libs(root))
    return env


def make_certificate(directory: Path, name: str = DOT_NAME,
                     addresses: Sequence[str] = ()) -> tuple[Path, Path]:
    """A self-signed certificate for the DoT resolver; (cert, key). Clients pin it as their CA."""
    cert, key = directory / "dot-cert.pem", directory / "dot-key.pem"
    san = ",".join([f"DNS:{name}", *(f"IP:{a}" for a in addresses)])
    _checked(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
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
                   answer4: str, answer6: str, timeout: float) -> Resolver:
    binary = bundle_root("unbound") / "usr" / "sbin" / "unbound"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, str(binary), "-d", "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_unbound_env(lab))
    _adopt(lab, proc)
    resolver = Resolver(name=name, ns=ns, listen=listen, answer4=answer4, answer6=answer6,
                        log_path=conf.parent / f"{name}.log", proc=proc, kind="unbound", port=port)
    _wait_listening(lab, resolver, proc, timeout)
    return resolver


def start_dot_resolver(lab: Lab, ns: str, listen: str | Sequence[str], *, name: str,
                       answer4: str = VPN_ANSWER4, answer6: str = VPN_ANSWER6,
                       cert: tuple[Path, Path] | None = None, timeout: float = 15) -> Resolver:
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


def start_vpn_dot_resolver(lab: Lab, tunnel: Tunnel, **kw: object) -> Resolver:
    """The tunnel's DoT resolver on its server addresses, answering like the VPN resolver."""
    return start_dot_resolver(lab, lab.vpn_ns, (tunnel.server4, tunnel.server6),
                              name=f"vpn{tunnel.index}-dot", **kw)  # type: ignore[arg-type]


def start_tls_stub(lab: Lab, upstream: str | Sequence[str], cert: Path, *, listen: str = "127.0.0.1",
                   port: int = STUB_PORT, ns: str | None = None, name: str = "stub",
                   timeout: float = 15) -> Resolver:
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


# ---- systemd-resolved --------------------------------------------------------

RESOLVED_CONF = """[Resolve]
# The lab's resolved: no fallback servers (nothing outside the lab), no multicast
# protocols, and {cache} so that every lookup reaches a resolver that logs it.
DNS=
FallbackDNS=
Domains=
LLMNR=no
MulticastDNS=no
DNSSEC=no
DNSOverTLS=no
Cache={cache_value}
DNSStubListener=yes
ReadEtcHosts=no
"""


@dataclass
class ResolvedHandle:
    """systemd-resolved (and its D-Bus system bus) in the client, in a private mount namespace."""

    lab: Lab
    anchor: subprocess.Popen[str]
    root: Path
    work: Path
    bin_dir: Path
    daemons: list[subprocess.Popen[str]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The process whose mount and network namespaces are resolved's."""
        return self.anchor.pid

    def path(self, inner: str) -> Path:
        """``inner`` as seen inside the private mount namespace (through /proc/PID/root)."""
        return Path(f"/proc/{self.pid}/root") / inner.lstrip("/")

    def env(self) -> dict[str, str]:
        env = self.lab.env()
        env["PATH"] = f"{self.bin_dir}:{env['PATH']}"
        env.update(self.extra_env)
        return env

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "--", *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` where resolved is the system resolver: the client netns + the private mounts.

        ``resolvectl``, ``resolvconf`` (resolved's compatibility mode, as the
        package installs it) and ``getent`` all reach this resolved.
        """
        if self.anchor.poll() is not None:
            raise LabError("resolved's namespace is gone (stopped?)")
        if check:
            return _checked(self.argv(*argv), timeout=timeout, env=self.env(), stdin=stdin)
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout, check=False,
                              env=self.env(), input=stdin)

    def resolvectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("resolvectl", *args, check=check)

    def wg_quick(self, verb: str, tunnel: Tunnel, check: bool = True) -> subprocess.CompletedProcess[str]:
        """wg-quick as on a resolved machine: its hooks see resolved, the stub resolv.conf and the bus."""
        return self.run("wg-quick", verb, tunnel.iface, check=check, timeout=90)

    def link_dns(self, iface: str) -> list[str]:
        """The DNS servers resolved has for ``iface``."""
        out = self.resolvectl("dns", iface).stdout
        return out.split(":", 1)[1].split() if ":" in out else []

    def link_domains(self, iface: str) -> list[str]:
        out = self.resolvectl("domain", iface).stdout
        return out.split(":", 1)[1].split() if ":" in out else []

    def log(self) -> str:
        path = self.work / "resolved.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop resolved, its bus and the namespace holder; the private mounts vanish with them."""
        for proc in reversed(self.daemons):
            _stop(proc)
        _stop(self.anchor, signal.SIGKILL)


def start_resolved(lab: Lab, *, uplink_dns: Sequence[str] = (ISP_DNS4,), cache: bool = False,
                   resolvconf: bool = True, log_level: str = "info", timeout: float = 15) -> ResolvedHandle:
    """Start systemd-resolved as the client's system resolver; the uplink gets ``uplink_dns``.

    Needs the unpacked package (``python -m wgkill.labdns fetch``). ``cache``
    off by default so each lookup reaches (and is logged by) a resolver.
    ``resolvconf``: put resolved's ``resolvconf`` emulation on PATH, as the
    package does, so wg-quick's ``DNS =`` goes through resolved.
    """
    root = bundle_root("resolved")
    work = Path(tempfile.mkdtemp(prefix="resolved-", dir=lab.tmp))  # a restart gets a fresh one
    bin_dir = work / "bin"
    bin_dir.mkdir()
    resolvectl = root / "usr" / "bin" / "resolvectl"
    for alias in ("resolvectl", "systemd-resolve", *(["resolvconf"] if resolvconf else [])):
        (bin_dir / alias).symlink_to(resolvectl)
    anchor = subprocess.Popen(
        ["ip", "netns", "exec", lab.client_ns, "unshare", "--mount", "--propagation", "private", "--",
         "sleep", "infinity"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True, env=lab.env())
    _adopt(lab, anchor)
    handle = ResolvedHandle(lab=lab, anchor=anchor, root=root, work=work, bin_dir=bin_dir)
    try:
        _wait_anchor(anchor)
        _private_mounts(handle)
        _configure_etc(handle, cache)
        _start_bus(handle, timeout)
        _start_daemon(handle, log_level, timeout)
        if uplink_dns:
            handle.resolvectl("dns", "uplink0", *uplink_dns)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_anchor(anchor: subprocess.Popen[str]) -> None:
    """Until ``sleep`` runs: then the private mount namespace exists and is anchor's."""
    own = os.stat("/proc/self/ns/mnt").st_ino
    for _ in range(200):
        if anchor.poll() is not None:
            raise LabError(f"unshare --mount exited {anchor.returncode}")
        try:
            cmd = Path(f"/proc/{anchor.pid}/cmdline").read_bytes().split(b"\0")[0]
            if cmd.endswith(b"sleep") and os.stat(f"/proc/{anchor.pid}/ns/mnt").st_ino != own:
                return
        except OSError:
            pass
        time.sleep(0.025)
    raise LabError("the private mount namespace did not come up")


def _private_mounts(handle: ResolvedHandle) -> None:
    """A tmpfs /run and an overlay /etc, visible to this mount namespace only.

    The wireguard socket directory and the client's /etc/wireguard (which
    ``ip netns exec`` bind-mounts) stay the real ones, so the lab sees the
    tunnels wg-quick brings up here.
    """
    lab, pid = handle.lab, str(handle.pid)

    def mount(*args: str) -> None:
        _checked(["nsenter", "-t", pid, "-m", "--", "mount", *args], env=lab.env())

    scratch = handle.work / "scratch"
    scratch.mkdir()
    mount("-t", "tmpfs", "-o", "mode=0700", "wgkill-lab", str(scratch))
    inner = handle.path(str(scratch))
    for sub in ("upper", "work", "wg-conf", "wg-run"):
        (inner / sub).mkdir()
    run_wireguard = Path(os.path.realpath(WG_SOCKETS))
    run_wireguard.mkdir(mode=0o755, parents=True, exist_ok=True)  # as wg-quick itself would
    mount("--bind", str(ETC_NETNS / lab.client_ns / "wireguard"), str(scratch / "wg-conf"))
    mount("--bind", str(run_wireguard), str(scratch / "wg-run"))
    mount("-t", "overlay", "-o", f"lowerdir=/etc,upperdir={scratch}/upper,workdir={scratch}/work",
          "wgkill-lab-etc", "/etc")
    mount("-t", "tmpfs", "-o", "mode=0755", "wgkill-lab-run", "/run")
    for directory in ("/run/dbus", "/run/systemd", str(run_wireguard), "/etc/wireguard"):
        handle.path(directory).mkdir(parents=True, exist_ok=True)
    mount("--move", str(scratch / "wg-run"), str(run_wireguard))
    mount("--move", str(scratch / "wg-conf"), "/etc/wireguard")
    libs = _multiarch_libs(handle.root)
    for lib in (libs / "systemd").glob("libsystemd-shared-*.so"):
        target = Path("/usr/lib") / libs.name / "systemd" / lib.name
        if target.exists():  # resolved needs the libsystemd-shared of its own build
            mount("--bind", str(lib), str(target))
        else:
            handle.extra_env["LD_LIBRARY_PATH"] = str(lib.parent)


def _configure_etc(handle: ResolvedHandle, cache: bool) -> None:
    """In the overlay: resolv.conf -> the stub (as on a resolved machine), the user, the bus policy."""
    resolv = handle.path("/etc/resolv.conf")
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    passwd, group = handle.path("/etc/passwd"), handle.path("/etc/group")
    users = passwd.read_text()
    if not re.search(r"^systemd-resolve:", users, re.M):
        used = {int(f[2]) for f in (ln.split(":") for ln in (users + group.read_text()).splitlines())
                if len(f) > 2 and f[2].isdigit()}
        uid = next(n for n in range(999, 100, -1) if n not in used)
        with passwd.open("a") as out:
            out.write(f"systemd-resolve:x:{uid}:{uid}:systemd Resolver:/:/usr/sbin/nologin\n")
        with group.open("a") as out:
            out.write(f"systemd-resolve:x:{uid}:\n")
    policy = handle.root / "usr" / "share" / "dbus-1" / "system.d" / "org.freedesktop.resolve1.conf"
    system_d = handle.path("/etc/dbus-1/system.d")
    system_d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(policy, system_d / policy.name)
    conf = handle.path("/etc/systemd/resolved.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(RESOLVED_CONF.format(cache="caching on" if cache else "caching off",
                                         cache_value="yes" if cache else "no"))


def _spawn(handle: ResolvedHandle, name: str, *argv: str,
           env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    log = open(handle.work / f"{name}.log", "w")  # handed to the child, closed here once it has it
    try:
        proc = subprocess.Popen(handle.argv(*argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                text=True, env=dict(env) if env is not None else handle.env())
    finally:
        log.close()
    _adopt(handle.lab, proc)
    handle.daemons.append(proc)
    return proc


def _start_bus(handle: ResolvedHandle, timeout: float) -> None:
    """The machine's own system bus config, on the private /run/dbus/system_bus_socket."""
    proc = _spawn(handle, "dbus", "dbus-daemon", "--system", "--nofork", "--nopidfile")
    socket_path = handle.path("/run/dbus/system_bus_socket")
    deadline = time.monotonic() + timeout
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"dbus-daemon did not start: {(handle.work / 'dbus.log').read_text()[-400:]}")
        time.sleep(0.025)


def _start_daemon(handle: ResolvedHandle, log_level: str, timeout: float) -> None:
    env = handle.env()
    env["SYSTEMD_LOG_LEVEL"] = log_level
    env["SYSTEMD_LOG_TARGET"] = "console"
    proc = _spawn(handle, "resolved", str(handle.root / "lib" / "systemd" / "systemd-resolved"), env=env)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"systemd-resolved exited {proc.returncode}: {handle.log()[-400:]}")
        ready = handle.run("resolvectl", "status", check=False, timeout=10).returncode == 0
        if ready and handle.path("/run/systemd/resolve/stub-resolv.conf").exists():
            return
        if time.monotonic() > deadline:
            raise LabError(f"systemd-resolved not ready within {timeout}s: {handle.log()[-400:]}")
        time.sleep(0.05)


# ---- command line -------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgkill.labdns")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and unpack the lab's unpacked packages (needs the network)")
    f.add_argument("--cache", type=Path, default=None)
    f.add_argument("--refresh", action="store_true")
    f.add_argument("bundles", nargs="*", metavar="BUNDLE", help=f"default: all of {', '.join(BUNDLES)}")
    args = parser.parse_args(argv)
    unknown = set(args.bundles) - set(BUNDLES)
    if unknown:
        parser.error(f"unknown bundle(s): {' '.join(sorted(unknown))}")
    try:
        for root in fetch(args.bundles or list(BUNDLES), args.cache, refresh=args.refresh):
            print(f"{root.parent.name}: {root}  ({' '.join((root.parent / 'MANIFEST').read_text().split())})")
    except LabError as exc:
        print(f"labdns fetch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
