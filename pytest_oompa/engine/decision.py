"""What one worker iteration comes to: pure functions of the facts the iteration has learned.

An iteration learns its facts one at a time, and each costs a side effect: the agent's reply (a
harness call); then, only when the agent asks for a merge, the worktree's diff against main (an
auto-commit and a git diff), its commit count (asked only when no file changed), the reviewer's
verdicts and the agent's fixes (more harness calls), the merge. So the decision is
``next_step(facts)``: either the ``Ending`` of the iteration (its outcome, and the error when
it is one) or the ``Step`` that fetches the next fact. ``WorkerRunner`` (``worker.py``)
performs the steps and the endings' side effects; what is decided here needs no process, no
repository and no task queue, which is how the unit tests drive it: a table of facts ->
(steps asked, outcome).

With sync before merge (oompa 0.7.3; ``Facts.sync``), the merge is preceded by merging main into
the worker's branch, outside the merge lock: a conflict is handed to the worker's agent (a
RESOLVE step) and the sync tried again, up to ``MAX_RESOLVES`` times, else ``sync-failed``; a
merge that still fails (main moved again meanwhile) syncs again, up to ``MAX_MERGES`` merges,
else ``merge-failed``. Without it, a failed merge is an error, as in oompa 0.7.0.

Whatever step it is at, a breach ends the iteration as an error: a call of it changed
something outside its worktree (guard.py has put it right already).

What an iteration cannot learn as a fact ends it from the runner, as an error: the iteration's
time budget running out, a failing git command, a bug. A stopping swarm abandons the
iteration without an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pytest_oompa.core.results import Outcome
from pytest_oompa.engine.markers import Signals

MAX_CONSECUTIVE_ERRORS = 3
MAX_REVIEW_ROUNDS = 3
MAX_RESOLVES = 5  # agent calls to make a branch mergeable, per unit of work (upstream's 5)
MAX_MERGES = 3  # merges tried after a clean sync, when main moves between sync and merge

APPROVED = "approved"
NEEDS_CHANGES = "needs-changes"


class Step(Enum):
    """The side effect that fetches the next fact."""

    CALL = "call"  # the agent's call: its reply and signals (and the tasks it claimed)
    INSPECT = "inspect"  # commit what the agent left uncommitted; the files changed vs main
    COUNT_COMMITS = "count-commits"  # commits ahead of main, when no file changed
    REVIEW = "review"  # one reviewer round: a verdict
    FIX = "fix"  # the agent answers the reviewer's feedback
    SYNC = "sync"  # merge main into the worker's branch: clean, or the conflict
    RESOLVE = "resolve"  # the agent makes its branch mergeable after a conflict
    MERGE = "merge"  # into main, completing the tasks the worker holds


class Release(Enum):
    """What an ending does with the worker's unit of work: worktree, session, held tasks."""

    CONTINUE = "continue"  # keep all three: the next iteration resumes the session
    FINISH = "finish"  # drop the worktree and the session; held tasks stay where they are
    RECYCLE = "recycle"  # drop the worktree and the session; held tasks go back to pending


@dataclass(frozen=True)
class Reply:
    """The agent's call, as far as the outcome goes."""

    harness: str
    failure: str | None = None  # exit status, signal, timeout, stall, output not in format
    signals: Signals = field(default_factory=Signals)  # a failed call's reply is not trusted


@dataclass(frozen=True)
class Facts:
    """What the iteration knows so far; a fact not fetched yet is None (or empty)."""

    can_plan: bool
    reviewer: str | None = None  # the reviewer's harness; None: the swarm has no reviewer
    worktree_error: str | None = None
    reply: Reply | None = None
    # The diff the merge is decided on: read once, after the agent's call. Review fixes change
    # the diff the reviewer sees, not whether there is something to merge or review.
    diff_files: tuple[str, ...] | None = None
    commits_ahead: int | None = None
    verdicts: tuple[str, ...] = ()  # one per reviewer round that answered
    reviewer_failure: str | None = None
    fixes: int = 0  # fix calls that succeeded
    fix_failure: str | None = None
    sync: bool = False  # sync before merge (oompa 0.7.3)
    syncs: tuple[str | None, ...] = ()  # each sync's conflict, None when it went cleanly
    resolves: int = 0  # resolve calls that returned
    resolve_failure: str | None = None
    merge_errors: tuple[str, ...] = ()
    merged_commit: str | None = None
    breach: str | None = None  # what a call did outside its worktree (files, branches)


@dataclass(frozen=True)
class Ending:
    outcome: Outcome
    error: str | None = None


def next_step(facts: Facts) -> Step | Ending:
    """The iteration's ending, or the step that fetches the fact it depends on.

    First match wins, in oompa's order: a failed call, then a CLAIM (unless the reply also
    asks for a merge or says it is done), the merge signal, ``__DONE__``, NEEDS_FOLLOWUP, else
    still working.
    """
    if facts.worktree_error is not None:
        return Ending(Outcome.ERROR, f"could not create the worktree: {facts.worktree_error}")
    if facts.breach is not None:
        return Ending(Outcome.ERROR, facts.breach)
    reply = facts.reply
    if reply is None:
        return Step.CALL
    if reply.failure is not None:
        return Ending(Outcome.ERROR, f"{reply.harness} failed: {reply.failure}")
    signals = reply.signals
    if (signals.claims or signals.invalid_claims) and not (signals.merge or signals.done):
        return Ending(Outcome.CLAIMED)
    if signals.merge:
        return _towards_merge(facts)
    if signals.done:
        return Ending(Outcome.DONE if facts.can_plan else Outcome.EXECUTOR_DONE)
    if signals.needs_followup:
        return Ending(Outcome.NEEDS_FOLLOWUP)
    return Ending(Outcome.WORKING)


def _towards_merge(facts: Facts) -> Step | Ending:
    files = facts.diff_files
    if files is None:
        return Step.INSPECT
    if not files:
        if facts.commits_ahead is None:
            return Step.COUNT_COMMITS
        if facts.commits_ahead == 0:
            return Ending(Outcome.NO_CHANGES)
    if facts.reviewer is not None and not task_only(files):
        pending = _review(facts, facts.reviewer)
        if pending is not None:
            return pending
    if facts.merged_commit is not None:
        return Ending(Outcome.MERGED)
    if not facts.sync:
        if facts.merge_errors:
            return Ending(
                Outcome.ERROR, f"merge into main failed, aborted: {facts.merge_errors[-1]}"
            )
        return Step.MERGE
    return _sync_then_merge(facts)


def _sync_then_merge(facts: Facts) -> Step | Ending:
    """Each clean sync allows one merge; a conflict is the agent's to resolve."""
    if facts.resolve_failure is not None:
        return Ending(
            Outcome.SYNC_FAILED, f"resolving the conflict failed: {facts.resolve_failure}"
        )
    clean = facts.syncs.count(None)
    if len(facts.merge_errors) < clean:
        return Step.MERGE
    if len(facts.merge_errors) >= MAX_MERGES:
        return Ending(
            Outcome.MERGE_FAILED,
            f"merge into main failed {len(facts.merge_errors)} times after syncing, aborted: "
            f"{facts.merge_errors[-1]}",
        )
    conflict = facts.syncs[-1] if facts.syncs else None
    if conflict is None:  # nothing tried yet, or main moved after the last clean sync
        return Step.SYNC
    conflicts = len(facts.syncs) - clean
    if facts.resolves >= conflicts:  # the agent answered this conflict: check again
        return Step.SYNC
    if facts.resolves >= MAX_RESOLVES:
        return Ending(
            Outcome.SYNC_FAILED,
            f"the branch still does not merge main after {MAX_RESOLVES} attempts to resolve: "
            f"{conflict}",
        )
    return Step.RESOLVE


def task_only(files: tuple[str, ...]) -> bool:
    """A diff that only moves task files needs no review (the agent claimed or added tasks)."""
    return bool(files) and all(f.startswith("tasks/") for f in files)


def _review(facts: Facts, reviewer: str) -> Step | Ending | None:
    """The review's next step or its ending; None once the reviewer has approved."""
    if facts.reviewer_failure is not None:
        return Ending(Outcome.ERROR, f"reviewer ({reviewer}) failed: {facts.reviewer_failure}")
    if facts.fix_failure is not None:
        round_ = len(facts.verdicts)
        return Ending(Outcome.ERROR, f"fix after review round {round_} failed: {facts.fix_failure}")
    if not facts.verdicts:
        return Step.REVIEW
    last = facts.verdicts[-1]
    if last == APPROVED:
        return None
    if last != NEEDS_CHANGES or len(facts.verdicts) >= MAX_REVIEW_ROUNDS:
        return Ending(Outcome.REJECTED)
    return Step.FIX if facts.fixes < len(facts.verdicts) else Step.REVIEW


def release_after(outcome: Outcome) -> Release:
    # NEEDS_FOLLOWUP keeps its claims for the follow-up; past max_needs_followups the cycle's
    # runner releases them itself.
    if outcome in (Outcome.CLAIMED, Outcome.WORKING, Outcome.NEEDS_FOLLOWUP):
        return Release.CONTINUE
    # DONE: a planner that says it is done keeps its tasks (the end of the worker recycles
    # them); MERGED: its tasks are complete.
    if outcome in (Outcome.DONE, Outcome.MERGED):
        return Release.FINISH
    return Release.RECYCLE


def finishes_worker(outcome: Outcome, facts: Facts) -> bool:
    """The worker stops after this iteration: it said ``__DONE__`` and may (a planner)."""
    if outcome is Outcome.DONE:
        return True
    done = facts.reply is not None and facts.reply.signals.done
    return outcome is Outcome.MERGED and done and facts.can_plan


def gives_up(consecutive_errors: int) -> bool:
    """Too many errors in a row: the worker stops with status error."""
    return consecutive_errors >= MAX_CONSECUTIVE_ERRORS
