"""One worker's loop, as a small state machine.

What an iteration comes to is decided in ``decision.py``, purely: from the facts learned so far
it names the next step or the ending. ``WorkerRunner`` performs the steps (harness calls, git,
the task queue), the side effects of each ending, and keeps the little state a worker carries
between iterations: its worktree, its session, its consecutive-error count and its metrics.
Its collaborators come in a ``SwarmContext``, so a test can drive it with stubs.

A worker runs in one of two modes (``WorkerSpec.mode``). oompa 0.7.0: each iteration is one
attempt and one item, whatever it ends in; ``claimed`` and ``working`` carry the worktree and
the session into the next iteration. oompa 0.7.3: each *cycle* is an item, and runs attempts
in one worktree and session until an outcome ends it: ``claimed``, ``working`` and (up to
``max_needs_followups`` times) ``needs-followup`` go on to the next attempt, up to
``max_resumes`` attempts (then ``stuck``); a cycle the swarm's stop cuts short is recorded as
``interrupted``. The decision of each attempt is the same function in both modes.

Every harness call of an iteration runs between ``Guard.begin`` and ``Guard.end`` (guard.py):
what the agent changed outside its worktree (files of the project root, branches, another
worker's worktree) is put right there, and becomes the ``breach`` fact that ends the iteration
as an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from pytest_oompa.core.config import AgentSpec, WorkerSpec
from pytest_oompa.core.results import (
    Attempt,
    CallRecord,
    IterationResult,
    Outcome,
    ReviewRound,
    WorkerMetrics,
    WorkerReport,
    WorkerState,
    WorkerStatus,
)
from pytest_oompa.engine import prompts
from pytest_oompa.engine.activity import ActivityBoard
from pytest_oompa.engine.calls import CallOutcome, HarnessCaller
from pytest_oompa.engine.decision import (
    MAX_CONSECUTIVE_ERRORS,
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
from pytest_oompa.engine.git import GitError, Repo, Worktree
from pytest_oompa.engine.guard import Guard
from pytest_oompa.engine.markers import Signals, parse_signals, parse_verdict
from pytest_oompa.engine.spend import SpendLimitReached
from pytest_oompa.engine.tasks import ClaimResult, TaskQueue
from pytest_oompa.harnesses.spec import SessionMode

TASK_POLL_SECONDS = 5.0
PATCH_CAP = 1 << 20  # a merged patch kept for the report: the first MiB of it


def _capped(patch: str) -> str:
    if len(patch) <= PATCH_CAP:
        return patch
    cut = patch[:PATCH_CAP].rsplit("\n", 1)[0]
    return f"{cut}\n[oompa: patch cut at {PATCH_CAP} characters of {len(patch)}]\n"


def _ms_since(it: _Iteration) -> int:
    return int((time.monotonic() - it.started) * 1000)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Interrupted(Exception):
    """The swarm is stopping: the iteration in progress is abandoned, not reported."""


class OutOfTime(Exception):
    """The iteration has used its whole time budget."""


@dataclass
class SwarmContext:
    """What every worker of one swarm shares."""

    swarm_id: str
    repo: Repo
    queue: TaskQueue
    caller: HarnessCaller
    stop: threading.Event
    reviewer: AgentSpec | None = None
    executor_wait: float = 60.0
    iteration_timeout: float | None = None  # all the calls of one iteration together
    on_review: Callable[[str, int, ReviewRound], Path | None] = lambda *_: None
    on_iteration: Callable[[IterationResult], None] = lambda _: None
    # (worker id, iteration): workers/{id}.json reads running from then on
    on_iteration_start: Callable[[str, int], object] = lambda *_: None
    # a cycle's attempt that did not end it (0.7.3 mode): the cycle so far
    on_attempt: Callable[[IterationResult], object] = lambda _: None
    # what a resume needs, after each unit and when the worker stops
    on_state: Callable[[WorkerState], object] = lambda _: None
    guard: Guard | None = None  # None: no containment checks (unit tests with stubs)
    activity: ActivityBoard = field(default_factory=ActivityBoard)  # for the live views


@dataclass
class _Iteration:
    """The facts one iteration collects on its way to an IterationResult."""

    number: int
    started_at: str
    started: float
    unit: str = "i"  # "c": a cycle of attempts (0.7.3 mode)
    attempt: int | None = None  # the attempt in progress, in a cycle
    attempt_started: float = 0.0  # the time budget is an iteration's, or an attempt's
    attempts: list[Attempt] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    reviews: list[ReviewRound] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)  # reviewer replies that asked for changes
    notes: list[str] = field(default_factory=list)
    diff_files: tuple[str, ...] = ()
    recycled: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    merged_commit: str | None = None
    patch: str = ""
    error: str | None = None
    breaches: list[str] = field(default_factory=list)  # what its calls did outside
    role_calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.attempt_started = self.started

    def call_name(self, worker_id: str, role: str) -> str:
        """commands/{name}.ndjson: w0-i3-worker-1, w0-i3-reviewer-2, w0-c2-sync-1 …"""
        self.role_calls[role] += 1
        return f"{worker_id}-{self.unit}{self.number}-{role}-{self.role_calls[role]}"

    @property
    def unit_name(self) -> str:
        return "cycle" if self.unit == "c" else "iteration"

    def record(self, call: CallRecord) -> None:
        self.calls.append(call if self.attempt is None else replace(call, attempt=self.attempt))


class WorkerRunner:
    def __init__(
        self,
        spec: WorkerSpec,
        ctx: SwarmContext,
        limit: int | None = None,
        resume: WorkerState | None = None,
    ) -> None:
        self.spec = spec
        self.ctx = ctx
        self.cycles = spec.cycles_mode
        self.limit = min(limit or spec.units, spec.units)
        self.metrics = WorkerMetrics()
        self.worktree: Worktree | None = None
        self.session_id: str | None = None
        self.next_prompt: str | None = None  # claim results for the next resume
        self.consecutive_errors = 0
        self.status = WorkerStatus.IDLE
        self.stop_reason = ""
        self.iterations_run = 0
        self.last_merge: str | None = None
        self.ended_before = False  # resumed: the worker had ended, it runs nothing
        self._merging: tuple[int, str] | None = None
        if resume is not None:
            self._restore(resume)

    def _restore(self, state: WorkerState) -> None:
        """Continue where an earlier attempt of the run left this worker: its counters, its
        session and worktree (when the worktree is intact or its branch still exists; else the
        session goes too: it speaks of work that is gone), the tasks it held."""
        self.iterations_run = state.finished
        self.metrics = WorkerMetrics.from_dict(state.metrics)
        self.consecutive_errors = state.consecutive_errors
        self.last_merge = state.last_merge
        if state.status != "running":
            self.status = WorkerStatus(state.status)
            self.ended_before = True
            return
        if state.worktree:
            self.worktree = self.ctx.repo.reopen_worktree(state.worktree)
        if self.worktree is not None or not state.worktree:
            self.session_id = state.session_id
            self.next_prompt = state.next_prompt
        self.ctx.queue.reown(state.held, self.id)

    @property
    def id(self) -> str:
        return self.spec.id

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> WorkerReport:
        if self.ended_before:
            return self.report()
        interrupted = False
        first = self.iterations_run + 1  # 1, or where a resumed run left the worker
        try:
            if not self.spec.can_plan and first == 1:
                self._wait_for_tasks()
            for n in range(first, self.limit + 1):
                if n > first and self.spec.wait_between:
                    self.ctx.activity.enter(self.id, "", f"between {self.spec.unit_name}s")
                    if self.ctx.stop.wait(self.spec.wait_between):
                        raise Interrupted
                if self.ctx.stop.is_set():
                    raise Interrupted
                self.ctx.caller.spend.check(self.id)
                result = self.cycle(n) if self.cycles else self.iteration(n)
                self.iterations_run = n
                if result.merged_commit:
                    self.last_merge = result.merged_commit
                self.ctx.on_iteration(result)
                self._merging = None  # recorded: a resume counts it from its files
                self._save_state("running")
                if self.status is not WorkerStatus.IDLE:  # done or error: the worker stops here
                    if n < self.limit:
                        self.stop_reason = f"worker {self.id} stopped after iteration {n}: " + (
                            result.error or f"status {self.status.value}"
                        )
                    break
            else:
                self.status = WorkerStatus.EXHAUSTED
        except Interrupted:
            interrupted = True
            self.status = WorkerStatus.IDLE
            self.stop_reason = "the swarm was stopped before this iteration finished"
        except SpendLimitReached as exc:
            # No call may start: the iteration in progress is abandoned like an interrupted
            # one (its item is skipped with the reason), and the worker ends here.
            self.status = WorkerStatus.IDLE
            self.stop_reason = exc.reason
        finally:
            self._release(reset_session=True)
            leftover = self.ctx.queue.recycle(self.ctx.queue.owned_by(self.id))
            self.metrics.recycled += len(leftover)
            self.ctx.activity.stopped(self.id)
            # Ended (a resume does not run it again), or cut short: "running", with the unit
            # of work just released (Ctrl-C cleans up: the next unit starts afresh).
            cut = interrupted or bool(self.stop_reason)
            idle = "running" if cut else WorkerStatus.IDLE.value
            self._save_state(idle if self.status is WorkerStatus.IDLE else self.status.value)
        return self.report(interrupted)

    def state(self, status: str) -> WorkerState:
        return WorkerState(
            worker_id=self.id,
            cycles=self.cycles,
            finished=self.iterations_run,
            status=status,
            session_id=self.session_id,
            worktree=self.worktree.name if self.worktree is not None else None,
            held=tuple(self.ctx.queue.owned_by(self.id)),
            next_prompt=self.next_prompt,
            metrics={**self.metrics.__dict__},
            consecutive_errors=self.consecutive_errors,
            last_merge=self.last_merge,
            merging=self._merging,
        )

    def _save_state(self, status: str) -> None:
        with contextlib.suppress(Exception):  # losing a resume point must not cost the worker
            self.ctx.on_state(self.state(status))

    def _phase(self, it: _Iteration, phase: str) -> None:
        self.ctx.activity.enter(self.id, f"{it.unit}{it.number}", phase)

    def report(self, interrupted: bool = False) -> WorkerReport:
        return WorkerReport(
            worker_id=self.id,
            harness=self.spec.agent.harness,
            model=self.spec.agent.model,
            status=self.status,
            iterations=self.spec.units,
            iterations_run=self.iterations_run,
            metrics=self.metrics,
            stop_reason=self.stop_reason,
            interrupted=interrupted,
            cycles=self.cycles,
        )

    def _wait_for_tasks(self) -> None:
        """Executors give a planner up to ``executor_wait`` seconds (a 0.7.3 worker: its
        ``max_wait_for_tasks``) to fill the queue."""
        wait = self.spec.cycles.max_wait_for_tasks if self.cycles else self.ctx.executor_wait
        deadline = time.monotonic() + wait
        self.ctx.activity.enter(self.id, "", "waiting for tasks")
        while True:
            counts = self.ctx.queue.counts()
            if counts.pending or counts.current or time.monotonic() >= deadline:
                return
            if self.ctx.stop.wait(min(TASK_POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
                raise Interrupted

    # -- one iteration -------------------------------------------------------------------------

    def iteration(self, n: int) -> IterationResult:
        """One 0.7.0 iteration: one attempt, whatever it ends in."""
        self.ctx.on_iteration_start(self.id, n)
        it = _Iteration(number=n, started_at=utc_now(), started=time.monotonic())
        outcome = self._attempt(it)
        if outcome is Outcome.NEEDS_FOLLOWUP:
            # 0.7.0 has no such outcome: the iteration was working, and the next one gets the
            # follow-up prompt (set by _end).
            outcome = Outcome.WORKING
        self._count_errors(it, outcome)
        self.ctx.activity.ended(self.id, outcome.value)
        return self._result(it, outcome)

    def cycle(self, n: int) -> IterationResult:
        """One 0.7.3 cycle: attempts in one worktree and session until an outcome ends it."""
        self.ctx.on_iteration_start(self.id, n)
        it = _Iteration(number=n, started_at=utc_now(), started=time.monotonic(), unit="c")
        limits = self.spec.cycles
        followups = 0
        while True:
            number = len(it.attempts) + 1
            if number > limits.max_resumes:
                outcome = self._stuck(it, limits.max_resumes)
                break
            it.attempt, started_at = number, utc_now()
            it.attempt_started = time.monotonic()
            try:
                if number > 1:
                    if self.ctx.stop.is_set():
                        raise Interrupted
                    self.ctx.caller.spend.check(self.id)
                outcome = self._attempt(it)
            except (Interrupted, SpendLimitReached):
                self._interrupted(it, started_at)
                raise
            note = ""
            if outcome is Outcome.NEEDS_FOLLOWUP:
                followups += 1
                note = f"NEEDS_FOLLOWUP {followups}/{limits.max_needs_followups}"
            it.attempts.append(Attempt(number, outcome, started_at, _ms_since(it), note))
            if outcome is Outcome.NEEDS_FOLLOWUP and followups > limits.max_needs_followups:
                # Upstream stops the worker here: its agent keeps asking instead of shipping.
                it.error = (
                    f"NEEDS_FOLLOWUP {followups} times in this cycle "
                    f"(max_needs_followups {limits.max_needs_followups})"
                )
                self._release(it)
                self.status = WorkerStatus.ERROR
                break
            if outcome not in (Outcome.CLAIMED, Outcome.WORKING, Outcome.NEEDS_FOLLOWUP):
                break
            self.ctx.on_attempt(self._result(it, outcome))
            self._save_state("running")  # a resume reruns this cycle in its session
        self._count_errors(it, outcome)
        self.ctx.activity.ended(self.id, outcome.value)
        return self._result(it, outcome)

    def _stuck(self, it: _Iteration, max_resumes: int) -> Outcome:
        it.error = f"no outcome ended the cycle in {max_resumes} attempts (max_resumes)"
        self._release(it)
        return Outcome.STUCK

    def _interrupted(self, it: _Iteration, started_at: str) -> None:
        """The stop cut the cycle short: its claims go back, and its file says so."""
        self._release(it)
        it.attempts.append(Attempt(it.attempt or 1, Outcome.INTERRUPTED, started_at, 0))
        it.error = "the swarm was stopped during this cycle"
        result = self._result(it, Outcome.INTERRUPTED)
        with contextlib.suppress(Exception):  # the stop goes on whatever the recording does
            self.ctx.on_iteration(result)

    def _attempt(self, it: _Iteration) -> Outcome:
        """One attempt's outcome; what it raises (a bug included) costs the unit, not the worker."""
        try:
            return self._iterate(it)
        except (Interrupted, SpendLimitReached):
            raise
        except OutOfTime:
            return self._fail(it, f"{it.unit_name} timeout after {self.ctx.iteration_timeout:g} s")
        except GitError as exc:
            return self._fail(it, f"git failed: {exc}")
        except Exception as exc:  # a bug or an OS error must cost one iteration, not the worker
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return self._fail(it, f"internal error in the {it.unit_name}: {detail}")

    def _count_errors(self, it: _Iteration, outcome: Outcome) -> None:
        if outcome is Outcome.ERROR:
            self.consecutive_errors += 1
            self.metrics.errors += 1
            if gives_up(self.consecutive_errors):
                self.status = WorkerStatus.ERROR
                it.error = f"{it.error} ({MAX_CONSECUTIVE_ERRORS} consecutive errors)"
        else:
            self.consecutive_errors = 0

    def _result(self, it: _Iteration, outcome: Outcome) -> IterationResult:
        return IterationResult(
            worker_id=self.id,
            iteration=it.number,
            outcome=outcome,
            started_at=it.started_at,
            finished_at=utc_now(),
            duration_ms=_ms_since(it),
            task_ids=it.held,
            recycled=it.recycled,
            completed_tasks=it.completed,
            review_rounds=len(it.reviews),
            reviews=list(it.reviews),
            calls=list(it.calls),
            error=it.error,
            diff_files=it.diff_files,
            merged_commit=it.merged_commit,
            patch=it.patch,
            metrics=self.metrics.contract(),
            notes=list(it.notes),
            cycle=it.unit == "c",
            attempts=tuple(it.attempts),
        )

    def _iterate(self, it: _Iteration) -> Outcome:
        reviewer = self.ctx.reviewer
        facts = Facts(
            can_plan=self.spec.can_plan,
            reviewer=reviewer.harness if reviewer else None,
            sync=self.spec.sync_before_merge,
        )
        try:
            if self.worktree is None:
                self.worktree = self.ctx.repo.add_worktree(self.id, it.number, it.unit)
        except GitError as exc:
            facts = dataclasses.replace(facts, worktree_error=exc.stderr or str(exc))
        wt = self.worktree
        perform = {
            Step.CALL: self._call,
            Step.INSPECT: self._inspect,
            Step.COUNT_COMMITS: self._count_commits,
            Step.REVIEW: self._review_round,
            Step.FIX: self._fix,
            Step.SYNC: self._sync,
            Step.RESOLVE: self._resolve,
            Step.MERGE: self._merge,
        }
        while not isinstance(step := next_step(facts), Ending):
            assert wt is not None  # no step is asked for once the worktree could not be made
            facts = perform[step](it, wt, facts)
            if it.breaches and facts.breach is None:
                facts = dataclasses.replace(facts, breach="; ".join(it.breaches))
        return self._end(it, step, facts)

    def _prompt(self) -> str:
        swarm, wid = self.ctx.swarm_id, self.id
        status = self.ctx.queue.describe()
        if self.session_id is None:
            self.next_prompt = None
            return prompts.fresh(swarm, wid, status, self.spec.agent.prompt_text)
        prompt, self.next_prompt = self.next_prompt, None
        return prompt or prompts.resume(swarm, wid, status)

    def _agent_call(
        self, it: _Iteration, wt: Worktree, *, role: str, prompt: str, resume: bool
    ) -> CallOutcome:
        session = (
            SessionMode.resume(self.session_id) if resume and self.session_id else SessionMode.new()
        )
        attempt = f", attempt {it.attempt}" if it.attempt else ""
        phases = {"worker": f"agent{attempt}", "sync": "resolving a conflict with main"}
        if role in phases:  # (a fix announced itself with its round)
            self._phase(it, phases[role])
        call = self._guarded(
            it,
            wt,
            self.spec.agent,
            role=role,
            prompt=prompt,
            session=session,
            timeout=self._budget(it, self.spec.agent),
        )
        it.record(call.record)
        if call.cancelled or (self.ctx.stop.is_set() and call.failure):
            raise Interrupted
        self._budget(it, self.spec.agent)  # a call cut by the iteration's budget: say so
        return call

    def _guarded(
        self,
        it: _Iteration,
        wt: Worktree,
        agent: AgentSpec,
        *,
        role: str,
        prompt: str,
        session: SessionMode,
        timeout: float | None,
    ) -> CallOutcome:
        """One harness call in the worktree, checked by the guard before and after: what it
        did outside is put right even when the call fails or the swarm stops."""
        name = it.call_name(self.id, role)
        guard = self.ctx.guard
        watch = guard.begin(name, self.id, wt) if guard is not None else None
        try:
            call = self.ctx.caller.call(
                agent,
                role=role,
                prompt=prompt,
                cwd=wt.path,
                session=session,
                timeout=timeout,
                name=name,
                worker=self.id,
            )
        except BaseException:
            if guard is not None and watch is not None:
                with contextlib.suppress(Exception):  # the call's own exception goes on
                    guard.end(watch)
            raise
        if guard is not None and watch is not None:
            found = guard.end(watch)
            it.breaches += found.errors
            it.notes += found.notes
        return call

    def _budget(self, it: _Iteration, agent: AgentSpec) -> float | None:
        """A call's time limit: its own (or the swarm's default), capped by what is left of
        the iteration's budget. Raises OutOfTime when nothing is left."""
        limit = agent.timeout or self.ctx.caller.default_timeout
        total = self.ctx.iteration_timeout
        if total is None:
            return limit
        left = total - (time.monotonic() - it.attempt_started)
        if left <= 0.05:
            raise OutOfTime
        return min(limit, left) if limit else left

    def _claim(self, it: _Iteration, signals: Signals) -> None:
        result = self.ctx.queue.claim(signals.claims, self.id)
        result = ClaimResult(result.claimed, result.taken, result.not_found, signals.invalid_claims)
        self.metrics.claims += len(result.claimed)
        if result.invalid:
            shown = ", ".join(repr(t[:60]) for t in result.invalid[:10])
            it.notes.append(f"refused invalid task ids in CLAIM: {shown}")
        self.next_prompt = prompts.claim_results(
            self.ctx.swarm_id, self.id, result, self.ctx.queue.describe()
        )

    # -- the steps: each fetches one fact ------------------------------------------------------

    def _call(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        """The agent's call. A reply that can be used starts the work: the session is kept,
        the tasks it claims are claimed, tasks the agent moved to current/ by hand adopted."""
        call = self._agent_call(it, wt, role="worker", prompt=self._prompt(), resume=True)
        if call.failure:
            return dataclasses.replace(facts, reply=Reply(call.record.harness, call.failure))
        signals = parse_signals(call.parsed.text)
        self.session_id = call.session_id
        if signals.claims or signals.invalid_claims:
            self._claim(it, signals)
        adopted = self.ctx.queue.adopt_unowned(self.id)
        if adopted:
            it.notes.append(f"took tasks moved to current/ by the agent: {', '.join(adopted)}")
        it.held = tuple(self.ctx.queue.owned_by(self.id))
        return dataclasses.replace(facts, reply=Reply(call.record.harness, None, signals))

    def _inspect(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        repo = self.ctx.repo
        repo.commit_all(wt, f"oompa: work from {wt.name}")
        it.diff_files = tuple(repo.changed_files(wt))
        return dataclasses.replace(facts, diff_files=it.diff_files)

    def _count_commits(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        return dataclasses.replace(facts, commits_ahead=self.ctx.repo.commits_ahead(wt))

    def _review_round(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        reviewer = self.ctx.reviewer
        assert reviewer is not None  # next_step asks for a review only when there is a reviewer
        repo = self.ctx.repo
        number = len(facts.verdicts) + 1
        self._phase(it, f"review round {number}")
        if number > 1:
            repo.commit_all(wt, f"oompa: review fixes for {wt.name} (round {number - 1})")
            it.diff_files = tuple(repo.changed_files(wt))
        prompt = prompts.review(
            self.ctx.swarm_id, self.id, repo.diff_text(wt), reviewer.prompt_text, it.feedback
        )
        call = self._guarded(
            it,
            wt,
            reviewer,
            role="reviewer",
            prompt=prompt,
            session=SessionMode.none(),
            timeout=self._budget(it, reviewer),
        )
        it.record(call.record)
        if call.cancelled:
            raise Interrupted
        self._budget(it, reviewer)
        if call.failure:
            return dataclasses.replace(facts, reviewer_failure=call.failure)
        verdict = parse_verdict(call.parsed.text)
        round_ = ReviewRound(number, verdict, call.parsed.text, it.diff_files, call.record)
        artifact = self.ctx.on_review(self.id, it.number, round_)
        it.reviews.append(dataclasses.replace(round_, artifact=artifact))
        self.metrics.review_rounds_total += 1
        if verdict == NEEDS_CHANGES:
            it.feedback.append(call.parsed.text)
        return dataclasses.replace(facts, verdicts=(*facts.verdicts, verdict))

    def _fix(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        prompt = prompts.fix(self.ctx.swarm_id, self.id, it.feedback)
        self._phase(it, f"fix after review round {len(facts.verdicts)}")
        fix = self._agent_call(it, wt, role="fix", prompt=prompt, resume=True)
        if fix.failure:
            return dataclasses.replace(facts, fix_failure=fix.failure)
        self.session_id = fix.session_id or self.session_id
        return dataclasses.replace(facts, fixes=facts.fixes + 1)

    def _sync(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        """Merge main into the branch, outside the merge lock (0.7.3's sync before merge)."""
        repo = self.ctx.repo
        self._phase(it, "sync with main")
        repo.commit_all(wt, f"oompa: work from {wt.name}")
        conflict = repo.sync_with_main(wt)
        if conflict is not None:
            first = conflict.splitlines()[-1] if conflict.splitlines() else conflict
            it.notes.append(f"sync with main {len(facts.syncs) + 1}: conflict: {first[:200]}")
        return dataclasses.replace(facts, syncs=(*facts.syncs, conflict))

    def _resolve(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        """The agent, in its session, makes its branch mergeable; a merge it leaves half done
        is finished or aborted before the next sync looks."""
        repo = self.ctx.repo
        mine, theirs, stat = repo.divergence(wt)
        conflict = facts.syncs[-1] or ""
        prompt = prompts.sync(self.ctx.swarm_id, self.id, conflict, mine, theirs, stat)
        call = self._agent_call(it, wt, role="sync", prompt=prompt, resume=True)
        repo.settle_merge(wt)
        if call.failure:
            return dataclasses.replace(facts, resolve_failure=call.failure)
        self.session_id = call.session_id or self.session_id
        reason = parse_signals(call.parsed.text)
        if reason.needs_followup:  # upstream's resolver gives up this way
            gave_up = f"the agent gave up (NEEDS_FOLLOWUP): {reason.followup_reason or '-'}"
            return dataclasses.replace(facts, resolve_failure=gave_up)
        repo.commit_all(wt, f"oompa: {wt.name} resolves its conflict with main")
        return dataclasses.replace(facts, resolves=facts.resolves + 1)

    def _merge(self, it: _Iteration, wt: Worktree, facts: Facts) -> Facts:
        repo, queue = self.ctx.repo, self.ctx.queue
        self._phase(it, "merge")
        message = f"oompa: merge {wt.name} (swarm {self.ctx.swarm_id})"
        with repo.merge_lock:
            if self.ctx.guard is not None:
                self.ctx.guard.before_merge()
            # What the merge brings, read under the lock: main cannot move in between.
            patch = repo.diff_text(wt)
            # Said before merging: a run killed between the merge and its record must not
            # merge the same work twice when resumed (runs/resume.py).
            self._merging = (it.number, repo.head("HEAD", cwd=wt.path))
            self._save_state("running")
            try:
                it.merged_commit = repo.merge(wt, message)
            except GitError as exc:
                self._merging = None
                error = exc.stderr or str(exc)
                return dataclasses.replace(facts, merge_errors=(*facts.merge_errors, error))
            it.patch = _capped(patch)
            held = queue.owned_by(self.id)
            report = queue.complete(
                held,
                {
                    "completed-by": self.id,
                    "completed-at": utc_now(),
                    "review-rounds": len(it.reviews),
                    "merged-commit": it.merged_commit,
                },
            )
        it.completed = tuple(report.completed)
        it.notes += report.problems
        return dataclasses.replace(facts, merged_commit=it.merged_commit)

    # -- endings -------------------------------------------------------------------------------

    def _end(self, it: _Iteration, ending: Ending, facts: Facts) -> Outcome:
        """The side effects of an ending: the worker's status, metrics, and the unit of work."""
        outcome = ending.outcome
        if finishes_worker(outcome, facts):
            self.status = WorkerStatus.DONE
        if ending.error is not None:
            it.error = ending.error
        if outcome is Outcome.NEEDS_FOLLOWUP:
            assert facts.reply is not None  # the signal is the reply's
            reason = facts.reply.signals.followup_reason
            it.notes.append(f"NEEDS_FOLLOWUP: {reason or '(no reason given)'}")
            self.next_prompt = prompts.needs_followup(
                self.ctx.swarm_id, self.id, it.held, reason, self.ctx.queue.describe()
            )
        elif outcome is Outcome.REJECTED:
            self.metrics.rejections += 1
        elif outcome is Outcome.MERGED:
            self.metrics.merges += 1
            self.metrics.completed += 1
        release = release_after(outcome)
        if release is not Release.CONTINUE:
            self._release(it, recycle=release is Release.RECYCLE)
        return outcome

    def _fail(self, it: _Iteration, error: str) -> Outcome:
        it.error = error
        self._release(it)
        return Outcome.ERROR

    def _release(
        self, it: _Iteration | None = None, *, recycle: bool = True, reset_session: bool = True
    ) -> None:
        """End of a unit of work: recycle held tasks, drop the worktree and the session."""
        if recycle and it is not None:
            it.recycled = tuple(self.ctx.queue.recycle(self.ctx.queue.owned_by(self.id)))
            self.metrics.recycled += len(it.recycled)
        if self.worktree is not None:
            self.ctx.repo.remove_worktree(self.worktree)
            if self.ctx.guard is not None:
                self.ctx.guard.forget(self.worktree)
            self.worktree = None
        if reset_session:
            self.session_id = None
            self.next_prompt = None
