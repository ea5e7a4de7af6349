"""wgkill-guard: put back, within milliseconds, what other software removes from an engaged block.

A kill switch shares the machine with tools that rewrite the firewall and the
routing rules: ``nft flush ruleset`` (Debian's nftables.conf starts with it),
a firewall reload, systemd-networkd deleting "foreign" ip rules. Each of those
silently lifts the block until the next ``wgkill-up``. The guard watches and
repairs:

* what it watches (``wgkill.events``): rtnetlink (policy rules, routes and
  links of both families), nftables' netlink group (every nftables change,
  iptables-nft's included: what ``nft monitor`` hears) and inotify on the state
  directory and each held resolv.conf. Idle, it sleeps: it polls every
  ``interval`` seconds only while a recorded block uses what sends no event
  (``unheard``: iptables-legacy, ipset, systemd-resolved's settings) or a
  source could not be opened.
* on any of them, after a short settle (a flush is a burst of events), it
  checks every recorded block with the same reading and judging as
  wgkill-status (``status.gathering.read_rules``, ``status.verdicts.chain_problems``)
  and re-applies a damaged one from its state through the boot unit's code path
  (``replay.replay``; the split sets only when they are damaged) and the
  ``--routes`` rules and routes (``routes.restore_routing``; ``routes.setup``
  with the recorded slot when one of its chains is gone). A repair that does
  not hold is logged as failed and not tried again until what is wrong changes.
* it never engages a block the state does not record (a missing or unreadable
  state is left alone), and never fights ``wgkill-down``/``wgkill-release``:
  each check and repair holds the state lock and re-reads the state under it,
  so a block being removed is either still whole or already unrecorded.

While a tunnel is up it also holds its DNS: a resolv.conf that another program
rewrote (a DHCP renewal, NetworkManager) is put back (``dns.hold``), since the
DNS lock would refuse the resolver it now names: no leak, but no DNS.

Each repair is one log line: what was wrong, and how long the repair took.
Our own changes wake the guard too; the check then finds the block intact.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from . import events
from . import state as statefile
from .errors import StateError, UsageError, WgkillError
from .firewall import backend_class
from .kernel import ipv6_available, require_root
from .names import GUARD_RECORD, validate_interface
from .recordclass import dataclass, field

SETTLE = 0.005  # seconds without a further event before checking: one burst, one check
SETTLE_MAX = 0.03  # but never wait longer than this after the first event
DEFAULT_INTERVAL = 1.0
REPAIR_ATTEMPTS = 3  # repairs in one wake-up while new damage keeps coming (iptables -F; ip6tables -F)


@dataclass
class Repair:
    """One block put back: what was found wrong, and how long checking and repairing took."""

    interface: str
    problems: list[str]  # the messages wgkill-status would print
    seconds: float  # from the change being seen (or the poll) to the block back
    failed: str | None = None

    def line(self) -> str:
        took = f"{self.seconds * 1000:.0f} ms"
        found = "; ".join(self.problems)
        if self.failed:
            return f"{self.interface}: repair failed after {took}: {self.failed} (found: {found})"
        return f"{self.interface}: repaired in {took}: {found}"


def damage(recorded: statefile.State) -> list[Any]:
    """What of ``recorded``'s block is missing or altered now, as wgkill-status's Problems
    (empty: intact). What cannot be read is not damage: nothing is re-applied for it."""
    from .routes import link_up
    from .status.chains import Snapshots
    from .status.facts import InterfaceFacts, LinkFacts
    from .status.gathering import read_rules
    from .status.verdicts import chain_problems

    facts = InterfaceFacts(recorded.interface, state=recorded,
                           link=LinkFacts(recorded.interface, 0, up=link_up(recorded.interface)))
    read_rules(facts, ipv6_available(), Snapshots())
    return chain_problems(facts)


def repair(interface: str, seen: float | None = None,
           stuck: dict[str, frozenset[str]] | None = None) -> Repair | None:
    """Check ``interface``'s recorded block and re-apply what is damaged; None when intact or
    not recorded. Holds the state lock throughout; may be called any number of times.
    ``seen``: when the change was noticed (monotonic), what the repair time counts from.
    ``stuck``: problems a repair did not clear, by interface: not tried again while they are
    the same (our own repair wakes the guard; it must not loop on what it cannot fix)."""
    stuck = {} if stuck is None else stuck
    started = seen or time.monotonic()
    with statefile.lock():
        try:
            recorded = statefile.load(interface)
        except StateError:
            return None  # unreadable: wgkill-boot's job, not something to guess at while running
        if recorded is None:
            return None
        from .replay import replayable

        if not replayable(recorded):
            return None
        return attempt(interface, lambda: damage(recorded), lambda codes: _reapply(recorded, codes),
                       started, stuck)


def attempt(interface: str, check: Callable[[], list[Any]], fix: Callable[[set[str]], None],
            started: float, stuck: dict[str, frozenset[str]]) -> Repair | None:
    """``repair``'s decisions, its I/O passed in: ``check`` returns the problems (wgkill-status's),
    ``fix`` re-applies for their codes. What a repair did not clear is remembered in ``stuck`` and
    not tried again while it stays the same; intact forgets it."""
    problems = check()
    found = [p.message for p in problems]
    if not problems:
        stuck.pop(interface, None)
        return None
    if stuck.get(interface) == frozenset(found):
        return None  # tried already, and nothing changed since
    todo = problems
    for _ in range(REPAIR_ATTEMPTS):
        try:
            fix({p.code for p in todo})
        except WgkillError as exc:
            stuck[interface] = frozenset(found)
            return Repair(interface, found, time.monotonic() - started, failed=str(exc))
        took = time.monotonic() - started
        after = check()
        left = [p.message for p in after]
        if not left or set(left) <= {p.message for p in todo}:
            break  # whole, or what was just repaired did not hold: stuck
        todo = after  # damage that came while repairing (another tool still at work): again
        found += [m for m in left if m not in found]
    if left:
        stuck[interface] = frozenset(left)
        return Repair(interface, found, took, failed=f"still: {'; '.join(left)}")
    stuck.pop(interface, None)
    return Repair(interface, found, took)


# Problems (status codes) that only the --routes rules and routes fix, and those of its chains.
_ROUTING = {"route-rule-missing", "route-missing", "routes-route-missing"}


def _reapply(recorded: statefile.State, codes: set[str]) -> None:
    """Re-apply what ``codes`` say is damaged: the block (and its sets only when they are), and the
    --routes rules and routes alone, or its whole setup when one of its chains is gone."""
    from .replay import replay

    if codes - _ROUTING - {"routes-chain-missing"}:
        replay(recorded, sets=any(code.startswith("set-") for code in codes))
    if recorded.routes and codes & (_ROUTING | {"routes-chain-missing"}):
        from . import routes

        record = recorded.routes
        if "routes-chain-missing" not in codes:
            routes.restore_routing(record)
            return
        families = sorted(fam.family for fam in record.families.values())
        endpoints = [(e.address, e.port) for e in recorded.endpoints]
        done = routes.setup(recorded.interface, families, previous=record, wg_fwmark=recorded.fwmark,
                            endpoints=endpoints)
        if done != recorded.routes:
            recorded.routes = done
            statefile.save(recorded)


def check_all(seen: float | None = None, stuck: dict[str, frozenset[str]] | None = None) -> list[Repair]:
    """One pass over every recorded block (``stuck``: see ``repair``)."""
    done = []
    for name in statefile.recorded_interfaces():
        try:
            validate_interface(name)
        except UsageError:
            continue
        result = repair(name, seen, stuck)
        if result is not None:
            done.append(result)
        held = hold_dns(name, seen, stuck)
        if held is not None:
            done.append(held)
    return done


def hold_dns(interface: str, seen: float | None = None,
             stuck: dict[str, frozenset[str]] | None = None) -> Repair | None:
    """While ``interface`` is up, put back the resolv.conf wgkill-up wrote (or resolved's settings
    for its link) if another program changed it (``dns.hold``); None when there was nothing to
    do. A record whose putting back failed is not tried again until it changes (``stuck``)."""
    from . import dns

    stuck = {} if stuck is None else stuck
    started = seen or time.monotonic()
    try:
        socket.if_nametoindex(interface)
    except OSError:
        return None  # the tunnel is down: its block holds DNS; nothing to point at it
    with statefile.lock():
        try:
            recorded = statefile.load(interface)
        except StateError:
            return None
        record = recorded.dns.record if recorded is not None else None
        if recorded is None or record is None:
            return None
        found = [dns.held_what(record)]
        key, tried = f"{interface} dns", frozenset([json.dumps(record, sort_keys=True)])
        if stuck.get(key) == tried:
            return None
        try:
            held = dns.hold(record)
        except WgkillError as exc:
            stuck[key] = tried
            return Repair(interface, found, time.monotonic() - started, failed=str(exc))
        if held is None:
            return None
        recorded.dns = recorded.dns.holding(held)
        statefile.save(recorded)
    return Repair(interface, found, time.monotonic() - started)


@dataclass
class Watch:
    """The event sources (``wgkill.events``) and the hooks' socket; ``wait`` returns when one speaks."""

    sockets: list[socket.socket] = field(default_factory=list)  # rtnetlink, nftables
    inotify: events.Inotify | None = None
    missing: list[str] = field(default_factory=list)  # sources that could not be opened: polled instead
    server: socket.socket | None = None  # the hooks' socket (``guardlink.listen``)
    waiting: list[socket.socket] = field(default_factory=list)  # hooks waiting for the next check's answer

    @classmethod
    def open(cls) -> Watch:
        watch = cls()
        for name, protocol, groups in (("rtnetlink", events.NETLINK_ROUTE, events.RTNL_GROUPS),
                                       ("nftables", events.NETLINK_NETFILTER, events.NFT_GROUPS)):
            sock = events.netlink(protocol, groups)
            if sock is None:
                watch.missing.append(name)
            else:
                watch.sockets.append(sock)
        watch.inotify = events.Inotify.open()
        if watch.inotify is None:
            watch.missing.append("inotify")
        return watch

    def sources(self) -> str:
        heard = [name for name in ("rtnetlink", "nftables", "inotify") if name not in self.missing]
        return ", ".join(heard) or "none"

    def _fds(self) -> list[int]:
        fds = [sock.fileno() for sock in self.sockets]
        if self.inotify is not None:
            fds.append(self.inotify.fd)
        if self.server is not None:
            fds.append(self.server.fileno())
        return fds

    def wait(self, timeout: float | None) -> float | None:
        """When (monotonic) the first event that concerns us came, if one did within ``timeout``
        (None: however long it takes); the burst that follows it is drained too."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(self._fds(), [], [], left)
            if not ready:
                return None
            first = time.monotonic()
            if self._drain(ready):
                break
        while ready:
            self._drain(ready)
            left = SETTLE_MAX - (time.monotonic() - first)
            if left <= 0:
                break
            ready, _, _ = select.select(self._fds(), [], [], min(SETTLE, left))
        return first

    def listen(self) -> None:
        from . import guardlink

        self.server = guardlink.listen()

    def _drain(self, ready: list[int]) -> bool:
        """Read what ``ready`` holds; whether any of it concerns us."""
        concerns = False
        if self.server is not None and self.server.fileno() in ready:
            from . import guardlink

            self.waiting += guardlink.accept_all(self.server)
            concerns = True
        for sock in [s for s in self.sockets if s.fileno() in ready]:
            concerns = True
            if not events.drain(sock):  # closed for good: polled from now on
                self.sockets.remove(sock)
                sock.close()
                self.missing.append("netlink")
        if self.inotify is not None and self.inotify.fd in ready:
            concerns = self.inotify.changed() or concerns
        return concerns

    def close(self) -> None:
        if self.server is not None:
            from . import guardlink

            guardlink.answer(self.waiting)
            self.server.close()
            guardlink.socket_path().unlink(missing_ok=True)
        for sock in self.sockets:
            sock.close()
        if self.inotify is not None:
            self.inotify.close()


def unheard(recorded: statefile.State) -> list[str]:
    """What of ``recorded`` sends no event when another program changes it, so that only a poll
    finds it: iptables-legacy rules, ipsets (the iptables backend's split sets), systemd-resolved's
    settings for the link. nftables (iptables-nft's rules included), links, routes and rules do."""
    found = backend_class(recorded.backend).silent(recorded)
    if _dns_record(recorded).get("backend") == "resolved":
        found.append("systemd-resolved")
    return found


def _dns_record(recorded: statefile.State) -> dict[str, Any]:
    record = recorded.dns.record
    return record if isinstance(record, dict) else {}


def listen_for(watch: Watch) -> list[str]:
    """Point the file watches at what the states hold now (the state directory, each held
    resolv.conf), and say what the poll must cover: each block's ``unheard`` sources, and every
    source that could not be opened (then the poll stands in for it always)."""
    wanted = events.state_files(statefile.state_dir())
    reasons = [f"no {name} events" for name in watch.missing]
    for name in statefile.recorded_interfaces():
        try:
            validate_interface(name)
            recorded = statefile.load(name)
        except (UsageError, StateError):
            continue
        if recorded is None:
            continue
        quiet = unheard(recorded)
        reasons += [f"{name} ({', '.join(quiet)})"] if quiet else []
        record = _dns_record(recorded)
        if record.get("backend") == "file" and record.get("path"):
            wanted.update(events.held_file(str(record["path"])))
    if watch.inotify is not None:
        watch.inotify.arm(wanted)
    return reasons


def _warm() -> None:
    """Import now what a repair needs, so the first repair is as fast as the others."""
    from . import killswitch, replay, routes  # noqa: F401
    from .status import gathering, verdicts  # noqa: F401
    from .templating import environment

    environment()


def run(log: Callable[[str], None], interval: float = DEFAULT_INTERVAL,
        stop: Callable[[], bool] = lambda: False, verbose: bool = False, hold: bool = True) -> None:
    """Watch and repair until ``stop()`` is true (checked after each wake-up) or a signal ends it;
    ``hold``: also hold each block in a table of the guard's own (``wgkill.owned``).
    ``verbose``: also one line per check of every block (their count, what woke it): that the
    guard is alive and hears events, and what a test waits for before trusting "nothing came back"."""
    require_root()
    if not 0 < interval <= 3600:
        raise UsageError("--interval must be more than 0 and at most 3600 seconds")
    _warm()
    from . import guardlink, owned

    watch = Watch.open()
    holder = owned.Holder.open(log) if hold else None
    record = owned.GuardRecord(os.getpid(), time.time())
    try:
        watch.listen()
        record.save()
        if holder is not None:
            holder.sync()
        log(f"watching {', '.join(statefile.recorded_interfaces()) or 'no recorded block yet'} "
            f"(events: {watch.sources()})")
        seen = None
        stuck: dict[str, frozenset[str]] = {}
        checks = 0
        polling: list[str] = []
        while not stop():
            polling = _poll_for(log, listen_for(watch), polling, interval)  # before the check: nothing unseen
            done = check_all(seen, stuck)
            owned.note_repairs(record, [r.interface for r in done if r.failed is None])  # before the line
            for repaired in done:
                log(repaired.line())
            if holder is not None:
                holder.sync()
            guardlink.answer(watch.waiting)
            watch.waiting = []
            checks += 1
            if verbose:
                woken = "start" if checks == 1 else "event" if seen is not None else "poll"
                log(f"check {checks} done ({woken})")
            seen = watch.wait(interval if polling else None)
    finally:
        watch.close()
        if holder is not None:
            holder.close()
        (statefile.state_dir() / GUARD_RECORD).unlink(missing_ok=True)


def _poll_for(log: Callable[[str], None], reasons: list[str], before: list[str],
              interval: float) -> list[str]:
    """``reasons`` (what sends no event), said once when they change: the guard polls only for them."""
    if reasons != before:
        log(f"polling every {interval:g} s for what sends no event: {', '.join(reasons)}" if reasons
            else "no poll: every recorded block and its DNS send events")
    return reasons
