"""The record of what wgkill applied, one JSON file per interface (version 2; version 1 is read).

Written atomically (temp file, fsync, rename, fsync of the directory) with
mode 0600 in a 0700 directory, and only under ``lock()``, an exclusive flock
on one lock file, so concurrent hooks for wg0 and wg1 serialise instead of
losing each other's work. Reading never guesses: anything that is not a
state of a known version for the right interface is a StateError.

Version 2 records the backend (``iptables`` or ``nft``), keys families by
integer (4, 6) and records the iptables variant *per family*: iptables and
ip6tables are separate alternatives on Debian, so one variant for both could
look for the IPv6 chain in the wrong place. A version-1 state (wgkill 0.1:
iptables, one variant for both families, ``"ipv4"`` keys) is read into the
same records, so a tunnel brought up before an upgrade comes down cleanly.

Everything below the top level is parsed into typed records at load
(``wgkill.records``: endpoints, each family's policy, ``--routes``, the DNS
part; ``wgkill.exclusion``): a corrupt one refuses the whole state here, exit 4,
before any operation has changed anything, and no module downstream reads dicts.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import fileio
from .errors import StateError
from .exclusion import ExclusionRecord
from .recordclass import asdict, dataclass, field
from .records import (
    BACKENDS,
    EndpointRule,
    FamilyPolicy,
    RouteRecord,
    dns_state_from_json,
    endpoints_from_json,
    policy_from_json,
    route_record_from_json,
)
from .records import DnsState as DnsState

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any, TypeVar
    T = TypeVar("T")

VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_DIR = "/var/lib/wgkill"
LOCK_NAME = ".lock"
# Written by earlier versions and read by none, skipped at load: the hash of a payload (the payload
# or the chain bodies are recorded), and the top-level copies of --allow-iface/--allow-mark (each
# family's recorded policy holds them).
RETIRED = frozenset({"payload_sha256", "allow_interfaces", "allow_marks"})


def state_dir() -> Path:
    """``$WGKILL_STATE_DIR`` or /var/lib/wgkill (kept across reboots on purpose)."""
    return Path(os.environ.get("WGKILL_STATE_DIR") or DEFAULT_DIR)


@dataclass
class FamilyRecord:
    """One family's iptables chains (backend ``iptables``)."""

    table: str
    chains: list[str]
    jumps: list[dict[str, str]]
    rules: int
    saved_sha256: str | None = None  # the chain as iptables-save prints it, read back after applying
    sets: list[str] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)  # chain -> rules, re-applied as is at boot
    remove_payload: str | None = None  # replayed by release when the table is as applied
    set_entries: int | None = None  # what the split set held when applied (0: the list has no such prefix)
    variant: str = "nf_tables"  # the iptables variant this family was applied with


@dataclass
class NftRecord:
    """The one nftables table (backend ``nft``): both families, applied and removed whole."""

    table: str  # the inet table's name (wgkill.names.nft_table_name)
    payload: str  # the whole ``nft -f`` transaction, re-applied as is at boot
    rules: dict[str, int] = field(default_factory=dict)  # chain -> rule count as applied
    sets: dict[int, str] = field(default_factory=dict)  # family -> set of the tunnel's destinations
    set_entries: dict[int, int] = field(default_factory=dict)  # family -> elements rendered into its set


@dataclass
class State:
    """The record of one engaged block: written before the kernel changes, so that wgkill-down,
    the boot unit and the guard act on exactly what was applied."""

    interface: str
    applied_at: str
    backend: str = "iptables"
    fwmark: int | None = None
    config: str | None = None
    endpoints: tuple[EndpointRule, ...] = ()
    allowed_ips: list[str] = field(default_factory=list)
    families: dict[int, FamilyRecord] = field(default_factory=dict)  # backend iptables
    nft: NftRecord | None = None  # backend nft
    dns: DnsState = field(default_factory=DnsState)  # (null in some old states: nothing changed)
    lockdown: bool = False
    allowed_ips_file: str | None = None
    routes: RouteRecord | None = None  # when --routes set them up
    policies: tuple[FamilyPolicy, ...] = ()  # per family: another tunnel's up or down re-renders it
    exclude: ExclusionRecord | None = None  # with --allow-exclude
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def families_covered(self) -> set[int]:
        """The families the block covers: for nft every family of the inet table."""
        if self.nft is not None:
            return {4, 6}
        return set(self.families)

    def split_sets(self) -> list[str]:
        """The split tunnel's sets as applied, whichever backend holds them."""
        if self.nft is not None:
            return sorted(self.nft.sets.values())
        return [name for record in self.families.values() for name in record.sets]

    def variant(self, family: int) -> str | None:
        """The iptables variant ``family`` was applied with (None: not iptables)."""
        record = self.families.get(family)
        return record.variant if record else None


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


def write_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so a reader sees the old file or the new one, never half.
    ``durable=False`` for the caches beside the states: no fsync (``fileio.write_atomic``)."""
    _ensure_dir(path.parent)
    try:
        fileio.write_atomic(path, text.encode("utf-8"), 0o600, durable=durable)
    except OSError as exc:
        raise StateError(f"cannot write state {path}: {exc.strerror}") from exc


def save(state: State, directory: Path | None = None) -> Path:
    """Record ``state``; a file that already holds exactly this text is left alone (a write is two
    fsyncs, and wgkill-up records its intent, then the same record again when DNS changed nothing)."""
    path = path_for(state.interface, directory)
    text = state.to_json()
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return path
    except OSError:
        pass
    write_atomic(path, text)
    return path


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path,
             default: Any = None) -> Any:
    value = data.get(key, default)
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
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise StateError(f"state file {path} has unknown version {version!r}")
    if _require(data, "interface", str, path) != interface:
        raise StateError(f"corrupt state file {path}: it records interface {data['interface']!r}")
    backend = data.get("backend", "iptables") if version == 2 else "iptables"
    if backend not in BACKENDS:
        raise StateError(f"corrupt state file {path}: unknown backend {backend!r}")
    families = _families(data, version, path)
    applied_at = _require(data, "applied_at", str, path)
    nft = _nft_record(data.get("nft"), path) if backend == "nft" else None
    fwmark = data.get("fwmark")
    if fwmark is not None and not isinstance(fwmark, int):
        raise StateError(f"corrupt state file {path}: field 'fwmark' invalid")
    dns = _optional(dns_state_from_json, data.get("dns"), path) or DnsState()
    return State(
        interface=interface,
        applied_at=applied_at,
        backend=backend,
        fwmark=fwmark,
        config=data.get("config"),
        endpoints=_sub(endpoints_from_json, _require(data, "endpoints", list, path), path),
        allowed_ips=_require(data, "allowed_ips", list, path),
        families=families,
        nft=nft,
        dns=dns,
        lockdown=data.get("lockdown") is True,
        routes=_optional(route_record_from_json, data.get("routes"), path),
        exclude=_optional(ExclusionRecord.from_dict, data.get("exclude"), path),
        allowed_ips_file=data["allowed_ips_file"] if isinstance(data.get("allowed_ips_file"), str) else None,
        policies=tuple(_sub(policy_from_json, d, path) for d in _require(data, "policies", list, path, [])),
    )


def _families(data: dict[str, Any], version: int, path: Path) -> dict[int, FamilyRecord]:
    """The iptables records by family (version 1: one variant for both, keys ``ipv4``)."""
    families = {}
    for name, record in _require(data, "families", dict, path).items():
        family = _family_key(name, version)
        if family is None or not isinstance(record, dict):
            raise StateError(f"corrupt state file {path}: bad family {name!r}")
        record = {k: v for k, v in record.items() if k not in RETIRED}
        if version == 1:
            record = {**record, "variant": _require(data, "iptables_variant", str, path)}
        try:
            families[family] = FamilyRecord(**record)
        except TypeError as exc:
            raise StateError(f"corrupt state file {path}: bad record for ipv{family}") from exc
        chains = families[family].chains
        if not isinstance(chains, list) or not all(isinstance(c, str) for c in chains):
            raise StateError(f"corrupt state file {path}: bad chains for ipv{family}")
        if families[family].variant not in ("nf_tables", "legacy"):
            raise StateError(f"corrupt state file {path}: bad iptables variant for ipv{family}")
    return families


def _optional(parse: Callable[[Any], T], data: Any, path: Path) -> T | None:
    return None if data is None else _sub(parse, data, path)


def _sub(parse: Callable[[Any], T], data: Any, path: Path) -> T:
    """A typed sub-record, parsed at load: corrupt, it refuses the whole state (StateError)."""
    try:
        return parse(data)
    except StateError as exc:
        raise StateError(f"corrupt state file {path}: {exc}") from exc


def _family_key(name: str, version: int) -> int | None:
    """4 or 6 from a JSON key: ``"4"`` (version 2) or ``"ipv4"`` (version 1)."""
    keys = {"4": 4, "6": 6} if version == 2 else {"ipv4": 4, "ipv6": 6}
    return keys.get(name)


def _nft_record(data: Any, path: Path) -> NftRecord:
    if not isinstance(data, dict):
        raise StateError(f"corrupt state file {path}: backend nft without its table record")
    try:
        record = NftRecord(**{k: v for k, v in data.items() if k not in RETIRED})
        record.sets = {int(k): v for k, v in dict(record.sets).items()}
        record.set_entries = {int(k): int(v) for k, v in dict(record.set_entries).items()}
    except (TypeError, ValueError) as exc:
        raise StateError(f"corrupt state file {path}: bad nft record") from exc
    if not (isinstance(record.table, str) and isinstance(record.payload, str)
            and all(f in (4, 6) and isinstance(v, str) for f, v in record.sets.items())):
        raise StateError(f"corrupt state file {path}: bad nft record")
    return record


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
