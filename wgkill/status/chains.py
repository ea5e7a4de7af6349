"""One firewall backend object per backend name for a run that reads many interfaces (status, the guard);
what each backend reads is its own ``inspect``."""

from __future__ import annotations

from ..firewall import backend
from ..firewall.base import Backend


class Snapshots:
    """One backend object per backend name, however many interfaces need it (its binaries resolved once)."""

    def __init__(self) -> None:
        self._cache: dict[str, Backend] = {}

    def get(self, name: str) -> Backend:
        if name not in self._cache:
            self._cache[name] = backend(name)
        return self._cache[name]
