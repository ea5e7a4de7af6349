"""Firewall backends: each applies one family's payload atomically and removes it exactly.

A backend module exports a class with this contract (iptables first; nftables
can follow as a sibling module):

- ``apply(policy)`` may be called any number of times; the result is the same
  rule set as calling it once (idempotent), written in one transaction.
- ``remove(chain)`` removes only our jump(s) and our chain; calling it when
  they are already gone is not an error.
- ``snapshot()`` reads what is there, for decisions and for status.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Applied:
    """What one family's apply did: the payload's hash, and whether the jump moved."""

    family: int
    variant: str
    chain: str
    jump: str
    payload_sha256: str
    rules: int


@dataclass(frozen=True)
class Removed:
    family: int
    chain_removed: bool
    jumps_removed: int

    @property
    def anything(self) -> bool:
        return self.chain_removed or self.jumps_removed > 0
