"""Rendered rule text, kept between runs so a hook whose inputs did not change skips Jinja; and
parsed prefix lists, so a hook whose list file did not change skips parsing it (``prefix_list``).

The key is a hash of everything the templates see (the decided policy), the
wgkill version and the templates' own files (name, size, mtime), so an
upgrade or an edited template can never be served stale text. A miss, an
unreadable or foreign cache file just means rendering again; the cache is
never the record of what was applied (that is the state file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import __version__, prefixes
from . import state as statefile
from .digest import sha256_hex
from .errors import StateError
from .templating import template_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

CACHE_DIR = ".render-cache"


def _templates_fingerprint() -> str:
    root = template_dir()
    entries = []
    for top, _, names in os.walk(root):
        for name in names:
            if name.endswith(".j2"):
                path = os.path.join(top, name)
                found = os.stat(path)
                entries.append((os.path.relpath(path, root), found.st_size, found.st_mtime_ns))
    return repr(sorted(entries))


def cache_key(policy: object) -> str:
    material = f"{__version__}\n{_templates_fingerprint()}\n{policy!r}"
    return sha256_hex(material.encode())


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
        statefile.write_atomic(_path(interface), json.dumps(entry), durable=False)
    except StateError:
        pass


def _list_path(path: str) -> Path:
    name = sha256_hex(os.path.abspath(path).encode())[:24]
    return statefile.state_dir() / CACHE_DIR / f"prefixes-{name}.json"


def prefix_list(path: str, *, save_new: bool = True) -> prefixes.PrefixList:
    """``prefixes.load_file(path)``, with the file read once: a list parsed before from the same
    text by the same wgkill version comes back from the cache (its canonical texts and integers:
    100,000 prefixes load in about 0.02 s, against 0.1-0.3 s to parse; issue 21). ``save_new``:
    keep a newly parsed list for the next run (not on --dry-run, which changes nothing)."""
    text = prefixes.read_file(path)
    key = sha256_hex(f"{__version__}\n{text}".encode())
    cached = _load_list(_list_path(path), key)
    if cached is not None:
        return cached
    listed = prefixes.parse_text(text, path)
    if save_new:
        save_list = {"key": key, "v4": "\n".join(listed.v4), "v6": "\n".join(listed.v6), "read": listed.read,
                     "normalised": listed.normalised, "packed": [list(keys) for keys in listed.packed]}
        try:
            statefile.write_atomic(_list_path(path), json.dumps(save_list), durable=False)
        except StateError:
            pass  # best effort, as for the rendered text
    return listed


def _load_list(cache: Path, key: str) -> prefixes.PrefixList | None:
    """The cached list for ``key``; None when absent, for other text, or not whole."""
    try:
        data = json.loads(cache.read_text())
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        v4, v6 = (tuple(data[name].split("\n")) if data[name] else () for name in ("v4", "v6"))
        packed = tuple(tuple(keys) for keys in data["packed"])
        listed = prefixes.PrefixList(v4, v6, int(data["read"]), int(data["normalised"]), packed)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if len(packed) != 2 or [len(keys) for keys in packed] != [len(v4), len(v6)]:
        return None
    return listed
