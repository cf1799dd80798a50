"""Resuming a run that was cut off: which run, whether it may be resumed, and where each worker
continues.

A run keeps what a resume needs as it goes: ``resume/{worker}.json`` (rewritten when each of a
worker's iterations or cycles ends, and when an attempt leaves a cycle open: how many it
finished, the session and worktree the next one continues in, the tasks it holds, its
counters), ``.resume-token`` (32 random bytes written at start; ``oompa-run.json`` keeps their
hash) and, in ``oompa-run.json``, the config and prompts it started with.

:func:`plan_resume` reads those and refuses, with a message that says why, a run that
completed, a run still alive (a fresh heartbeat, or its pid alive on this host: two processes
must never drive one run), a run folder whose files do not validate, a token that is missing
or does not match, and (unless forced) a config or prompts that changed since, or a ``main``
that no longer contains a merge the run recorded.

This module never imports pytest.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import SwarmConfig
from pytest_oompa.core.results import IterationResult, Outcome, WorkerState
from pytest_oompa.runs.artifacts import ArtifactError, utc_now_iso, validate_artifact
from pytest_oompa.runs.events import OPEN_OUTCOMES, pid_alive
from pytest_oompa.runs.files import check_run
from pytest_oompa.runs.index import read_index

__all__ = [
    "TOKEN_NAME",
    "ResumePlan",
    "ResumeRefused",
    "finished_results",
    "forget_unfinished",
    "plan_resume",
    "read_state",
    "read_states",
    "resume_event",
    "token_hash",
    "write_state",
    "write_token",
]

TOKEN_NAME = ".resume-token"
STALE_SECONDS = 30.0


class ResumeRefused(Exception):
    """The run cannot be resumed; the message says why and what to do."""


@dataclass(frozen=True)
class ResumePlan:
    swarm_id: str
    run_dir: Path
    previous_status: str  # interrupted | dead | failed | running (a dead run whose end is unknown)
    states: dict[str, WorkerState]  # by worker id; a worker without one starts from its first
    meta: dict[str, Any]  # oompa-run.json as the earlier attempt left it
    forced: list[str] = field(default_factory=list)  # what changed, accepted by force

    def finished(self, worker_id: str) -> int:
        state = self.states.get(worker_id)
        return state.finished if state is not None else 0


# -- the token ---------------------------------------------------------------------------------


def write_token(run_dir: Path) -> str:
    """Write ``.resume-token`` (owner-only) and return its hash, for ``oompa-run.json``."""
    token = secrets.token_bytes(32)
    path = run_dir / TOKEN_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token)
    finally:
        os.close(fd)
    return hashlib.sha256(token).hexdigest()


def token_hash(run_dir: Path) -> str | None:
    try:
        return hashlib.sha256((run_dir / TOKEN_NAME).read_bytes()).hexdigest()
    except OSError:
        return None


# -- a worker's resume point -------------------------------------------------------------------


def write_state(run_dir: Path, state: WorkerState) -> Path:
    data = {
        "worker-id": state.worker_id,
        "unit": "cycle" if state.cycles else "iteration",
        "finished": state.finished,
        "status": state.status,
        "session-id": state.session_id,
        "worktree": state.worktree,
        "held": list(state.held),
        "next-prompt": state.next_prompt,
        "metrics": dict(state.metrics),
        "consecutive-errors": state.consecutive_errors,
        "last-merge": state.last_merge,
        "merging": {"unit": state.merging[0], "head": state.merging[1]} if state.merging else None,
        "updated-at": utc_now_iso(),
    }
    path = run_dir / "resume" / f"{state.worker_id}.json"
    validate_artifact("worker-resume", data, where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps_json(data))
    return path


def read_state(path: Path) -> WorkerState:
    data = json.loads(path.read_text(encoding="utf-8"))
    validate_artifact("worker-resume", data, where=str(path))
    return WorkerState(
        worker_id=data["worker-id"],
        cycles=data["unit"] == "cycle",
        finished=data["finished"],
        status=data["status"],
        session_id=data["session-id"],
        worktree=data["worktree"],
        held=tuple(data["held"]),
        next_prompt=data.get("next-prompt"),
        metrics=dict(data["metrics"]),
        consecutive_errors=data.get("consecutive-errors", 0),
        last_merge=data["last-merge"],
        merging=(data["merging"]["unit"], data["merging"]["head"]) if data.get("merging") else None,
    )


# -- which run, and may it be resumed ----------------------------------------------------------


def _newest_unfinished(runs_dir: Path, config: SwarmConfig) -> str:
    mine = [
        r for r in read_index(runs_dir) if Path(r["config-file"]).resolve() == config.path.resolve()
    ]
    if not mine:
        raise ResumeRefused(f"no run of {config.path} in {runs_dir} to resume")
    newest = max(mine, key=lambda r: r["started-at"])
    if newest["status"] == "completed":
        raise ResumeRefused(
            f"the newest run of {config.path}, {newest['id']}, completed: there is nothing to "
            "resume (run without --oompa-resume to start a new one)"
        )
    return str(newest["id"])


def _alive(meta: Mapping[str, Any], run_dir: Path, stale_after: float) -> str | None:
    """Why the run still looks alive, or None. On the host that ran it, its pid tells (a
    ``kill -9``ed run is dead at once, its heartbeat still fresh); from another host only the
    heartbeat can."""
    if meta.get("host") == socket.gethostname():
        pid = meta.get("pid")
        if meta.get("status") == "running" and pid != os.getpid() and pid_alive(pid):
            return f"its process {pid} is alive on this host"
        return None
    try:
        beat = json.loads((run_dir / "heartbeat.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if beat.get("state") == "running":
        at = datetime.fromisoformat(str(beat["updated-at"]).replace("Z", "+00:00"))
        age = (datetime.now(timezone.utc) - at).total_seconds()
        if age < stale_after:
            return (
                f"its heartbeat from {meta.get('host')} is {age:.0f} s old (fresher than "
                f"{stale_after:g} s)"
            )
    return None


def _previous_status(meta: Mapping[str, Any]) -> str:
    status = str(meta.get("status"))
    return "dead" if status == "running" else status


def _changes(meta: Mapping[str, Any], config: SwarmConfig) -> list[str]:
    """What differs between the run's recorded config and prompts and today's."""
    changes = []
    if meta.get("config") != config.raw:
        changes.append(f"the config {config.path} changed since the run started")
    prompts: dict[str, str] = {}
    for agent in config.agents():
        for path in agent.prompt_files:
            prompts.setdefault(str(path), path.read_text(encoding="utf-8"))
    before = meta.get("prompts") or {}
    for name in sorted(set(before) | set(prompts)):
        if before.get(name) != prompts.get(name):
            what = "is new" if name not in before else "is gone" if name not in prompts else ""
            changes.append(f"the prompt {name} {what or 'changed'} since the run started")
    return changes


def plan_resume(
    runs_dir: Path,
    config: SwarmConfig,
    run_id: str | None,
    *,
    force: bool = False,
    contains: Callable[[str], bool] = lambda _: True,
    last_main: str | None = None,
    stale_after: float = STALE_SECONDS,
) -> ResumePlan:
    """The plan to resume ``run_id`` (default: the newest run of ``config`` that did not
    complete), or ResumeRefused. ``contains(sha)`` says whether ``main`` contains a commit;
    ``last_main`` is the last main commit the engine recorded in the repository (its ledger)."""
    swarm_id = run_id or _newest_unfinished(runs_dir, config)
    run_dir = runs_dir / swarm_id
    meta_path = run_dir / "oompa-run.json"
    if not meta_path.is_file():
        raise ResumeRefused(f"no run {swarm_id!r} in {runs_dir} (no {meta_path.name})")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("status") == "completed":
        raise ResumeRefused(f"run {swarm_id} completed: there is nothing to resume")
    alive = _alive(meta, run_dir, stale_after)
    if alive:
        raise ResumeRefused(
            f"run {swarm_id} is still running ({alive}): stop it first; two processes must "
            "never drive one run"
        )
    problems = check_run(run_dir)
    if problems:
        shown = "\n  ".join(problems[:10])
        raise ResumeRefused(f"run {swarm_id}'s files do not validate:\n  {shown}")
    recorded = meta.get("resume-token-sha256")
    if not recorded or token_hash(run_dir) != recorded:
        raise ResumeRefused(
            f"run {swarm_id} has no matching {TOKEN_NAME} (written when a run starts): it was "
            "not started by a pytest-oompa that can resume it, or its folder was altered"
        )
    states: dict[str, WorkerState] = {}
    for path in sorted((run_dir / "resume").glob("*.json")):
        try:
            state = read_state(path)
        except (OSError, ValueError, ArtifactError) as exc:
            raise ResumeRefused(f"run {swarm_id}: {path.name} cannot be read: {exc}") from None
        states[state.worker_id] = state
    for spec in config.workers:
        states[spec.id] = _reconciled(run_dir, spec.id, spec.cycles_mode, states.get(spec.id))
    changes = _changes(meta, config)
    known = {w.id for w in config.workers}
    changes += [f"worker {w} of the run is not in the config" for w in sorted(set(states) - known)]
    if last_main and not contains(last_main):
        changes.append(f"main no longer contains {last_main[:10]}, the engine's last merge")
    for state in states.values():
        if state.last_merge and state.last_merge != last_main and not contains(state.last_merge):
            changes.append(
                f"main no longer contains {state.last_merge[:10]}, {state.worker_id}'s last merge"
            )
    if changes and not force:
        listed = "\n  ".join(changes)
        raise ResumeRefused(
            f"run {swarm_id} cannot be resumed as it is:\n  {listed}\n"
            "(--oompa-resume-force resumes it anyway and records what it accepted)"
        )
    return ResumePlan(swarm_id, run_dir, _previous_status(meta), states, meta, changes)


def read_states(run_dir: Path, config: SwarmConfig) -> dict[str, WorkerState]:
    """Every worker's resume point in a run folder, reconciled with the files (what an xdist
    node of a resumed run reads: the controller checked the run already)."""
    found = {s.worker_id: s for s in map(read_state, sorted((run_dir / "resume").glob("*.json")))}
    return {
        w.id: _reconciled(run_dir, w.id, w.cycles_mode, found.get(w.id)) for w in config.workers
    }


def _recorded(run_dir: Path, worker_id: str, cycles: bool) -> tuple[int, dict[str, int]]:
    """How many of a worker's units have their closing file, counted from the first, and the
    counters the last of them carries (0.7.0 iteration files carry them)."""
    n, metrics = 0, dict[str, int]()
    while True:
        name = (
            f"cycles/{worker_id}-c{n + 1}.json"
            if cycles
            else f"iterations/{worker_id}-i{n + 1}.json"
        )
        try:
            data = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return n, metrics
        if cycles and data.get("outcome") in OPEN_OUTCOMES:
            return n, metrics  # still open: in flight when the run was cut
        n += 1
        metrics = {k.replace("-", "_"): v for k, v in (data.get("metrics") or {}).items()}


def _reconciled(
    run_dir: Path, worker_id: str, cycles: bool, state: WorkerState | None
) -> WorkerState:
    """The files are the record: a unit whose closing file was written is done even when the
    run died before the worker's resume point caught up (then the point is stale: the next
    unit starts afresh, without the session, worktree or tasks of the one before)."""
    done, metrics = _recorded(run_dir, worker_id, cycles)
    if state is not None and (state.finished >= done or state.status != "running"):
        return state
    return WorkerState(
        worker_id=worker_id,
        cycles=cycles,
        finished=done,
        status="running",
        session_id=None,
        worktree=None,
        held=(),
        next_prompt=None,
        metrics=metrics or (dict(state.metrics) if state else {}),
        last_merge=state.last_merge if state else None,
    )


def resume_event(plan: ResumePlan) -> dict[str, Any]:
    """One ``resumes[]`` entry of oompa-run.json: who, when, why, from which state."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container with a bare uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    event: dict[str, Any] = {
        "at": utc_now_iso(),
        "user": user,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "previous-status": plan.previous_status,
        "finished": {w: s.finished for w, s in sorted(plan.states.items())},
    }
    if plan.forced:
        event["forced"] = list(plan.forced)
    return event


# -- what the earlier attempts finished --------------------------------------------------------


def finished_results(
    run_dir: Path, worker_id: str, cycles: bool, count: int
) -> list[IterationResult]:
    """The first ``count`` iterations (or cycles) of a worker, as the earlier attempts recorded
    them, as results the plugin reports again (``resumed``): outcome, timing, tasks, error."""
    results = []
    for n in range(1, count + 1):
        rel = f"cycles/{worker_id}-c{n}.json" if cycles else f"iterations/{worker_id}-i{n}.json"
        path = run_dir / rel
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # validated when the plan was made; a file gone since is not invented
        held = data.get("claimed-task-ids") if cycles else [data.get("task-id")]
        results.append(
            IterationResult(
                worker_id=worker_id,
                iteration=n,
                outcome=Outcome(data["outcome"]),
                started_at=data["timestamp"],
                finished_at=data["timestamp"],
                duration_ms=int(data["duration-ms"]),
                task_ids=tuple(t for t in held or () if t),
                recycled=tuple(data.get("recycled-tasks") or ()),
                review_rounds=int(data.get("review-rounds") or 0),
                error=data.get("error-snippet"),
                metrics=dict(data.get("metrics") or {}),
                artifact=path,
                cycle=cycles,
                resumed=True,
            )
        )
    return results


def forget_unfinished(run_dir: Path, worker_id: str, label: str) -> list[str]:
    """Clear what a unit cut off in flight left, so that its rerun is recorded once: its review,
    calls, diff and (an interrupted or still-open) cycle file go; its command logs are kept,
    renamed ``….cut-K.ndjson``, as the record of what was paid for. Returns what it touched."""
    touched = []
    for pattern in (
        f"cycles/{worker_id}-{label}.json",
        f"reviews/{worker_id}-{label}-r*.json",
        f"calls/{worker_id}-{label}.json",
        f"diffs/{worker_id}-{label}.patch",
    ):
        for path in run_dir.glob(pattern):
            path.unlink(missing_ok=True)
            touched.append(path.relative_to(run_dir).as_posix())
    for path in sorted(run_dir.glob(f"commands/{worker_id}-{label}-*.ndjson")):
        if ".cut-" in path.name:
            continue
        k = 1
        while (cut := path.with_name(f"{path.stem}.cut-{k}.ndjson")).exists():
            k += 1
        path.rename(cut)
        touched.append(cut.relative_to(run_dir).as_posix())
    return touched
