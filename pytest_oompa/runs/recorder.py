"""Turns engine events into the files of a run under ``runs/{swarm-id}/``: the five oompa 0.7
contract artifacts and, beside them, oompa 0.7.3's event files that dashboards (unleashd) read
while the run goes on.

The artifact store and the event writer validate each document before its atomic write; this
module only knows which engine facts go into which field. In 0.7.0 mode (``iterations``) each
iteration is a cycle of one attempt: ``max-cycles`` is the worker's iterations, ``max-resumes``
1, and the iteration's outcome is its cycle's (the 0.7.0 outcomes are all 0.7.3 cycle outcomes).
Reviews stay 0.7.0-shaped in this mode (``reviews/{w}-i{N}-r{R}.json``).
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
    ReviewRound,
    WorkerReport,
    WorkerStatus,
)
from pytest_oompa.runs.artifacts import ArtifactStore, utc_now_iso, validate_artifact
from pytest_oompa.runs.events import EventWriter, StartedPlanner, StartedReviewer, StartedWorker

ERROR_SNIPPET = 200


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
                        "iterations": w.iterations,
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
                    max_cycles=w.iterations,
                    max_resumes=1,  # 0.7.0 mode: a cycle is one attempt
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

    def stopped(self, reason: str, error: str | None = None) -> Path:
        """``stopped.json``, once, when the run's end is recorded."""
        return self.events.stopped(reason, error)

    def review(self, worker_id: str, iteration: int, review: ReviewRound) -> Path:
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

    def calls(self, who: str, iteration: int | None, records: Iterable[CallRecord]) -> Path:
        """calls/{who}.json: every harness call of an iteration (who = w0-i3), of the planner
        or of the preflight, with tokens, cost and the paths of its log and error files."""
        data = {
            "swarm-id": self.store.swarm_id,
            "worker-id": who.rsplit("-i", 1)[0] if iteration is not None else who,
            "iteration": iteration,
            "calls": [
                {
                    "name": c.name,
                    "role": c.role,
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
        snippet = None
        if result.error:
            last = result.calls[-1] if result.calls else None
            raw = (last.stdout_tail or last.stderr_tail) if last else ""
            snippet = (f"{result.error}\n{raw}" if raw else result.error)[:ERROR_SNIPPET]
        path = self.store.write_iteration(
            {
                "worker-id": result.worker_id,
                "iteration": result.iteration,
                "outcome": result.outcome.value,
                "timestamp": result.finished_at,
                "duration-ms": result.duration_ms,
                "task-id": result.task_ids[0] if result.task_ids else None,
                "recycled-tasks": list(result.recycled),
                "error-snippet": snippet,
                "review-rounds": result.review_rounds,
                "metrics": result.metrics,
            }
        )
        # The same iteration as a 0.7.3 cycle of one attempt: its outcome closes it (or leaves it
        # open, working or claimed, which in this mode is the cycle's last word all the same).
        self.events.cycle(
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
        if result.calls:
            who = f"{result.worker_id}-i{result.iteration}"
            self.calls(who, result.iteration, result.calls)
        self.store.update_live_summary(
            result.worker_id,
            {**result.metrics, "iteration": result.iteration, "status": result.outcome.value},
        )
        return path

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
