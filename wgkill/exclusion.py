"""What an exclusion put in place for one tunnel: a typed record, kept in the tunnel's state.

Commands and rule text are rebuilt from these fields, never read from the
file: a record whose fields are not what wgkill writes is refused.
"""

from __future__ import annotations

import re

from .errors import StateError, WgkillError
from .names import validate_interface
from .recordclass import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

RECORD_VERSION = 1
_CGROUP = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass
class ExclusionRecord:
    """The exclusion of one tunnel: the cgroup (under the v2 root) whose sockets get ``mark``."""

    interface: str
    cgroup: str
    mark: int  # the tunnel's fwmark: wg-quick's policy rule already routes it around the tunnel
    families: list[int] = field(default_factory=list)
    version: int = RECORD_VERSION

    @classmethod
    def from_dict(cls, data: Any) -> ExclusionRecord:
        """The record from its JSON form; anything malformed is a StateError."""
        try:
            if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
                raise StateError("exclusion record missing or of an unknown version")
            record = cls(**data)
            validate_interface(record.interface)
        except (TypeError, ValueError) as exc:
            raise StateError(f"corrupt exclusion record: {exc}") from exc
        except StateError:
            raise
        except WgkillError as exc:  # a bad interface name: still a bad record
            raise StateError(f"corrupt exclusion record: {exc}") from exc
        if not isinstance(record.cgroup, str) or not _CGROUP.fullmatch(record.cgroup) \
                or record.cgroup in {".", ".."}:
            raise StateError("corrupt exclusion record: bad cgroup name")
        if type(record.mark) is not int or not 0 < record.mark < 2**32:
            raise StateError("corrupt exclusion record: bad mark")
        if not isinstance(record.families, list) or not set(record.families) <= {4, 6} \
                or len(set(record.families)) != len(record.families):
            raise StateError("corrupt exclusion record: bad families")
        return record
