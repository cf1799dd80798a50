"""The shared task queue: ``tasks/{pending,current,complete}/<id>.json`` at the project root.

Claiming is ``rename(pending/x, current/x)``: atomic on one filesystem, so of two workers (or
two processes) claiming one task exactly one wins. The framework owns completion: only after a
successful merge are a worker's tasks moved to ``complete/`` and annotated.

Everything in here is untrusted input: a task id is ``[A-Za-z0-9._-]+`` and never ``.``/``..``
before it becomes part of a path, and a task file that is not valid JSON is reported and moved
as it is, never parsed into a crash.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text

STATES = ("pending", "current", "complete")
_TASK_ID = re.compile(r"[A-Za-z0-9._-]+")


def valid_task_id(task_id: str) -> bool:
    return bool(_TASK_ID.fullmatch(task_id)) and task_id not in (".", "..")


@dataclass(frozen=True)
class ClaimResult:
    claimed: tuple[str, ...] = ()
    taken: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskCounts:
    pending: int
    current: int
    complete: int


@dataclass
class CompletionReport:
    completed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class TaskQueue:
    def __init__(self, project_root: Path) -> None:
        self.root = project_root / "tasks"
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}  # task id in current/ -> worker that holds it

    def ensure_dirs(self) -> None:
        for state in STATES:
            (self.root / state).mkdir(parents=True, exist_ok=True)

    def _file(self, state: str, task_id: str) -> Path:
        if not valid_task_id(task_id):  # a last line of defence: callers validate first
            raise ValueError(f"invalid task id {task_id!r}")
        return self.root / state / f"{task_id}.json"

    def ids(self, state: str) -> list[str]:
        try:
            names = os.listdir(self.root / state)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and valid_task_id(n[:-5]))

    def counts(self) -> TaskCounts:
        return TaskCounts(*(len(self.ids(s)) for s in STATES))

    def claim(self, task_ids: Iterable[str], worker_id: str) -> ClaimResult:
        claimed: list[str] = []
        taken: list[str] = []
        missing: list[str] = []
        invalid: list[str] = []
        for task_id in task_ids:
            if not valid_task_id(task_id):
                invalid.append(task_id)
                continue
            # Rename and owner in one step: adopt_unowned must never see the task in
            # current/ without its owner. (The rename alone decides between processes.)
            with self._lock:
                try:
                    os.rename(self._file("pending", task_id), self._file("current", task_id))
                except FileNotFoundError:
                    pass
                else:
                    self._owners[task_id] = worker_id
                    claimed.append(task_id)
                    continue
            exists = any(self._file(s, task_id).exists() for s in ("current", "complete"))
            (taken if exists else missing).append(task_id)
        return ClaimResult(tuple(claimed), tuple(taken), tuple(missing), tuple(invalid))

    def adopt_unowned(self, worker_id: str) -> list[str]:
        """Tasks an agent moved to current/ by hand belong to the worker that just ran."""
        with self._lock:
            adopted = [t for t in self.ids("current") if t not in self._owners]
            for task_id in adopted:
                self._owners[task_id] = worker_id
        return adopted

    def recycle_unowned(self, task_ids: Iterable[str]) -> list[str]:
        """Tasks in current/ that no worker holds (a killed run's in-flight claims) go back to
        pending/, whoever's they were."""
        moved = []
        for task_id in task_ids:
            src, dst = self._file("current", task_id), self._file("pending", task_id)
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue
            moved.append(task_id)
        return moved

    def reown(self, task_ids: Iterable[str], worker_id: str) -> list[str]:
        """A resumed worker holds again the tasks it held (those still in current/)."""
        with self._lock:
            current = set(self.ids("current"))
            mine = [t for t in task_ids if t in current]
            for task_id in mine:
                self._owners[task_id] = worker_id
        return mine

    def owned_by(self, worker_id: str) -> list[str]:
        with self._lock:
            return sorted(t for t, w in self._owners.items() if w == worker_id)

    def recycle(self, task_ids: Iterable[str]) -> list[str]:
        """current -> pending; returns the ids that moved."""
        moved = []
        for task_id in task_ids:
            # File and owner in one step, as in claim(): adopt_unowned must never see the task
            # in current/ without its owner.
            with self._lock:
                self._owners.pop(task_id, None)
                try:
                    os.rename(self._file("current", task_id), self._file("pending", task_id))
                except FileNotFoundError:
                    continue
            moved.append(task_id)
        return moved

    def complete(self, task_ids: Iterable[str], annotation: dict[str, Any]) -> CompletionReport:
        """current -> complete, adding ``completed-by``, ``completed-at``, ``review-rounds``,
        ``merged-commit``. A task file that is not a JSON object is moved unannotated."""
        report = CompletionReport()
        for task_id in task_ids:
            # File and owner in one step, as in claim(): adopt_unowned must never see the task
            # in current/ without its owner (it would take a task that is being completed).
            with self._lock:
                self._owners.pop(task_id, None)
                moved, problem = self._move_to_complete(task_id, annotation)
            if problem:
                report.problems.append(problem)
            if moved:
                report.completed.append(task_id)
        return report

    def _move_to_complete(
        self, task_id: str, annotation: dict[str, Any]
    ) -> tuple[bool, str | None]:
        """current -> complete, annotated: (moved, a problem to report or None)."""
        src, dst = self._file("current", task_id), self._file("complete", task_id)
        try:
            text = src.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False, f"task {task_id}: no longer in current/"
        try:
            task = json.loads(text)
            if not isinstance(task, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            os.replace(src, dst)  # reported and moved as it is, never parsed into a crash
            return True, f"task {task_id}: not valid task JSON ({exc})"
        task.update(annotation)
        atomic_write_text(dst, json.dumps(task, indent=2, ensure_ascii=False) + "\n")
        src.unlink(missing_ok=True)
        return True, None

    def describe(self) -> str:
        counts = self.counts()
        pending = self.ids("pending")
        shown = ", ".join(pending[:20]) + (
            f", … ({len(pending) - 20} more)" if len(pending) > 20 else ""
        )
        return (
            f"Pending: {counts.pending}, In Progress: {counts.current}, "
            f"Complete: {counts.complete}\nPending tasks: {shown or '(none)'}"
        )
