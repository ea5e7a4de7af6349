"""The resolvconf backend, used the way wg-quick uses it, so the two never fight.

When the config has ``DNS =``, wg-quick has already run
``resolvconf -a IFACE -m 0 -x`` before PostUp and runs ``resolvconf -d`` after
PreDown: wgkill records that and leaves it alone. Servers given with ``--dns``
are registered by wgkill the same way, under the same record name, and
removed by it on release.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DnsError
from ..runner import CommandError, run, which
from . import DnsPlan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

INTERFACE_ORDER = Path("/etc/resolvconf/interface-order")


def record_name(interface: str) -> str:
    """wg-quick's ``resolvconf_iface_prefix``: honour a ``tun*``-style entry in interface-order."""
    try:
        for line in INTERFACE_ORDER.read_text().splitlines():
            name = line.strip()
            if name.endswith("*") and name[:-1].replace("-", "").isalnum():
                return f"{name[:-1]}.{interface}"
    except OSError:
        pass
    return interface


def preflight(plan: DnsPlan, previous: dict[str, Any] | None = None) -> list[str]:
    which("resolvconf")
    return []


def apply(plan: DnsPlan, interface: str) -> dict[str, Any]:
    name = record_name(interface)
    if plan.from_config:
        return {"backend": "resolvconf", "name": name, "ours": False}
    body = "".join(f"nameserver {s}\n" for s in plan.servers)
    if plan.search:
        body += f"search {' '.join(plan.search)}\n"
    try:
        run([which("resolvconf"), "-a", name, "-m", "0", "-x"], stdin=body, change=True)
    except CommandError as exc:
        raise DnsError(f"resolvconf refused: {exc}") from exc
    return {"backend": "resolvconf", "name": name, "ours": True}


def revert(record: dict[str, Any]) -> list[str]:
    if not record.get("ours"):
        return []  # wg-quick's own record: wg-quick removes it after PreDown
    try:
        run([which("resolvconf"), "-d", record["name"], "-f"], change=True)
    except CommandError as exc:
        raise DnsError(f"resolvconf -d {record['name']} failed: {exc}") from exc
    return []
