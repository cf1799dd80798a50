"""``oompa tasks [--repo DIR]``: the task queue's state, read from its folders.

The queue is ``tasks/{pending,current,complete}/<id>.json`` (``pytest_oompa.engine.tasks``), and a
state is the folder a file is in, so reading the folders is the whole truth, for a running swarm
too. Ids are listed by the queue's own rules (files with a valid id only); a task's summary is
shown when its file says one, and a file that is not valid JSON is listed by its id, never a
crash: task files are written by agents.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pytest_oompa.cli.command import Command, UsageError
from pytest_oompa.engine.tasks import STATES, TaskQueue

__all__ = ["TASKS", "summary_of"]

_SUMMARY_WIDTH = 72
_TITLES = {"pending": "pending", "current": "in progress (current)", "complete": "complete"}


def summary_of(path: Path) -> str:
    """The task's ``summary`` (first line, shortened), or '' when the file has none."""
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    summary = task.get("summary") if isinstance(task, dict) else None
    if not isinstance(summary, str) or not summary.strip():
        return ""
    line = summary.strip().splitlines()[0]
    return line if len(line) <= _SUMMARY_WIDTH else line[: _SUMMARY_WIDTH - 1] + "…"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the project whose tasks/ folder is read (default: the current folder)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_tasks(args: argparse.Namespace) -> int:
    repo: Path = args.repo
    if not repo.is_dir():
        raise UsageError(f"{repo}: no such folder")
    queue = TaskQueue(repo)
    if not queue.root.is_dir():
        print(f"no task queue in {repo.resolve()} (no tasks/ folder)")
        return 1
    ids = {state: queue.ids(state) for state in STATES}
    if args.json:
        print(json.dumps(ids, indent=2))
        return 0
    counts = ", ".join(f"{len(ids[s])} {s}" for s in STATES)
    print(f"tasks in {queue.root.resolve()}: {counts}")
    for state in STATES:
        print(f"\n{_TITLES[state]} ({len(ids[state])}):")
        width = max((len(t) for t in ids[state]), default=0)
        for task_id in ids[state]:
            summary = summary_of(queue.root / state / f"{task_id}.json")
            print(f"  {task_id.ljust(width)}  {summary}".rstrip())
        if not ids[state]:
            print("  (none)")
    return 0


TASKS = Command(
    name="tasks",
    summary="show the task queue: pending, current and complete tasks",
    description="Show the task queue of a project (tasks/pending, tasks/current, "
    "tasks/complete): how many tasks each state holds, their ids and summaries. "
    "Exit status 1 when the project has no tasks/ folder.",
    configure=_configure,
    run=run_tasks,
)
