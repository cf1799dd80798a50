"""Turns engine events into the files of a run under ``runs/{swarm-id}/``: the five oompa 0.7
contract artifacts and, beside them, oompa 0.7.3's event files that dashboards (unleashd) read
while the run goes on.

The artifact store and the event writer validate each document before its atomic write; this
module only knows which engine facts go into which field.

Which files each worker mode writes:

- 0.7.0 mode (``iterations``): ``iterations/{w}-i{N}.json`` and ``reviews/{w}-i{N}-r{R}.json``
  (0.7.0's shapes), ``calls/{w}-i{N}.json``, and each iteration again as a 0.7.3 cycle of one
  attempt (``cycles/{w}-c{N}.json``; ``max-cycles`` is its iterations, ``max-resumes`` 1), so
  that a dashboard that reads only 0.7.3 sees it. An outcome 0.7.0 does not know (sync before
  merge's ``merge-failed`` and ``sync-failed``) is an ``error`` in the iteration file, whose
  snippet names it; the cycle file has it as it is.
- 0.7.3 mode (``max_cycle``): what oompa 0.7.3 writes, ``cycles/{w}-c{N}.json`` (rewritten at
  each attempt that leaves the cycle open) and ``reviews/{w}-c{N}-r{R}.json`` (0.7.3's review
  shape), plus our ``calls/{w}-c{N}.json``; no iteration files, as a cycle is not one.

``run.json``, ``summary.json``, ``started.json``, ``stopped.json`` and ``workers/`` are written
for every run (a worker's ``iterations`` there count its cycles in 0.7.3 mode).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import AgentSpec, SwarmConfig
from pytest_oompa.core.results import (
    CallRecord,
    IterationResult,
    Outcome,
    ReviewRound,
    WorkerReport,
    WorkerState,
    WorkerStatus,
)
from pytest_oompa.runs.artifacts import ArtifactStore, utc_now_iso, validate_artifact
from pytest_oompa.runs.events import EventWriter, StartedPlanner, StartedReviewer, StartedWorker
from pytest_oompa.runs.resume import write_state

ERROR_SNIPPET = 200
# Outcomes oompa 0.7.0's iteration and live-summary files cannot hold (their enums): written
# there as errors.
NOT_IN_0_7_0 = frozenset(
    {
        Outcome.MERGE_FAILED,
        Outcome.SYNC_FAILED,
        Outcome.STUCK,
        Outcome.INTERRUPTED,
        Outcome.NEEDS_FOLLOWUP,
    }
)


def _prompts(agent: AgentSpec) -> list[str]:
    return [str(p) for p in agent.prompt_files]


def worker_stop_reason(report: WorkerReport) -> str:
    """Why a worker ended, in ``workers/{id}.json``'s words: ``completed`` (it ran its
    iterations), ``done`` (its agent said so), ``error``, ``interrupted`` (Ctrl-C, SIGTERM, a
    stop, the swarm timeout or a spend limit cut it short), ``idle`` (it never had work)."""
    if report.interrupted:
        return "interrupted"
    if report.status is WorkerStatus.DONE:
        return "done"
    if report.status is WorkerStatus.ERROR:
        return "error"
    if report.status is WorkerStatus.EXHAUSTED:
        return "completed"
    return "interrupted" if report.stop_reason else "idle"


class Recorder:
    def __init__(
        self, store: ArtifactStore, config: SwarmConfig, events: EventWriter | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.events = events or EventWriter(store.runs_dir, store.swarm_id)

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir

    def run_started(self, started_at: str) -> Path:
        c = self.config
        return self.store.write_run(
            {
                "swarm-id": self.store.swarm_id,
                "started-at": started_at,
                "config-file": str(c.path),
                "workers": [
                    {
                        "id": w.id,
                        "harness": w.agent.harness,
                        "model": w.agent.model,
                        "reasoning": w.agent.reasoning,
                        "iterations": w.units,
                        "can-plan": w.can_plan,
                        "prompts": _prompts(w.agent),
                    }
                    for w in c.workers
                ],
                "planner": c.planner
                and {
                    "harness": c.planner.agent.harness,
                    "model": c.planner.agent.model,
                    "prompts": _prompts(c.planner.agent),
                    "max-pending": c.planner.max_pending,
                },
                "reviewer": c.reviewer
                and {
                    "harness": c.reviewer.harness,
                    "model": c.reviewer.model,
                    "prompts": _prompts(c.reviewer),
                },
            }
        )

    def started(self, pid: int | None = None) -> Path:
        """``started.json``, as soon as the run is tracked (before the probes and the planner):
        ``pid`` (default: this process) is the one that lives for the whole run and ends it
        cleanly on SIGTERM."""
        c = self.config
        return self.events.started(
            config_file=c.path,
            workers=[
                StartedWorker(
                    id=w.id,
                    harness=w.agent.harness,
                    model=w.agent.model,
                    reasoning=w.agent.reasoning,
                    max_cycles=w.units,
                    # 0.7.0 mode: a cycle is one attempt
                    max_resumes=w.cycles.max_resumes if w.cycles_mode else 1,
                    can_plan=w.can_plan,
                    prompts=_prompts(w.agent),
                )
                for w in c.workers
            ],
            planner=None
            if c.planner is None
            else StartedPlanner(
                harness=c.planner.agent.harness,
                model=c.planner.agent.model,
                max_pending=c.planner.max_pending,
                prompts=_prompts(c.planner.agent),
            ),
            reviewer=None
            if c.reviewer is None
            else StartedReviewer(
                harness=c.reviewer.harness, model=c.reviewer.model, prompts=_prompts(c.reviewer)
            ),
            pid=pid,
        )

    def cycle_started(self, worker_id: str, cycle: int) -> Path:
        """``workers/{id}.json`` reads running, in ``cycle`` (an iteration, in 0.7.0 mode)."""
        return self.events.worker_running(worker_id, cycle)

    def worker_stopped(self, report: WorkerReport) -> Path:
        """``workers/{id}.json`` reads stopped, after its last finished iteration, and why."""
        return self.events.worker_stopped(
            report.worker_id, report.iterations_run, worker_stop_reason(report)
        )

    def worker_state(self, state: WorkerState) -> Path:
        """``resume/{id}.json``: where a resumed run continues this worker."""
        return write_state(self.run_dir, state)

    def stopped(self, reason: str, error: str | None = None) -> Path:
        """``stopped.json``, once, when the run's end is recorded."""
        return self.events.stopped(reason, error)

    def _cycles(self, worker_id: str) -> bool:
        return any(w.id == worker_id and w.cycles_mode for w in self.config.workers)

    def review(self, worker_id: str, iteration: int, review: ReviewRound) -> Path:
        if self._cycles(worker_id):
            return self.events.review(
                worker_id,
                iteration,
                review.round,
                verdict=review.verdict,
                output=review.output,
                diff_files=review.diff_files,
                duration_ms=review.call.duration_ms,
            )
        return self.store.write_review(
            {
                "worker-id": worker_id,
                "iteration": iteration,
                "round": review.round,
                "verdict": review.verdict,
                "timestamp": utc_now_iso(),
                "output": review.output,
                "diff-files": list(review.diff_files),
            }
        )

    def calls(
        self,
        who: str,
        iteration: int | None,
        records: Iterable[CallRecord],
        *,
        worker: str | None = None,
        cycle: bool = False,
    ) -> Path:
        """calls/{who}.json: every harness call of an iteration (who = w0-i3), a cycle
        (w0-c3), the planner or the preflight, with tokens, cost and the paths of its log and
        error files."""
        data = {
            "swarm-id": self.store.swarm_id,
            "worker-id": worker or who,
            "iteration": None if cycle else iteration,
            "cycle": iteration if cycle else None,
            "calls": [
                {
                    "name": c.name,
                    "role": c.role,
                    "attempt": c.attempt,
                    "harness": c.harness,
                    "model": c.model,
                    "argv": list(c.argv),
                    "cwd": c.cwd,
                    "exit-code": c.exit_code,
                    "duration-ms": c.duration_ms,
                    "session-id": c.session_id,
                    "input-tokens": c.input_tokens,
                    "output-tokens": c.output_tokens,
                    "cost-usd": c.cost_usd,
                    "failure": c.failure,
                    "log": c.log,
                    "error": c.error_file,
                    "attempts": c.attempts,
                    "leftovers": [
                        {"pid": x.pid, "cmdline": x.cmdline, "escaped": x.escaped}
                        for x in c.leftovers
                    ],
                }
                for c in records
            ],
        }
        path = self.run_dir / "calls" / f"{who}.json"
        validate_artifact("calls", data, where=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, dumps_json(data))
        return path

    def iteration(self, result: IterationResult) -> Path:
        """The files of a finished iteration or cycle (see the module docstring); returns the
        one its item names: the iteration file, or the cycle file in 0.7.3 mode."""
        snippet = _snippet(result)
        path = None if result.cycle else self._iteration_file(result, snippet)
        cycle = self.events.cycle(
            result.worker_id,
            result.iteration,
            result.outcome.value,
            duration_ms=result.duration_ms,
            claimed_task_ids=result.task_ids,
            recycled_tasks=result.recycled,
            error_snippet=snippet,
            review_rounds=result.review_rounds,
            timestamp=result.finished_at,
        )
        if result.patch:
            # diffs/w0-i3.patch: what the merge brought into main, for the report
            diffs = self.run_dir / "diffs"
            diffs.mkdir(parents=True, exist_ok=True)
            atomic_write_text(diffs / f"{result.worker_id}-{result.label}.patch", result.patch)
        if result.calls:
            self.calls(
                f"{result.worker_id}-{result.label}",
                result.iteration,
                result.calls,
                worker=result.worker_id,
                cycle=result.cycle,
            )
        # live-summary.json is oompa 0.7.0's: an outcome it does not know reads as an error
        status = "error" if result.outcome in NOT_IN_0_7_0 else result.outcome.value
        self.store.update_live_summary(
            result.worker_id, {**result.metrics, "iteration": result.iteration, "status": status}
        )
        return path or cycle

    def attempt(self, result: IterationResult) -> Path:
        """A cycle's attempt that left it open (0.7.3 mode): its file reads claimed or working
        (a NEEDS_FOLLOWUP being followed up is working) until an outcome closes it."""
        outcome = "claimed" if result.outcome is Outcome.CLAIMED else "working"
        return self.events.cycle(
            result.worker_id,
            result.iteration,
            outcome,
            duration_ms=result.duration_ms,
            claimed_task_ids=result.task_ids,
            review_rounds=result.review_rounds,
            timestamp=result.finished_at,
        )

    def _iteration_file(self, result: IterationResult, snippet: str | None) -> Path:
        outcome = result.outcome
        if outcome in NOT_IN_0_7_0:
            snippet = f"{outcome.value}: {snippet or ''}"[:ERROR_SNIPPET]
        return self.store.write_iteration(
            {
                "worker-id": result.worker_id,
                "iteration": result.iteration,
                "outcome": "error" if outcome in NOT_IN_0_7_0 else outcome.value,
                "timestamp": result.finished_at,
                "duration-ms": result.duration_ms,
                "task-id": result.task_ids[0] if result.task_ids else None,
                "recycled-tasks": list(result.recycled),
                "error-snippet": snippet,
                "review-rounds": result.review_rounds,
                "metrics": result.metrics,
            }
        )

    def summary(self, reports: Iterable[WorkerReport]) -> Path:
        workers = [summary_entry(r) for r in reports]
        return self.store.write_summary(
            {
                "swarm-id": self.store.swarm_id,
                "finished-at": utc_now_iso(),
                "total-workers": len(workers),
                "total-completed": sum(w["completed"] for w in workers),
                "total-iterations": sum(w["iterations"] for w in workers),
                "status-counts": dict(Counter(w["status"] for w in workers)),
                "workers": workers,
            }
        )


def summary_entry(report: WorkerReport) -> dict[str, Any]:
    """One worker as summary.json holds it (the terminal summary prints the same rows)."""
    m = report.metrics
    return {
        "id": report.worker_id,
        "harness": report.harness,
        "model": report.model,
        "status": report.status.value,
        "completed": m.completed,
        "iterations": report.iterations,
        "merges": m.merges,
        "claims": m.claims,
        "rejections": m.rejections,
        "errors": m.errors,
        "recycled": m.recycled,
        "review-rounds-total": m.review_rounds_total,
    }


def _snippet(result: IterationResult) -> str | None:
    """The error and the tail of the last call's output, cut to the contract's snippet."""
    if not result.error:
        return None
    last = result.calls[-1] if result.calls else None
    raw = (last.stdout_tail or last.stderr_tail) if last else ""
    return (f"{result.error}\n{raw}" if raw else result.error)[:ERROR_SNIPPET]
