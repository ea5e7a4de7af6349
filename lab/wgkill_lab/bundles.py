"""The lab's cache of unpacked Debian packages: programs the lab runs but never installs.

systemd-resolved, unbound and openresolv would take over the machine (its
/etc/resolv.conf, a system-wide daemon) if installed, so their .debs are
downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a
cache (``WGKILL_LAB_CACHE``, default /var/cache/wgkill-lab), one tree per
bundle, and run from there inside the lab's namespaces.

The cache is filled by ``python -m wgkill_lab.bundles fetch``, which must run
outside ``unshare --net`` (the lab's own process has no network).
"""

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .netns import LabError

CACHE_DIR = Path(os.environ.get("WGKILL_LAB_CACHE", "/var/cache/wgkill-lab"))

# Unpacked (never installed) Debian packages: bundle -> packages, all of one version when pinned.
BUNDLES: dict[str, tuple[tuple[str, ...], bool]] = {
    # systemd-resolved must run with the libsystemd-shared of its own build.
    "resolved": (("systemd-resolved", "libsystemd-shared"), True),
    # unbound's package starts a system-wide daemon when installed; unpacking it does not.
    "unbound": (("unbound", "libprotobuf-c1"), False),
    # openresolv, for the resolvconf cooperation tests: run from a copy, never installed.
    "openresolv": (("openresolv",), False),
    # promtool, for the alert rules' tests: the prometheus package would add a user and a server.
    "prometheus": (("prometheus",), False),
}


def bundle_root(bundle: str, cache: Path | None = None) -> Path:
    """The unpacked tree of ``bundle``; fails with one line saying how to fill the cache."""
    base = (cache or CACHE_DIR) / bundle
    if not (base / "MANIFEST").is_file():
        raise LabError(f"{bundle} is not unpacked in {base.parent}: run `python -m wgkill_lab.bundles fetch` "
                       "outside the lab (it needs the network; `make deps` does it)")
    return base / "root"


def fetch(bundles: Sequence[str] = tuple(BUNDLES), cache: Path | None = None, *,
          refresh: bool = False) -> list[Path]:
    """Download and unpack the bundles' packages once; later runs reuse the cache (downloads are slow)."""
    cache = cache or CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    roots = []
    with locked(cache / ".lock"):
        for bundle in bundles:
            base = cache / bundle
            if refresh or not (base / "MANIFEST").is_file():
                _unpack_bundle(bundle, base)
            roots.append(base / "root")
    return roots


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing): labs on one machine take turns."""
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
    checked(["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", *wanted], cwd=into, timeout=600)


def _unpack_bundle(bundle: str, base: Path) -> None:
    packages, pinned = BUNDLES[bundle]
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle}-", dir=base.parent))
    try:
        debs = staging / "debs"
        debs.mkdir()
        try:
            _download(packages, pinned, debs)
        except LabError:  # a fresh machine's lists are missing or stale: refresh them once
            checked(["apt-get", "update", "-qq"], timeout=600)
            _download(packages, pinned, debs)
        manifest = []
        for deb in sorted(debs.glob("*.deb")):
            checked(["dpkg-deb", "-x", str(deb), str(staging / "root")])
            fields = checked(["dpkg-deb", "-f", str(deb), "Package", "Version"]).stdout.split()
            manifest.append(" ".join(fields[1::2]))
        shutil.rmtree(debs)
        (staging / "MANIFEST").write_text("\n".join(manifest) + "\n")
        staging.chmod(0o755)
        if base.exists():
            shutil.rmtree(base)
        staging.rename(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def checked(argv: list[str], *, cwd: Path | None = None, timeout: float = 120,
            env: Mapping[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; its output, or a LabError with the command and the tail of its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False,
                          env=dict(env) if env is not None else _apt_env(), input=stdin)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def multiarch_libs(root: Path) -> Path:
    """The unpacked tree's lib directory (x86_64-linux-gnu, aarch64-linux-gnu, ...)."""
    found = sorted((root / "usr" / "lib").glob("*-linux-*"))
    if not found:
        raise LabError(f"no multiarch library directory under {root}/usr/lib")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgkill_lab.bundles")
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
        print(f"bundles fetch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
