"""digest.sha256_hex is hashlib's SHA-256, without importing hashlib."""

import hashlib
import subprocess
import sys

from wgkill.digest import sha256_hex


def test_the_same_digest_as_hashlib() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_hashlib_is_not_imported() -> None:
    code = "import sys, wgkill.digest; print('hashlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
