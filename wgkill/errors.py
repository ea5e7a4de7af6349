"""One error family, one exit code per kind, mapped in one place (``wgkill.cli``).

Exit codes are part of the interface (README, "Exit codes"): wg-quick aborts a
bring-up on any non-zero PostUp, and monitors read them.
"""


class WgkillError(Exception):
    """Base class: the message is one line meant for a person."""

    exit_code = 1


class UsageError(WgkillError):
    """Bad arguments or a bad interface name: nothing was touched."""

    exit_code = 2


class ConfigError(WgkillError):
    """The wg-quick config is missing, unreadable or invalid."""

    exit_code = 3


class StateError(WgkillError):
    """The state file is corrupt, unreadable or of an unknown version."""

    exit_code = 4


class PrerequisiteError(WgkillError):
    """A needed binary or kernel feature is missing, or we are not root."""

    exit_code = 5


class FirewallError(WgkillError):
    """Applying or removing rules failed; whatever was already applied stays."""

    exit_code = 6


class TunnelError(WgkillError):
    """The WireGuard interface could not be read."""

    exit_code = 7


class DnsError(WgkillError):
    """The host's resolver configuration could not be changed or put back."""

    exit_code = 8


class ExecError(WgkillError):
    """wgkill-exclude could not run the command (as runuser and the shell say: 126)."""

    exit_code = 126


class CommandNotFoundError(ExecError):
    """wgkill-exclude found no such command on the minimal PATH (127, as the shell says)."""

    exit_code = 127


class ApplyFailed(FirewallError):
    """Applying a block failed; ``applied`` names the families already in place (they stay)."""

    def __init__(self, message: str, applied: list[str] | None = None) -> None:
        super().__init__(message)
        self.applied = applied or []
