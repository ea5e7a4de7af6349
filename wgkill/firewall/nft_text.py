"""The one reader of the nft text format (``nft list`` output, and our own payloads).

Shared by the backend (``nft``: inspect, the guard's copy) and the renderer
(``nft_render``: a payload's rule counts), which import nothing from each other.
"""

import re

_CHAIN_HEAD = re.compile(r"^\s*chain (\S+) \{$")
_TABLE_HEAD = re.compile(r"^\s*table inet (\S+) \{$")


def parse_listing(text: str) -> dict[str, dict[str, list[str]]]:
    """``nft list`` output (or our own payload): table -> chain -> rule lines.

    The one reader of the nft text format: a chain's rules are its lines other
    than the ``type ... hook ...;`` declaration."""
    tables: dict[str, dict[str, list[str]]] = {}
    table = chain = None
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (chain is None and depth >= 2 and stripped[-1] not in "{}"):
            continue  # blank, or inside a set (100,000 elements): no head, no rule, no depth change
        head = _TABLE_HEAD.match(line)
        if head and depth == 0:
            table, depth = head.group(1), 1
            tables[table] = {}
            continue
        if table is None:
            continue
        found = _CHAIN_HEAD.match(line)
        if found and depth == 1:
            chain, depth = found.group(1), 2
            tables[table][chain] = []
            continue
        if stripped.endswith("{"):
            depth += 1
            continue
        if stripped == "}":
            depth -= 1
            if depth == 1:
                chain = None
            elif depth == 0:
                table = None
            continue
        if chain is not None and depth == 2 and not stripped.startswith("type "):
            tables[table][chain].append(stripped)
    return tables


def rule_counts(payload: str, table: str) -> dict[str, int]:
    return {chain: len(rules) for chain, rules in parse_listing(payload).get(table, {}).items()}
