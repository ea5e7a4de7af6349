"""Firewall backends: ``nft`` (one inet table per interface) and ``iptables`` (chains we own).

The contract is ``wgkill.firewall.base.Backend``. ``backend(name)`` builds one
(resolving its binaries, before any change); ``choose`` decides which one a
run uses, as wg-quick does: the recorded backend wins (a block is always
removed by what applied it), else nftables when ``nft`` is installed and
works, else iptables. Backend modules are imported lazily: the PreDown hook
pays only for the one its state records.
"""

from __future__ import annotations

from ..errors import UsageError
from ..recordclass import dataclass
from ..runner import find

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from .. import state as statefile
    from ..policy import KillSwitchPolicy
    from ..prefixes import PrefixList
    from .base import Backend

CHOICES = ("auto", "nft", "iptables")


@dataclass(frozen=True)
class Removed:
    """What one removal took away in one family (0: the nft table, both at once): wgkill-down
    reports it, and a removal that found nothing is not an error."""

    family: int
    chain_removed: bool
    jumps_removed: int

    @property
    def anything(self) -> bool:
        return self.chain_removed or self.jumps_removed > 0


def nft_works() -> bool:
    """Whether ``nft`` is installed and can talk to the kernel (``nft list tables`` works: in-process
    through libnftables where it is installed, else the binary)."""
    path = find("nft")
    if path is None:
        return False
    from .libnft import NftError, available, run_text

    if available():
        try:
            run_text("list tables\n")
        except NftError:
            return False
        return True
    import subprocess

    try:
        done = subprocess.run([path, "list", "tables"], capture_output=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose(requested: str = "auto", recorded: statefile.State | None = None) -> str:
    """The backend name a run uses: an explicit request, else the recorded one, else nft if it works."""
    if requested not in CHOICES:
        raise UsageError(f"--backend must be one of {', '.join(CHOICES)}, not {requested!r}")
    if requested != "auto":
        return requested
    if recorded is not None:
        return recorded.backend
    return "nft" if nft_works() else "iptables"


def check_recorded(state: statefile.State) -> None:
    """StateError if ``state`` names chains or sets that are not ours (before any change); needs no
    binary: a state is checked even where its backend's tools are gone."""
    if state.backend == "iptables":
        from .iptables import owned_chains

        owned_chains(state)


def installed() -> list[str]:
    """The backends whose tools are on PATH: where a lost state's rules may be, found by name."""
    tools = {"nft": "nft", "iptables": "iptables-restore"}
    return [name for name, tool in tools.items() if find(tool)]


def backend_class(name: str) -> type[Backend]:
    """The class of the backend called ``name``: its static methods need no binary."""
    if name == "nft":
        from .nft import NftBackend

        return NftBackend
    if name == "iptables":
        from .iptables import IptablesBackend

        return IptablesBackend
    raise UsageError(f"unknown firewall backend {name!r}")


def backend(name: str) -> Backend:
    """The backend called ``name``, its binaries resolved (PrerequisiteError if missing)."""
    return backend_class(name)()


def nft_payload(policy: KillSwitchPolicy, split: PrefixList | None) -> str:
    """``policy``'s block as one nft transaction, whatever backend the tunnel records: the guard's
    owned copy of an iptables tunnel's block is written in nft (pure: no binary, no kernel)."""
    from .nft import NftBackend

    return NftBackend.render(policy, split).payload
