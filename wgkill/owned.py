"""The guard's copy of each block, in an nftables table that only the guard can change.

A table created with ``flags owner`` (Linux 5.12) belongs to the netlink
socket that created it: other processes get EPERM when they delete or change
it, ``nft flush ruleset`` skips it, and it vanishes when that socket closes.
While ``wgkill-guard`` runs it holds, for every recorded block, such a table
(``wgkill_guard-IFACE``, ``names.guard_table_name``) with the same filter
chains as the block: nftables runs every base chain of every table on a
packet, an accept in one does not skip another and a reject in any is final,
so a packet leaves only if both the durable table (the hooks') and the owned
copy let it. Another tool's flush or delete then opens nothing, even for the
milliseconds the guard takes to put the durable table back; a guard that dies
takes only its copy with it (the durable half stays).

Only the filter chains are copied (output, forward, postrouting and the
chains they jump to, with the sets): marks, routing and NAT stay the durable
table's alone, so a copy never does anything twice. For a tunnel of the
iptables backend the same policy is rendered for nft, which also closes the
leak that backend documents (another tool's ACCEPT above our jump).

Hooks and guard agree on every change: ``wgkill-up``, ``wgkill-down`` and
``wgkill-release`` ask the guard through a unix socket in the state directory
(``wgkill.guardlink.follow``) once their own change is done, and wait (briefly, bounded) for its
answer: the guard re-reads the states, replaces or deletes its copies, and
answers. ``wg-quick down`` thus returns with no table left.

``flags persist`` (Linux 6.9: the table outlives its owner and a new process
adopts it) is not used: nft 1.0.6 cannot write it, rebuilding a copy takes about
a millisecond in-process, and an orphaned persistent table would be one that
``wgkill-down`` must adopt before it can delete it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from . import state as statefile
from .digest import sha256_hex
from .errors import StateError, UsageError, WgkillError
from .names import GUARD_RECORD, guard_table_name, nft_table_name, validate_interface
from .recordclass import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from .firewall.libnft import Context

_KEPT_HOOKS = {"output", "forward", "postrouting"}  # filter chains at these hooks are the block


def copy_definition(interface: str, payload: str) -> str:
    """The owned copy of the nft table in ``payload`` (as wgkill writes it): its sets and filter
    chains, renamed and flagged ``owner``. Route, NAT and prerouting chains are left out."""
    table = nft_table_name(interface)
    lines = payload.splitlines()
    try:
        start = lines.index(f"table inet {table} {{")
    except ValueError as exc:
        raise WgkillError(f"{interface}: recorded payload has no table inet {table}") from exc
    blocks: list[list[str]] = []
    current: list[str] = []
    depth = 1
    for line in lines[start + 1:]:
        opened, closed = line.count("{"), line.count("}")
        if depth == 1 and closed and not opened:
            break  # the table's own closing brace
        current.append(line)
        depth += opened - closed
        if depth == 1:
            blocks.append(current)
            current = []
    kept = [b for b in blocks if _is_block(b)]
    body = "".join(line + "\n" for block in kept for line in block)
    return f"table inet {guard_table_name(interface)} {{\n\tflags owner\n{body}}}\n"


def _is_block(block: list[str]) -> bool:
    head = block[0].strip()
    if head.startswith("set "):
        return True
    for line in block[1:]:
        words = line.strip().rstrip(";").split()
        if words[:1] == ["type"]:
            return len(words) >= 4 and words[1] == "filter" and words[3] in _KEPT_HOOKS
    return True  # a regular chain: jumped to from a kept one


def block_payload(recorded: statefile.State) -> str:
    """The recorded block as an nft payload (``replay.nft_text``)."""
    from .replay import nft_text

    text = nft_text(recorded)
    if text is None:
        raise WgkillError(f"{recorded.interface}: no recorded table or policy (older state)")
    return text


@dataclass
class Holder:
    """The guard's owned tables, through one libnftables context kept open for its whole run."""

    log: Callable[[str], None]
    ctx: Context
    held: dict[str, str] = field(default_factory=dict)  # interface -> the copy's definition
    _texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # interface -> (state digest, copy)
    _said: dict[str, str] = field(default_factory=dict)  # interface -> last failure logged

    @classmethod
    def open(cls, log: Callable[[str], None]) -> Holder | None:
        """A holder, or None (said once) where owned tables cannot be made: no libnftables."""
        from .firewall.libnft import Context

        ctx = Context.open()
        if not isinstance(ctx, Context):
            log("no libnftables: the block is not held in a table of the guard's own")
            return None
        return cls(log, ctx)

    def sync(self) -> None:
        """Make the copies follow the states: one per recorded block, each as recorded now."""
        with statefile.lock():
            wanted = self._wanted()
        for interface in sorted(set(self.held) | set(wanted)):
            if interface not in wanted:
                self._drop(interface)
                continue
            text = wanted[interface]
            if text is not None and text != self.held.get(interface):
                self._hold(interface, text)

    def _wanted(self) -> dict[str, str | None]:
        """Each recorded interface's copy; ``None`` keeps what is held (a state that cannot be read
        now never opens anything); an interface absent from the result has no block any more."""
        wanted: dict[str, str | None] = {}
        for name in statefile.recorded_interfaces():
            try:
                validate_interface(name)
            except UsageError:
                continue
            path = statefile.path_for(name)
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError:
                wanted[name] = None
                continue
            digest = sha256_hex(raw)
            cached = self._texts.get(name)
            if cached is not None and cached[0] == digest:
                wanted[name] = cached[1]
                continue
            try:
                recorded = statefile.load(name)
                if recorded is None:
                    continue
                text = copy_definition(name, block_payload(recorded))
            except (StateError, WgkillError) as exc:
                self._say(name, f"{name}: block not held by the guard: {exc}")
                wanted[name] = None
                continue
            self._texts[name] = (digest, text)
            wanted[name] = text
        return wanted

    def _hold(self, interface: str, text: str) -> None:
        table = guard_table_name(interface)
        payload = (f"delete table inet {table}\n" if interface in self.held else "") + text
        try:
            self.ctx.cmd(payload)
        except WgkillError as exc:
            self._say(interface, f"{interface}: block not held by the guard: {exc}")
            return
        self._said.pop(interface, None)
        new = interface not in self.held
        self.held[interface] = text
        if new:
            self.log(f"{interface}: holding the block in table inet {table} (owned by the guard)")

    def _drop(self, interface: str) -> None:
        try:
            self.ctx.cmd(f"delete table inet {guard_table_name(interface)}\n")
        except WgkillError as exc:
            if "No such file" not in str(exc):
                self._say(interface, f"{interface}: owned table not deleted: {exc}")
                return
        self.held.pop(interface, None)
        self._texts.pop(interface, None)
        self.log(f"{interface}: block released: owned table deleted")

    def _say(self, interface: str, line: str) -> None:
        if self._said.get(interface) != line:
            self._said[interface] = line
            self.log(line)

    def close(self) -> None:
        self.ctx.close()


# ---- what wgkill-status shows ------------------------------------------------------------------

@dataclass
class GuardRecord:
    """The guard's own figures, written after each repair: how many, and the last one."""

    pid: int
    started: float
    repairs: int = 0
    last_repair: float | None = None  # unix time
    last_repair_interface: str | None = None

    def save(self) -> None:
        import json

        from .fileio import write_atomic

        path = statefile.state_dir() / GUARD_RECORD
        write_atomic(path, json.dumps(self.__dict__, sort_keys=True).encode() + b"\n", 0o644)

    @classmethod
    def load(cls) -> GuardRecord | None:
        import json

        try:
            data = json.loads((statefile.state_dir() / GUARD_RECORD).read_text())
            return cls(int(data["pid"]), float(data["started"]), int(data.get("repairs", 0)),
                       data.get("last_repair"), data.get("last_repair_interface"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def note_repairs(record: GuardRecord, interfaces: list[str]) -> None:
    if not interfaces:
        return
    record.repairs += len(interfaces)
    record.last_repair = time.time()
    record.last_repair_interface = interfaces[-1]
    record.save()


def held_tables() -> set[str] | None:
    """The names of the inet tables now (the guard's copies among them); None if unreadable.
    Through the process's shared context: listing owns nothing, and freeing a context of its own
    would cost wgkill-status as much as the listing."""
    from .firewall.libnft import NftError, run_text

    try:
        text = run_text("list tables inet\n")
    except (NftError, WgkillError):
        return None
    return {line.split("#")[0].split()[-1] for line in text.splitlines() if line.startswith("table inet ")}
