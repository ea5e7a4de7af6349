"""openresolv for the namespace lab: a real ``resolvconf`` in the client, installed nowhere.

wg-quick hands a config's ``DNS =`` to ``resolvconf -a IFACE -m 0 -x``, and wgkill's
resolvconf backend must cooperate with exactly that. To prove it against the real
program, the openresolv package is unpacked into the lab's package cache
(``python -m wgkill_lab.bundles fetch openresolv``) and configured per lab the way
its own build would be (``./configure --sysconfdir --libexecdir --rundir
--restartcmd``): its two shell scripts are copied into ``lab.tmp`` with those four
paths pointing there, so its config, its state and its ``.bak`` never touch the
machine's /etc or /run, and it restarts no service.

The resolv.conf it manages is the client's: ``/etc/netns/CLIENT/resolv.conf``
becomes a symlink to a file in ``lab.tmp``, which ``ip netns exec`` bind-mounts as
the client's /etc/resolv.conf (mount follows the link), so glibc in the client
reads what openresolv writes.
"""

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundles import bundle_root
from .netns import ETC_NETNS, Lab, LabError, Tunnel
from .resolvers import ISP_DNS4

BUNDLE = "openresolv"


@dataclass
class OpenResolv:
    """openresolv configured for one lab's client; ``run``/``wg_quick`` put it on PATH."""

    lab: Lab
    prefix: Path
    resolv_conf: Path  # the file the client sees as /etc/resolv.conf

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    def env(self) -> dict[str, str]:
        env = self.lab.env()
        env["PATH"] = f"{self.bin_dir}:{env['PATH']}"
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``argv`` in the client, with this resolvconf first on PATH (as if installed)."""
        done = subprocess.run(["ip", "netns", "exec", self.lab.client_ns, *argv], capture_output=True,
                              text=True, timeout=timeout, env=self.env(), input=stdin, check=False)
        if check and done.returncode != 0:
            raise LabError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()[-500:]}")
        return done

    def resolvconf(self, *args: str, stdin: str | None = None,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("resolvconf", *args, stdin=stdin, check=check)

    def wg_quick(self, verb: str, tunnel: Tunnel, check: bool = True) -> subprocess.CompletedProcess[str]:
        """wg-quick as on a machine with openresolv: ``DNS =`` and the hooks find this resolvconf."""
        return self.run("wg-quick", verb, tunnel.iface, check=check, timeout=90)

    def records(self) -> list[str]:
        """The interfaces openresolv holds DNS information for (``resolvconf -i``)."""
        return sorted(self.resolvconf("-i", check=False).stdout.split())


def _configured(script: Path, prefix: Path, *, main: bool) -> str:
    """``script`` with the package's build-time paths replaced by the lab's."""
    text = script.read_text()
    wanted = {
        "SYSCONFDIR=/etc": f"SYSCONFDIR={prefix / 'etc'}",
        "LIBEXECDIR=/lib/resolvconf": f"LIBEXECDIR={prefix / 'lib'}",
        "VARDIR=/run/resolvconf": f"VARDIR={prefix / 'run'}",
    }
    if main:
        wanted["RESTARTCMD="] = "RESTARTCMD=:"  # the lab has no service to restart
    for old, new in wanted.items():
        line = f"\n{old}\n"
        if line not in text:
            raise LabError(f"{script}: no line {old!r}: an openresolv this module does not know")
        text = text.replace(line, f"\n{new}\n", 1)
    return text.replace("/sbin/resolvconf", str(prefix / "bin" / "resolvconf"))


def install(lab: Lab, *, uplink_dns: Sequence[str] = (ISP_DNS4,)) -> OpenResolv:
    """openresolv manages the client's resolv.conf from now on; the uplink's DNS is registered
    the way a DHCP client's hook does (``resolvconf -a uplink0``), so resolv.conf is its output.

    Everything lives in ``lab.tmp`` and /etc/netns/CLIENT and goes with ``lab.close()``.
    """
    root = bundle_root(BUNDLE)
    prefix = lab.tmp / "openresolv"
    for sub in ("bin", "lib", "etc", "run"):
        (prefix / sub).mkdir(parents=True)
    main = prefix / "bin" / "resolvconf"
    main.write_text(_configured(root / "sbin" / "resolvconf", prefix, main=True))
    main.chmod(0o755)
    # Only the libc subscriber (resolv.conf); sourced, not executed, as the package ships it.
    libc = _configured(root / "lib" / "resolvconf" / "libc", prefix, main=False)
    (prefix / "lib" / "libc").write_text(libc)
    resolv_conf = prefix / "resolv.conf"
    (prefix / "etc" / "resolvconf.conf").write_text(
        "# openresolv for the wgkill lab\n"
        f"resolv_conf={resolv_conf}\n"
        f"state_dir={prefix / 'run'}\n"
        "libc_restart=:\n"
    )
    link = ETC_NETNS / lab.client_ns / "resolv.conf"
    resolv_conf.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(resolv_conf)
    handle = OpenResolv(lab=lab, prefix=prefix, resolv_conf=resolv_conf)
    if uplink_dns:
        handle.resolvconf("-a", "uplink0", stdin="".join(f"nameserver {s}\n" for s in uplink_dns))
    return handle

