"""The systemd-resolved backend: per-link DNS for the tunnel, over D-Bus via ``resolvectl``.

Full DNS: the link gets the servers, the ``~.`` routing domain and the default
DNS route, so every name goes to the tunnel (the firewall's DNS lock stops
resolved's other links from being asked). Split DNS: only ``~domain`` for each
``--dns-domain`` and no default route, so other names keep the uplink.
``resolvectl revert`` undoes all of it; when the link is gone, resolved has
already forgotten it.
"""

from typing import Any

from ..errors import DnsError
from ..runner import CommandError, run, which
from . import DnsPlan


def preflight(plan: DnsPlan, previous: dict[str, Any] | None = None) -> list[str]:
    which("resolvectl")
    return []


def apply(plan: DnsPlan, interface: str) -> dict[str, Any]:
    resolvectl = which("resolvectl")
    routing = [f"~{d}" for d in plan.domains] if plan.domains else ["~."]
    steps = [
        [resolvectl, "dns", interface, *plan.servers],
        [resolvectl, "domain", interface, *routing, *plan.search],
        [resolvectl, "default-route", interface, "false" if plan.domains else "true"],
    ]
    record = {"backend": "resolved", "link": interface, "domains": routing}
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
