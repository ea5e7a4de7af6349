"""The record of what wgkill applied, one JSON file per interface.

Written atomically (temp file, fsync, rename, fsync of the directory) with
mode 0600 in a 0700 directory, and only under ``lock()``, an exclusive flock
on one lock file, so concurrent hooks for wg0 and wg1 serialise instead of
losing each other's work. Reading never guesses: anything that is not a
state of a known version for the right interface is a StateError.
"""

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import fileio
from .errors import StateError

VERSION = 1
DEFAULT_DIR = "/var/lib/wgkill"
LOCK_NAME = ".lock"


def state_dir() -> Path:
    """``$WGKILL_STATE_DIR`` or /var/lib/wgkill (kept across reboots on purpose)."""
    return Path(os.environ.get("WGKILL_STATE_DIR") or DEFAULT_DIR)


@dataclass
class FamilyRecord:
    table: str
    chains: list[str]
    jumps: list[dict[str, str]]
    payload_sha256: str
    rules: int
    saved_sha256: str | None = None  # the chain as iptables-save prints it, read back after applying
    sets: list[str] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)  # chain -> rules, re-applied as is at boot
    remove_payload: str | None = None  # replayed by release when the table is as applied


@dataclass
class State:
    interface: str
    applied_at: str
    iptables_variant: str
    fwmark: int | None = None
    config: str | None = None
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    allowed_ips: list[str] = field(default_factory=list)
    families: dict[str, FamilyRecord] = field(default_factory=dict)
    dns: dict[str, Any] | None = None
    lockdown: bool = False
    allowed_ips_file: str | None = None
    routes: dict[str, Any] | None = None  # wgkill.routes.RouteRecord, when --routes set them up
    exclude: dict[str, Any] | None = None  # wgkill.exclude.ExclusionRecord, with --allow-exclude
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        raise StateError(f"cannot use state directory {directory}: {exc.strerror}") from exc


def path_for(interface: str, directory: Path | None = None) -> Path:
    return (directory or state_dir()) / f"{interface}.json"


@contextmanager
def lock(directory: Path | None = None) -> Iterator[None]:
    """Hold the state directory's exclusive lock for the duration of the block."""
    directory = directory or state_dir()
    _ensure_dir(directory)
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open lock file in {directory}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so a reader sees the old file or the new one, never half."""
    _ensure_dir(path.parent)
    try:
        fileio.write_atomic(path, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise StateError(f"cannot write state {path}: {exc.strerror}") from exc


def save(state: State, directory: Path | None = None) -> Path:
    path = path_for(state.interface, directory)
    write_atomic(path, state.to_json())
    return path


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise StateError(f"corrupt state file {path}: field {key!r} missing or invalid")
    return value


def load(interface: str, directory: Path | None = None) -> State | None:
    """The recorded state for ``interface``, None if nothing is recorded."""
    path = path_for(interface, directory)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"corrupt state file {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise StateError(f"corrupt state file {path}: not a JSON object")
    if data.get("version") != VERSION:
        raise StateError(f"state file {path} has unknown version {data.get('version')!r}")
    if _require(data, "interface", str, path) != interface:
        raise StateError(f"corrupt state file {path}: it records interface {data['interface']!r}")
    families = {}
    for name, record in _require(data, "families", dict, path).items():
        if name not in ("ipv4", "ipv6") or not isinstance(record, dict):
            raise StateError(f"corrupt state file {path}: bad family {name!r}")
        try:
            families[name] = FamilyRecord(**record)
        except TypeError as exc:
            raise StateError(f"corrupt state file {path}: bad record for {name}") from exc
        chains = families[name].chains
        if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
            raise StateError(f"corrupt state file {path}: bad chains for {name}")
    fwmark = data.get("fwmark")
    if fwmark is not None and not isinstance(fwmark, int):
        raise StateError(f"corrupt state file {path}: field 'fwmark' invalid")
    dns = data.get("dns")
    if dns is not None and not (
        isinstance(dns, dict) and isinstance(dns.get("record"), dict | None)
        and isinstance(dns.get("servers", []), list)
    ):
        raise StateError(f"corrupt state file {path}: field 'dns' invalid")
    return State(
        interface=interface,
        applied_at=_require(data, "applied_at", str, path),
        iptables_variant=_require(data, "iptables_variant", str, path),
        fwmark=fwmark,
        config=data.get("config"),
        endpoints=_require(data, "endpoints", list, path),
        allowed_ips=_require(data, "allowed_ips", list, path),
        families=families,
        dns=dns,
        lockdown=data.get("lockdown") is True,
        routes=data["routes"] if isinstance(data.get("routes"), dict) else None,
        exclude=data["exclude"] if isinstance(data.get("exclude"), dict) else None,
        allowed_ips_file=data["allowed_ips_file"] if isinstance(data.get("allowed_ips_file"), str) else None,
    )


def remove(interface: str, directory: Path | None = None) -> None:
    path = path_for(interface, directory)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StateError(f"cannot remove state file {path}: {exc.strerror}") from exc


def recorded_interfaces(directory: Path | None = None) -> list[str]:
    """Interfaces with a state file (corrupt ones included: they still need attention)."""
    directory = directory or state_dir()
    try:
        return sorted(p.stem for p in directory.glob("*.json"))
    except OSError:
        return []
