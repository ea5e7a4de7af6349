"""Rendered rule text, kept between runs so a hook whose inputs did not change skips Jinja.

The key is a hash of everything the templates see (the decided policy), the
wgkill version and the templates' own files (name, size, mtime), so an
upgrade or an edited template can never be served stale text. A miss, an
unreadable or foreign cache file just means rendering again; the cache is
never the record of what was applied (that is the state file).
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import __version__
from . import state as statefile
from .errors import StateError
from .templating import template_dir

CACHE_DIR = ".render-cache"


def _templates_fingerprint() -> str:
    root = template_dir()
    entries = sorted(
        (os.path.relpath(os.path.join(top, name), root), os.stat(os.path.join(top, name)).st_size,
         os.stat(os.path.join(top, name)).st_mtime_ns)
        for top, _, names in os.walk(root) for name in names if name.endswith(".j2")
    )
    return repr(entries)


def cache_key(policy: object) -> str:
    material = f"{__version__}\n{_templates_fingerprint()}\n{policy!r}"
    return hashlib.sha256(material.encode()).hexdigest()


def _path(interface: str) -> Path:
    return statefile.state_dir() / CACHE_DIR / f"{interface}.json"


def load(interface: str, wanted: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_path(interface).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == wanted else None


def save(interface: str, entry: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written costs the next run a render, nothing more."""
    try:
        statefile.write_atomic(_path(interface), json.dumps(entry))
    except StateError:
        pass
