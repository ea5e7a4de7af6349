"""argparse that reports usage errors as one line and exit code 2, through our error path."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import NoReturn


def columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it (COLUMNS, else the terminal,
    else 80), without importing shutil: argparse's formatter would, on every hook run (~5 ms)."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        width = 0
    if width <= 0 and sys.__stdout__ is not None:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            width = 0
    return width or 80


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")

    def _get_formatter(self) -> argparse.HelpFormatter:
        formatter: type[argparse.HelpFormatter] = self.formatter_class  # type: ignore[assignment]
        return formatter(prog=self.prog, width=columns() - 2)  # as argparse does, with our width
