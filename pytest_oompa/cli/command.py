"""What every ``oompa`` command shares: its table entry, the parser and the usage error.

A usage error is one line on stderr and exit status 2, never argparse's usage block and never a
traceback: the commands are typed by people and called by scripts, and both want the reason,
not a page. ``--help`` keeps argparse's full text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["USAGE_ERROR", "Command", "OompaParser", "UsageError"]

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input found after parsing (a folder that is not a repo, a missing config file)."""


class OompaParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``oompa view: error: ... (see oompa view --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """One ``oompa`` subcommand: its name, its help, its arguments and what runs it."""

    name: str
    summary: str  # one line, for ``oompa --help``
    description: str  # the paragraph of ``oompa NAME --help``
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
