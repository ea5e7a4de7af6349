"""``--routes``' marks, source NAT and postrouting guard in iptables (``IptablesBackend``'s
route-mark methods): mangle and nat chains of their own, one ``iptables-restore -w -n`` per family.

What they do and why is ``wgkill.routes``' docstring; here is only the iptables text. The
tables are read with the backend's one reader (``iptables.parse_save``); a re-run leaves
``iptables-save`` byte-identical (each jump stays first), and removal deletes exactly our
jumps and chains.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ..errors import FirewallError
from ..names import jump_spec, route_chain_names, route_jump_comment, set_name
from ..runner import CommandError, run
from ..templating import render

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from .iptables import FilterSnapshot, IptablesFamily

# Each of our chains by its key in route_chain_names: (table, the built-in chain jumping to it).
HOOKS = {"mangle": ("mangle", "OUTPUT"), "nat": ("nat", "POSTROUTING"), "guard": ("mangle", "POSTROUTING")}
TABLES = ("mangle", "nat")
_HOST_BITS = {4: 32, 6: 128}


def chain_bodies(
    interface: str, family: int, mark: int, mask: int,
    endpoints: Sequence[tuple[str, int]] = (), wg_fwmark: int | None = None,
) -> dict[str, list[str]]:
    """The rules of our chains for one family (``-A`` lines), by key (mangle, nat, guard)."""
    chains = route_chain_names(interface)
    rt, nat = chains["mangle"], chains["nat"]
    body = []
    if wg_fwmark:
        body.append(f"-A {rt} -m mark --mark {wg_fwmark:#x} -j RETURN")
    for address, port in endpoints:
        address = str(ipaddress.ip_address(address))  # it goes into a restore payload: no surprises
        body.append(f"-A {rt} -d {address}/{_HOST_BITS[family]} -p udp -m udp --dport {int(port)} -j RETURN")
    match = f"-m set --match-set {set_name(interface, family)} dst"
    body.append(f"-A {rt} {match} -j MARK --set-xmark {mark:#x}/{mask:#x}")
    return {
        "mangle": body,
        "nat": [f"-A {nat} -o {interface} -m mark --mark {mark:#x}/{mask:#x} -j MASQUERADE"],
        "guard": render("routes-guard.rules.j2", chain=chains["guard"], interface=interface,
                        mark=f"{mark:#x}/{mask:#x}").splitlines(),
    }


def apply_payload(interface: str, bodies: dict[str, list[str]], snaps: dict[str, FilterSnapshot]) -> str:
    """One --noflush transaction per table: declaring a chain flushes it, the jump goes (or stays) first."""
    lines = []
    chains = route_chain_names(interface)
    for table in TABLES:
        keys = [key for key in chains if HOOKS[key][0] == table]
        lines += [f"*{table}", *(f":{chains[key]} - [0:0]" for key in keys)]
        for key in keys:
            hook, chain = HOOKS[key][1], chains[key]
            jump = jump_spec(chain, route_jump_comment(interface))
            found = snaps[table].jumps_to(chain, hook)
            if found != [(0, jump)]:
                lines += [f"-D {hook} {spec}" for _, spec in found]
                lines.append(f"-I {hook} 1 {jump}")
        for key in keys:
            lines += bodies[key]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def remove_payload(chains: dict[str, str], snaps: dict[str, FilterSnapshot]) -> tuple[str, list[str]]:
    """What removes ``chains`` and every jump to them as ``snaps`` show them ("" if nothing is
    there), and the chains it removes as (table, chain)."""
    lines: list[str] = []
    done: list[str] = []
    for table in TABLES:
        snap = snaps[table]
        section: list[str] = []
        flush: list[str] = []
        for key, chain in chains.items():
            if HOOKS[key][0] != table:
                continue
            hook = HOOKS[key][1]
            section += [f"-D {hook} {spec}" for _, spec in snap.jumps_to(chain, hook)]
            if chain in snap.chains:
                flush += [f"-F {chain}", f"-X {chain}"]
                done.append(f"{table} chain {chain}")
        if section or flush:
            lines += [f"*{table}", *section, *flush, "COMMIT"]
    return ("\n".join(lines) + "\n" if lines else ""), done


def missing(chains: dict[str, str], snaps: dict[str, FilterSnapshot]) -> list[str]:
    """Our chains that are gone or no longer jumped to, as "TABLE chain NAME"."""
    out = []
    for key, chain in chains.items():
        table, hook = HOOKS[key]
        if chain not in snaps[table].chains or not snaps[table].jumps_to(chain, hook):
            out.append(f"{table} chain {chain}")
    return out


def snapshots(backend: IptablesFamily) -> dict[str, FilterSnapshot]:
    return {table: backend.snapshot(table) for table in TABLES}


def restore(backend: IptablesFamily, payload: str, what: str) -> None:
    try:
        run([backend.restore, "-w", "-n"], stdin=payload, change=True)
    except CommandError as exc:
        raise FirewallError(f"ipv{backend.family}: {what}: {exc}") from exc
