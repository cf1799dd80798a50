"""The worker as a state machine, without processes, git or task files.

Two levels, as xdist tests its schedulers with ``MockNode``:
- ``next_step`` (engine/decision.py) is driven by a table: what the agent replied and what the
  repo, the reviewer, the sync and the merge answer -> the steps asked and the outcome.
- ``WorkerRunner`` is driven with stub collaborators (support/engine_stubs.py: a scripted
  harness caller, an in-memory repo and task queue, lists for the recorder's callbacks), whole
  iterations at a time. Cycles (oompa 0.7.3 mode) are test_cycles.py's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from support.engine_stubs import (
    CODEX,
    Answer,
    StubCaller,
    StubGuard,
    StubQueue,
    StubRepo,
    Swarm,
    worker,
)

from pytest_oompa.core.results import Outcome, WorkerStatus
from pytest_oompa.engine.decision import (
    APPROVED,
    MAX_CONSECUTIVE_ERRORS,
    MAX_MERGES,
    MAX_RESOLVES,
    MAX_REVIEW_ROUNDS,
    NEEDS_CHANGES,
    Ending,
    Facts,
    Release,
    Reply,
    Step,
    finishes_worker,
    gives_up,
    next_step,
    release_after,
)
from pytest_oompa.engine.markers import (
    DONE_SIGNAL,
    FOLLOWUP_SIGNAL,
    MERGE_SIGNAL,
    parse_signals,
)

MERGE = MERGE_SIGNAL
DONE = DONE_SIGNAL
FOLLOWUP = FOLLOWUP_SIGNAL
REJECTED = "rejected"

# -- the decision, as a table ------------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """A call that failed (exit status, timeout ...), where a table row expects an answer."""

    failure: str


@dataclass(frozen=True)
class Row:
    """What the agent replied and what the repo holds; the steps asked and the outcome."""

    id: str
    reply: str | Failed  # the agent's reply text, or its call's failure
    steps: str  # the steps next_step asks for, in order, by value
    outcome: Outcome
    error: str | None = None  # the start of the iteration's error
    can_plan: bool = True
    reviewer: str | None = None
    worktree_error: str | None = None
    files: tuple[str, ...] = ("src/app.py",)  # changed vs main after the auto-commit
    ahead: int = 1  # commits ahead of main
    reviews: tuple[str | Failed, ...] = ()  # the reviewer's verdicts, round by round
    fixes: tuple[Failed | None, ...] = ()  # None: the fix call succeeded
    merge_error: str | None = None  # every merge fails so
    # sync before merge (oompa 0.7.3): its answers in order, a conflict or None (clean; also
    # past the script); the resolve calls' (None: it answered); the merges' (None: merged)
    sync: bool = False
    syncs: tuple[str | None, ...] = ()
    resolves: tuple[Failed | None, ...] = ()
    merges: tuple[str | None, ...] = ()
    # the call (by step: "call", "review", "fix") after which the guard found a breach
    breach_after: str | None = None


BREACH = "wrote outside its worktree: a.txt (moved to stray/w0-i1-worker-1/)"


def play(row: Row) -> tuple[list[Step], Ending]:
    """Drive next_step as the runner does, answering each step from the row."""
    facts = Facts(
        can_plan=row.can_plan,
        reviewer=row.reviewer,
        worktree_error=row.worktree_error,
        sync=row.sync,
    )
    steps: list[Step] = []
    while not isinstance(step := next_step(facts), Ending):
        steps.append(step)
        assert len(steps) < 20, f"no ending after {steps}"
        if step is Step.CALL:
            if isinstance(row.reply, Failed):
                reply = Reply("claude", row.reply.failure)
            else:
                reply = Reply("claude", None, parse_signals(row.reply))
            facts = dataclasses.replace(facts, reply=reply)
        elif step is Step.INSPECT:
            facts = dataclasses.replace(facts, diff_files=row.files)
        elif step is Step.COUNT_COMMITS:
            facts = dataclasses.replace(facts, commits_ahead=row.ahead)
        elif step is Step.REVIEW:
            answer = row.reviews[len(facts.verdicts)]
            if isinstance(answer, Failed):
                facts = dataclasses.replace(facts, reviewer_failure=answer.failure)
            else:
                facts = dataclasses.replace(facts, verdicts=(*facts.verdicts, answer))
        elif step is Step.FIX:
            fix = row.fixes[facts.fixes] if facts.fixes < len(row.fixes) else None
            if fix is not None:
                facts = dataclasses.replace(facts, fix_failure=fix.failure)
            else:
                facts = dataclasses.replace(facts, fixes=facts.fixes + 1)
        elif step is Step.SYNC:
            n = len(facts.syncs)
            conflict = row.syncs[n] if n < len(row.syncs) else None
            facts = dataclasses.replace(facts, syncs=(*facts.syncs, conflict))
        elif step is Step.RESOLVE:
            n = facts.resolves
            resolve = row.resolves[n] if n < len(row.resolves) else None
            if resolve is not None:
                facts = dataclasses.replace(facts, resolve_failure=resolve.failure)
            else:
                facts = dataclasses.replace(facts, resolves=n + 1)
        elif step is Step.MERGE:
            n = len(facts.merge_errors)
            error = row.merges[n] if n < len(row.merges) else row.merge_error
            if error is not None:
                facts = dataclasses.replace(facts, merge_errors=(*facts.merge_errors, error))
            else:
                facts = dataclasses.replace(facts, merged_commit="c0ffee")
        if step.value == row.breach_after:
            facts = dataclasses.replace(facts, breach=BREACH)
    return steps, step


ER, CL, WO, DN = Outcome.ERROR, Outcome.CLAIMED, Outcome.WORKING, Outcome.DONE
XD, MG, RJ, NC = Outcome.EXECUTOR_DONE, Outcome.MERGED, Outcome.REJECTED, Outcome.NO_CHANGES
NF, SF, MF = Outcome.NEEDS_FOLLOWUP, Outcome.SYNC_FAILED, Outcome.MERGE_FAILED
A, N, R = APPROVED, NEEDS_CHANGES, REJECTED
C = "CONFLICT (content): Merge conflict in src/app.py"
# Outcomes only a runner reaches: a cycle out of attempts, a cycle the stop cut short.
RUNNER_OUTCOMES = {Outcome.STUCK, Outcome.INTERRUPTED}


def reviewed(*verdicts: str | Failed) -> dict[str, Any]:
    """A swarm with a reviewer, which answers ``verdicts`` round by round."""
    return {"reviewer": "codex", "reviews": verdicts}


# fmt: off
ROWS = [
    # what the agent replied
    Row("worktree cannot be made", "", "", ER, "could not create the worktree: fatal",
        worktree_error="fatal: not a directory"),
    Row("call exits non-zero", Failed("exit code 2"), "call", ER, "claude failed: exit code 2"),
    Row("call times out", Failed("timeout after 5 s"), "call", ER, "claude failed: timeout"),
    Row("call stalls", Failed("stalled: no output for 1 s"), "call", ER, "claude failed: stalled"),
    Row("no signal", "still on it", "call", WO),
    Row("claim", "CLAIM(t1, t2)", "call", CL),
    Row("only invalid ids claimed", "CLAIM(../etc)", "call", CL),
    Row("claim and done", f"CLAIM(t1) {DONE}", "call", DN),
    Row("done, planner", DONE, "call", DN),
    Row("done, executor", DONE, "call", XD, can_plan=False),
    Row("claim and done, executor", f"CLAIM(t1) {DONE}", "call", XD, can_plan=False),
    # oompa 0.7.3's NEEDS_FOLLOWUP: alone, a follow-up (0.7.0 mode records the iteration as
    # working); any other signal wins, as upstream
    Row("needs followup", f"{FOLLOWUP}: needs the db schema", "call", NF),
    Row("needs followup and claim", f"{FOLLOWUP}: blocked\nCLAIM(t1)", "call", CL),
    Row("needs followup and done", f"{FOLLOWUP}: nothing left\n{DONE}", "call", DN),
    # what there is to merge
    Row("merge", MERGE, "call inspect merge", MG),
    Row("claim and merge", f"CLAIM(t1) {MERGE}", "call inspect merge", MG),
    Row("merge and done", f"{MERGE} {DONE}", "call inspect merge", MG),
    Row("needs followup and merge", f"{FOLLOWUP}: partial\n{MERGE}", "call inspect merge", MG),
    Row("nothing changed", MERGE, "call inspect count-commits", NC, files=(), ahead=0),
    Row("commits, no diff", MERGE, "call inspect count-commits merge", MG, files=()),
    Row("merge fails", MERGE, "call inspect merge", ER, "merge into main failed, aborted: CONFLICT",
        merge_error="CONFLICT (content)"),
    # sync before merge (oompa 0.7.3): main into the branch first, the agent resolves conflicts
    Row("sync clean", MERGE, "call inspect sync merge", MG, sync=True),
    Row("sync conflict, resolved", MERGE, "call inspect sync resolve sync merge", MG,
        sync=True, syncs=(C,)),
    Row("sync conflict every time", MERGE,
        "call inspect" + " sync resolve" * MAX_RESOLVES + " sync", SF,
        "the branch still does not merge main after 5 attempts to resolve: CONFLICT",
        sync=True, syncs=(C,) * (MAX_RESOLVES + 1)),
    Row("resolve call fails", MERGE, "call inspect sync resolve", SF,
        "resolving the conflict failed: timeout", sync=True, syncs=(C,),
        resolves=(Failed("timeout after 60 s"),)),
    Row("main moved after the sync", MERGE, "call inspect sync merge sync merge", MG,
        sync=True, merges=(C, None)),
    Row("merge fails after every sync", MERGE,
        "call inspect" + " sync merge" * MAX_MERGES, MF,
        "merge into main failed 3 times after syncing, aborted: CONFLICT", sync=True,
        merge_error=C),
    Row("sync, reviewed first", MERGE, "call inspect review sync resolve sync merge", MG,
        sync=True, syncs=(C,), **reviewed(A)),
    Row("sync, nothing changed", MERGE, "call inspect count-commits", NC, files=(), ahead=0,
        sync=True),
    # what the reviewer says
    Row("approved", MERGE, "call inspect review merge", MG, **reviewed(A)),
    Row("task files only: no review", MERGE, "call inspect merge", MG,
        files=("tasks/pending/t9.json",), **reviewed()),
    Row("task files and code: reviewed", MERGE, "call inspect review merge", MG,
        files=("tasks/pending/t9.json", "src/app.py"), **reviewed(A)),
    Row("commits, no diff: reviewed", MERGE, "call inspect count-commits review merge", MG,
        files=(), **reviewed(A)),
    Row("nothing changed: no review", MERGE, "call inspect count-commits", NC,
        files=(), ahead=0, **reviewed()),
    Row("rejected", MERGE, "call inspect review", RJ, **reviewed(R)),
    Row("needs changes, fixed, approved", MERGE, "call inspect review fix review merge", MG,
        **reviewed(N, A)),
    Row("needs changes, fixed, rejected", MERGE, "call inspect review fix review", RJ,
        **reviewed(N, R)),
    Row("needs changes every round", MERGE, "call inspect review fix review fix review", RJ,
        **reviewed(*(N,) * MAX_REVIEW_ROUNDS)),
    Row("reviewer fails", MERGE, "call inspect review", ER, "reviewer (codex) failed: timeout",
        **reviewed(Failed("timeout after 60 s"))),
    Row("reviewer fails in round 2", MERGE, "call inspect review fix review", ER,
        "reviewer (codex) failed: exit code 1", **reviewed(N, Failed("exit code 1"))),
    Row("fix fails", MERGE, "call inspect review fix", ER,
        "fix after review round 1 failed: exit code 3", fixes=(Failed("exit code 3"),),
        **reviewed(N)),
    Row("fix fails in round 2", MERGE, "call inspect review fix review fix", ER,
        "fix after review round 2 failed: killed", fixes=(None, Failed("killed")),
        **reviewed(N, N)),
    Row("approved, merge fails", MERGE, "call inspect review merge", ER,
        "merge into main failed, aborted: CONFLICT", merge_error="CONFLICT", **reviewed(A)),
    # what the agent did outside its worktree (engine/guard.py): an error at any step
    Row("wrote outside, then merge", MERGE, "call", ER, "wrote outside its worktree: a.txt",
        breach_after="call"),
    Row("wrote outside, claim", "CLAIM(t1)", "call", ER, "wrote outside", breach_after="call"),
    Row("wrote outside, no signal", "still on it", "call", ER, "wrote outside",
        breach_after="call"),
    Row("wrote outside, and failed", Failed("exit code 2"), "call", ER, "wrote outside",
        breach_after="call"),
    Row("reviewer wrote outside", MERGE, "call inspect review", ER, "wrote outside",
        breach_after="review", **reviewed(A)),
    Row("fix wrote outside", MERGE, "call inspect review fix", ER, "wrote outside",
        breach_after="fix", **reviewed(N, A)),
]
# fmt: on


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_outcome_of_agent_reply_and_repo_state(row: Row) -> None:
    steps, ending = play(row)
    assert " ".join(step.value for step in steps) == row.steps
    assert ending.outcome is row.outcome
    if row.error is None:
        assert ending.error is None
    else:
        assert ending.error is not None and ending.error.startswith(row.error)


def test_the_table_reaches_every_outcome_through_every_step() -> None:
    assert {row.outcome for row in ROWS} == set(Outcome) - RUNNER_OUTCOMES
    assert {step for row in ROWS for step in play(row)[0]} == set(Step)
    assert len({row.id for row in ROWS}) == len(ROWS)


def test_a_failed_calls_reply_is_not_trusted() -> None:
    facts = Facts(can_plan=True, reply=Reply("claude", "exit code 1", parse_signals(MERGE)))
    assert next_step(facts) == Ending(Outcome.ERROR, "claude failed: exit code 1")


def test_the_fix_changes_what_the_reviewer_sees_not_whether_to_review() -> None:
    """A fix that leaves only task files still gets reviewed: the diff read after the agent's
    call decided that there is something to review."""
    facts = Facts(
        can_plan=True,
        reviewer="codex",
        reply=Reply("claude", None, parse_signals(MERGE)),
        diff_files=("src/app.py",),
        verdicts=(NEEDS_CHANGES,),
        fixes=1,
    )
    assert next_step(facts) is Step.REVIEW


@pytest.mark.parametrize(
    ("outcome", "release"),
    [
        (Outcome.CLAIMED, Release.CONTINUE),
        (Outcome.WORKING, Release.CONTINUE),
        (Outcome.NEEDS_FOLLOWUP, Release.CONTINUE),
        (Outcome.SYNC_FAILED, Release.RECYCLE),
        (Outcome.MERGE_FAILED, Release.RECYCLE),
        (Outcome.DONE, Release.FINISH),
        (Outcome.MERGED, Release.FINISH),
        (Outcome.EXECUTOR_DONE, Release.RECYCLE),
        (Outcome.NO_CHANGES, Release.RECYCLE),
        (Outcome.REJECTED, Release.RECYCLE),
        (Outcome.ERROR, Release.RECYCLE),
    ],
    ids=lambda v: v.value,
)
def test_what_an_ending_does_with_the_unit_of_work(outcome: Outcome, release: Release) -> None:
    assert release_after(outcome) is release


@pytest.mark.parametrize(
    ("outcome", "reply", "can_plan", "finishes"),
    [
        (Outcome.DONE, DONE, True, True),
        (Outcome.MERGED, f"{MERGE} {DONE}", True, True),
        (Outcome.MERGED, f"{MERGE} {DONE}", False, False),
        (Outcome.MERGED, MERGE, True, False),
        (Outcome.EXECUTOR_DONE, DONE, False, False),
        (Outcome.WORKING, "", True, False),
    ],
    ids=["done", "merged and done", "merged and done, executor", "merged", "executor", "working"],
)
def test_when_the_worker_stops(
    outcome: Outcome, reply: str, can_plan: bool, finishes: bool
) -> None:
    facts = Facts(can_plan=can_plan, reply=Reply("claude", None, parse_signals(reply)))
    assert finishes_worker(outcome, facts) is finishes


def test_the_worker_gives_up_after_consecutive_errors() -> None:
    assert not gives_up(MAX_CONSECUTIVE_ERRORS - 1)
    assert gives_up(MAX_CONSECUTIVE_ERRORS)


# -- the runner, with stub collaborators -------------------------------------------------------


def test_claim_then_merge() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(MERGE), worker("next"))
    swarm = Swarm(caller, queue=StubQueue("t1", "t2"))
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.CLAIMED, Outcome.MERGED, Outcome.WORKING]
    claimed, merged, _ = swarm.results
    assert claimed.task_ids == ("t1",)
    second = swarm.caller.seen[1]
    assert (second.session.kind, second.session.session_id) == ("resume", "s1")
    assert "Claimed: t1" in second.prompt  # the claim's results, in the resumed session
    assert merged.completed_tasks == ("t1",) and merged.merged_commit == "c0ffee"
    assert swarm.queue.completed == ["t1"] and swarm.queue.pending == {"t2"}
    assert (report.claims, report.merges, report.completed) == (1, 1, 1)
    assert swarm.repo.log[:3] == ["add w0-i1", "commit oompa: work from w0-i1", "merge oompa/w0-i1"]
    assert swarm.caller.seen[2].session.kind == "new"  # the merge ended the session
    assert report.status is WorkerStatus.EXHAUSTED


def test_rejections_then_fixes_then_merge() -> None:
    caller = StubCaller(
        worker(MERGE),
        Answer("reviewer", "rename it\nVERDICT: NEEDS_CHANGES", session=None),
        Answer("fix", "renamed", session="s2"),
        Answer("reviewer", "and test it\nVERDICT: NEEDS_CHANGES", session=None),
        Answer("fix", "tested", session=None),  # no session id in the reply: keep s2
        Answer("reviewer", "VERDICT: APPROVED", session=None),
    )
    swarm = Swarm(caller, reviewer=CODEX, iterations=1)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.MERGED]
    assert [seen.name for seen in caller.seen] == [
        "w0-i1-worker-1",
        "w0-i1-reviewer-1",
        "w0-i1-fix-1",
        "w0-i1-reviewer-2",
        "w0-i1-fix-2",
        "w0-i1-reviewer-3",
    ]
    first_fix, second_fix = caller.seen[2], caller.seen[4]
    assert (first_fix.session.kind, first_fix.session.session_id) == ("resume", "s1")
    assert (second_fix.session.kind, second_fix.session.session_id) == ("resume", "s2")
    assert "rename it" in caller.seen[3].prompt  # the reviewer sees its earlier feedback
    assert "rename it" in second_fix.prompt and "and test it" in second_fix.prompt
    assert [verdict for _, _, verdict in swarm.reviews] == [NEEDS_CHANGES, NEEDS_CHANGES, APPROVED]
    (merged,) = swarm.results
    assert merged.review_rounds == 3 and merged.merged_commit == "c0ffee"
    assert "commit oompa: review fixes for w0-i1 (round 2)" in swarm.repo.log


def test_a_rejection_recycles_the_tasks_and_starts_afresh() -> None:
    caller = StubCaller(
        worker(f"CLAIM(t1) {MERGE}"),
        Answer("reviewer", "VERDICT: REJECTED", session=None),
        worker("on it"),
    )
    swarm = Swarm(caller, queue=StubQueue("t1"), reviewer=CODEX, iterations=2)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.REJECTED, Outcome.WORKING]
    assert swarm.results[0].recycled == ("t1",) and swarm.queue.pending == {"t1"}
    assert report.rejections == 1 and report.merges == 0
    assert caller.seen[2].session.kind == "new"
    assert swarm.repo.log.count("add w0-i1") == 1 and "add w0-i2" in swarm.repo.log


def test_three_errors_in_a_row_stop_the_worker() -> None:
    swarm = Swarm(StubCaller(*[worker(failure="exit code 2")] * 3), iterations=5)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR] * 3
    assert swarm.results[0].error == "claude failed: exit code 2"
    assert swarm.results[2].error == "claude failed: exit code 2 (3 consecutive errors)"
    assert report.status is WorkerStatus.ERROR and report.iterations_run == 3
    assert "stopped after iteration 3" in report.stop_reason


def test_an_iteration_that_is_not_an_error_resets_the_count() -> None:
    failing = worker(failure="exit code 2")
    swarm = Swarm(StubCaller(failing, failing, worker("on it"), failing, failing), iterations=5)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR] * 2 + [Outcome.WORKING] + [Outcome.ERROR] * 2
    assert report.status is WorkerStatus.EXHAUSTED and report.errors == 4


def test_a_call_that_times_out_recycles_the_claimed_task() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(failure="timeout after 5 s"))
    swarm = Swarm(caller, queue=StubQueue("t1"), iterations=2)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.CLAIMED, Outcome.ERROR]
    assert swarm.results[1].error == "claude failed: timeout after 5 s"
    assert swarm.results[1].recycled == ("t1",) and swarm.queue.pending == {"t1"}
    assert swarm.repo.live == set()


def test_the_iteration_budget_running_out_is_an_error() -> None:
    swarm = Swarm(StubCaller(), iteration_timeout=0.01, iterations=1)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR]
    assert swarm.results[0].error == "iteration timeout after 0.01 s"
    assert swarm.caller.seen == []


def test_no_signal_keeps_the_worktree_and_the_session() -> None:
    swarm = Swarm(StubCaller(worker("reading"), worker("still reading")), iterations=2)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.WORKING, Outcome.WORKING]
    assert swarm.caller.seen[1].session.session_id == "s1"
    assert swarm.repo.log == ["add w0-i1", "remove w0-i1"]  # removed when the worker ends


EXHAUSTED = WorkerStatus.EXHAUSTED


@pytest.mark.parametrize(
    ("can_plan", "outcomes", "recycled", "status"),
    [
        (True, [Outcome.CLAIMED, Outcome.DONE], (), WorkerStatus.DONE),
        (False, [Outcome.CLAIMED, Outcome.EXECUTOR_DONE, Outcome.WORKING], ("t1",), EXHAUSTED),
    ],
    ids=["planner stops, keeps its task", "executor recycles its task, goes on"],
)
def test_done(
    can_plan: bool, outcomes: list[Outcome], recycled: tuple[str], status: WorkerStatus
) -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(DONE), worker("on it"))
    swarm = Swarm(caller, queue=StubQueue("t1", "t2"), can_plan=can_plan, iterations=3)
    report = swarm.runner().run()
    assert swarm.outcomes == outcomes
    assert swarm.results[1].recycled == recycled
    assert report.status is status
    assert report.recycled == 1 and swarm.queue.pending == {"t1", "t2"}  # back when it ends


def test_a_merge_with_nothing_to_merge() -> None:
    swarm = Swarm(StubCaller(worker(MERGE)), repo=StubRepo([], ahead=0), iterations=1)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.NO_CHANGES]
    assert "commits-ahead" in swarm.repo.log and report.merges == 0


def test_a_failed_merge_is_an_error_not_a_merge() -> None:
    caller = StubCaller(worker(f"CLAIM(t1) {MERGE}"))
    repo = StubRepo(merge_error="CONFLICT (content): src/app.py")
    swarm = Swarm(caller, repo=repo, queue=StubQueue("t1"), iterations=1)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR]
    assert swarm.results[0].error == f"merge into main failed, aborted: {repo.merge_error}"
    assert swarm.results[0].merged_commit is None and swarm.queue.pending == {"t1"}
    assert report.merges == 0 and report.completed == 0


@pytest.mark.parametrize(
    ("swarm_kw", "answer", "error"),
    [
        (
            {"repo": StubRepo(worktree_error="fatal: is a file")},
            None,
            "could not create the worktree: fatal: is a file",
        ),
        ({"repo": StubRepo(diff_error="fatal: bad object")}, worker(MERGE), "git failed: git"),
        (
            {},
            worker(raises=RuntimeError("boom")),
            "internal error in the iteration: RuntimeError: boom",
        ),
    ],
    ids=["worktree", "git", "internal"],
)
def test_a_failure_outside_the_agent_costs_one_iteration(
    swarm_kw: dict[str, Any], answer: Answer | None, error: str
) -> None:
    swarm = Swarm(StubCaller(*[answer] if answer else []), iterations=1, **swarm_kw)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR]
    assert (swarm.results[0].error or "").startswith(error)
    assert swarm.repo.live == set()


def test_a_stopping_swarm_abandons_the_iteration() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(cancelled=True, failure="stopped"))
    swarm = Swarm(caller, queue=StubQueue("t1"), iterations=3)
    report = swarm.runner().run()
    assert swarm.outcomes == [Outcome.CLAIMED]  # the abandoned iteration is not reported
    assert report.interrupted and report.status is WorkerStatus.IDLE
    assert swarm.queue.pending == {"t1"} and swarm.repo.live == set()


def test_a_breach_ends_the_iteration_as_an_error_and_recycles_its_tasks() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(MERGE), worker(MERGE))
    guard = StubGuard({"w0-i2-worker-1": "moved main outside the merge: quarantined as x"})
    swarm = Swarm(caller, queue=StubQueue("t1"), guard=guard)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.CLAIMED, Outcome.ERROR, Outcome.MERGED]
    bad = swarm.results[1]
    assert bad.error == "moved main outside the merge: quarantined as x"
    assert bad.recycled == ("t1",) and "a note" in bad.notes
    assert not any(entry.startswith("merge oompa/w0-i1") for entry in swarm.repo.log)
    assert guard.watched == ["w0-i1-worker-1", "w0-i2-worker-1", "w0-i3-worker-1"]
    assert guard.forgotten == ["w0-i1", "w0-i3"]


def test_the_reviewers_call_is_watched_too() -> None:
    caller = StubCaller(worker(MERGE), Answer("reviewer", "VERDICT: APPROVED", session=None))
    guard = StubGuard({"w0-i1-reviewer-1": "wrote outside its worktree: a.txt"})
    swarm = Swarm(caller, reviewer=CODEX, iterations=1, guard=guard)
    swarm.runner().run()
    assert swarm.outcomes == [Outcome.ERROR]
    assert swarm.results[0].error == "wrote outside its worktree: a.txt"
    assert "merge oompa/w0-i1" not in swarm.repo.log
