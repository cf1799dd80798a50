"""Turns engine events into the five oompa contract artifacts under ``runs/{swarm-id}/``.

The artifact store validates each document before its atomic write; this module only knows
which engine facts go into which contract field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import AgentSpec, SwarmConfig
from pytest_oompa.core.results import CallRecord, IterationResult, ReviewRound, WorkerReport
from pytest_oompa.runs.artifacts import ArtifactStore, utc_now_iso, validate_artifact

ERROR_SNIPPET = 200


def _prompts(agent: AgentSpec) -> list[str]:
    return [str(p) for p in agent.prompt_files]


class Recorder:
    def __init__(self, store: ArtifactStore, config: SwarmConfig) -> None:
        self.store = store
        self.config = config

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
