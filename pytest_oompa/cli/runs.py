"""``oompa list``, ``oompa view [ID]`` and ``oompa report [ID|PATH]``: the runs folder, read.

These are upstream's names for what ``python -m pytest_oompa runs|show|report`` already do, so
each one builds that command's arguments and calls it: the reading, the validation, the
liveness rule and the formats a run folder may be in stay in ``pytest_oompa.runs.reader`` and
``pytest_oompa.report.cli``, in one place. What is added here is upstream's default: with no
id, ``view`` and ``report`` take the newest run of the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_oompa.cli.command import Command, UsageError
from pytest_oompa.report import cli as report_cli
from pytest_oompa.runs.reader import (
    STALE_SECONDS,
    add_watch_arguments,
    default_runs_dir,
    list_runs,
    main_runs,
    main_show,
    watch_problem,
)

__all__ = ["LIST", "REPORT", "VIEW"]

RUNS_DIR_HELP = "the runs folder (default: env OOMPA_RUNS_DIR, else RUNS_DIR, else ./runs)"


def _runs_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=None, metavar="DIR", help=RUNS_DIR_HELP)


def _reading_options(parser: argparse.ArgumentParser) -> None:
    _runs_dir_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--stale-after",
        type=float,
        default=STALE_SECONDS,
        metavar="SECONDS",
        help=f"heartbeat age after which a run without an end is dead (default {STALE_SECONDS:g})",
    )


def _runs_dir_args(args: argparse.Namespace) -> list[str]:
    return ["--runs-dir", str(args.runs_dir)] if args.runs_dir is not None else []


def _reading_args(args: argparse.Namespace) -> list[str]:
    """The reader's own options, as its command line spells them."""
    json_flag = ["--json"] if args.json else []
    return [*_runs_dir_args(args), *json_flag, "--stale-after", repr(args.stale_after)]


def newest_run(runs_dir: Path, stale_after: float = STALE_SECONDS) -> str:
    """The id of the run that started last; UsageError when the folder holds none."""
    runs = list_runs(runs_dir, stale_after)
    if not runs:
        raise UsageError(f"no runs in {runs_dir}")
    return runs[0].id


# -- oompa list ----------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    return main_runs(_reading_args(args))


LIST = Command(
    name="list",
    summary="list the recent swarm runs, newest first",
    description="List the swarm runs in the runs folder, newest first: status (running, "
    "completed, failed, interrupted, dead), start, duration, iterations, merges, errors. "
    "Exit status 1 when a run file is corrupt.",
    configure=_reading_options,
    run=run_list,
)


# -- oompa view ----------------------------------------------------------------------------------


def _configure_view(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "swarm_id",
        nargs="?",
        metavar="SWARM_ID",
        help="a swarm id in the runs folder, or a run folder's path (default: the newest run)",
    )
    _reading_options(parser)
    add_watch_arguments(parser)


def run_view(args: argparse.Namespace) -> int:
    runs_dir = args.runs_dir or default_runs_dir()
    problem = watch_problem(args.watch, args.json, args.interval)
    if problem:
        raise UsageError(problem)
    swarm_id = args.swarm_id or newest_run(runs_dir, args.stale_after)
    watching = ["--watch"] if args.watch else []
    if args.interval is not None:
        watching += ["--interval", repr(args.interval)]
    return main_show([swarm_id, *_reading_args(args), *watching])


VIEW = Command(
    name="view",
    summary="show one run's workers and iterations (default: the newest run)",
    description="Show a swarm run: its status, each worker's counts and each iteration's "
    "outcome; with --watch, follow a live run until it ends (Ctrl-C: exit status 130). "
    "Exit status 2 when there is no such run, 1 when a run file is corrupt.",
    configure=_configure_view,
    run=run_view,
)


# -- oompa report --------------------------------------------------------------------------------


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        metavar="ID|PATH",
        help="a swarm id in the runs folder, or a run folder's path (default: the newest run)",
    )
    _runs_dir_option(parser)


def run_report(args: argparse.Namespace) -> int:
    target = args.run or newest_run(args.runs_dir or default_runs_dir())
    return report_cli.main([target, *_runs_dir_args(args)])


REPORT = Command(
    name="report",
    summary="write a run's self-contained HTML report (default: the newest run)",
    description="Write a swarm run's self-contained HTML report (report.html in its folder) "
    "and print its path; works while the run goes on and after it was killed. Exit status 2 "
    "when there is no such run.",
    configure=_configure_report,
    run=run_report,
)
