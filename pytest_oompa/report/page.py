"""The swarm report: one static, self-contained HTML file per run, ``runs/{swarm-id}/report.html``.

Built from the run's artifacts alone (each contract file validated on read), so it works for a
run written by another machine and for a run that was cut off (no ``summary.json``: the live
summary and the iteration files are what there is). A file that cannot be read or fails its
schema becomes a message in the report, never a crash. The run-tracking files (``oompa-run.json``,
``heartbeat.json``, ``calls/``, ``commands/``, ``errors/``) are used when present and never
required.

The page needs no network and no JavaScript: the tables carry everything, and each timeline bar
is a link to its row. A few hundred bytes of inline script add a popover on hover and click.
Everything that comes from an artifact is agent output, so it is escaped; links are relative
paths built only from checked ids, and a Content-Security-Policy allows no script but ours.

``python -m pytest_oompa report ID|PATH [--runs-dir DIR]`` writes it on demand.

This module never imports pytest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.runs.artifacts import ARTIFACT_KINDS, ArtifactError, read_artifact
from pytest_oompa.runs.reader import default_runs_dir

__all__ = ["OUTCOMES", "load_run", "main", "render_report", "resolve_run_dir", "write_report"]

REPORT_NAME = "report.html"

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
}
HEARTBEAT_STALE_S = 30.0
SNIPPET_CHARS = 600
STDERR_CHARS = 400
REVIEW_CHARS = 2000
PROMPT_CHARS = 20000

_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_ITERATION_FILE = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-i(?P<n>[0-9]+)\.json")
_REVIEW_FILE = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-i(?P<n>[0-9]+)-r(?P<r>[0-9]+)\.json")
_LINK = re.compile(r"(?:commands|errors)/[A-Za-z0-9_][A-Za-z0-9._-]*")
_TS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


# --------------------------------------------------------------------------- small helpers


def e(value: object) -> str:
    """Escape for HTML text and quoted attribute values."""
    return html.escape(str(value), quote=True)


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


def fmt_ts(ts: datetime | None) -> str:
    if ts is None:
        return "unknown"
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ms(ms: float | None) -> str:
    """850 ms, 12.3 s, 4 min 05 s, 1 h 02 min."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{int(ms)} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_offset(seconds: float) -> str:
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def fmt_tick(seconds: float, step: float) -> str:
    """An axis label: ``1.5 s`` below one-second steps, ``40 s`` under two minutes, else m:ss."""
    if step < 1:
        return f"{seconds:.1f} s"
    if step < 60 and seconds < 120:
        return f"{seconds:.0f} s"
    return fmt_offset(seconds)


def fmt_int(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def fmt_cost(c: float | None) -> str:
    if c is None:
        return "—"
    return f"${c:,.4f}" if c < 1 else f"${c:,.2f}"


def _natural(key: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", key))


def _str(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _int(d: Mapping[str, Any], key: str) -> int | None:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _clip(text: str, limit: int, where: str = "") -> str:
    if len(text) <= limit:
        return text
    more = f", see {where}" if where else ""
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters{more})"


# --------------------------------------------------------------------------- the run, loaded


@dataclass
class Problem:
    path: str
    message: str


@dataclass
class Call:
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


@dataclass
class Review:
    round: int
    verdict: str
    timestamp: datetime | None
    output: str | None
    diff_files: list[str]
    rel: str


@dataclass
class Iteration:
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

    @property
    def start(self) -> datetime:
        return self.end - timedelta(milliseconds=self.duration_ms)

    @property
    def anchor(self) -> str:
        return f"it-{self.worker}-{self.n}"


@dataclass
class Run:
    run_dir: Path
    swarm_id: str
    run: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None  # oompa-run.json
    heartbeat: dict[str, Any] | None = None
    iterations: list[Iteration] = field(default_factory=list)
    orphan_reviews: list[Review] = field(default_factory=list)
    role_calls: dict[str, list[Call]] = field(default_factory=dict)  # planner, preflight
    problems: list[Problem] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    # -- derived facts

    @property
    def complete(self) -> bool:
        return self.summary is not None

    @property
    def started(self) -> datetime | None:
        for doc, key in ((self.run, "started-at"), (self.meta, "started-at")):
            ts = parse_ts(doc.get(key)) if doc else None
            if ts is not None:
                return ts
        return min((it.start for it in self.iterations), default=None)

    @property
    def finished(self) -> datetime | None:
        for doc, key in ((self.meta, "finished-at"), (self.summary, "finished-at")):
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
        meta_status = _str(self.meta, "status") if self.meta else None
        if meta_status in ("completed", "failed", "interrupted"):
            code = _int(self.meta or {}, "exit-status")
            return meta_status, "" if code is None else f"exit status {code}"
        if self.complete:
            return "finished", ""
        age = self.heartbeat_age()
        beat = _str(self.heartbeat, "state") if self.heartbeat else None
        if meta_status == "running" and beat == "stopped":
            return "incomplete", "cut off: stopped without a final status"
        if meta_status == "running" and age is not None:
            interval = _num(self.heartbeat or {}, "interval-s") or 0.0
            if age <= max(HEARTBEAT_STALE_S, 3 * interval):
                return "running", f"heartbeat {fmt_ms(age * 1000)} ago"
            return "incomplete", f"cut off: heartbeat stale for {fmt_ms(age * 1000)}"
        return "incomplete", "cut off: no summary.json"

    def worker_ids(self) -> list[str]:
        ids: list[str] = []
        for w in (self.run or {}).get("workers", []):
            ids.append(w["id"])
        extra: set[str] = set()
        extra.update(w["id"] for w in (self.summary or {}).get("workers", []))
        extra.update((self.live or {}).get("workers", {}))
        extra.update(it.worker for it in self.iterations)
        ids += sorted(extra - set(ids), key=_natural)
        return ids

    def worker_config(self, wid: str) -> dict[str, Any]:
        for w in (self.run or {}).get("workers", []):
            if w["id"] == wid:
                return dict(w)
        for w in (self.summary or {}).get("workers", []):
            if w["id"] == wid:
                return dict(w)
        return {}

    def iterations_of(self, wid: str) -> list[Iteration]:
        return [it for it in self.iterations if it.worker == wid]

    def all_calls(self) -> Iterator[tuple[str, Call]]:
        for it in self.iterations:
            for call in it.calls or []:
                yield it.worker, call
        for who, calls in self.role_calls.items():
            for call in calls:
                yield who, call


class _Loader:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.dir = run.run_dir

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
        """A contract artifact, validated; None (and a problem) when unreadable or invalid."""
        path = self.dir / rel
        if not path.exists():
            return None
        try:
            return read_artifact(path, kind)
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

    def calls(self, rel: str, who: str) -> list[Call] | None:
        data = self.extension(rel, "calls")
        if data is None:
            return None
        raw = data.get("calls")
        if not isinstance(raw, list):
            self.problem(rel, "'calls' is not a list")
            return None
        if data.get("worker-id") not in (None, who):
            self.problem(rel, f"worker-id {str(data.get('worker-id'))[:80]!r} is not {who!r}")
        calls = []
        for entry in raw:
            if not isinstance(entry, dict):
                self.problem(rel, "a call that is not a JSON object was left out")
                continue
            calls.append(
                Call(
                    role=_str(entry, "role") or "?",
                    harness=_str(entry, "harness") or "?",
                    model=_str(entry, "model") or "",
                    exit_code=_int(entry, "exit-code"),
                    duration_ms=_int(entry, "duration-ms"),
                    input_tokens=_int(entry, "input-tokens"),
                    output_tokens=_int(entry, "output-tokens"),
                    cost_usd=_num(entry, "cost-usd"),
                    failure=_str(entry, "failure"),
                    log=self.link(entry.get("log"), rel),
                    error=self.link(entry.get("error"), rel),
                )
            )
        for call in calls:
            if call.error is not None:
                detail = self.extension(call.error, "error")
                if detail is not None:
                    call.stderr_tail = _str(detail, "stderr-tail") or ""
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
        for doc in (run.run, run.summary, run.live, run.meta):
            sid = _str(doc, "swarm-id") if doc else None
            if sid is not None and sid != run.swarm_id:
                self.problem(
                    "", f"an artifact names swarm {sid[:80]!r}, the folder {run.swarm_id!r}"
                )
                break
        self.load_iterations()
        self.load_reviews()
        for who in ("planner", "preflight"):
            calls = self.calls(f"calls/{who}.json", who)
            if calls is not None:
                run.role_calls[who] = calls

    def load_iterations(self) -> None:
        folder = self.dir / "iterations"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json"), key=lambda p: _natural(p.name)):
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
            )
            calls_rel = f"calls/{it.worker}-i{it.n}.json"
            it.calls = self.calls(calls_rel, it.worker)
            if it.calls is not None:
                it.calls_rel = calls_rel
            self.run.iterations.append(it)

    def load_reviews(self) -> None:
        folder = self.dir / "reviews"
        if not folder.is_dir():
            return
        by_key = {(it.worker, it.n): it for it in self.run.iterations}
        for path in sorted(folder.glob("*.json"), key=lambda p: _natural(p.name)):
            rel = f"reviews/{path.name}"
            m = _REVIEW_FILE.fullmatch(path.name)
            if m is None:
                self.problem(rel, "not a review file name ({worker-id}-i{N}-r{R}.json); ignored")
                continue
            data = self.contract(rel, "review")
            if data is None:
                continue
            review = Review(
                round=int(m["r"]),
                verdict=data["verdict"],
                timestamp=parse_ts(data["timestamp"]),
                output=data.get("output"),
                diff_files=list(data["diff-files"]),
                rel=rel,
            )
            owner = by_key.get((m["w"], int(m["n"])))
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
    run.iterations.sort(key=lambda it: (_natural(it.worker), it.n))
    return run


# --------------------------------------------------------------------------- rendering

CSS = """
:root{--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa;--accent:#0550ae;
--merged:#1a7f37;--rejected:#bc4c00;--error:#b3261e;--claimed:#8250df;--working:#0969da;
--no-changes:#d0d7de;--done:#0e6e6a;--executor-done:#4d5a66}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:1380px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:21px;margin:0 0 6px;display:flex;flex-wrap:wrap;gap:10px;align-items:center}
h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
a{color:var(--accent)}
code,pre,.mono{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:18em;overflow:auto}
.muted{color:var(--muted)}
.facts{display:flex;flex-wrap:wrap;gap:3px 28px;margin:8px 0}
.facts div{display:flex;gap:6px;min-width:0;max-width:100%}.facts dt{color:var(--muted);flex:none}
.facts dd{margin:0;overflow-wrap:anywhere}
.why{font-size:13px;font-weight:400;color:var(--muted)}
.status{font-size:13px;font-weight:600;padding:2px 10px;border-radius:12px;border:1px solid;
text-transform:uppercase;letter-spacing:.04em}
.st-completed,.st-finished{color:#1a7f37;background:#dafbe1}
.st-failed{color:#b3261e;background:#ffebe9}
.st-interrupted,.st-incomplete{color:#9a4b00;background:#fff1e0}
.st-running{color:#0550ae;background:#ddf4ff}
.notice{border:1px solid #d4a72c;background:#fff8c5;padding:8px 12px;border-radius:6px;
margin:10px 0}
.notice.bad{border-color:#cf222e;background:#ffebe9}
.notice ul{margin:4px 0 0;padding-left:20px}
.totals{display:flex;flex-wrap:wrap;gap:6px;margin:10px 0 0;padding:0;list-style:none}
.totals li{border:1px solid var(--line);border-radius:6px;padding:2px 9px;background:var(--soft);
display:flex;align-items:center;gap:5px}
.totals b{font-size:15px}.totals .o{min-width:18px;text-align:center;padding:0 4px}
nav{margin:12px 0 0;display:flex;flex-wrap:wrap;gap:14px;font-size:13px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:var(--soft);font-weight:600;position:sticky;top:0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:target{outline:2px solid var(--accent);outline-offset:-2px;background:#ddf4ff}
tfoot td{font-weight:600}
.wrap{overflow-x:auto}
td pre{max-height:8.5em}td.err{min-width:280px}td.nw{white-space:nowrap}
.o{display:inline-block;padding:0 7px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;
white-space:nowrap}
.o-merged{background:var(--merged)}.o-rejected{background:var(--rejected)}
.o-error{background:var(--error)}.o-claimed{background:var(--claimed)}
.o-working{background:var(--working)}.o-done{background:var(--done)}
.o-executor-done{background:var(--executor-done)}
.o-no-changes{background:var(--no-changes);color:#1f2328}
.o-error,.bar.o-error{background-image:repeating-linear-gradient(135deg,transparent 0 6px,
rgba(255,255,255,.18) 6px 9px)}
.o-unknown{background:#fff;color:#1f2328;border:1px dashed #57606a}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:4px 0 10px;padding:0;list-style:none;
font-size:12.5px;align-items:center}
.legend .o{min-width:20px;text-align:center}
.tl{border:1px solid var(--line);border-radius:6px;padding:8px 10px 6px;background:#fff}
.lane{display:grid;grid-template-columns:210px 1fr;align-items:center;min-height:32px}
.lane+.lane{border-top:1px solid #eaeef2}
.who{font-size:12.5px;line-height:1.25;padding-right:8px;overflow:hidden}
.who b{font-size:13px;margin-right:4px}.who span{color:var(--muted);display:block;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.who small{font-size:11.5px}
.track{position:relative;height:26px;
background:repeating-linear-gradient(90deg,transparent 0 calc(var(--tick) - 1px),#eaeef2
calc(var(--tick) - 1px) var(--tick))}
.axis .track{height:18px;background:none}
.axis span{position:absolute;top:0;font-size:11px;color:var(--muted);transform:translateX(-50%);
white-space:nowrap}
.axis span:first-child{transform:none}
.bar{position:absolute;top:3px;height:20px;min-width:5px;border-radius:3px;color:#fff;
text-decoration:none;overflow:hidden;container-type:inline-size;box-shadow:inset 0 0 0 1px
rgba(0,0,0,.22)}
.bar.o-no-changes{color:#1f2328}
.bar:hover,.bar:focus-visible,.bar.on{box-shadow:0 0 0 2px #1f2328;z-index:2;outline:none}
.bar .lbl{position:absolute;left:4px;right:2px;top:1px;font-size:11.5px;font-weight:600;
white-space:nowrap;overflow:hidden}
.bar .full{display:none}
@container (min-width:62px){.bar .full{display:inline}.bar .short{display:none}}
@container (max-width:9px){.bar .short{display:none}}
.nr{position:absolute;top:6px;font-size:11.5px;color:var(--muted);font-style:italic;
white-space:nowrap}
.rv{position:absolute;bottom:1px;width:7px;height:7px;margin-left:-4px;border-radius:50%;
border:1px solid #1f2328;background:#fff}
.rv.v-needs-changes{background:#f2cc60}.rv.v-rejected{background:#1f2328;border-color:#fff}
.rvk{display:inline-block;width:9px;height:9px;border-radius:50%;border:1px solid #1f2328;
background:#fff;vertical-align:-1px}
.rvk.v-needs-changes{background:#f2cc60}.rvk.v-rejected{background:#1f2328}
.reviews details{margin:0 0 2px}.reviews summary{cursor:pointer;white-space:nowrap}
.files a{margin-right:8px;white-space:nowrap}
.missing{color:var(--muted);text-decoration:line-through}
#pop{position:absolute;z-index:10;max-width:520px;min-width:300px;background:#fff;
border:1px solid #8c959f;border-radius:8px;box-shadow:0 8px 24px rgba(31,35,40,.2);
padding:10px 12px;font-size:13px}
#pop[hidden]{display:none}
#pop .ph{margin:0 0 6px;font-weight:600}
#pop dl{display:grid;grid-template-columns:auto 1fr;gap:3px 10px;margin:0}
#pop dt{color:var(--muted)}#pop dd{margin:0;min-width:0}
#pop pre{max-height:9em}
#pop .x{position:absolute;right:6px;top:4px;border:0;background:none;font-size:18px;
cursor:pointer;color:var(--muted)}
footer{margin-top:30px;color:var(--muted);font-size:12px}
@media print{#pop,nav{display:none}thead th{position:static}}
"""

# Popover: hovering, focusing or clicking a bar shows its row of the iterations table (the same
# cells, cloned); a click pins it; Escape or a click elsewhere closes it. ``#pop-<row id>`` in
# the address opens one on load. Without this script each bar is a plain link to its row.
JS = """
(function(){var d=document,P=d.getElementById("pop"),pin=null,cur=null;
d.documentElement.setAttribute("data-js","ready");
function row(b){return d.getElementById(b.getAttribute("href").slice(1))}
function hide(){P.hidden=true;if(cur)cur.classList.remove("on");cur=pin=null}
function show(b){var r=row(b);if(!r)return;if(cur)cur.classList.remove("on");cur=b;
b.classList.add("on");P.textContent="";var x=d.createElement("button");x.className="x";
x.textContent="\\u00d7";x.setAttribute("aria-label","Close");x.onclick=hide;P.appendChild(x);
var h=d.createElement("p");h.className="ph";h.textContent=b.getAttribute("aria-label");
P.appendChild(h);var dl=d.createElement("dl"),hs=r.closest("table").tHead.rows[0].cells;
for(var i=0;i<r.cells.length;i++){var c=r.cells[i],t=c.textContent.trim();
if(!t||t=="\\u2014"||!hs[i])continue;var dt=d.createElement("dt"),dd=d.createElement("dd");
dt.textContent=hs[i].textContent;for(var k=c.firstChild;k;k=k.nextSibling)
dd.appendChild(k.cloneNode(true));dl.appendChild(dt);dl.appendChild(dd)}P.appendChild(dl);
var a=d.createElement("a");a.href="#"+r.id;a.textContent="Row in the iterations table";
a.onclick=hide;P.appendChild(a);P.hidden=false;var q=b.getBoundingClientRect(),
w=P.offsetWidth,L=Math.min(q.left+scrollX,scrollX+d.documentElement.clientWidth-w-8);
P.style.left=Math.max(8,L)+"px";P.style.top=(q.bottom+scrollY+6)+"px"}
var bs=d.querySelectorAll("a.bar");for(var i=0;i<bs.length;i++){var b=bs[i];
b.setAttribute("data-title",b.title);b.removeAttribute("title");
b.addEventListener("mouseenter",function(){if(!pin)show(this)});
b.addEventListener("mouseleave",function(){if(!pin)hide()});
b.addEventListener("focus",function(){if(!pin)show(this)});
b.addEventListener("click",function(ev){ev.preventDefault();show(this);pin=this})}
d.addEventListener("keydown",function(ev){if(ev.key=="Escape")hide()});
d.addEventListener("click",function(ev){if(pin&&!P.contains(ev.target)&&
!ev.target.closest("a.bar"))hide()});
var m=/^#pop-(.+)$/.exec(location.hash);if(m){var t=d.querySelector('a.bar[href="#'+m[1]+'"]');
if(t){var q=t.getBoundingClientRect();if(q.top<0||q.bottom>innerHeight)
t.scrollIntoView({block:"center"});show(t);pin=t}}})();
"""


def _script_hash() -> str:
    digest = hashlib.sha256(JS.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def outcome_badge(outcome: str) -> str:
    label = outcome if outcome in OUTCOMES else "unknown"
    return f'<span class="o o-{e(label)}">{e(outcome)}</span>'


def _link(rel: str | None, run_dir: Path, text: str | None = None) -> str:
    """A relative link to a file of the run; struck through when the file is not there."""
    if rel is None:
        return ""
    shown = e(text or rel)
    if (run_dir / rel).exists():
        return f'<a href="{e(rel)}">{shown}</a>'
    return f'<span class="missing" title="not in this run folder">{shown}</span>'


class _Html:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, *chunks: str) -> None:
        self.parts.extend(chunks)

    def text(self) -> str:
        return "".join(self.parts)


def _table(head: Iterable[tuple[str, str]], rows: Iterable[str], foot: str = "") -> str:
    ths = "".join(f'<th scope="col"{cls}>{e(h)}</th>' for h, cls in _cols(head))
    body = "".join(rows)
    tfoot = f"<tfoot>{foot}</tfoot>" if foot else ""
    return (
        f'<div class="wrap"><table><thead><tr>{ths}</tr></thead>{tfoot}'
        f"<tbody>{body}</tbody></table></div>"
    )


def _cols(head: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for h, cls in head:
        yield h, f' class="{cls}"' if cls else ""


def _td(value: str, cls: str = "") -> str:
    return f'<td class="{cls}">{value}</td>' if cls else f"<td>{value}</td>"


class _Report:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.h = _Html()
        self.t0 = run.started
        self.t1 = run.end
        starts = [it.start for it in run.iterations]
        ends = [it.end for it in run.iterations]
        lo = [t for t in (self.t0, *starts) if t is not None]
        hi = [t for t in (self.t1, *ends) if t is not None]
        self.span_lo = min(lo) if lo else None
        self.span_hi = max(hi) if hi else None

    def offset(self, ts: datetime) -> str:
        """``ts`` as time since the start: ``+12.3 s`` in short runs, else ``+m:ss``."""
        base = self.t0 or self.span_lo
        seconds = 0.0 if base is None else (ts - base).total_seconds()
        lo, hi = self.span_lo, self.span_hi
        if lo is not None and hi is not None and (hi - lo).total_seconds() < 100:
            return f"+{seconds:.1f} s"
        return "+" + fmt_offset(seconds)

    # -- page

    def render(self) -> str:
        run, h = self.run, self.h
        status, _ = run.status()
        csp = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src '{_script_hash()}'; base-uri 'none'; form-action 'none'"
        )
        h(
            '<!doctype html>\n<html lang="en" data-js="off"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="referrer" content="no-referrer">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            f"<title>oompa swarm {e(run.swarm_id)} · {e(status)}</title>",
            f"<style>{CSS}</style></head><body><main>",
        )
        self.header()
        self.timeline()
        self.workers()
        self.iterations()
        self.tasks()
        self.usage()
        self.planner()
        self.config()
        generated = datetime.now(timezone.utc)
        h(
            f"<footer>Written by pytest-oompa's report from the artifacts in this folder at "
            f"{e(fmt_ts(generated))}. Times are UTC; offsets count from the swarm's start."
            "</footer></main>",
            '<div id="pop" role="dialog" aria-live="polite" hidden></div>',
            f"<script>{JS}</script></body></html>\n",
        )
        return h.text()

    # -- header

    def header(self) -> None:
        run, h = self.run, self.h
        status, why = run.status()
        h(
            f'<header><h1>Swarm <code>{e(run.swarm_id)}</code> <span class="status st-{e(status)}"'
            f">{e(status)}</span>"
            + (f' <span class="why">{e(why)}</span>' if why else "")
            + '</h1><dl class="facts">'
        )
        config_file = next(
            (
                _str(doc, "config-file")
                for doc in (run.run, run.meta)
                if doc and doc.get("config-file")
            ),
            None,
        )
        facts: list[tuple[str, str]] = [
            ("config", f"<code>{e(config_file)}</code>" if config_file else "unknown"),
            ("started", e(fmt_ts(run.started))),
        ]
        if run.finished is not None:
            facts.append(("finished", e(fmt_ts(run.finished))))
        elif run.last_seen is not None:
            facts.append(("last record", e(fmt_ts(run.last_seen))))
        if run.started is not None and run.end is not None:
            label = "duration" if run.finished is not None else "ran at least"
            facts.append((label, e(fmt_ms((run.end - run.started).total_seconds() * 1000))))
        meta = run.meta or {}
        before, after = _str(meta, "main-before"), _str(meta, "main-after")
        if before or after:
            rng = f"{(before or '?')[:10]}..{(after or '?')[:10]}"
            title = f"{before or '?'}..{after or '?'}"
            facts.append(("main", f'<code title="{e(title)}">{e(rng)}</code>'))
        gate = meta.get("gate")
        if isinstance(gate, dict):
            facts.append(("gate", self.gate_text(gate)))
        elif "gate" in meta:
            facts.append(("gate", "none configured"))
        versions = [
            f"{label} {v}"
            for label, key in (
                ("pytest-oompa", "tool-version"),
                ("Python", "python-version"),
                ("pytest", "pytest-version"),
            )
            if (v := _str(meta, key))
        ]
        harness_versions = meta.get("harness-versions")
        if isinstance(harness_versions, dict):
            versions += [
                f"{k} {v}" for k, v in sorted(harness_versions.items()) if isinstance(v, str)
            ]
        if versions:
            facts.append(("versions", e(", ".join(versions))))
        for dt, dd in facts:
            h(f"<div><dt>{e(dt)}</dt><dd>{dd}</dd></div>")
        h("</dl>")
        self.notices()
        self.totals()
        h(
            '<nav aria-label="Sections"><a href="#timeline">Timeline</a><a href="#workers">Workers'
            '</a><a href="#iterations">Iterations</a><a href="#tasks">Task flow</a>'
            '<a href="#usage">Tokens and cost</a><a href="#planner">Planner</a>'
            '<a href="#config">Config</a></nav></header>'
        )

    @staticmethod
    def gate_text(gate: Mapping[str, Any]) -> str:
        verdict = gate.get("verdict", gate.get("passed", gate.get("status")))
        if isinstance(verdict, bool):
            verdict = "passed" if verdict else "failed"
        text = e(verdict) if isinstance(verdict, (str, int, float)) else "recorded"
        reasons = gate.get("reasons") or gate.get("reason")
        if isinstance(reasons, list):
            reasons = "; ".join(str(r) for r in reasons)
        if isinstance(reasons, str) and reasons:
            text += f' <span class="muted">({e(_clip(reasons, 300))})</span>'
        return f"<b>{text}</b>"

    def notices(self) -> None:
        run, h = self.run, self.h
        _, why = run.status()
        if not run.complete:
            source = "live-summary.json" if run.live is not None else "the iteration files"
            h(
                f'<div class="notice" role="note"><b>Incomplete run.</b> {e(why)}. '
                f"Worker numbers come from {e(source)}; an iteration that was running when the "
                "run stopped left no record.</div>"
            )
        if run.orphan_reviews:
            names = ", ".join(r.rel for r in run.orphan_reviews)
            h(
                '<div class="notice" role="note">Review rounds of iterations that left no '
                f"iteration file (cut off during their review): {e(names)}</div>"
            )
        engine_errors = (run.meta or {}).get("errors")
        if isinstance(engine_errors, list) and engine_errors:
            h('<div class="notice bad" role="alert"><b>The run reported errors:</b><ul>')
            for msg in engine_errors[:50]:
                h(f"<li>{e(_clip(str(msg), 1000))}</li>")
            h("</ul></div>")
        if run.problems:
            h(
                '<div class="notice bad" role="alert"><b>Some files could not be used</b> '
                "(shown as far as they could be read):<ul>"
            )
            for p in run.problems:
                where = f"<code>{e(p.path)}</code>: " if p.path else ""
                h(f"<li>{where}{e(_clip(p.message, 500))}</li>")
            h("</ul></div>")

    def totals(self) -> None:
        run, h = self.run, self.h
        counts = Counter(it.outcome for it in run.iterations)
        configured = sum(
            _int(self.run.worker_config(w), "iterations") or 0 for w in run.worker_ids()
        )
        recorded = len(run.iterations)
        of = f" of {configured}" if configured else ""
        failed = counts["error"] + counts["rejected"]
        items = [
            (f"{recorded}{of}", "iterations recorded"),
            (str(counts["merged"]), "merged"),
            (str(failed), "failed (error or rejected)"),
        ]
        rounds = sum(it.review_rounds for it in run.iterations)
        items.append((str(rounds), "review rounds"))
        cost = _sum_opt(c.cost_usd for _, c in run.all_calls())
        if cost is not None:
            items.append((fmt_cost(cost), "cost"))
        h('<ul class="totals" aria-label="Totals">')
        for value, label in items:
            h(f"<li><b>{e(value)}</b> {e(label)}</li>")
        h("</ul>")

    # -- timeline

    def timeline(self) -> None:
        run, h = self.run, self.h
        h('<section id="timeline" aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>')
        if self.span_lo is None or self.span_hi is None or not run.iterations:
            h(
                '<p class="muted">No iteration has been recorded: there is nothing to draw.</p>'
                "</section>"
            )
            return
        lo, hi = self.span_lo, self.span_hi
        span = max((hi - lo).total_seconds(), 0.001)
        step = _tick_step(span)
        h(
            '<p class="muted">One lane per worker, one bar per iteration (start = end - duration),'
            " coloured and labelled by outcome; dots mark review rounds. Each bar links to its row "
            "below; hover or click it for the details.</p>"
        )
        h('<ul class="legend" aria-label="Legend">')
        counts = Counter(it.outcome for it in run.iterations)
        for outcome, (letter, meaning) in OUTCOMES.items():
            h(
                f'<li title="{e(meaning)}"><span class="o o-{outcome}" aria-hidden="true">'
                f'{letter}</span> {e(outcome)} <span class="muted">{counts[outcome]}</span></li>'
            )
        h(
            '<li><span class="rvk" aria-hidden="true"></span> review approved</li>'
            '<li><span class="rvk v-needs-changes" aria-hidden="true"></span> needs changes</li>'
            '<li><span class="rvk v-rejected" aria-hidden="true"></span> review rejected</li></ul>'
        )
        tick = f"{100 * step / span:.4f}%"
        base = (lo - (self.t0 or lo)).total_seconds()
        h(
            f'<div class="tl" role="group" aria-label="Timeline of iterations" '
            f'style="--tick:{tick}">'
        )
        h('<div class="lane axis" aria-hidden="true"><div class="who muted">time since start</div>')
        h('<div class="track">')
        k = 0
        while k * step <= span + 1e-9:
            left = 100 * k * step / span
            h(f'<span style="left:{left:.3f}%">{e(fmt_tick(base + k * step, step))}</span>')
            k += 1
        h("</div></div>")
        if "planner" in run.role_calls and self.t0 is not None:
            calls = run.role_calls["planner"]
            ms = sum(c.duration_ms or 0 for c in calls)
            left = 100 * (self.t0 - lo).total_seconds() / span
            width = 100 * ms / 1000 / span
            failed = any(c.failure for c in calls)
            outcome = "error" if failed else "done"
            label = f"planner: {'failed' if failed else 'ran'}, {fmt_ms(ms)}"
            h(
                '<div class="lane"><div class="who"><b>planner</b><span>before the workers</span>'
                f'</div><div class="track"><a class="bar o-{outcome}" href="#planner" '
                f'style="left:{left:.3f}%;width:{width:.3f}%" aria-label="{e(label)}" '
                f'title="{e(label)}" data-outcome="planner"><span class="lbl">'
                '<span class="full">planner</span><span class="short">P</span></span></a>'
                "</div></div>"
            )
        for wid in run.worker_ids():
            self.lane(wid, lo, span)
        h("</div></section>")

    def lane(self, wid: str, lo: datetime, span: float) -> None:
        run, h = self.run, self.h
        cfg = run.worker_config(wid)
        its = run.iterations_of(wid)
        model = f"{cfg.get('harness', '?')}:{cfg.get('model', '?')}"
        configured = _int(cfg, "iterations")
        status = self.worker_status(wid)
        ran = f"{len(its)}/{configured}" if configured else f"{len(its)}"
        h(
            f'<div class="lane" data-worker="{e(wid)}"><div class="who" title="{e(model)}">'
            f"<b>{e(wid)}</b><small>{e(status)} · ran {e(ran)}</small><span>{e(model)}</span>"
            '</div><div class="track">'
        )
        for it in its:
            left = 100 * (it.start - lo).total_seconds() / span
            width = 100 * it.duration_ms / 1000 / span
            letter = OUTCOMES.get(it.outcome, ("?", ""))[0]
            label = f"{it.worker} i{it.n}: {it.outcome}, {fmt_ms(it.duration_ms)}"
            if it.task_id:
                label += f", task {it.task_id}"
            if it.review_rounds:
                verdicts = ", ".join(r.verdict for r in it.reviews)
                label += f", {it.review_rounds} review round(s)" + (
                    f": {verdicts}" if verdicts else ""
                )
            h(
                f'<a class="bar o-{e(it.outcome)}" href="#{e(it.anchor)}" '
                f'style="left:{left:.3f}%;width:{width:.3f}%" data-worker="{e(it.worker)}" '
                f'data-iteration="{it.n}" data-outcome="{e(it.outcome)}" aria-label="{e(label)}" '
                f'title="{e(label)}"><span class="lbl"><span class="full">{e(it.outcome)}</span>'
                f'<span class="short" aria-hidden="true">{e(letter)}</span></span>'
            )
            for r in it.reviews:
                if r.timestamp is None or it.duration_ms <= 0:
                    pos = 100.0
                else:
                    pos = 100 * (r.timestamp - it.start).total_seconds() * 1000 / it.duration_ms
                pos = min(max(pos, 4.0), 96.0)
                h(
                    f'<i class="rv v-{e(r.verdict)}" style="left:{pos:.1f}%" '
                    f'data-round="{r.round}" aria-hidden="true"></i>'
                )
            h("</a>")
        missing = (configured or 0) - len(its)
        if run.complete and missing > 0:
            end = max((it.end for it in its), default=lo)
            left = 100 * (end - lo).total_seconds() / span
            place = f"left:{left + 0.6:.3f}%" if left < 82 else "right:0"
            h(f'<span class="nr" style="{place}">{missing} not reached</span>')
        h("</div></div>")

    def worker_status(self, wid: str) -> str:
        """summary.json's final status (``idle: interrupted`` for a worker an interrupted run
        stopped before its last iteration), else the last outcome of a cut-off run."""
        for w in (self.run.summary or {}).get("workers", []):
            if w["id"] == wid:
                stopped = len(self.run.iterations_of(wid)) < w["iterations"]
                if w["status"] == "idle" and stopped and self.run.status()[0] == "interrupted":
                    return "idle: interrupted"
                return str(w["status"])
        live = (self.run.live or {}).get("workers", {}).get(wid)
        if live is not None:
            return f"last: {live['status']}"
        its = self.run.iterations_of(wid)
        if its:
            return f"last: {its[-1].outcome}"
        return "no iteration recorded"

    # -- workers

    def workers(self) -> None:
        run, h = self.run, self.h
        h('<section id="workers" aria-labelledby="h-workers"><h2 id="h-workers">Workers</h2>')
        head = [
            ("Worker", ""),
            ("Harness:model", ""),
            ("Status", ""),
            ("Ran", "n"),
            ("Completed", "n"),
            ("Merges", "n"),
            ("Claims", "n"),
            ("Rejections", "n"),
            ("Errors", "n"),
            ("Recycled", "n"),
            ("Review rounds", "n"),
        ]
        rows = []
        summary_workers = {w["id"]: w for w in (run.summary or {}).get("workers", [])}
        live_workers = (run.live or {}).get("workers", {})
        for wid in run.worker_ids():
            cfg = run.worker_config(wid)
            its = run.iterations_of(wid)
            configured = _int(cfg, "iterations")
            ran = f"{len(its)} of {configured}" if configured else str(len(its))
            model = f"{cfg.get('harness', '?')}:{cfg.get('model', '?')}"
            if wid in summary_workers:
                s = summary_workers[wid]
                values = [s["completed"], s["merges"], s["claims"], s["rejections"], s["errors"]]
                values += [s["recycled"], s["review-rounds-total"]]
                cells = [_td(fmt_int(v), "n") for v in values]
                status = e(self.worker_status(wid))
            else:
                metrics = dict(live_workers.get(wid) or (its[-1].metrics if its else None) or {})
                merges = sum(1 for it in its if it.outcome == "merged")
                claims = len({(it.task_id) for it in its if it.task_id})
                values2: list[int | None] = [merges, merges, claims]
                values2 += [metrics.get(k) for k in ("rejections", "errors", "recycled")]
                values2.append(metrics.get("review-rounds-total"))
                cells = [_td(fmt_int(v), "n") for v in values2]
                cells[2] = _td(f"≥{claims}", "n")
                status = e(self.worker_status(wid)) + ' <span class="muted">(cut off)</span>'
            rows.append(
                f'<tr><th scope="row">{e(wid)}</th>{_td(e(model))}{_td(status)}'
                f"{_td(e(ran), 'n')}{''.join(cells)}</tr>"
            )
        if run.summary is not None:
            s = run.summary
            counts = ", ".join(f"{k} {v}" for k, v in sorted(s["status-counts"].items()))
            foot = (
                f'<tr><td colspan="3">{e(s["total-workers"])} workers: {e(counts)}</td>'
                f'<td class="n">{e(len(run.iterations))} of {e(s["total-iterations"])}</td>'
                f'<td class="n">{e(s["total-completed"])}</td><td colspan="6"></td></tr>'
            )
        else:
            foot = ""
        h(_table(head, rows, foot))
        if run.summary is None:
            h(
                '<p class="muted">From live-summary.json and the iteration files (no summary.json):'
                " completed and merges count merged iterations; claims count the first task of "
                "each iteration, so there may be more.</p>"
            )
        h("</section>")

    # -- iterations

    def iterations(self) -> None:
        run, h = self.run, self.h
        h(
            '<section id="iterations" aria-labelledby="h-iterations"><h2 id="h-iterations">'
            "Iterations</h2>"
        )
        if not run.iterations:
            h('<p class="muted">No iteration files.</p></section>')
            return
        head = [
            ("Iteration", ""),
            ("Outcome", ""),
            ("Start", "n"),
            ("Duration", "n"),
            ("Task", ""),
            ("Recycled", ""),
            ("Reviews", ""),
            ("Tokens in/out", "n"),
            ("Cost", "n"),
            ("Error", ""),
            ("Files", ""),
        ]
        rows = []
        for it in run.iterations:
            tokens_in = _sum_opt(c.input_tokens for c in it.calls or [])
            tokens_out = _sum_opt(c.output_tokens for c in it.calls or [])
            tokens = (
                "—"
                if tokens_in is None and tokens_out is None
                else (f"{fmt_int(tokens_in)} / {fmt_int(tokens_out)}")
            )
            cost = _sum_opt(c.cost_usd for c in it.calls or [])
            error = ""
            if it.error_snippet:
                error = f"<pre>{e(_clip(it.error_snippet, SNIPPET_CHARS, it.rel))}</pre>"
            for c in it.calls or []:
                if c.stderr_tail.strip():
                    tail = c.stderr_tail.strip()[-STDERR_CHARS:]
                    error += f'<div class="muted">{e(c.role)} stderr:</div><pre>{e(tail)}</pre>'
            rows.append(
                f'<tr id="{e(it.anchor)}" data-outcome="{e(it.outcome)}">'
                f'<th scope="row">{e(it.worker)} · i{it.n}</th>'
                f"{_td(outcome_badge(it.outcome))}"
                f"{_td(e(self.offset(it.start)), 'n')}"
                f"{_td(e(fmt_ms(it.duration_ms)), 'n')}"
                f"{_td(e(it.task_id) if it.task_id else '—', 'nw')}"
                f"{_td(e(', '.join(it.recycled)) if it.recycled else '—', 'nw')}"
                f"{_td(self.reviews_cell(it), 'reviews')}"
                f"{_td(e(tokens), 'n')}{_td(e(fmt_cost(cost)), 'n')}"
                f"{_td(error or '—', 'err')}{_td(self.files_cell(it), 'files')}</tr>"
            )
        h(_table(head, rows), "</section>")

    def reviews_cell(self, it: Iteration) -> str:
        if not it.review_rounds and not it.reviews:
            return "—"
        parts = []
        for r in it.reviews:
            output = r.output if r.output is not None else "(no output: the reviewer failed)"
            files = ", ".join(r.diff_files)
            parts.append(
                f'<details><summary><span class="rvk v-{e(r.verdict)}" aria-hidden="true"></span>'
                f" r{r.round}: {e(r.verdict)}</summary>"
                f"<pre>{e(_clip(output, REVIEW_CHARS, r.rel))}</pre>"
                + (f'<div class="muted">diff: {e(_clip(files, 300))}</div>' if files else "")
                + "</details>"
            )
        missing = it.review_rounds - len(it.reviews)
        if missing > 0:
            parts.append(f'<span class="muted">{missing} round(s) without a review file</span>')
        return "".join(parts)

    def files_cell(self, it: Iteration) -> str:
        d = self.run.run_dir
        links = [_link(it.rel, d, "iteration")]
        links += [_link(r.rel, d, f"review r{r.round}") for r in it.reviews]
        if it.calls_rel:
            links.append(_link(it.calls_rel, d, "calls"))
        roles = Counter(c.role for c in it.calls or [])
        seen: Counter[str] = Counter()
        for c in it.calls or []:
            seen[c.role] += 1
            name = f"{c.role} {seen[c.role]}" if roles[c.role] > 1 else c.role
            links.append(_link(c.log, d, f"{name} log"))
            links.append(_link(c.error, d, f"{name} error"))
        return " ".join(x for x in links if x)

    # -- task flow

    def tasks(self) -> None:
        run, h = self.run, self.h
        h('<section id="tasks" aria-labelledby="h-tasks"><h2 id="h-tasks">Task flow</h2>')
        events: dict[str, list[tuple[datetime, str, Iteration]]] = {}
        held: dict[str, str | None] = {}
        for it in sorted(run.iterations, key=lambda i: (i.end, _natural(i.worker), i.n)):
            if it.task_id and held.get(it.worker) != it.task_id:
                events.setdefault(it.task_id, []).append((it.end, "claimed", it))
            held[it.worker] = it.task_id
            if it.outcome == "merged" and it.task_id:
                events.setdefault(it.task_id, []).append((it.end, "completed", it))
                held[it.worker] = None
            for task in it.recycled:
                events.setdefault(task, []).append((it.end, "recycled", it))
                if held.get(it.worker) == task:
                    held[it.worker] = None
        if not events:
            h('<p class="muted">No iteration claimed, completed or recycled a task.</p></section>')
            return
        head = [
            ("Task", ""),
            ("Claimed by", ""),
            ("Completed by", ""),
            ("Recycled by", ""),
            ("Last state", ""),
        ]
        rows = []
        states: Counter[str] = Counter()
        for task in sorted(events, key=_natural):
            evs = events[task]

            def who(kind: str, evs: list[tuple[datetime, str, Iteration]] = evs) -> str:
                found = [
                    f'<a href="#{e(it.anchor)}">{e(it.worker)} i{it.n}</a>'
                    for _, k, it in evs
                    if k == kind
                ]
                return ", ".join(found) or "—"

            last = evs[-1][1]
            state = {"claimed": "held", "completed": "completed", "recycled": "recycled"}[last]
            states[state] += 1
            rows.append(
                f'<tr><th scope="row">{e(task)}</th>{_td(who("claimed"))}{_td(who("completed"))}'
                f"{_td(who('recycled'))}{_td(e(state))}</tr>"
            )
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        h(
            f"<p>{len(events)} task(s) seen: {e(summary)}. An iteration file names the first task "
            "its worker held; other claims show up when their tasks are recycled.</p>"
        )
        h(_table(head, rows), "</section>")

    # -- tokens and cost

    def usage(self) -> None:
        run, h = self.run, self.h
        h('<section id="usage" aria-labelledby="h-usage"><h2 id="h-usage">Tokens and cost</h2>')
        if not any(it.calls is not None for it in run.iterations) and not run.role_calls:
            h(
                '<p class="muted">This run has no <code>calls/</code> records, so tokens and cost '
                "are unknown.</p></section>"
            )
            return
        head = [
            ("Who", ""),
            ("Calls", "n"),
            ("By role", ""),
            ("Input tokens", "n"),
            ("Output tokens", "n"),
            ("Cost (USD)", "n"),
            ("Unreported", "n"),
        ]
        by_who: dict[str, list[Call]] = {}
        for who, call in run.all_calls():
            by_who.setdefault(who, []).append(call)
        order: list[str] = [w for w in ("preflight", "planner") if w in by_who]
        order += [w for w in run.worker_ids() if w in by_who]
        order += sorted(set(by_who) - set(order), key=_natural)
        rows = []
        every: list[Call] = []
        for who in order:
            calls = by_who[who]
            every += calls
            rows.append(f'<tr><th scope="row">{e(who)}</th>{self.usage_cells(calls)}</tr>')
        foot = f"<tr><td>all</td>{self.usage_cells(every)}</tr>"
        h(_table(head, rows, foot))
        h(
            '<p class="muted">As the harnesses reported them; “unreported” counts calls that gave '
            "no token or cost figures.</p></section>"
        )

    @staticmethod
    def usage_cells(calls: list[Call]) -> str:
        roles = Counter(c.role for c in calls)
        by_role = ", ".join(f"{r} {n}" for r, n in sorted(roles.items()))
        unreported = sum(
            1
            for c in calls
            if c.input_tokens is None and c.output_tokens is None and c.cost_usd is None
        )
        return (
            f"{_td(str(len(calls)), 'n')}{_td(e(by_role))}"
            f"{_td(fmt_int(_sum_opt(c.input_tokens for c in calls)), 'n')}"
            f"{_td(fmt_int(_sum_opt(c.output_tokens for c in calls)), 'n')}"
            f"{_td(fmt_cost(_sum_opt(c.cost_usd for c in calls)), 'n')}"
            f"{_td(str(unreported), 'n')}"
        )

    # -- planner

    def planner(self) -> None:
        run, h = self.run, self.h
        h('<section id="planner" aria-labelledby="h-planner"><h2 id="h-planner">Planner</h2>')
        cfg = (run.run or {}).get("planner")
        if run.run is None:
            h(
                '<p class="muted">run.json is missing, so the planner\'s configuration is '
                "unknown.</p>"
            )
        elif cfg is None:
            h("<p>No planner configured.</p>")
        else:
            prompts = ", ".join(cfg["prompts"]) or "none"
            h(
                f"<p>{e(cfg['harness'])}:{e(cfg['model'])}, max pending {e(cfg['max-pending'])},"
                f" prompts: <code>{e(prompts)}</code>.</p>"
            )
        for who in ("planner", "preflight"):
            calls = run.role_calls.get(who)
            if calls is None:
                if who == "planner" and cfg is not None:
                    h(
                        '<p class="muted">No record of the planner\'s call (no calls/planner.json):'
                        " it was skipped, or the run predates run tracking.</p>"
                    )
                continue
            title = "The planner's call" if who == "planner" else "Preflight probes"
            h(f"<h3>{e(title)}</h3>", self.calls_table(calls, f"calls/{who}.json"))
        h("</section>")

    def calls_table(self, calls: list[Call], rel: str) -> str:
        if not calls:
            return f'<p class="muted">{e(rel)} lists no call (skipped).</p>'
        d = self.run.run_dir
        head = [
            ("Role", ""),
            ("Harness:model", ""),
            ("Exit", "n"),
            ("Duration", "n"),
            ("Tokens in/out", "n"),
            ("Cost", "n"),
            ("Failure", ""),
            ("Files", "files"),
        ]
        rows = []
        for c in calls:
            failure = f"<pre>{e(_clip(c.failure, SNIPPET_CHARS))}</pre>" if c.failure else "—"
            links = " ".join(x for x in (_link(c.log, d, "log"), _link(c.error, d, "error")) if x)
            rows.append(
                f"<tr>{_td(e(c.role))}{_td(e(f'{c.harness}:{c.model}'))}"
                f"{_td(fmt_int(c.exit_code), 'n')}{_td(e(fmt_ms(c.duration_ms)), 'n')}"
                f"{_td(e(f'{fmt_int(c.input_tokens)} / {fmt_int(c.output_tokens)}'), 'n')}"
                f"{_td(e(fmt_cost(c.cost_usd)), 'n')}{_td(failure)}"
                f"{_td(links or '—', 'files')}</tr>"
            )
        return _table(head, rows)

    # -- config

    def config(self) -> None:
        run, h = self.run, self.h
        h('<section id="config" aria-labelledby="h-config"><h2 id="h-config">Config</h2>')
        if run.run is None:
            h('<p class="muted">No readable run.json.</p>')
        else:
            head = [
                ("Worker", ""),
                ("Harness", ""),
                ("Model", ""),
                ("Reasoning", ""),
                ("Iterations", "n"),
                ("Can plan", ""),
                ("Prompts", ""),
            ]
            rows = []
            for w in run.run["workers"]:
                reasoning = w.get("reasoning")
                prompts = f"<code>{e(', '.join(w['prompts']))}</code>" if w["prompts"] else "—"
                rows.append(
                    f'<tr><th scope="row">{e(w["id"])}</th>{_td(e(w["harness"]))}'
                    f"{_td(e(w['model']))}{_td(e(reasoning) if reasoning else '—')}"
                    f"{_td(e(w['iterations']), 'n')}{_td('yes' if w['can-plan'] else 'no')}"
                    f"{_td(prompts)}</tr>"
                )
            h(_table(head, rows))
            reviewer = run.run.get("reviewer")
            if reviewer:
                prompts = ", ".join(reviewer["prompts"]) or "none"
                h(
                    f"<p>Reviewer: {e(reviewer['harness'])}:{e(reviewer['model'])}, prompts: "
                    f"<code>{e(prompts)}</code>.</p>"
                )
            else:
                h("<p>No reviewer: merge requests merge without review.</p>")
        meta = run.meta or {}
        snapshot = meta.get("config")
        if isinstance(snapshot, dict):
            text = json.dumps(snapshot, indent=2, ensure_ascii=False)
            h(
                "<details><summary>The config file as it was at the start</summary>"
                f"<pre>{e(_clip(text, PROMPT_CHARS, 'oompa-run.json'))}</pre></details>"
            )
        prompts_map = meta.get("prompts")
        if isinstance(prompts_map, dict):
            for path, text in sorted(prompts_map.items()):
                if isinstance(text, str):
                    h(
                        f"<details><summary>Prompt <code>{e(path)}</code></summary>"
                        f"<pre>{e(_clip(text, PROMPT_CHARS, 'oompa-run.json'))}</pre></details>"
                    )
        h("</section>")


def _sum_opt(values: Iterable[float | int | None]) -> Any:
    """The sum of the known values, or None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _tick_step(span_s: float) -> float:
    """A round step that draws 5 to 12 gridlines across ``span_s`` seconds."""
    steps = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
    for step in steps:
        if span_s / step <= 12:
            return float(step)
    return float(3600 * (int(span_s / 3600 / 12) + 1))


# --------------------------------------------------------------------------- API


def render_report(run_dir: Path, *, now: datetime | None = None) -> str:
    """The report of the run in ``run_dir`` as one HTML document.

    ``now`` (default: the current time) only decides whether a run without summary.json whose
    heartbeat is recent still counts as running.
    """
    return _Report(load_run(Path(run_dir), now=now)).render()


def write_report(run_dir: Path) -> Path:
    """Render the report and write it atomically to ``run_dir/report.html``; return that path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_NAME
    atomic_write_text(path, render_report(run_dir))
    return path


def resolve_run_dir(
    target: str, runs_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``PATH`` when it is an existing folder, else the run ``ID`` in the runs folder
    (``runs_dir``, else env ``OOMPA_RUNS_DIR``, else ``RUNS_DIR``, else ``./runs``)."""
    path = Path(target)
    if path.is_dir():
        return path
    if not _ID_RE.fullmatch(target) or target in (".", ".."):
        raise FileNotFoundError(f"{target}: no such run folder, and not a swarm id")
    folder = runs_dir if runs_dir is not None else default_runs_dir(environ)
    return folder / target


def main(argv: list[str]) -> int:
    """``python -m pytest_oompa report ID|PATH [--runs-dir DIR]``: write the report, print its
    path. Exit status 0, or 2 when there is no such run."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_oompa report",
        description="Write a swarm run's self-contained HTML report (report.html in its folder).",
    )
    parser.add_argument("run", metavar="ID|PATH", help="a swarm id, or the run folder's path")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where run ids are looked up "
        "(default: env OOMPA_RUNS_DIR, else RUNS_DIR, else ./runs)",
    )
    args = parser.parse_args(argv)
    try:
        run_dir = resolve_run_dir(args.run, args.runs_dir)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        markers = ("run.json", "summary.json", "live-summary.json", "iterations", "oompa-run.json")
        if not any((run_dir / m).exists() for m in markers):
            raise FileNotFoundError(
                f"{run_dir}: not a swarm run folder (no run.json, no iterations)"
            )
        path = write_report(run_dir)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
