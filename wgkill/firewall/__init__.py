"""Firewall backends: each applies one family's payload atomically and removes it exactly.

A backend module exports a class with this contract (iptables first; nftables
can follow as a sibling module):

- ``apply(specs)`` may be called any number of times; the result is the same
  rule set as calling it once (idempotent), written in one transaction.
- ``remove([(hook, chain), ...])`` removes only our jumps and our chains;
  calling it when they are already gone is not an error.
- ``snapshot()`` reads what is there, for decisions and for status.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Removed:
    family: int
    chain_removed: bool
    jumps_removed: int

    @property
    def anything(self) -> bool:
        return self.chain_removed or self.jumps_removed > 0
