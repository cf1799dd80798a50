"""The worker's collaborators as stubs: a scripted harness caller, an in-memory repo, task
queue and guard, and ``Swarm``, one worker on them with what it reported. No process, no git.

Used by tests/engine/test_worker.py (iterations) and test_cycles.py (cycles, sync before merge).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_oompa.core.config import AgentSpec, CycleLimits, WorkerSpec
from pytest_oompa.core.results import CallRecord, IterationResult, Outcome
from pytest_oompa.engine.git import GitError, Worktree
from pytest_oompa.engine.guard import Findings
from pytest_oompa.engine.spend import SpendMeter
from pytest_oompa.engine.tasks import ClaimResult, CompletionReport, TaskCounts
from pytest_oompa.engine.worker import SwarmContext, WorkerRunner


@dataclass(frozen=True)
class Answer:
    """One scripted harness call: the role it must be for, and what comes back."""

    role: str
    text: str = ""
    failure: str | None = None
    session: str | None = "s1"
    cancelled: bool = False
    raises: Exception | None = None


@dataclass(frozen=True)
class Parsed:
    text: str


@dataclass(frozen=True)
class StubCall:
    """What the runner reads of engine.calls.CallOutcome."""

    record: CallRecord
    parsed: Parsed
    cancelled: bool = False

    @property
    def failure(self) -> str | None:
        return self.record.failure

    @property
    def session_id(self) -> str | None:
        return self.record.session_id


@dataclass(frozen=True)
class Seen:
    role: str
    name: str
    session: Any  # SessionMode
    prompt: str


class StubCaller:
    """A harness caller that plays a script; no process."""

    default_timeout: float | None = None
    spend = SpendMeter()  # no limits: never refuses

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.seen: list[Seen] = []

    def call(
        self,
        agent: AgentSpec,
        *,
        role: str,
        prompt: str,
        cwd: Path,
        session: Any,
        timeout: float | None = None,
        name: str | None = None,
        worker: str | None = None,
    ) -> StubCall:
        self.seen.append(Seen(role, name or "", session, prompt))
        assert self.answers, f"unscripted {role} call"
        answer = self.answers.pop(0)
        assert answer.role == role
        if answer.raises is not None:
            raise answer.raises
        record = CallRecord(
            role=role,
            harness=agent.harness,
            model=agent.model,
            argv=(agent.harness,),
            cwd=str(cwd),
            exit_code=None if answer.failure else 0,
            duration_ms=1,
            failure=answer.failure,
            reply=answer.text,
            session_id=answer.session,
            name=name or "",
        )
        return StubCall(record, Parsed(answer.text), answer.cancelled)


def git_error(stderr: str) -> GitError:
    return GitError(["merge"], Path("/repo"), 1, stderr)


class StubRepo:
    """The repo as the runner sees it: the agent's worktree holds ``files`` changed vs main."""

    def __init__(
        self,
        files: Sequence[str] = ("src/app.py",),
        *,
        ahead: int = 1,
        merge_error: str | None = None,
        worktree_error: str | None = None,
        diff_error: str | None = None,
        syncs: Sequence[str | None] = (),
        merge_errors: Sequence[str | None] = (),
    ) -> None:
        self.files = list(files)
        self.ahead = ahead
        self.merge_error = merge_error
        # scripts, one answer per call: a conflict (None: clean), a merge error (None: merged);
        # past the script a sync is clean and a merge answers as merge_error says
        self.syncs = list(syncs)
        self.merge_errors = list(merge_errors)
        self.worktree_error = worktree_error
        self.diff_error = diff_error
        self.merge_lock = threading.Lock()
        self.log: list[str] = []
        self.live: set[str] = set()  # worktrees not removed yet

    def add_worktree(self, worker_id: str, iteration: int, unit: str = "i") -> Worktree:
        if self.worktree_error:
            raise git_error(self.worktree_error)
        name = f"{worker_id}-{unit}{iteration}"
        self.log.append(f"add {name}")
        self.live.add(name)
        return Worktree(Path(f"/nonexistent/.{name}"), f"oompa/{name}", name)

    def remove_worktree(self, wt: Worktree) -> None:
        self.log.append(f"remove {wt.name}")
        self.live.discard(wt.name)

    def commit_all(self, wt: Worktree, message: str) -> bool:
        self.log.append(f"commit {message}")
        return True

    def changed_files(self, wt: Worktree) -> list[str]:
        if self.diff_error:
            raise git_error(self.diff_error)
        return list(self.files)

    def commits_ahead(self, wt: Worktree) -> int:
        self.log.append("commits-ahead")
        return self.ahead

    def diff_text(self, wt: Worktree) -> str:
        return "".join(f"diff --git a/{f} b/{f}\n" for f in self.files)

    def head(self, ref: str = "HEAD", cwd: Path | None = None) -> str:
        return "f" * 40

    def sync_with_main(self, wt: Worktree) -> str | None:
        assert not self.merge_lock.locked()  # a sync never blocks the other workers' merges
        conflict = self.syncs.pop(0) if self.syncs else None
        self.log.append(f"sync {'conflict' if conflict else 'clean'}")
        return conflict

    def divergence(self, wt: Worktree) -> tuple[str, str, str]:
        return "abc123 mine", "def456 theirs", " src/app.py | 2 +-"

    def settle_merge(self, wt: Worktree) -> None:
        self.log.append("settle")

    def merge(self, wt: Worktree, message: str) -> str:
        assert self.merge_lock.locked()
        error = self.merge_errors.pop(0) if self.merge_errors else self.merge_error
        if error:
            raise git_error(error)
        self.log.append(f"merge {wt.branch}")
        return "c0ffee"


class StubQueue:
    """The task queue in memory: pending ids, and who holds each task in current/."""

    def __init__(self, *pending: str) -> None:
        self.pending = set(pending)
        self.owners: dict[str, str] = {}
        self.completed: list[str] = []

    def claim(self, task_ids: Iterable[str], worker_id: str) -> ClaimResult:
        ids = list(task_ids)
        claimed = [t for t in ids if t in self.pending]
        for task_id in claimed:
            self.pending.discard(task_id)
            self.owners[task_id] = worker_id
        return ClaimResult(tuple(claimed), (), tuple(t for t in ids if t not in claimed))

    def adopt_unowned(self, worker_id: str) -> list[str]:
        return []

    def owned_by(self, worker_id: str) -> list[str]:
        return sorted(t for t, w in self.owners.items() if w == worker_id)

    def recycle(self, task_ids: Iterable[str]) -> list[str]:
        moved = [t for t in task_ids if self.owners.pop(t, None) is not None]
        self.pending.update(moved)
        return moved

    def complete(self, task_ids: Iterable[str], annotation: dict[str, Any]) -> CompletionReport:
        done = [t for t in task_ids if self.owners.pop(t, None) is not None]
        self.completed += done
        return CompletionReport(completed=done)

    def counts(self) -> TaskCounts:
        return TaskCounts(len(self.pending), len(self.owners), len(self.completed))

    def describe(self) -> str:
        return f"Pending tasks: {', '.join(sorted(self.pending)) or '(none)'}"


@dataclass
class Swarm:
    """One worker on stubs, and what it reported."""

    caller: StubCaller
    repo: StubRepo = field(default_factory=StubRepo)
    queue: StubQueue = field(default_factory=StubQueue)
    reviewer: AgentSpec | None = None
    can_plan: bool = True
    iterations: int = 3
    iteration_timeout: float | None = None
    cycles: CycleLimits | None = None  # oompa 0.7.3 mode: these limits, ``iterations`` cycles
    sync: bool = False
    results: list[IterationResult] = field(default_factory=list)
    attempts: list[IterationResult] = field(default_factory=list)  # cycles left open
    reviews: list[tuple[str, int, str]] = field(default_factory=list)
    guard: Any = None

    def runner(self) -> WorkerRunner:
        ctx = SwarmContext(
            swarm_id="s",
            repo=self.repo,  # type: ignore[arg-type]
            queue=self.queue,  # type: ignore[arg-type]
            caller=self.caller,  # type: ignore[arg-type]
            stop=threading.Event(),
            reviewer=self.reviewer,
            executor_wait=0,
            iteration_timeout=self.iteration_timeout,
            on_review=lambda wid, n, round_: self.reviews.append((wid, n, round_.verdict)),
            on_iteration=self.results.append,
            on_attempt=self.attempts.append,
            guard=self.guard,
        )
        agent = AgentSpec(harness="claude", model="opus")
        if self.cycles is None:
            spec = WorkerSpec(
                "w0",
                agent,
                iterations=self.iterations,
                can_plan=self.can_plan,
                sync_before_merge=self.sync,
            )
        else:
            limits = CycleLimits(
                max_cycle=self.iterations,
                max_resumes=self.cycles.max_resumes,
                max_needs_followups=self.cycles.max_needs_followups,
                max_wait_for_tasks=0,
            )
            spec = WorkerSpec(
                "w0",
                agent,
                iterations=0,
                can_plan=self.can_plan,
                mode="0.7.3",
                cycles=limits,
                sync_before_merge=self.sync,
            )
        return WorkerRunner(spec, ctx)

    @property
    def outcomes(self) -> list[Outcome]:
        return [r.outcome for r in self.results]

    @property
    def roles(self) -> list[str]:
        return [seen.role for seen in self.caller.seen]


CODEX = AgentSpec(harness="codex", model="gpt-5")


def worker(text: str = "", **kw: Any) -> Answer:
    return Answer("worker", text, **kw)


class StubGuard:
    """The containment guard: charges the calls named in ``breaches`` with a breach."""

    def __init__(self, breaches: dict[str, str]) -> None:
        self.breaches = breaches
        self.watched: list[str] = []
        self.forgotten: list[str] = []

    def begin(self, name: str, worker: str, worktree: Worktree) -> str:
        return name

    def end(self, name: str) -> Findings:
        self.watched.append(name)
        error = self.breaches.get(name)
        return Findings((error,) if error else (), ("a note",) if error else ())

    def forget(self, worktree: Worktree) -> None:
        self.forgotten.append(worktree.name)

    def before_merge(self) -> None:
        pass
