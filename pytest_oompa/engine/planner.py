"""The planner: one synchronous call before the workers start, in the project root (no
worktree, no review), skipped when the queue already holds ``max_pending`` tasks. The task
files it adds are checked and committed to main."""

from __future__ import annotations

import json

from pytest_oompa.core.config import PlannerSpec
from pytest_oompa.core.results import PlannerResult
from pytest_oompa.engine import prompts
from pytest_oompa.engine.worker import SwarmContext
from pytest_oompa.harnesses.spec import SessionMode


def run_planner(ctx: SwarmContext, spec: PlannerSpec) -> PlannerResult:
    queue, repo = ctx.queue, ctx.repo
    before = set(queue.ids("pending"))
    if len(before) >= spec.max_pending:
        return PlannerResult(
            ran=False,
            skipped_reason=f"{len(before)} tasks pending (max_pending {spec.max_pending})",
        )
    room = spec.max_pending - len(before)
    prompt = prompts.planner(ctx.swarm_id, spec.agent.prompt_text, queue.describe(), room)
    call = ctx.caller.call(
        spec.agent,
        role="planner",
        prompt=prompt,
        cwd=repo.root,
        session=SessionMode.none(),
        name="planner-1",
    )
    notes = _check_new_tasks(ctx, set(queue.ids("pending")) - before)
    created = sorted(set(queue.ids("pending")) - before)
    repo.commit_paths(
        f"oompa: planner adds {len(created)} task(s) (swarm {ctx.swarm_id})", "tasks/pending"
    )
    error = f"{spec.agent.harness} failed: {call.failure}" if call.failure else None
    return PlannerResult(
        ran=True, tasks_created=len(created), error=error, call=call.record, notes=notes
    )


def _check_new_tasks(ctx: SwarmContext, new_ids: set[str]) -> list[str]:
    """A task file that is not a JSON object with a matching id is reported, not trusted."""
    notes = []
    for task_id in sorted(new_ids):
        path = ctx.queue.root / "pending" / f"{task_id}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"task file {path.name}: not valid JSON ({exc})")
            continue
        if not isinstance(data, dict) or data.get("id") not in (None, task_id):
            notes.append(f"task file {path.name}: 'id' does not match the file name")
    return notes
