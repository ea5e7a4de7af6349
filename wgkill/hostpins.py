"""Pinning hostname endpoints in /etc/hosts for the one moment wg-quick needs them.

After an unclean drop the block holds and, when wgkill pointed DNS at the
tunnel, the only resolver the host knows is unreachable: ``wg setconf`` can
then not resolve ``Endpoint = vpn.example.com:51820`` and ``wg-quick up``
fails. ``PreUp = wgkill-pin %i`` writes the addresses recorded when the
tunnel last came up into /etc/hosts (tagged lines, nothing else touched), so
the lookup needs no DNS at all; ``wgkill-up`` (PostUp) and ``wgkill-down``
remove them again. With no block held there is nothing recorded and
``wgkill-pin`` does nothing: a first bring-up resolves normally.

Both functions may be called any number of times.
"""

from pathlib import Path

from . import state as statefile
from .errors import StateError
from .fileio import write_atomic

HOSTS = Path("/etc/hosts")


def _tag(interface: str) -> str:
    return f"# wgkill-pin:{interface}"


def _without_pins(text: str, interface: str) -> str:
    tag = _tag(interface)
    return "".join(ln for ln in text.splitlines(keepends=True) if not ln.rstrip().endswith(tag))


def pin(interface: str, path: Path = HOSTS) -> list[str]:
    """Write the recorded name -> address pairs; return the lines written."""
    try:
        recorded = statefile.load(interface)
    except StateError:
        return []  # a corrupt state pins nothing; wgkill-down reports it
    pairs = [(e.address, e.name) for e in (recorded.endpoints if recorded else ()) if e.name]
    current = path.read_text() if path.exists() else ""
    kept = _without_pins(current, interface)
    lines = [f"{address} {name} {_tag(interface)}\n" for address, name in pairs]
    if kept + "".join(lines) != current:
        if kept and not kept.endswith("\n"):
            kept += "\n"
        write_atomic(path, (kept + "".join(lines)).encode(), _mode(path), in_place=True)
    return [ln.rstrip("\n") for ln in lines]


def unpin(interface: str, path: Path = HOSTS) -> bool:
    """Remove our tagged lines for ``interface``; True if there were any."""
    try:
        current = path.read_text()
    except OSError:
        return False
    kept = _without_pins(current, interface)
    if kept == current:
        return False
    write_atomic(path, kept.encode(), _mode(path), in_place=True)
    return True


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o644
