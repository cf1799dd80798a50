"""oompa 0.7.3's event files: the writer, and what a dashboard reads from them.

Layout (the oompa 0.7.3 schemas, and unleashd's worker state files)::

    runs/{swarm-id}/
      started.json                        once, at swarm start, before the planner
      cycles/{worker-id}-c{N}.json        at the end of each attempt, rewritten until the cycle's
                                          outcome closes it (mid-cycle it reads claimed or working)
      reviews/{worker-id}-c{N}-r{R}.json  one per review round, 0.7.3's review shape
      stopped.json                        once, at the end: completed | interrupted | error
      workers/{worker-id}.json            running (when a cycle starts) / stopped (worker ends)

The files sit beside the 0.7.0 artifacts of :class:`~pytest_oompa.runs.artifacts.ArtifactStore`
rather than inside it because they are a second format with its own rules (a cycle file is
rewritten, the others are written once), and because several processes of one run write them:
the pytest-xdist controller writes ``started.json`` and ``stopped.json``, each node its own
workers' cycle, review and state files. No two processes ever write one file, so no
cross-process lock is needed; a lock per writer serializes its threads.

Every document is built here from typed arguments, serialized, validated against our copy of its
schema (``schemas/{kind}.schema.json``) and only then written atomically: a bad document raises
:class:`~pytest_oompa.runs.artifacts.ArtifactError` naming the field, and nothing is written.
Upstream's own writer adds fields its schemas forbid (``session-id``, ``worktree-path``,
``signals``, ``merge-sha``, ``attempt`` in cycle files) and can write ``null`` where a string is
required; this writer follows the schemas.

The reading side (:func:`pid_alive`, :func:`run_status`, :func:`worker_label`) is unleashd's rules
for a run folder, shared by ``python -m pytest_oompa runs|show`` and the HTML report.

This module never imports pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.runs.artifacts import (
    ArtifactError,
    check_id,
    prepare_artifact,
    utc_now_iso,
)

__all__ = [
    "CYCLE_OUTCOMES",
    "OPEN_OUTCOMES",
    "STOPPED_STATUS",
    "STOP_REASONS",
    "TERMINAL_OUTCOMES",
    "WORKER_STOP_REASONS",
    "EventWriter",
    "StartedPlanner",
    "StartedReviewer",
    "StartedWorker",
    "pid_alive",
    "run_status",
    "worker_label",
]

#: Every outcome a cycle file may carry (cycle.schema.json).
CYCLE_OUTCOMES = (
    "merged",
    "rejected",
    "error",
    "done",
    "executor-done",
    "no-changes",
    "working",
    "claimed",
    "sync-failed",
    "merge-failed",
    "interrupted",
    "stuck",
    "needs-followup",
)
#: Outcomes that leave the cycle open: the next attempt rewrites the file.
OPEN_OUTCOMES = frozenset({"working", "claimed"})
#: Upstream's terminal outcomes (a worker moves to its next cycle). ``done`` is not among them
#: upstream (it stops the worker instead), but it closes the cycle all the same.
TERMINAL_OUTCOMES = frozenset(
    {
        "merged",
        "merge-failed",
        "rejected",
        "sync-failed",
        "no-changes",
        "executor-done",
        "stuck",
        "error",
        "interrupted",
        "needs-followup",
    }
)
#: stopped.json's reasons.
STOP_REASONS = ("completed", "interrupted", "error")
#: A stopped worker's reasons (worker-state.schema.json): completed = ran its cycles, done = its
#: agent said __DONE__, error, interrupted, idle = an executor that found no work.
WORKER_STOP_REASONS = ("completed", "done", "error", "interrupted", "idle")


def _text(value: str) -> str:
    """An engine enum's value (``Outcome.MERGED`` -> ``"merged"``), or the string as is."""
    return str(value.value) if isinstance(value, Enum) else value


# --------------------------------------------------------------------------- started.json


@dataclass(frozen=True)
class StartedWorker:
    """One entry of ``started.json``'s ``workers``.

    In 0.7.0 mode a worker's iterations are its cycles of one attempt each: ``max_cycles`` is
    its iterations and ``max_resumes`` 1. ``model`` is what the user meant (the harness's
    default model name when the config names none), never empty.
    """

    id: str
    harness: str
    model: str
    max_cycles: int
    can_plan: bool
    prompts: Sequence[str | os.PathLike[str]] = ()
    reasoning: str | None = None
    max_resumes: int | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "harness": self.harness,
            "model": self.model,
            "reasoning": self.reasoning,
            "max-cycles": self.max_cycles,
            "can-plan": self.can_plan,
            "prompts": [str(p) for p in self.prompts],
        }
        if self.max_resumes is not None:
            doc["max-resumes"] = self.max_resumes
        return doc


@dataclass(frozen=True)
class StartedPlanner:
    harness: str
    model: str
    max_pending: int
    prompts: Sequence[str | os.PathLike[str]] = ()

    def document(self) -> dict[str, Any]:
        return {
            "harness": self.harness,
            "model": self.model,
            "prompts": [str(p) for p in self.prompts],
            "max-pending": self.max_pending,
        }


@dataclass(frozen=True)
class StartedReviewer:
    harness: str
    model: str
    prompts: Sequence[str | os.PathLike[str]] = ()

    def document(self) -> dict[str, Any]:
        return {
            "harness": self.harness,
            "model": self.model,
            "prompts": [str(p) for p in self.prompts],
        }


# --------------------------------------------------------------------------- the writer


class EventWriter:
    """Writes one swarm run's event files under ``runs_dir/swarm_id``; validated, atomic,
    thread-safe. Every process of a run makes its own writer (see the module docstring)."""

    def __init__(self, runs_dir: Path, swarm_id: str) -> None:
        self.swarm_id = check_id(swarm_id, what="swarm id", where=f"{runs_dir}/")
        self.runs_dir = Path(runs_dir)
        self.run_dir: Path = self.runs_dir / swarm_id
        self._lock = threading.Lock()
        # cycles this writer left open: their file needs no look for a closed outcome
        self._open: set[tuple[str, int]] = set()

    # -- paths

    @property
    def started_path(self) -> Path:
        return self.run_dir / "started.json"

    @property
    def stopped_path(self) -> Path:
        return self.run_dir / "stopped.json"

    def _worker(self, worker_id: object, kind: str, folder: str) -> str:
        return check_id(
            worker_id, kind=kind, where=f"{self.run_dir / folder}/", json_path="$.worker-id"
        )

    def cycle_path(self, worker_id: str, cycle: int) -> Path:
        worker = self._worker(worker_id, "cycle", "cycles")
        return self.run_dir / "cycles" / f"{worker}-c{_number(cycle, 'cycle', 'cycle')}.json"

    def review_path(self, worker_id: str, cycle: int, round: int) -> Path:
        worker = self._worker(worker_id, "cycle-review", "reviews")
        n = _number(cycle, "cycle", "cycle-review")
        r = _number(round, "round", "cycle-review")
        return self.run_dir / "reviews" / f"{worker}-c{n}-r{r}.json"

    def worker_path(self, worker_id: str) -> Path:
        return (
            self.run_dir / "workers" / f"{self._worker(worker_id, 'worker-state', 'workers')}.json"
        )

    # -- writing

    def _write(self, kind: str, path: Path, data: Mapping[str, Any]) -> Path:
        text, _ = prepare_artifact(kind, data, where=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return path

    def _once(self, kind: str, path: Path) -> None:
        if path.exists():
            raise ArtifactError(
                f"{path}: {kind} artifact is written once per run, and it is already there",
                kind=kind,
                where=str(path),
            )

    def started(
        self,
        *,
        config_file: str | os.PathLike[str],
        workers: Sequence[StartedWorker],
        planner: StartedPlanner | None = None,
        reviewer: StartedReviewer | None = None,
        pid: int | None = None,
        started_at: str | None = None,
    ) -> Path:
        """Write ``started.json``, once, before the planner runs.

        ``pid`` (default: this process) must be the process that lives for the whole run and
        handles SIGTERM (the controller under pytest-xdist): dashboards test it for liveness and
        send it SIGTERM to stop the swarm.
        """
        data = {
            "swarm-id": self.swarm_id,
            "started-at": started_at or utc_now_iso(),
            "pid": os.getpid() if pid is None else pid,
            "config-file": str(config_file),
            "workers": [w.document() for w in workers],
            "planner": planner.document() if planner else None,
            "reviewer": reviewer.document() if reviewer else None,
        }
        path = self.started_path
        with self._lock:
            self._once("started", path)
            return self._write("started", path, data)

    def cycle(
        self,
        worker_id: str,
        cycle: int,
        outcome: str,
        *,
        duration_ms: int,
        claimed_task_ids: Sequence[str] = (),
        recycled_tasks: Sequence[str] = (),
        error_snippet: str | None = None,
        review_rounds: int = 0,
        timing_ms: Mapping[str, Any] | None = None,
        timestamp: str | None = None,
    ) -> Path:
        """Write ``cycles/{worker-id}-c{N}.json`` at the end of an attempt.

        ``duration_ms`` is the cycle's so far (from its first attempt's start). The file is
        rewritten at each attempt while the outcome leaves the cycle open (``working``,
        ``claimed``); once another outcome closed it, a further write raises ArtifactError.
        """
        data: dict[str, Any] = {
            "worker-id": worker_id,
            "cycle": cycle,
            "outcome": _text(outcome),
            "timestamp": timestamp or utc_now_iso(),
            "duration-ms": duration_ms,
            "claimed-task-ids": list(claimed_task_ids),
            "recycled-tasks": list(recycled_tasks),
            "error-snippet": error_snippet,
            "review-rounds": review_rounds,
        }
        if timing_ms is not None:
            data["timing-ms"] = dict(timing_ms)
        where = _try(self.cycle_path, worker_id, cycle) or self.run_dir / "cycles"
        text, parsed = prepare_artifact("cycle", data, where=str(where))
        path = self.cycle_path(parsed["worker-id"], parsed["cycle"])
        key = (parsed["worker-id"], parsed["cycle"])
        with self._lock:
            if key not in self._open:
                closed = _closed_outcome(path)
                if closed is not None:
                    raise ArtifactError(
                        f"{path}: cycle artifact: cycle {key[1]} of {key[0]} already ended "
                        f"({closed}); a closed cycle is never rewritten",
                        kind="cycle",
                        where=str(path),
                        json_path="$.outcome",
                    )
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            if parsed["outcome"] in OPEN_OUTCOMES:
                self._open.add(key)
            else:  # from now on the file itself says the cycle is closed
                self._open.discard(key)
        return path

    def review(
        self,
        worker_id: str,
        cycle: int,
        round: int,
        *,
        verdict: str,
        output: str | None,
        diff_files: Sequence[str] = (),
        duration_ms: int | None = None,
        timestamp: str | None = None,
    ) -> Path:
        """Write ``reviews/{worker-id}-c{N}-r{R}.json`` (0.7.3's review shape) after a round.

        ``output`` is the reviewer's whole reply, None when its process failed before it
        produced any; ``duration_ms`` the review call's.
        """
        data = {
            "worker-id": worker_id,
            "cycle": cycle,
            "round": round,
            "verdict": _text(verdict),
            "timestamp": timestamp or utc_now_iso(),
            "duration-ms": duration_ms,
            "output": output,
            "diff-files": list(diff_files),
        }
        where = _try(self.review_path, worker_id, cycle, round) or self.run_dir / "reviews"
        text, parsed = prepare_artifact("cycle-review", data, where=str(where))
        path = self.review_path(parsed["worker-id"], parsed["cycle"], parsed["round"])
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        return path

    def worker_running(self, worker_id: str, cycle: int) -> Path:
        """``workers/{worker-id}.json``: running, in ``cycle``; written when a cycle starts."""
        return self._worker_state(worker_id, {"status": "running", "cycle": cycle})

    def worker_stopped(self, worker_id: str, cycle: int, reason: str) -> Path:
        """``workers/{worker-id}.json``: stopped after ``cycle`` (0: before its first) for
        ``reason`` (one of :data:`WORKER_STOP_REASONS`); written when the worker ends."""
        data = {"status": "stopped", "cycle": cycle, "reason": _text(reason)}
        return self._worker_state(worker_id, data)

    def _worker_state(self, worker_id: str, data: Mapping[str, Any]) -> Path:
        path = self.worker_path(worker_id)
        with self._lock:
            return self._write("worker-state", path, data)

    def stopped(
        self, reason: str, error: str | None = None, *, stopped_at: str | None = None
    ) -> Path:
        """Write ``stopped.json``, once, at the end: ``completed``, ``interrupted`` (Ctrl-C,
        SIGTERM) or ``error`` (an internal failure, described by ``error``)."""
        data = {
            "swarm-id": self.swarm_id,
            "stopped-at": stopped_at or utc_now_iso(),
            "reason": _text(reason),
            "error": error,
        }
        path = self.stopped_path
        with self._lock:
            self._once("stopped", path)
            return self._write("stopped", path, data)


def _number(value: object, field: str, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArtifactError(
            f"{kind} artifact: invalid {field} {value!r} at $.{field} (an integer >= 1)",
            kind=kind,
            json_path=f"$.{field}",
        )
    return value


def _try(make: Callable[..., Path], *args: Any) -> Path | None:
    """The path ``make`` gives, or None when the ids cannot name one (for messages only)."""
    try:
        return make(*args)
    except ArtifactError:
        return None


def _closed_outcome(path: Path) -> str | None:
    """The outcome of a cycle file that closed its cycle, or None (no file, open, unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        outcome = data.get("outcome") if isinstance(data, dict) else None
        if isinstance(outcome, str) and outcome not in OPEN_OUTCOMES:
            return outcome
    return None


# --------------------------------------------------------------------------- reading them back
# unleashd's rules (SPEC-upstream-0.7.3): a run is live while it has no stopped.json and the pid
# of started.json is alive; a worker's state file, when there is one, says what it does.

#: stopped.json's reason -> the run status our index and reader use (an internal error is a
#: failed run there).
STOPPED_STATUS = {"completed": "completed", "interrupted": "interrupted", "error": "failed"}


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` exists on this machine. A run copied from another machine may
    name a pid that exists here by chance: as for unleashd, the pid is all there is to test."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, and belongs to another user
    except (OSError, OverflowError):  # ProcessLookupError, or a pid this OS cannot name
        return False
    return True


def run_status(
    started: Mapping[str, Any] | None,
    stopped: Mapping[str, Any] | None,
    alive: Callable[[object], bool] = pid_alive,
) -> tuple[str, str] | None:
    """(status, why) from the event files alone; None when the run has neither.

    With ``stopped.json``: its reason (``error`` reads ``failed``). Else ``running`` while
    ``started.pid`` is alive, ``dead`` when it is not (``kill -9``, a lost machine).
    """
    if stopped is not None:
        reason = str(stopped.get("reason"))
        error = stopped.get("error")
        why = f"stopped.json says {reason}" + (f": {error}" if error else "")
        return STOPPED_STATUS.get(reason, "failed"), why
    if started is None:
        return None
    pid = started.get("pid")
    if alive(pid):
        return "running", f"pid {pid} is alive"
    return "dead", f"no stopped.json, and pid {pid} is not running"


def worker_label(
    state: Mapping[str, Any] | None, last_cycle: Mapping[str, Any] | None, live: bool
) -> str:
    """A worker's status in words: from its state file when there is one (``running`` in a run
    that is no longer live means the swarm exited mid-cycle), else from its newest cycle."""
    if state is not None:
        cycle = state.get("cycle")
        if state.get("status") == "stopped":
            return f"stopped: {state.get('reason')} after cycle {cycle}"
        return f"running: cycle {cycle}" if live else f"exited mid-cycle {cycle}"
    if last_cycle is not None:
        n, outcome = last_cycle.get("cycle"), last_cycle.get("outcome")
        return f"running (cycle {n}: {outcome})" if live else f"last: {outcome} (cycle {n})"
    return "starting" if live else "no cycle recorded"
