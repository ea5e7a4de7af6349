"""Command-line entry points: parse, call one library function, map errors to exit codes.

Every failure is one line on stderr, ``PROG: error: message``, and the exit
code of its error class (see ``wgkill.errors`` and the README). Tracebacks are
shown only with ``WGKILL_DEBUG=1``.
"""

import os
import sys
from collections.abc import Callable, Sequence

from .. import runner
from ..errors import WgkillError

INTERNAL_ERROR = 1


def say(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)


def entry(prog: str, body: Callable[[Sequence[str]], int],
          failure: Callable[[str], int] | None = None) -> Callable[[], None]:
    """Wrap ``body(argv)`` into a console-script ``main`` with the exit-code mapping.

    ``failure``, when given, reports every error (usage and internal ones too) as
    its one line and returns the exit code: wgkill-status answers monitors in their
    own convention, where anything but a verdict is UNKNOWN.
    """

    def fail(line: str, code: int) -> int:
        if failure is not None:
            return failure(line)
        say(prog, line)
        return code

    def main() -> None:
        runner.trace = lambda line: print(line, file=sys.stderr, flush=True)
        try:
            code = body(sys.argv[1:])
        except WgkillError as exc:
            code = fail(f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            code = 130
        except Exception as exc:
            if os.environ.get("WGKILL_DEBUG"):
                raise
            code = fail(f"internal error: {type(exc).__name__}: {exc}", INTERNAL_ERROR)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # skip interpreter teardown: every hook millisecond is paid on each reconnect

    return main
