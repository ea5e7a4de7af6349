"""Golden files: a rendered text compared byte for byte with ``tests/golden/KIND/NAME``.

Regenerate after an intended change with ``WGKILL_UPDATE_GOLDEN=1`` and review the diff.
A helper module, not a test module (conftest registers it for pytest's assertion rewriting).
"""

import functools
import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parent / "golden"


def check(kind: str, name: str, text: str) -> None:
    """``text`` equals the golden file ``KIND/NAME`` byte for byte (line endings included)."""
    path = ROOT / kind / name
    if os.environ.get("WGKILL_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    assert text == path.read_bytes().decode(), f"{kind}/{name} differs from its golden file"


def checker(kind: str) -> Callable[[str, str], None]:
    """``check`` for one directory of golden files: ``checker("nft")("full-tunnel.nft", text)``."""
    return functools.partial(check, kind)
