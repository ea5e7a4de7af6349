"""nftables in-process: libnftables (``libnftables.so.1``) through ctypes, else the ``nft`` binary.

libnftables is the library the ``nft`` binary is built on (Debian's
``libnftables1``, a dependency of ``nftables``): it takes the same text and
returns the same errors, without a child process. A ``Context`` also owns a
netlink socket for as long as it is open, and a table created with ``flags
owner`` belongs to that socket: no other process may change or delete it, and
it disappears when the context is freed or the process ends. That is what the
guard holds its copy of each block with (``wgkill.owned``).

Without the library (``Context.open`` returns a ``Binary``), each command is
one ``nft -f -``: the same text, no ownership (``owns`` is False).
``WGKILL_LIBNFTABLES=0`` in the environment chooses the binary on purpose.
"""

from __future__ import annotations

import ctypes
import os

from .. import runner
from ..errors import FirewallError
from ..recordclass import dataclass
from ..runner import CommandError, which

SONAME = "libnftables.so.1"
_lib: ctypes.CDLL | None = None
_tried = False


def _library() -> ctypes.CDLL | None:
    """libnftables with its signatures declared (as nftables' own py/nftables.py does); None if absent."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("WGKILL_LIBNFTABLES") == "0":
        return None
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError:
        from ctypes.util import find_library  # only without the soname: it imports tempfile and random

        found = find_library("nftables")
        if found is None:
            return None
        try:
            lib = ctypes.CDLL(found)
        except OSError:
            return None
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctypes.c_void_p
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_free.restype = None
    _lib = lib
    return _lib


def available() -> bool:
    return _library() is not None


class NftError(FirewallError):
    """nft refused a command: its error text (as the binary prints it)."""


@dataclass
class Context:
    """One libnftables context: its netlink socket lives until ``close`` (or the process ends)."""

    handle: int

    @staticmethod
    def open() -> Context | Binary:
        """A library context, or the binary's stand-in where the library is missing."""
        lib = _library()
        if lib is None:
            return Binary()
        handle = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not handle:
            return Binary()
        lib.nft_ctx_buffer_output(handle)
        lib.nft_ctx_buffer_error(handle)
        return Context(handle)

    def cmd(self, text: str) -> str:
        """Run ``text`` (what ``nft -f`` reads) as one transaction; its output. NftError on refusal."""
        lib = _library()
        if lib is None or not self.handle:
            raise NftError("nft: context closed")
        rc = lib.nft_run_cmd_from_buffer(self.handle, text.encode())
        out = (lib.nft_ctx_get_output_buffer(self.handle) or b"").decode(errors="replace")
        err = (lib.nft_ctx_get_error_buffer(self.handle) or b"").decode(errors="replace")
        if rc != 0:
            said = " ".join(err.split())[:300] or f"exit status {rc}"
            raise NftError(f"nft -f -: {said}")  # as the binary's failure reads (runner.CommandError)
        return out

    def close(self) -> None:
        lib = _library()
        if lib is not None and self.handle:
            lib.nft_ctx_free(self.handle)
        self.handle = 0


@dataclass
class Binary:
    """The ``nft`` binary, for hosts without the library: one ``nft -f -`` per command."""

    def cmd(self, text: str) -> str:
        try:
            return runner.run([which("nft"), "-f", "-"], stdin=text)
        except CommandError as exc:
            raise NftError(str(exc)) from exc

    def close(self) -> None:
        pass


_shared: Context | Binary | None = None


def run_text(text: str, *, change: bool = False) -> str:
    """One transaction (or listing) in the process's shared context: the hooks' path.

    The context is opened once and never freed: freeing one costs about 10 ms (as
    much as the transaction), the hooks exit at once, and it owns nothing (the
    hooks' tables have no ``owner`` flag; the guard's owned copies use contexts of
    their own). ``change``: announced as ``[#] nft -f -``, as the binary's run is."""
    global _shared
    if change and runner.trace is not None:
        runner.trace("[#] nft -f -")
    if _shared is None:
        _shared = Context.open()
    return _shared.cmd(text)
