"""argparse that reports usage errors as one line and exit code 2, through our error path."""

import argparse
from typing import NoReturn

from ..errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")
