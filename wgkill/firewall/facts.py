"""What ``Backend.inspect`` reports: the recorded chains and sets as they are now.

They live with the interface that returns them, so ``firewall`` needs nothing
from ``status``; ``wgkill.status`` judges them.
"""

from __future__ import annotations

from ..recordclass import dataclass, field


@dataclass
class ChainFacts:
    """One recorded chain and its jump, as they are now."""

    family: str  # "ipv4" / "ipv6"
    chain: str
    hook: str  # OUTPUT, or FORWARD in gateway mode
    jump_spec: str  # the jump as recorded
    present: bool = False
    rules: int | None = None  # live rule count
    jump_positions: list[int] = field(default_factory=list)  # positions of rules in hook targeting us
    jump_specs: list[str] = field(default_factory=list)
    above: list[str] = field(default_factory=list)  # hook rules above our first jump
    saved_sha256: str | None = None
    live_sha256: str | None = None
    recorded_rules: int | None = None  # from the state, when there is no saved_sha256 to compare


@dataclass
class SetFacts:
    """A split tunnel's address set as it is now, beside what it held when applied."""

    name: str
    entries: int | None  # None: the set does not exist
    expected: int | None = None  # what it held when applied; None: not recorded (older states)
