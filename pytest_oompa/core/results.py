"""What a swarm produces, as plain typed values: calls, review rounds, iterations, workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Outcome(str, Enum):
    MERGED = "merged"
    REJECTED = "rejected"
    ERROR = "error"
    DONE = "done"
    EXECUTOR_DONE = "executor-done"
    NO_CHANGES = "no-changes"
    WORKING = "working"
    CLAIMED = "claimed"
    # oompa 0.7.3's: cycles (sync before merge, attempts, NEEDS_FOLLOWUP)
    MERGE_FAILED = "merge-failed"
    SYNC_FAILED = "sync-failed"
    STUCK = "stuck"
    INTERRUPTED = "interrupted"
    NEEDS_FOLLOWUP = "needs-followup"


class WorkerStatus(str, Enum):
    DONE = "done"
    EXHAUSTED = "exhausted"
    ERROR = "error"
    IDLE = "idle"  # never finished an iteration, or stopped by an interruption


@dataclass(frozen=True)
class Leftover:
    """A process a harness call left running, killed after the call ended."""

    pid: int
    cmdline: str
    escaped: str  # same-group | own-session | orphaned (see engine/processes.py)

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.escaped}): {self.cmdline}"


@dataclass(frozen=True)
class CallRecord:
    """One harness invocation, as much as a failure report needs."""

    role: str  # worker | fix | sync | reviewer | planner | probe
    harness: str
    model: str
    argv: tuple[str, ...]
    cwd: str
    exit_code: int | None
    duration_ms: int
    failure: str | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    reply: str = ""  # the text the harness parser extracted
    session_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    name: str = ""  # commands/{name}.ndjson, errors/{name}.json
    log: str | None = None  # path relative to the run folder
    error_file: str | None = None
    attempts: int = 1  # more than 1: retried after infrastructure failures
    leftovers: tuple[Leftover, ...] = ()  # processes it left running, killed after it
    attempt: int | None = None  # the attempt of the cycle it belongs to (0.7.3 mode)


@dataclass(frozen=True)
class ReviewRound:
    round: int
    verdict: str  # approved | needs-changes | rejected
    output: str
    diff_files: tuple[str, ...]
    call: CallRecord
    artifact: Path | None = None


@dataclass
class WorkerMetrics:
    merges: int = 0
    rejections: int = 0
    errors: int = 0
    recycled: int = 0
    review_rounds_total: int = 0
    claims: int = 0
    completed: int = 0

    @classmethod
    def from_dict(cls, counters: dict[str, int]) -> WorkerMetrics:
        """The counters a resume point kept (names it does not know are left out)."""
        return cls(**{k: v for k, v in counters.items() if k in cls.__dataclass_fields__})

    def contract(self) -> dict[str, int]:
        """The cumulative snapshot an iteration artifact carries."""
        return {
            "merges": self.merges,
            "rejections": self.rejections,
            "errors": self.errors,
            "recycled": self.recycled,
            "review-rounds-total": self.review_rounds_total,
        }


@dataclass(frozen=True)
class Attempt:
    """One attempt of an oompa 0.7.3 cycle: how it ended (``claimed``, ``working`` or
    ``needs-followup`` went on to the next attempt; any other outcome ended the cycle)."""

    number: int
    outcome: Outcome
    started_at: str
    duration_ms: int
    note: str = ""  # e.g. the NEEDS_FOLLOWUP reason

    def __str__(self) -> str:
        text = f"attempt {self.number}: {self.outcome.value} ({self.duration_ms / 1000:.1f} s)"
        return f"{text}: {self.note}" if self.note else text


@dataclass
class IterationResult:
    """What one unit of a worker's work came to: an iteration (oompa 0.7.0 mode) or, when
    ``cycle`` is set, a cycle of ``attempts`` (0.7.3 mode), numbered by ``iteration``."""

    worker_id: str
    iteration: int
    outcome: Outcome
    started_at: str
    finished_at: str
    duration_ms: int
    task_ids: tuple[str, ...] = ()  # tasks this worker held during the iteration
    recycled: tuple[str, ...] = ()
    completed_tasks: tuple[str, ...] = ()
    review_rounds: int = 0
    reviews: list[ReviewRound] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    error: str | None = None
    diff_files: tuple[str, ...] = ()
    merged_commit: str | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    artifact: Path | None = None
    notes: list[str] = field(default_factory=list)  # refused claims, task-file problems
    cycle: bool = False
    attempts: tuple[Attempt, ...] = ()
    patch: str = ""  # what the merge brought into main (git's patch), capped; "" without one
    resumed: bool = False  # recorded by an earlier attempt of a resumed run, reported again

    @property
    def key(self) -> tuple[str, int]:
        return (self.worker_id, self.iteration)

    @property
    def label(self) -> str:
        """``i3`` (an iteration) or ``c3`` (a cycle): the item's name and the files' infix."""
        return f"{'c' if self.cycle else 'i'}{self.iteration}"

    @property
    def unit(self) -> str:
        return "cycle" if self.cycle else "iteration"


@dataclass(frozen=True)
class WorkerState:
    """What a resumed run needs to continue a worker where it stopped (resume/{id}.json):
    written when each of its iterations or cycles ends, and when it stops."""

    worker_id: str
    cycles: bool
    finished: int  # iterations or cycles finished and recorded
    status: str  # running (more to do) | exhausted | done | error | idle
    session_id: str | None  # the session the next unit resumes (claimed, working), else None
    worktree: str | None  # the worktree the next unit continues in (w0-i3), else None
    held: tuple[str, ...]
    next_prompt: str | None
    metrics: dict[str, int]
    consecutive_errors: int = 0
    last_merge: str | None = None
    # Set just before a merge into main, cleared when the unit is recorded: (unit, the branch
    # head merged). A resume that finds main containing that head knows the merge happened.
    merging: tuple[int, str] | None = None


@dataclass
class WorkerReport:
    worker_id: str
    harness: str
    model: str
    status: WorkerStatus
    iterations: int  # configured
    iterations_run: int
    metrics: WorkerMetrics
    stop_reason: str = ""  # why the worker stopped before its last iteration, if it did
    interrupted: bool = False
    cycles: bool = False  # 0.7.3 mode: iterations and iterations_run count cycles

    # The metrics, read naturally: ``result.workers["w0"].merges == 3``.
    @property
    def merges(self) -> int:
        return self.metrics.merges

    @property
    def errors(self) -> int:
        return self.metrics.errors

    @property
    def rejections(self) -> int:
        return self.metrics.rejections

    @property
    def claims(self) -> int:
        return self.metrics.claims

    @property
    def completed(self) -> int:
        return self.metrics.completed

    @property
    def recycled(self) -> int:
        return self.metrics.recycled


@dataclass
class PlannerResult:
    ran: bool
    tasks_created: int = 0
    skipped_reason: str = ""
    error: str | None = None
    call: CallRecord | None = None
    notes: list[str] = field(default_factory=list)
