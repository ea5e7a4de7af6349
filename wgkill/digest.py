"""SHA-256 hex digests, the one way wgkill fingerprints (render cache keys, state files, resolv.conf).

Not through ``hashlib``: it loads OpenSSL, 3-5 ms of every ``wgkill-up``, for a digest that
CPython's own builtin implementation gives byte for byte (tests/test_digest.py).
"""

try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # 3.11
    except ImportError:  # a build without them
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]


def sha256_hex(data: bytes) -> str:
    return str(_sha256(data).hexdigest())
