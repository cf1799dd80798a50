"""What each worker is doing right now: its item, its phase and since when, for the live views.

A worker's runner announces each phase as it enters it (``waiting for tasks``, ``agent``,
``review round 2``, ``fix 1``, ``sync``, ``resolving conflict``, ``merge``, ``between
iterations``, ``stopped``); the terminal view and the CI progress lines read a snapshot about
once a second. Reading is polling, not callbacks, so a slow terminal never slows a worker, and
announcing costs a dict update (plus one small atomic file write when shared).

Under pytest-xdist the workers run in the nodes and the view in the controller: a board made
with a ``folder`` writes each worker's activity to ``{folder}/{worker}.json`` and its snapshot
reads every process's files there. The files live in the run's shared scratch folder, never in
the run folder: they are a view, not a record.

This module never imports pytest.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["Activity", "ActivityBoard"]

STOPPED = "stopped"


@dataclass(frozen=True)
class Activity:
    """One worker's phase: ``item`` is its current unit (``i3``, ``c3``; empty before the
    first), ``since`` the wall-clock time it entered the phase, ``last`` its last outcome."""

    worker: str
    item: str
    phase: str
    since: float
    last: str = ""
    changes: int = 0  # phase changes so far: tells a reader that something happened

    @property
    def busy(self) -> bool:
        return self.phase != STOPPED

    def elapsed(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.since)


class ActivityBoard:
    """Thread-safe; see the module docstring."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._now: dict[str, Activity] = {}

    def enter(self, worker: str, item: str, phase: str) -> None:
        """``worker`` starts ``phase`` of ``item`` now."""
        with self._lock:
            before = self._now.get(worker)
            last = before.last if before else ""
            changes = before.changes + 1 if before else 1
            self._now[worker] = Activity(worker, item, phase, time.time(), last, changes)
            self._publish(self._now[worker])

    def ended(self, worker: str, outcome: str) -> None:
        """``worker``'s item ended with ``outcome`` (shown as its last outcome)."""
        with self._lock:
            before = self._now.get(worker)
            if before is None:
                return
            self._now[worker] = replace(before, last=outcome, changes=before.changes + 1)
            self._publish(self._now[worker])

    def stopped(self, worker: str) -> None:
        with self._lock:
            before = self._now.get(worker)
        self.enter(worker, before.item if before else "", STOPPED)

    def snapshot(self) -> dict[str, Activity]:
        """Every worker's activity: this process's, or with a folder every process's."""
        if self.folder is not None:
            return self._read()
        with self._lock:
            return dict(self._now)

    def _publish(self, activity: Activity) -> None:
        if self.folder is None:
            return
        # Atomic (a reader never sees half a file) but not durable: no fsync, as a lost view
        # costs nothing after a crash and a phase change must stay cheap.
        path = self.folder / f"{activity.worker}.json"
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(asdict(activity)), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # a view, not a record: a full disk must not cost the worker its iteration

    def _read(self) -> dict[str, Activity]:
        assert self.folder is not None
        found: dict[str, Activity] = {}
        try:
            paths = sorted(self.folder.glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                found[data["worker"]] = Activity(**data)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # half-gone or foreign: the next look will see it
        return found
