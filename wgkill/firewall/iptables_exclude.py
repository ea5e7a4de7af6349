"""The exclusion's mangle and nat chains in iptables (``IptablesBackend``'s exclusion methods):
one ``iptables-restore -w -n`` per family.

The rule text lives in ``templates/exclude-apply.j2``; here is only where the
jumps are now, so re-applying leaves ``iptables-save`` byte-identical, and
removal deletes exactly our jumps and chains (found by name: the names come
from ``wgkill.names``, the record says which families).
"""

from __future__ import annotations

from ..errors import FirewallError
from ..names import exclude_chain_names, exclude_jump_comment, jump_spec
from ..runner import CommandError, run
from ..templating import render

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from ..exclusion import ExclusionRecord
    from .iptables import FilterSnapshot, IptablesFamily

# our chain -> (table, the built-in chain that jumps to it first)
HOOKS = {"mark": ("mangle", "OUTPUT"), "restore": ("mangle", "PREROUTING"), "nat": ("nat", "POSTROUTING")}


def _jumps(interface: str) -> dict[str, str]:
    chains = exclude_chain_names(interface)
    return {role: jump_spec(chain, exclude_jump_comment(interface)) for role, chain in chains.items()}


def apply_payload(record: ExclusionRecord, snaps: dict[str, FilterSnapshot]) -> str:
    """The restore payload that leaves exactly our chains, each jumped to first, in mangle and nat."""
    chains = exclude_chain_names(record.interface)
    jumps = _jumps(record.interface)
    delete: dict[str, list[str]] = {}
    insert: dict[str, bool] = {}
    for role, (table, hook) in HOOKS.items():
        found = snaps[table].jumps_to(chains[role], hook)
        in_place = found == [(0, jumps[role])]
        delete[role] = [] if in_place else [spec for _, spec in found]
        insert[role] = not in_place
    x = {"chains": chains, "jump": jumps, "delete": delete, "insert": insert, "cgroup": record.cgroup,
         "mark": f"{record.mark:#x}", "interface": record.interface}
    return render("exclude-apply.j2", x=x)


def snapshots(backend: IptablesFamily) -> dict[str, FilterSnapshot]:
    return {table: backend.snapshot(table) for table in ("mangle", "nat")}


def apply(record: ExclusionRecord, backend: IptablesFamily) -> None:
    """Put the chains in place for one family; may be called again with the same result.

    The cgroup must exist: the kernel resolves ``--path`` when the rule is added.
    """
    payload = apply_payload(record, snapshots(backend))
    try:
        run([backend.restore, "-w", "-n"], stdin=payload, change=True)
    except CommandError as exc:
        raise FirewallError(f"{backend.name}: exclusion rules for {record.interface} failed, "
                            f"mangle and nat unchanged: {exc}") from exc


def present(interface: str, backend: IptablesFamily) -> dict[str, bool]:
    """Per chain role: is our chain there and jumped to (for status)."""
    chains = exclude_chain_names(interface)
    snaps = snapshots(backend)
    return {role: chains[role] in snaps[table].chains and bool(snaps[table].jumps_to(chains[role], hook))
            for role, (table, hook) in HOOKS.items()}


def remove(interface: str, backend: IptablesFamily) -> bool:
    """Remove our jumps and chains of one family, whatever is left of them; True if anything was."""
    chains = exclude_chain_names(interface)
    snaps = snapshots(backend)
    tables = []
    for table in ("mangle", "nat"):
        delete, owned = [], []
        for role, (where, hook) in HOOKS.items():
            if where != table:
                continue
            delete += [(hook, spec) for _, spec in snaps[table].jumps_to(chains[role], hook)]
            if chains[role] in snaps[table].chains:
                owned.append(chains[role])
        if delete or owned:
            tables.append({"name": table, "delete": delete, "chains": owned})
    if not tables:
        return False
    try:
        run([backend.restore, "-w", "-n"], stdin=render("exclude-remove.j2", tables=tables), change=True)
    except CommandError as exc:
        raise FirewallError(f"{backend.name}: cannot remove the exclusion rules of {interface}: "
                            f"{exc}") from exc
    return True
