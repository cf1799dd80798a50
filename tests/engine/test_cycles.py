"""oompa 0.7.3's lifecycle in the runner, on stub collaborators: cycles of attempts, NEEDS_FOLLOWUP,
max_resumes, an interrupted cycle, and sync before merge with the agent resolving conflicts.

The decision of each attempt is test_worker.py's table; here: what the runner does between
attempts (the session, the worktree, the claims, the prompts) and what it reports.
"""

from __future__ import annotations

from support.engine_stubs import Answer, StubCaller, StubQueue, StubRepo, Swarm, worker

from pytest_oompa.core.config import CycleLimits
from pytest_oompa.core.results import Outcome, WorkerStatus
from pytest_oompa.engine.decision import MAX_RESOLVES
from pytest_oompa.engine.markers import FOLLOWUP_SIGNAL, MERGE_SIGNAL

MERGE = MERGE_SIGNAL
FOLLOWUP = FOLLOWUP_SIGNAL
CONFLICT = "CONFLICT (content): Merge conflict in src/app.py"


def limits(max_resumes: int = 7, max_needs_followups: int = 1) -> CycleLimits:
    return CycleLimits(max_resumes=max_resumes, max_needs_followups=max_needs_followups)


def test_a_cycle_runs_attempts_in_one_session_until_an_outcome_ends_it() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker("reading"), worker(MERGE), worker(MERGE))
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(), iterations=2)
    report = swarm.runner().run()
    first, second = swarm.results
    assert (first.outcome, first.label, first.cycle) == (Outcome.MERGED, "c1", True)
    assert [a.outcome for a in first.attempts] == [
        Outcome.CLAIMED,
        Outcome.WORKING,
        Outcome.MERGED,
    ]
    assert [a.number for a in first.attempts] == [1, 2, 3]
    # each attempt that leaves the cycle open is reported (its file is rewritten)
    assert [(r.iteration, r.outcome) for r in swarm.attempts] == [
        (1, Outcome.CLAIMED),
        (1, Outcome.WORKING),
    ]
    assert [s.session.kind for s in caller.seen] == ["new", "resume", "resume", "new"]
    assert [s.name for s in caller.seen] == [
        "w0-c1-worker-1",
        "w0-c1-worker-2",
        "w0-c1-worker-3",
        "w0-c2-worker-1",
    ]
    assert "Claimed: t1" in caller.seen[1].prompt
    assert [c.attempt for c in first.calls] == [1, 2, 3]
    assert swarm.repo.log.count("add w0-c1") == 1 and "add w0-c2" in swarm.repo.log
    assert first.completed_tasks == ("t1",)
    assert (second.outcome, len(second.attempts)) == (Outcome.MERGED, 1)
    assert report.cycles and (report.iterations, report.iterations_run) == (2, 2)
    assert report.status is WorkerStatus.EXHAUSTED and report.merges == 2


def test_a_cycle_out_of_attempts_is_stuck_and_gives_its_claims_back() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker("reading"), worker("still"), worker(MERGE))
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(max_resumes=3), iterations=2)
    swarm.runner().run()
    stuck, merged = swarm.results
    assert stuck.outcome is Outcome.STUCK and len(stuck.attempts) == 3
    assert stuck.error == "no outcome ended the cycle in 3 attempts (max_resumes)"
    assert stuck.recycled == ("t1",)
    assert caller.seen[3].session.kind == "new"  # the next cycle starts afresh
    assert merged.outcome is Outcome.MERGED
    assert swarm.repo.live == set()


def test_needs_followup_gets_the_follow_up_prompt_in_the_same_session() -> None:
    caller = StubCaller(
        worker("CLAIM(t1)"), worker(f"{FOLLOWUP}: the schema is missing"), worker(MERGE)
    )
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(), iterations=1)
    report = swarm.runner().run()
    (cycle,) = swarm.results
    assert cycle.outcome is Outcome.MERGED
    assert [a.outcome for a in cycle.attempts] == [
        Outcome.CLAIMED,
        Outcome.NEEDS_FOLLOWUP,
        Outcome.MERGED,
    ]
    assert cycle.attempts[1].note == "NEEDS_FOLLOWUP 1/1"
    follow_up = caller.seen[2]
    assert follow_up.session.kind == "resume"
    assert "## NEEDS_FOLLOWUP Follow-up" in follow_up.prompt
    assert "You still own these claimed tasks: t1" in follow_up.prompt
    assert "the schema is missing" in follow_up.prompt
    assert "NEEDS_FOLLOWUP: the schema is missing" in cycle.notes
    assert report.status is WorkerStatus.EXHAUSTED


def test_needs_followup_past_its_limit_ends_the_cycle_and_stops_the_worker() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(FOLLOWUP), worker(FOLLOWUP))
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(), iterations=3)
    report = swarm.runner().run()
    (cycle,) = swarm.results
    assert cycle.outcome is Outcome.NEEDS_FOLLOWUP
    assert cycle.error == "NEEDS_FOLLOWUP 2 times in this cycle (max_needs_followups 1)"
    assert cycle.recycled == ("t1",) and swarm.queue.pending == {"t1"}
    assert report.status is WorkerStatus.ERROR and report.iterations_run == 1
    assert swarm.repo.live == set()


def test_an_error_ends_the_cycle_and_the_next_one_starts_afresh() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(failure="exit code 2"), worker(MERGE))
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(), iterations=2)
    report = swarm.runner().run()
    assert [r.outcome for r in swarm.results] == [Outcome.ERROR, Outcome.MERGED]
    assert swarm.results[0].error == "claude failed: exit code 2"
    assert swarm.results[0].recycled == ("t1",)
    assert report.errors == 1 and caller.seen[2].session.kind == "new"


def test_a_cycle_the_stop_cuts_short_is_recorded_as_interrupted() -> None:
    caller = StubCaller(worker("CLAIM(t1)"), worker(cancelled=True, failure="stopped"))
    swarm = Swarm(caller, queue=StubQueue("t1"), cycles=limits(), iterations=3)
    report = swarm.runner().run()
    (cycle,) = swarm.results
    assert cycle.outcome is Outcome.INTERRUPTED
    assert [a.outcome for a in cycle.attempts] == [Outcome.CLAIMED, Outcome.INTERRUPTED]
    assert cycle.recycled == ("t1",) and swarm.queue.pending == {"t1"}
    assert report.interrupted and report.iterations_run == 0
    assert swarm.repo.live == set()


def test_in_0_7_0_mode_needs_followup_is_a_working_iteration_with_the_follow_up_next() -> None:
    caller = StubCaller(worker(f"{FOLLOWUP}: blocked on t2"), worker(MERGE))
    swarm = Swarm(caller, iterations=2)
    swarm.runner().run()
    assert [r.outcome for r in swarm.results] == [Outcome.WORKING, Outcome.MERGED]
    assert not swarm.results[0].cycle and swarm.results[0].attempts == ()
    assert "## NEEDS_FOLLOWUP Follow-up" in caller.seen[1].prompt
    assert caller.seen[1].session.kind == "resume"


# -- sync before merge -------------------------------------------------------------------------


def test_a_conflict_with_main_is_resolved_by_the_agent_in_its_session() -> None:
    caller = StubCaller(
        worker(MERGE), Answer("sync", "merged main, kept both", session="s2"), worker(MERGE)
    )
    repo = StubRepo(syncs=[CONFLICT])
    swarm = Swarm(caller, repo=repo, cycles=limits(), sync=True, iterations=2)
    swarm.runner().run()
    assert [r.outcome for r in swarm.results] == [Outcome.MERGED, Outcome.MERGED]
    resolve = caller.seen[1]
    assert resolve.name == "w0-c1-sync-1"
    assert (resolve.session.kind, resolve.session.session_id) == ("resume", "s1")
    assert "Your branch cannot merge into main." in resolve.prompt
    assert CONFLICT in resolve.prompt and "def456 theirs" in resolve.prompt
    steps = [e for e in repo.log if e != "commit oompa: work from w0-c1"]  # before each step
    assert steps[:6] == [
        "add w0-c1",
        "sync conflict",
        "settle",
        "commit oompa: w0-c1 resolves its conflict with main",
        "sync clean",
        "merge oompa/w0-c1",
    ]
    assert any("sync with main 1: conflict" in n for n in swarm.results[0].notes)


def test_a_conflict_the_agent_cannot_resolve_is_sync_failed_and_recycles() -> None:
    answers = [Answer("sync", "could not") for _ in range(MAX_RESOLVES)]
    caller = StubCaller(worker(f"CLAIM(t1) {MERGE}"), *answers)
    repo = StubRepo(syncs=[CONFLICT] * (MAX_RESOLVES + 1))
    swarm = Swarm(caller, repo=repo, queue=StubQueue("t1"), sync=True, iterations=1)
    swarm.runner().run()  # 0.7.0 mode: sync before merge works the same
    (result,) = swarm.results
    assert result.outcome is Outcome.SYNC_FAILED
    assert (result.error or "").startswith(
        f"the branch still does not merge main after {MAX_RESOLVES} attempts to resolve"
    )
    assert result.recycled == ("t1",) and not any(e.startswith("merge") for e in repo.log)
    assert [s.role for s in caller.seen].count("sync") == MAX_RESOLVES


def test_an_agent_that_gives_up_on_the_conflict_ends_the_sync() -> None:
    caller = StubCaller(worker(MERGE), Answer("sync", f"{FOLLOWUP}: both rewrote the parser"))
    repo = StubRepo(syncs=[CONFLICT])
    swarm = Swarm(caller, repo=repo, cycles=limits(), sync=True, iterations=1)
    swarm.runner().run()
    (result,) = swarm.results
    assert result.outcome is Outcome.SYNC_FAILED
    assert result.error == (
        "resolving the conflict failed: the agent gave up (NEEDS_FOLLOWUP): both rewrote the parser"
    )
