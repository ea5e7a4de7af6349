"""The systemd-resolved backend: per-link DNS for the tunnel, over D-Bus via ``resolvectl``.

Full DNS: the link gets the servers, the ``~.`` routing domain and the default
DNS route, so every name goes to the tunnel (the firewall's DNS lock stops
resolved's other links from being asked). Split DNS: only ``~domain`` for each
``--dns-domain`` and no default route, so other names keep the uplink.
``resolvectl revert`` undoes all of it; when the link is gone, resolved has
already forgotten it. While the tunnel is up, wgkill-guard ``hold``s the
link's settings: another program that changes them (NetworkManager managing
the link, a script) would point names at a server the DNS lock refuses.
"""

from __future__ import annotations

from ..errors import DnsError, PrerequisiteError
from ..runner import CommandError, run, which
from . import RESOLVED_SOCKET, DnsPlan, resolved_running

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any


def preflight(plan: DnsPlan, previous: dict[str, Any] | None = None) -> list[str]:
    """resolvectl alone is not enough: with resolved stopped every later step would fail after
    the firewall changed, so refuse before the first change."""
    which("resolvectl")
    if not resolved_running():
        raise PrerequisiteError(
            f"systemd-resolved is not running (nothing answers on {RESOLVED_SOCKET}): "
            "start it, or choose another --dns-backend"
        )
    return []


def apply(plan: DnsPlan, interface: str) -> dict[str, Any]:
    routing = [f"~{d}" for d in plan.domains] if plan.domains else ["~."]
    servers = list(plan.resolvers or plan.servers)  # with their ports: a stub on 127.0.0.1:5300
    record = {"backend": "resolved", "link": interface, "servers": servers, "domains": routing,
              "search": list(plan.search), "default_route": not plan.domains}
    _set(record)
    return record


def _set(record: dict[str, Any]) -> None:
    resolvectl = which("resolvectl")
    link = record["link"]
    steps = [
        [resolvectl, "dns", link, *record["servers"]],
        [resolvectl, "domain", link, *record["domains"], *record["search"]],
        [resolvectl, "default-route", link, "true" if record["default_route"] else "false"],
    ]
    for argv in steps:
        try:
            run(argv, change=True)
        except CommandError as exc:
            raise DnsError(f"systemd-resolved refused: {exc}") from exc


def _said(verb: str, link: str) -> list[str]:
    """What ``resolvectl VERB LINK`` lists after ``Link N (LINK):``."""
    out = run([which("resolvectl"), verb, link])
    return out.split(":", 1)[1].split() if ":" in out else []


def _servers(texts: list[str]) -> set[tuple[str, int]]:
    from . import parse_resolver

    return {parse_resolver(t.split("#", 1)[0]) for t in texts}


def hold(record: dict[str, Any]) -> dict[str, Any] | None:
    """Set the link's servers, domains and default route again if another program changed them;
    the record (unchanged) when it did, None when they are as recorded, the link is gone, or the
    record is older than this and does not hold all three."""
    if "search" not in record or "default_route" not in record:
        return None
    link = record["link"]
    try:
        now = (_servers(_said("dns", link)), set(_said("domain", link)), _said("default-route", link))
    except (CommandError, ValueError):
        return None  # the link is gone (or resolved is): nothing to point at the tunnel
    wanted = (_servers(record["servers"]), {*record["domains"], *record["search"]},
              ["yes" if record["default_route"] else "no"])
    if now == wanted:
        return None
    _set(record)
    if (_servers(_said("dns", link)), set(_said("domain", link)), _said("default-route", link)) != wanted:
        raise DnsError(f"systemd-resolved's settings for {link} do not stay as wgkill set them")
    return record


def revert(record: dict[str, Any]) -> list[str]:
    link = record["link"]
    try:
        run([which("resolvectl"), "revert", link], change=True)
    except CommandError as exc:
        if "No such device" in exc.stderr or "Failed to resolve interface" in exc.stderr:
            return []  # the link is gone, and its settings with it
        raise DnsError(f"cannot revert resolved's settings for {link}: {exc}") from exc
    return []
