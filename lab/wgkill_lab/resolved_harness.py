"""A real systemd-resolved as the lab client's system resolver, installed nowhere.

``start_resolved`` runs the systemd-resolved daemon in the client namespace,
without installing the package (which would take over the machine's own
/etc/resolv.conf): its files come from the lab's package cache (``bundles``),
and the daemon runs in a private mount namespace with its own /run (private
D-Bus system bus, /run/systemd/resolve) and an overlay on /etc (resolv.conf ->
the stub, the ``systemd-resolve`` user, the bus policy). Nothing is written to
the real /etc or /run; everything lives in the lab's namespaces and
``lab.tmp`` and goes away with ``lab.close()``.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .bundles import bundle_root, checked, multiarch_libs
from .netns import ETC_NETNS, WG_SOCKETS, Lab, LabError, TimedOut, Tunnel, wait_until
from .resolvers import ISP_DNS4, stop_process

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
            return checked(self.argv(*argv), timeout=timeout, env=self.env(), stdin=stdin)
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
            stop_process(proc)
        stop_process(self.anchor, signal.SIGKILL)


def start_resolved(lab: Lab, *, uplink_dns: Sequence[str] = (ISP_DNS4,), cache: bool = False,
                   resolvconf: bool = True, log_level: str = "info", timeout: float = 15) -> ResolvedHandle:
    """Start systemd-resolved as the client's system resolver; the uplink gets ``uplink_dns``.

    Needs the unpacked package (``python -m wgkill_lab.bundles fetch``). ``cache``
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
    lab.adopt(anchor)
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

    def up() -> bool:
        if anchor.poll() is not None:
            raise LabError(f"unshare --mount exited {anchor.returncode}")
        try:
            cmd = Path(f"/proc/{anchor.pid}/cmdline").read_bytes().split(b"\0")[0]
            return cmd.endswith(b"sleep") and os.stat(f"/proc/{anchor.pid}/ns/mnt").st_ino != own
        except OSError:
            return False

    wait_until(up, 5, "the private mount namespace", interval=0.025)


def _private_mounts(handle: ResolvedHandle) -> None:
    """A tmpfs /run and an overlay /etc, visible to this mount namespace only.

    The wireguard socket directory and the client's /etc/wireguard (which
    ``ip netns exec`` bind-mounts) stay the real ones, so the lab sees the
    tunnels wg-quick brings up here.
    """
    lab, pid = handle.lab, str(handle.pid)

    def mount(*args: str) -> None:
        checked(["nsenter", "-t", pid, "-m", "--", "mount", *args], env=lab.env())

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
    libs = multiarch_libs(handle.root)
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
    handle.lab.adopt(proc)
    handle.daemons.append(proc)
    return proc


def _start_bus(handle: ResolvedHandle, timeout: float) -> None:
    """The machine's own system bus config, on the private /run/dbus/system_bus_socket."""
    proc = _spawn(handle, "dbus", "dbus-daemon", "--system", "--nofork", "--nopidfile")
    socket_path = handle.path("/run/dbus/system_bus_socket")

    def up() -> bool:
        if proc.poll() is not None:
            raise LabError(f"dbus-daemon exited: {(handle.work / 'dbus.log').read_text()[-400:]}")
        return socket_path.exists()

    wait_until(up, timeout, "dbus-daemon's socket", interval=0.025)


def _start_daemon(handle: ResolvedHandle, log_level: str, timeout: float) -> None:
    env = handle.env()
    env["SYSTEMD_LOG_LEVEL"] = log_level
    env["SYSTEMD_LOG_TARGET"] = "console"
    proc = _spawn(handle, "resolved", str(handle.root / "lib" / "systemd" / "systemd-resolved"), env=env)

    def ready() -> bool:
        if proc.poll() is not None:
            raise LabError(f"systemd-resolved exited {proc.returncode}: {handle.log()[-400:]}")
        return (handle.run("resolvectl", "status", check=False, timeout=10).returncode == 0
                and handle.path("/run/systemd/resolve/stub-resolv.conf").exists())

    try:
        wait_until(ready, timeout, "systemd-resolved ready")
    except TimedOut as exc:
        raise TimedOut(f"{exc}: {handle.log()[-400:]}") from None

