"""``oompa run [FILE] [-- PYTEST-ARGS...]``: ``python -m pytest --oompa-swarm=FILE``, shorter.

A swarm is a pytest session here (each worker iteration is a test item), so ``oompa run`` starts
pytest, with this interpreter, and its exit status is pytest's. On POSIX it replaces this
process (``os.execv``): the process the user started *is* the swarm's controller, so Ctrl-C,
``kill``, a dashboard's SIGTERM to the pid in ``started.json`` and the exit status reach pytest
with nothing in between to forward them. Elsewhere pytest runs as a child process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from pytest_oompa.cli.command import Command, UsageError

__all__ = ["RUN", "pytest_argv"]

DEFAULT_CONFIG = "oompa.json"


def pytest_argv(config: str, extra: list[str]) -> list[str]:
    """The command ``oompa run`` stands for."""
    return [sys.executable, "-m", "pytest", f"--oompa-swarm={config}", *extra]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the swarm config (default: {DEFAULT_CONFIG})",
    )


def run_swarm(args: argparse.Namespace) -> int:
    config = Path(args.config)
    if not config.is_file():
        raise UsageError(f"no swarm config {args.config} (give its path: oompa run FILE)")
    argv = pytest_argv(args.config, list(args.pytest_args))
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(argv[0], argv)
    return subprocess.run(argv, check=False).returncode


RUN = Command(
    name="run",
    summary="run a swarm: python -m pytest --oompa-swarm=FILE",
    description="Run the swarm of FILE as a pytest session: the same as "
    "'python -m pytest --oompa-swarm=FILE', plus the arguments after '--' "
    "(e.g. oompa run oompa.json -- -n 2 -q). The exit status is pytest's.",
    configure=_configure,
    run=run_swarm,
)
