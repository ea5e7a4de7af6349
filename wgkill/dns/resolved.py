"""The systemd-resolved backend: per-link DNS for the tunnel, over D-Bus via ``resolvectl``.

Full DNS: the link gets the servers, the ``~.`` routing domain and the default
DNS route, so every name goes to the tunnel (the firewall's DNS lock stops
resolved's other links from being asked). Split DNS: only ``~domain`` for each
``--dns-domain`` and no default route, so other names keep the uplink.
``resolvectl revert`` undoes all of it; when the link is gone, resolved has
already forgotten it.
"""

from typing import Any

from ..errors import DnsError, PrerequisiteError
from ..runner import CommandError, run, which
from . import RESOLVED_SOCKET, DnsPlan, resolved_running


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
    resolvectl = which("resolvectl")
    routing = [f"~{d}" for d in plan.domains] if plan.domains else ["~."]
    servers = list(plan.resolvers or plan.servers)  # with their ports: a stub on 127.0.0.1:5300
    steps = [
        [resolvectl, "dns", interface, *servers],
        [resolvectl, "domain", interface, *routing, *plan.search],
        [resolvectl, "default-route", interface, "false" if plan.domains else "true"],
    ]
    record = {"backend": "resolved", "link": interface, "servers": servers, "domains": routing}
    for argv in steps:
        try:
            run(argv, change=True)
        except CommandError as exc:
            raise DnsError(f"systemd-resolved refused: {exc}") from exc
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
