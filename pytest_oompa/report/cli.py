"""``python -m pytest_oompa report ID|PATH [--runs-dir DIR]``: write a run's report on demand.

The swarm writes ``report.html`` when it ends; this command writes it again at any time (while
the swarm runs, after it was killed, for a run copied from another machine), atomically, so a
reader never sees half a page. An id is looked up the way ``python -m pytest_oompa runs`` does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from pytest_oompa.report.page import write_report
from pytest_oompa.runs.files import is_run_folder
from pytest_oompa.runs.reader import default_runs_dir

__all__ = ["main", "resolve_run_dir"]

_ID_RE = re.compile(r"[A-Za-z0-9._-]+")


def resolve_run_dir(
    target: str, runs_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``PATH`` when it is an existing folder, else the run ``ID`` in the runs folder
    (``runs_dir``, else env ``OOMPA_RUNS_DIR``, else ``RUNS_DIR``, else ``./runs``)."""
    path = Path(target)
    if path.is_dir():
        return path
    if not _ID_RE.fullmatch(target) or target in (".", ".."):
        raise FileNotFoundError(f"{target}: no such run folder, and not a swarm id")
    folder = runs_dir if runs_dir is not None else default_runs_dir(environ)
    return folder / target


def main(argv: list[str]) -> int:
    """``python -m pytest_oompa report ID|PATH [--runs-dir DIR]``: write the report, print its
    path. Exit status 0, or 2 when there is no such run."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_oompa report",
        description="Write a swarm run's self-contained HTML report (report.html in its folder).",
    )
    parser.add_argument("run", metavar="ID|PATH", help="a swarm id, or the run folder's path")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where run ids are looked up "
        "(default: env OOMPA_RUNS_DIR, else RUNS_DIR, else ./runs)",
    )
    args = parser.parse_args(argv)
    try:
        run_dir = resolve_run_dir(args.run, args.runs_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        if not is_run_folder(run_dir):  # of either format: ours, or oompa 0.7.3's
            raise FileNotFoundError(
                f"{run_dir}: not a swarm run folder (no run.json, no iterations)"
            )
        path = write_report(run_dir)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
