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

    role: str  # worker | fix | reviewer | planner | probe
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

    def contract(self) -> dict[str, int]:
        """The cumulative snapshot an iteration artifact carries."""
        return {
            "merges": self.merges,
            "rejections": self.rejections,
            "errors": self.errors,
            "recycled": self.recycled,
            "review-rounds-total": self.review_rounds_total,
        }


@dataclass
class IterationResult:
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

    @property
    def key(self) -> tuple[str, int]:
        return (self.worker_id, self.iteration)


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
