"""The run a report shows, read from its folder: typed values and the loader that builds them.

The report is built from the run's files alone (``run.json``, ``summary.json``,
``live-summary.json``, ``iterations/``, ``reviews/`` and the run-tracking files
``oompa-run.json``, ``heartbeat.json``, ``calls/``, ``errors/``; the patches in ``diffs/``
and the command logs in ``commands/`` are read where they are shown), so that it works for a run
written on another machine and for a run that was cut off. Every contract file is validated on
read; a file that cannot be read, is not JSON or fails its schema becomes a :class:`Problem` that
the page lists, never an exception: a report of a broken run is when it is needed most.

Cycles are read too: those of our workers in 0.7.3 mode (``max_cycle``: run.json and summary.json
as ever, plus ``cycles/{w}-c{N}.json``, ``reviews/{w}-c{N}-r{R}.json`` and
``calls/{w}-c{N}.json`` with every attempt's calls) and those of a run folder oompa 0.7.3 wrote
(``started.json``, ``cycles/``, ``stopped.json``, ``workers/``, no run.json), leniently
(upstream's extra fields are dropped, see :mod:`pytest_oompa.runs.files`). Per worker: one with
iteration files is shown from them (in 0.7.0 mode its cycle files repeat its iterations), any
other from its cycle files, each one :class:`Iteration` with ``source == "cycle"`` and ``n`` its
cycle, named ``c3`` where an iteration is ``i3``. A worker's ``max-cycles`` stands in for its
configured iterations when there is no run.json. A 0.7.3 run's status and its workers' follow
unleashd's rules (:mod:`pytest_oompa.runs.events`).

Loading is kept apart from rendering so that what the page shows (:class:`Run` and its derived
facts: status, start, end, worker order) can be read and tested without any markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_oompa.report.formatting import fmt_ms
from pytest_oompa.runs.artifacts import ARTIFACT_KINDS, ArtifactError
from pytest_oompa.runs.events import OPEN_OUTCOMES, pid_alive, run_status, worker_label
from pytest_oompa.runs.files import CYCLE_NAME, ITERATION_NAME, iteration_workers, read_lenient
from pytest_oompa.runs.reader import CYCLE_ERRORS, in_units

__all__ = [
    "CYCLE_ONLY_OUTCOMES",
    "ERROR_OUTCOMES",
    "FAILED_OUTCOMES",
    "HEARTBEAT_STALE_S",
    "OUTCOMES",
    "Call",
    "Iteration",
    "Problem",
    "Review",
    "Run",
    "int_field",
    "load_run",
    "natural_key",
    "number_field",
    "parse_ts",
    "text_field",
]

#: outcome -> (one-letter code shown on narrow bars, what it means)
OUTCOMES: dict[str, tuple[str, str]] = {
    "merged": ("M", "reviewed (or task-only) and merged into main"),
    "rejected": ("R", "the reviewer rejected it, or still wanted changes after round 3"),
    "error": ("E", "the harness call, the worktree or the merge failed"),
    "claimed": ("C", "claimed tasks, no merge yet"),
    "working": ("W", "no signal: work continues in the next iteration"),
    "no-changes": ("N", "asked for a merge with nothing to merge"),
    "done": ("D", "said __DONE__: the worker stopped"),
    "executor-done": ("X", "an executor said __DONE__: its session was reset"),
    # cycles only (oompa 0.7.3)
    "merge-failed": ("F", "reviewed, but the merge into main failed"),
    "sync-failed": ("S", "main could not be merged into the branch before the merge"),
    "stuck": ("K", "used every attempt of the cycle without finishing: its tasks were recycled"),
    "interrupted": ("I", "the swarm was stopped during the cycle"),
    "needs-followup": ("U", "the agent asked for a follow-up it was not granted"),
}
#: Outcomes only a cycle can have: the legend lists them for runs with cycles.
CYCLE_ONLY_OUTCOMES = ("merge-failed", "sync-failed", "stuck", "interrupted", "needs-followup")
#: Outcomes that count as errors (a worker's error count, where no summary counts them).
ERROR_OUTCOMES = CYCLE_ERRORS
#: Outcomes that count as failed in the page's totals: the errors and the rejections.
FAILED_OUTCOMES = CYCLE_ERRORS | {"rejected"}
HEARTBEAT_STALE_S = 30.0

_ITERATION_FILE = ITERATION_NAME
_REVIEW_FILE = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-i(?P<n>[0-9]+)-r(?P<r>[0-9]+)\.json")
_CYCLE_FILE = CYCLE_NAME
_CYCLE_REVIEW_FILE = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-c(?P<n>[0-9]+)-r(?P<r>[0-9]+)\.json")
_WORKER_FILE = re.compile(r"(?P<w>[A-Za-z0-9._-]+)\.json")
_LINK = re.compile(r"(?:commands|errors)/[A-Za-z0-9_][A-Za-z0-9._-]*")
_TS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


# --------------------------------------------------------------------------- reading fields
# The contract files are schema-checked, the run-tracking files only parsed: a field of the
# latter is read through these, which give None for a value of the wrong type.


def parse_ts(value: object) -> datetime | None:
    """An RFC 3339 instant as an aware datetime (Python 3.10's fromisoformat knows no ``Z``)."""
    if not isinstance(value, str):
        return None
    m = _TS.fullmatch(value)
    if m is None:
        return None
    frac = "." + m[3][1:7].ljust(6, "0") if m[3] else ""
    tz = "+00:00" if m[4] in ("Z", "z") else m[4]
    try:
        return datetime.fromisoformat(f"{m[1]}T{m[2]}{frac}{tz}")
    except ValueError:
        return None


def natural_key(key: str) -> tuple[Any, ...]:
    """Sort key that puts ``w2`` before ``w10`` (and ``i9`` before ``i10``)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", key))


def text_field(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def int_field(d: Mapping[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def number_field(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


# --------------------------------------------------------------------------- the run


@dataclass
class Problem:
    """A file that could not be used (or a link that was refused), and why."""

    path: str
    message: str


@dataclass
class Call:
    """One harness call of a ``calls/*.json`` record."""

    role: str
    harness: str
    model: str
    exit_code: int | None
    duration_ms: int | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    failure: str | None
    log: str | None  # a checked relative path, or None
    error: str | None
    stderr_tail: str = ""  # from the error artifact, when there is one
    attempt: int | None = None  # the attempt of its cycle (0.7.3 mode)


@dataclass
class Review:
    """One review round of an iteration, from ``reviews/{worker}-i{N}-r{R}.json`` (or of a cycle,
    from ``reviews/{worker}-c{N}-r{R}.json``)."""

    round: int
    verdict: str
    timestamp: datetime | None
    output: str | None
    diff_files: list[str]
    rel: str
    duration_ms: int | None = None  # 0.7.3's reviews say how long the review call took


@dataclass
class Iteration:
    """One iteration file (or cycle file: ``source == "cycle"``), with its reviews and its
    calls attached. ``n`` is its number among the worker's iterations, or cycles."""

    worker: str
    n: int
    outcome: str
    end: datetime
    duration_ms: int
    task_id: str | None
    recycled: list[str]
    error_snippet: str | None
    review_rounds: int
    metrics: dict[str, int] | None
    rel: str
    reviews: list[Review] = field(default_factory=list)
    calls: list[Call] | None = None  # None: no calls/ record
    calls_rel: str | None = None
    source: str = "iteration"  # or "cycle": a cycle file of a worker without iteration files
    task_ids: list[str] = field(default_factory=list)  # a cycle names every task it claimed
    patch_rel: str | None = None  # diffs/{worker}-{i|c}{N}.patch: what its merge brought

    @property
    def start(self) -> datetime:
        return self.end - timedelta(milliseconds=self.duration_ms)

    @property
    def is_cycle(self) -> bool:
        return self.source == "cycle"

    @property
    def noun(self) -> str:
        """``iteration`` or ``cycle``."""
        return self.source

    @property
    def key(self) -> str:
        """``i3`` for iteration 3, ``c3`` for cycle 3."""
        return f"{self.source[0]}{self.n}"

    @property
    def label(self) -> str:
        """``w0 i3``, ``w1 c3``."""
        return f"{self.worker} {self.key}"

    @property
    def anchor(self) -> str:
        """The id of its table row: unique across both kinds (``it-w0-1`` for iteration 1,
        ``cy-w0-1`` for cycle 1, so that a worker shown either way keeps the same id)."""
        return f"{'cy' if self.is_cycle else 'it'}-{self.worker}-{self.n}"

    @property
    def work_anchor(self) -> str:
        """The id of its transcripts and diff in the page (``work-it-w0-1``)."""
        return f"work-{self.anchor}"

    @property
    def open(self) -> bool:
        """A cycle whose file still reads claimed or working: it was going on when the files
        were read (or when the run was cut off)."""
        return self.is_cycle and self.outcome in OPEN_OUTCOMES

    @property
    def attempts(self) -> list[int]:
        """The attempt numbers its calls name (0.7.3 mode's calls records), in order."""
        return sorted({c.attempt for c in self.calls or [] if c.attempt is not None})


@dataclass
class Run:
    """Everything the page shows: the raw documents, the loaded files, the problems."""

    run_dir: Path
    swarm_id: str
    run: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None  # oompa-run.json
    heartbeat: dict[str, Any] | None = None
    started_event: dict[str, Any] | None = None  # started.json (oompa 0.7.3)
    stopped_event: dict[str, Any] | None = None  # stopped.json (oompa 0.7.3)
    worker_states: dict[str, dict[str, Any]] = field(default_factory=dict)  # workers/{id}.json
    iterations: list[Iteration] = field(default_factory=list)
    orphan_reviews: list[Review] = field(default_factory=list)
    role_calls: dict[str, list[Call]] = field(default_factory=dict)  # planner, preflight
    problems: list[Problem] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    # -- derived facts

    @property
    def complete(self) -> bool:
        return self.summary is not None or self.stopped_event is not None

    @property
    def started(self) -> datetime | None:
        for doc, key in (
            (self.run, "started-at"),
            (self.meta, "started-at"),
            (self.started_event, "started-at"),
        ):
            ts = parse_ts(doc.get(key)) if doc else None
            if ts is not None:
                return ts
        return min((it.start for it in self.iterations), default=None)

    @property
    def finished(self) -> datetime | None:
        for doc, key in (
            (self.meta, "finished-at"),
            (self.summary, "finished-at"),
            (self.stopped_event, "stopped-at"),
        ):
            ts = parse_ts(doc.get(key)) if doc else None
            if ts is not None:
                return ts
        return None

    @property
    def last_seen(self) -> datetime | None:
        """The latest instant any artifact vouches for."""
        stamps = [it.end for it in self.iterations]
        for doc in (self.live, self.heartbeat):
            ts = parse_ts(doc.get("updated-at")) if doc else None
            if ts is not None:
                stamps.append(ts)
        return max(stamps, default=None)

    @property
    def end(self) -> datetime | None:
        return self.finished or self.last_seen

    def heartbeat_age(self) -> float | None:
        ts = parse_ts(self.heartbeat.get("updated-at")) if self.heartbeat else None
        return None if ts is None else (self.now - ts).total_seconds()

    def status(self) -> tuple[str, str]:
        """(status, explanation)."""
        meta_status = text_field(self.meta, "status") if self.meta else None
        if meta_status in ("completed", "failed", "interrupted"):
            code = int_field(self.meta or {}, "exit-status")
            return meta_status, "" if code is None else f"exit status {code}"
        events = run_status(self.started_event, self.stopped_event, pid_alive)
        if self.stopped_event is not None and events:
            return events
        if self.summary is not None:
            return "finished", ""
        age = self.heartbeat_age()
        beat = text_field(self.heartbeat, "state") if self.heartbeat else None
        if meta_status == "running" and beat == "stopped":
            return "incomplete", "cut off: stopped without a final status"
        if meta_status == "running" and age is not None:
            interval = number_field(self.heartbeat or {}, "interval-s") or 0.0
            if age <= max(HEARTBEAT_STALE_S, 3 * interval):
                return "running", f"heartbeat {fmt_ms(age * 1000)} ago"
            return "incomplete", f"cut off: heartbeat stale for {fmt_ms(age * 1000)}"
        if self.heartbeat is None and events:  # no heartbeat to go by: unleashd's pid rule
            status, why = events
            return ("running", why) if status == "running" else ("incomplete", f"cut off: {why}")
        return "incomplete", "cut off: no summary.json"

    def worker_ids(self) -> list[str]:
        ids: list[str] = []
        for doc in (self.run, self.started_event):
            ids += [w["id"] for w in (doc or {}).get("workers", []) if w["id"] not in ids]
        extra: set[str] = set()
        extra.update(w["id"] for w in (self.summary or {}).get("workers", []))
        extra.update((self.live or {}).get("workers", {}))
        extra.update(it.worker for it in self.iterations)
        extra.update(self.worker_states)
        ids += sorted(extra - set(ids), key=natural_key)
        return ids

    def worker_config(self, wid: str) -> dict[str, Any]:
        for w in (self.run or {}).get("workers", []):
            if w["id"] == wid:
                return dict(w)
        for w in (self.started_event or {}).get("workers", []):
            if w["id"] == wid:
                # a view for the page: its cycles are what it ran ("ran 3 of 5")
                return {**w, "iterations": w["max-cycles"]}
        for w in (self.summary or {}).get("workers", []):
            if w["id"] == wid:
                return dict(w)
        return {}

    def worker_status(self, wid: str) -> str:
        """summary.json's final status (``idle: interrupted`` for a worker an interrupted run
        stopped before its last iteration), else the last outcome of a cut-off run."""
        for w in (self.summary or {}).get("workers", []):
            if w["id"] == wid:
                stopped = len(self.iterations_of(wid)) < w["iterations"]
                if w["status"] == "idle" and stopped and self.status()[0] == "interrupted":
                    return "idle: interrupted"
                return str(w["status"])
        state = self.worker_states.get(wid)
        if state is not None or (self.started_event and not self.live):
            units = self.iterations_of(wid)
            last = {"cycle": units[-1].n, "outcome": units[-1].outcome} if units else None
            if state is not None or last is not None:
                label = worker_label(state, last, self.status()[0] == "running")
                return in_units(label, self.worker_unit(wid))
        live = (self.live or {}).get("workers", {}).get(wid)
        if live is not None:
            return f"last: {live['status']}"
        its = self.iterations_of(wid)
        if its:
            return f"last: {its[-1].outcome}"
        return "no iteration recorded"

    def iterations_of(self, wid: str) -> list[Iteration]:
        """The worker's iterations, or its cycles (see the module docstring)."""
        return [it for it in self.iterations if it.worker == wid]

    def worker_unit(self, wid: str) -> str:
        """``iteration`` or ``cycle``: what the worker runs. Its files say so once it ran one;
        before, a run without run.json is upstream 0.7.3's (cycles), and a worker that may
        resume a cycle (started.json's ``max-resumes`` above 1) runs cycles."""
        its = self.iterations_of(wid)
        if its:
            return its[0].source
        if self.run is None and self.started_event is not None:
            return "cycle"
        for w in (self.started_event or {}).get("workers", []):
            if w["id"] == wid and (int_field(w, "max-resumes") or 1) > 1:
                return "cycle"
        return "iteration"

    def max_resumes(self, wid: str) -> int | None:
        """started.json's ``max-resumes`` of the worker: the attempts a cycle may take."""
        for w in (self.started_event or {}).get("workers", []):
            if w["id"] == wid:
                return int_field(w, "max-resumes")
        return None

    def unit_noun(self) -> str:
        """What one of the run's units is: ``iteration``, ``cycle``, ``iteration or cycle``."""
        kinds = {it.source for it in self.iterations} or {
            self.worker_unit(w) for w in self.worker_ids()
        }
        if kinds == {"cycle"}:
            return "cycle"
        return "iteration or cycle" if "cycle" in kinds else "iteration"

    def units(self) -> str:
        """The run's units, in words: ``iterations``, ``cycles``, ``iterations and cycles``."""
        return {"iteration": "iterations", "cycle": "cycles"}.get(
            self.unit_noun(), "iterations and cycles"
        )

    def config_file(self) -> str | None:
        """The config file the run names (ours, or started.json's)."""
        for doc in (self.run, self.meta, self.started_event):
            found = text_field(doc, "config-file") if doc else None
            if found:
                return found
        return None

    def all_calls(self) -> Iterator[tuple[str, Call]]:
        for it in self.iterations:
            for call in it.calls or []:
                yield it.worker, call
        for who, calls in self.role_calls.items():
            for call in calls:
                yield who, call


# --------------------------------------------------------------------------- the loader


class _Loader:
    """Fills a :class:`Run` from its folder; every unusable file becomes a :class:`Problem`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.dir = run.run_dir
        self.iteration_workers = iteration_workers(self.dir)

    def problem(self, rel: str, message: str) -> None:
        self.run.problems.append(Problem(rel, message))

    def _message(self, exc: BaseException, path: Path) -> str:
        """The error without the file's path: the report names the file beside it."""
        text = str(exc)
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        text = text.removeprefix(f"{path}: ")
        return text.replace(f"{self.dir}/", "")

    def contract(self, rel: str, kind: str) -> dict[str, Any] | None:
        """A contract artifact, validated (leniently: upstream oompa's extra fields are
        dropped); None (and a problem) when unreadable or invalid."""
        path = self.dir / rel
        if not path.exists():
            return None
        try:
            return read_lenient(path, kind)
        except (ArtifactError, OSError) as exc:
            self.problem(rel, self._message(exc, path))
            return None

    def extension(self, rel: str, kind: str) -> dict[str, Any] | None:
        """A run-tracking file: validated by its schema when the package has one, else parsed
        strictly and checked to be an object (its fields are type-checked where they are used)."""
        path = self.dir / rel
        if not path.exists():
            return None
        if kind in ARTIFACT_KINDS:
            return self.contract(rel, kind)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self.problem(rel, f"not valid JSON: {exc}")
            return None
        if not isinstance(data, dict):
            self.problem(rel, f"expected a JSON object, found {type(data).__name__}")
            return None
        return data

    def calls(self, rel: str, who: str, unit: tuple[str, int] | None = None) -> list[Call] | None:
        """The calls record ``rel`` of ``who``; ``unit`` (``("cycle", 3)``) is the iteration or
        cycle it should name."""
        data = self.extension(rel, "calls")
        if data is None:
            return None
        raw = data.get("calls")
        if not isinstance(raw, list):
            self.problem(rel, "'calls' is not a list")
            return None
        if data.get("worker-id") not in (None, who):
            self.problem(rel, f"worker-id {str(data.get('worker-id'))[:80]!r} is not {who!r}")
        if unit is not None and data.get(unit[0]) not in (None, unit[1]):
            self.problem(rel, f"{unit[0]} {str(data.get(unit[0]))[:20]} is not {unit[1]}")
        calls = []
        for entry in raw:
            if not isinstance(entry, dict):
                self.problem(rel, "a call that is not a JSON object was left out")
                continue
            calls.append(
                Call(
                    role=text_field(entry, "role") or "?",
                    harness=text_field(entry, "harness") or "?",
                    model=text_field(entry, "model") or "",
                    exit_code=int_field(entry, "exit-code"),
                    duration_ms=int_field(entry, "duration-ms"),
                    input_tokens=int_field(entry, "input-tokens"),
                    output_tokens=int_field(entry, "output-tokens"),
                    cost_usd=number_field(entry, "cost-usd"),
                    failure=text_field(entry, "failure"),
                    log=self.link(entry.get("log"), rel),
                    error=self.link(entry.get("error"), rel),
                    attempt=int_field(entry, "attempt"),
                )
            )
        for call in calls:
            if call.error is not None:
                detail = self.extension(call.error, "error")
                if detail is not None:
                    call.stderr_tail = text_field(detail, "stderr-tail") or ""
        return calls

    def link(self, value: object, rel: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and _LINK.fullmatch(value) and ".." not in value:
            return value
        self.problem(rel, f"ignored a link outside commands/ and errors/: {str(value)[:80]!r}")
        return None

    def load(self) -> None:
        run = self.run
        run.run = self.contract("run.json", "run")
        run.summary = self.contract("summary.json", "summary")
        if run.summary is None:
            run.live = self.contract("live-summary.json", "live-summary")
        run.meta = self.extension("oompa-run.json", "oompa-run")
        run.heartbeat = self.extension("heartbeat.json", "heartbeat")
        run.started_event = self.contract("started.json", "started")
        run.stopped_event = self.contract("stopped.json", "stopped")
        for doc in (run.run, run.summary, run.live, run.meta, run.started_event, run.stopped_event):
            sid = text_field(doc, "swarm-id") if doc else None
            if sid is not None and sid != run.swarm_id:
                self.problem(
                    "", f"an artifact names swarm {sid[:80]!r}, the folder {run.swarm_id!r}"
                )
                break
        self.load_iterations()
        self.load_cycles()
        self.load_reviews()
        self.load_worker_states()
        for who in ("planner", "preflight"):
            calls = self.calls(f"calls/{who}.json", who)
            if calls is not None:
                run.role_calls[who] = calls

    def load_iterations(self) -> None:
        folder = self.dir / "iterations"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json"), key=lambda p: natural_key(p.name)):
            rel = f"iterations/{path.name}"
            m = _ITERATION_FILE.fullmatch(path.name)
            if m is None:
                self.problem(rel, "not an iteration file name ({worker-id}-i{N}.json); ignored")
                continue
            data = self.contract(rel, "iteration")
            if data is None:
                continue
            if (data["worker-id"], data["iteration"]) != (m["w"], int(m["n"])):
                self.problem(
                    rel,
                    f"holds {str(data['worker-id'])[:80]!r} iteration {data['iteration']}, "
                    "not what its name says; ignored",
                )
                continue
            end = parse_ts(data["timestamp"])
            assert end is not None  # the schema checked the date-time
            it = Iteration(
                worker=m["w"],
                n=int(m["n"]),
                outcome=data["outcome"],
                end=end,
                duration_ms=data["duration-ms"],
                task_id=data.get("task-id"),
                recycled=list(data["recycled-tasks"]),
                error_snippet=data.get("error-snippet"),
                review_rounds=data["review-rounds"],
                metrics=data.get("metrics"),
                rel=rel,
                task_ids=[data["task-id"]] if data.get("task-id") else [],
            )
            self.attach_patch(it)
            calls_rel = f"calls/{it.worker}-i{it.n}.json"
            it.calls = self.calls(calls_rel, it.worker, ("iteration", it.n))
            if it.calls is not None:
                it.calls_rel = calls_rel
            self.run.iterations.append(it)

    def load_cycles(self) -> None:
        """The cycle files of the workers without iteration files, each as an
        :class:`Iteration` (see the module docstring)."""
        folder = self.dir / "cycles"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json"), key=lambda p: natural_key(p.name)):
            rel = f"cycles/{path.name}"
            m = _CYCLE_FILE.fullmatch(path.name)
            if m is None:
                self.problem(rel, "not a cycle file name ({worker-id}-c{N}.json); ignored")
                continue
            if m["w"] in self.iteration_workers:  # repeats an iteration file: not read
                continue
            data = self.contract(rel, "cycle")
            if data is None:
                continue
            if (data["worker-id"], data["cycle"]) != (m["w"], int(m["n"])):
                self.problem(
                    rel,
                    f"holds {str(data['worker-id'])[:80]!r} cycle {data['cycle']}, "
                    "not what its name says; ignored",
                )
                continue
            end = parse_ts(data["timestamp"])
            assert end is not None  # the schema checked the date-time
            claimed = list(data.get("claimed-task-ids") or [])
            it = Iteration(
                worker=m["w"],
                n=int(m["n"]),
                outcome=data["outcome"],
                end=end,
                duration_ms=data["duration-ms"],
                task_id=claimed[0] if claimed else None,
                recycled=list(data["recycled-tasks"]),
                error_snippet=data.get("error-snippet"),
                review_rounds=data["review-rounds"],
                metrics=None,
                rel=rel,
                source="cycle",
                task_ids=claimed,
            )
            self.attach_patch(it)
            calls_rel = f"calls/{it.worker}-c{it.n}.json"
            it.calls = self.calls(calls_rel, it.worker, ("cycle", it.n))
            if it.calls is not None:
                it.calls_rel = calls_rel
            self.run.iterations.append(it)

    def attach_patch(self, it: Iteration) -> None:
        """The patch its merge brought into main, kept by the engine (from 0.7.3 support on)."""
        rel = f"diffs/{it.worker}-{it.key}.patch"
        if (self.dir / rel).is_file():
            it.patch_rel = rel

    def load_worker_states(self) -> None:
        folder = self.dir / "workers"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json"), key=lambda p: natural_key(p.name)):
            m = _WORKER_FILE.fullmatch(path.name)
            data = self.contract(f"workers/{path.name}", "worker-state") if m else None
            if m is not None and data is not None:
                self.run.worker_states[m["w"]] = data

    def load_reviews(self) -> None:
        folder = self.dir / "reviews"
        if not folder.is_dir():
            return
        by_key = {(it.source, it.worker, it.n): it for it in self.run.iterations}
        for path in sorted(folder.glob("*.json"), key=lambda p: natural_key(p.name)):
            rel = f"reviews/{path.name}"
            source, kind = "iteration", "review"
            m = _REVIEW_FILE.fullmatch(path.name)
            if m is None:  # the two names differ in their end: a file is at most one of them
                m, source, kind = _CYCLE_REVIEW_FILE.fullmatch(path.name), "cycle", "cycle-review"
            if m is None:
                self.problem(
                    rel, "not a review file name ({worker-id}-i{N}-r{R}.json or -c{N}-); ignored"
                )
                continue
            if source == "cycle" and m["w"] in self.iteration_workers:
                continue  # the worker is shown from its iteration files (and their reviews)
            data = self.contract(rel, kind)
            if data is None:
                continue
            review = Review(
                round=int(m["r"]),
                verdict=data["verdict"],
                timestamp=parse_ts(data["timestamp"]),
                output=data.get("output"),
                diff_files=list(data["diff-files"]),
                rel=rel,
                duration_ms=data.get("duration-ms"),
            )
            owner = by_key.get((source, m["w"], int(m["n"])))
            if owner is None:
                self.run.orphan_reviews.append(review)
            else:
                owner.reviews.append(review)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_run(run_dir: Path, *, now: datetime | None = None) -> Run:
    """Everything the report shows, read from ``run_dir`` (problems collected, never raised)."""
    run_dir = Path(run_dir)
    run = Run(run_dir=run_dir, swarm_id=run_dir.name)
    if now is not None:
        run.now = now
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    _Loader(run).load()
    if run.run is not None:
        run.swarm_id = run.run["swarm-id"]
    elif run.started_event is not None:
        run.swarm_id = run.started_event["swarm-id"]
    run.iterations.sort(key=lambda it: (natural_key(it.worker), it.n))
    return run
