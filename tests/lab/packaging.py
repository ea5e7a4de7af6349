"""What installing the .deb machine-wide may touch, for the tests that do (under the package lock)."""

import os
import subprocess
from pathlib import Path

APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends"]
HELPER_STATE = "/var/lib/systemd/deb-systemd-helper-enabled"  # deb-systemd-helper's record of enabling
# Where the package puts things, and where a sloppy one might: compared before and after.
WATCHED = (Path("/usr/sbin"), Path("/usr/bin"), Path("/lib/systemd/system"), Path("/usr/share/man/man8"),
           Path("/etc/systemd/system"), Path(HELPER_STATE), Path("/etc/default"))
SHALLOW = (Path("/usr/share/doc"), Path("/usr/lib/python3/dist-packages"))


def snapshot() -> set[str]:
    """Every path under WATCHED, and the names directly in SHALLOW."""
    seen: set[str] = set()
    for top in WATCHED:
        for dirpath, dirnames, filenames in os.walk(top):
            seen.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    for top in SHALLOW:
        seen.update(str(p) for p in top.iterdir())
    return seen


def installed(package: str = "wgkill") -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                          check=False)
    return done.returncode == 0 and done.stdout.endswith(" installed")
