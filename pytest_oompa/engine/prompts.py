"""Every prompt the engine sends. Each starts with ``[oompa:{swarm-id}:{worker-id}] `` so
dashboards (and the fake harnesses) can tell whose call it is.

Some sentences are markers other code relies on: the reviewer prompt carries the required
``VERDICT:`` lines, the fix prompt ends with "Fix these issues." and the sync prompt opens with
"Your branch cannot merge into main." (the fake harnesses infer the role from them); change them
together with ``fake_harnesses/_fake/scenario.py``. The
follow-up prompt has neither: the fakes take it for the worker's next turn, which it is.

The follow-up after NEEDS_FOLLOWUP is oompa 0.7.3's text (its ``build-needs-followup-prompt``),
with our tag and our task status block, so that an agent reads the same instructions under
either orchestrator.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_oompa.engine.tasks import ClaimResult

PROBE_PROMPT = "[_HIDE_TEST_] say ok"
DIFF_LIMIT = 8000

TASK_HEADER = """\
## How this swarm works
You are one of several workers, each in its own git worktree of the same project.
The shared task queue is ../tasks (pending/, current/, complete/), one JSON file per task.
- Claim tasks by printing CLAIM(id1, id2) on a line of its own; the orchestrator moves them to
  current/ and tells you which ones you got.
- Commit your work in this worktree, then print COMPLETE_AND_READY_FOR_MERGE: it is reviewed
  and merged into main. Do not move task files to complete/ yourself; that happens on merge.
- If there is no useful work left, print __DONE__."""


def tag(swarm_id: str, worker_id: str) -> str:
    return f"[oompa:{swarm_id}:{worker_id}] "


def fresh(swarm_id: str, worker_id: str, status: str, worker_prompt: str) -> str:
    parts = [TASK_HEADER, f"## Task status\n{status}"]
    if worker_prompt:
        parts.append(worker_prompt)
    return tag(swarm_id, worker_id) + "\n\n".join(parts)


def resume(swarm_id: str, worker_id: str, status: str) -> str:
    return tag(swarm_id, worker_id) + f"## Task status\n{status}\n\ncontinue"


def claim_results(swarm_id: str, worker_id: str, result: ClaimResult, status: str) -> str:
    def line(label: str, ids: Sequence[str]) -> str:
        return f"{label}: {', '.join(ids) if ids else '(none)'}"

    body = [
        "## Claim results",
        line("Claimed", result.claimed),
        line("Already taken", result.taken),
        line("Not found", result.not_found),
    ]
    if result.invalid:
        body.append(line("Refused (not a valid task id)", result.invalid))
    body += ["", f"## Task status\n{status}", "", "Continue with the tasks you claimed."]
    return tag(swarm_id, worker_id) + "\n".join(body)


def needs_followup(
    swarm_id: str, worker_id: str, held: Sequence[str], reason: str, status: str
) -> str:
    """The next attempt's prompt after a reply that opened with NEEDS_FOLLOWUP: the worker
    keeps the tasks it holds (``held``) and is asked to finish a mergeable change in the same
    cycle; ``reason`` is what it said after the signal (``Signals.followup_reason``)."""
    if held:
        owned = f"You still own these claimed tasks: {', '.join(sorted(held))}\n\n"
    else:
        owned = "You do not currently own any claimed tasks.\n\n"
    explanation = f"Your previous explanation:\n{reason.strip()}\n\n" if reason.strip() else ""
    return tag(swarm_id, worker_id) + (
        "## NEEDS_FOLLOWUP Follow-up\n\n"
        + owned
        + "Continue the SAME cycle and finish a merge-ready artifact.\n"
        "Do not output NEEDS_FOLLOWUP again unless you are still blocked after this follow-up.\n"
        "Prefer the smallest useful diff. If scope is too large, create concrete follow-up "
        "tasks in the pending queue and still ship the artifact you have.\n\n"
        + explanation
        + f"## Task status\n{status}\n\n"
        "When ready, signal COMPLETE_AND_READY_FOR_MERGE."
    )


def review(
    swarm_id: str, worker_id: str, diff: str, custom: str, earlier_feedback: Sequence[str]
) -> str:
    if len(diff) > DIFF_LIMIT:
        diff = diff[:DIFF_LIMIT] + f"\n... [diff truncated at {DIFF_LIMIT} chars]"
    body = custom or (
        "Review the changes in this worktree.\nFocus on architecture and design, not style."
    )
    body += f"\n\nDiff:\n```\n{diff}\n```\n"
    if earlier_feedback:
        body += (
            "\n## Previous Review Rounds\n\nThe worker has already attempted fixes based on "
            "earlier feedback. Do NOT raise new issues: only verify that the issues below are "
            "resolved.\n\n"
            + "\n\n".join(
                f"### Round {i} feedback:\n{fb}" for i, fb in enumerate(earlier_feedback, 1)
            )
            + "\n"
        )
    body += (
        "\nYour verdict MUST be on its own line, exactly one of:\n"
        "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED\n"
    )
    return tag(swarm_id, worker_id) + body


def fix(swarm_id: str, worker_id: str, feedback: Sequence[str]) -> str:
    if len(feedback) > 1:
        text = (
            f"The reviewer has given feedback across {len(feedback)} rounds.\n"
            "Fix ALL outstanding issues:\n\n"
            + "\n\n".join(f"--- Round {i} ---\n{fb}" for i, fb in enumerate(feedback, 1))
        )
    else:
        text = "The reviewer found issues with your changes:\n\n" + (
            feedback[0] if feedback else ""
        )
    return (
        tag(swarm_id, worker_id)
        + text
        + "\n\nCommit your fixes in this worktree. Fix these issues. "
        "Do not add anything the reviewer did not ask for."
    )


SYNC_MARKER = "Your branch cannot merge into main."


def sync(
    swarm_id: str, worker_id: str, error: str, branch_log: str, main_log: str, diff_stat: str
) -> str:
    """Sync before merge: main has moved and no longer merges cleanly into the worker's branch.
    The agent gets what upstream's resolver gets (the error, its commits, main's new commits,
    the divergence) and is asked, in its own session, to make the branch mergeable."""

    def block(text: str) -> str:
        return text.strip() or "(none)"

    return tag(swarm_id, worker_id) + (
        f"{SYNC_MARKER}\n\n"
        f"Error:\n{block(error)}\n\n"
        f"Your commits (not on main):\n{block(branch_log)}\n\n"
        f"New commits on main:\n{block(main_log)}\n\n"
        f"Divergence:\n{block(diff_stat)}\n\n"
        "Merge main into your branch in this worktree (git merge main), resolve every "
        "conflict, and commit the merge. Preserve YOUR changes and main's. "
        "You have full git access."
    )


def planner(swarm_id: str, planner_prompt: str, status: str, room: int) -> str:
    return tag(swarm_id, "planner") + (
        (planner_prompt + "\n\n" if planner_prompt else "") + f"## Task status\n{status}\n\n"
        "Create tasks in tasks/pending/ as JSON files named <id>.json, each "
        '{"id", "summary", "description", "difficulty", "files", "acceptance"}; an id is '
        "letters, digits, '.', '_' or '-'.\n"
        f"Maximum {room} new tasks.\n"
        "Signal __DONE__ when finished planning."
    )
