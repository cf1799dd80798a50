"""Reading runs back: ``python -m pytest_oompa runs`` and ``python -m pytest_oompa show ID``
(``--watch`` follows a live run: :mod:`pytest_oompa.runs.watch`).

Only the artifacts are read (so runs written by another machine work too), each validated on
read. Both formats are read: ours (oompa 0.7.0's files and our run tracking) and oompa 0.7.3's
event files (``started.json``, ``cycles/``, ``stopped.json``, ``workers/``), so a run written by
upstream oompa itself lists and shows too (read leniently: see :mod:`pytest_oompa.runs.files`).
A run may mix workers of both modes: a worker with iteration files is shown from them (its cycle
files repeat them), any other from its cycle files (:func:`~pytest_oompa.runs.files.
iteration_workers`); a unit is named ``w0-i3`` when it is an iteration, ``w1-c3`` for a cycle.

A run's status, first rule that applies: our recorded final status (``oompa-run.json``);
stopped.json's reason (``error`` reads ``failed``); ``running`` while the heartbeat is fresh;
without a heartbeat, ``running`` while started.json's pid is alive on this machine (unleashd's
rule); ``dead`` when the heartbeat is older than the threshold (30 s by default), or the pid is
gone, and there is no summary.json (the process was killed: ``kill -9``, a lost machine);
``interrupted`` when a summary was written but no final status. A corrupt or invalid file is
reported with its name and reason, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_oompa.runs.artifacts import ArtifactError
from pytest_oompa.runs.events import OPEN_OUTCOMES, pid_alive, run_status, worker_label
from pytest_oompa.runs.files import is_run_folder, iteration_workers, read_any, written_by
from pytest_oompa.runs.watch import DEFAULT_INTERVAL, FolderActivity, Frame, now_rows, watch

Row = tuple[str, ...]
STALE_SECONDS = 30.0
#: Outcomes counted as errors where no summary.json counts them (an iteration's only error
#: outcome is ``error``; a cycle's merge or sync can fail, or it can run out of attempts).
CYCLE_ERRORS = frozenset({"error", "merge-failed", "sync-failed", "stuck"})
RUNS_DIR_ENV = ("OOMPA_RUNS_DIR", "RUNS_DIR")


def runs_dir_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """Env OOMPA_RUNS_DIR, else RUNS_DIR (seed 003), else None."""
    env = os.environ if environ is None else environ
    return next((Path(env[var]) for var in RUNS_DIR_ENV if env.get(var)), None)


def default_runs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the command-line tools look for runs: the environment's, else ./runs."""
    return runs_dir_from_env(environ) or Path("runs")


def in_units(label: str, unit: str) -> str:
    """:func:`~pytest_oompa.runs.events.worker_label`'s words for a worker whose units are
    ``unit`` (``iteration`` or ``cycle``): in 0.7.0 mode the worker state files count
    iterations as cycles, and the label should name them as what they are."""
    return label if unit == "cycle" else re.sub(r"\bcycle\b", unit, label)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class RunInfo:
    id: str
    status: str  # running | completed | failed | interrupted | dead | unknown
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    config_file: str | None = None
    workers: int = 0
    iterations: int = 0
    cycles: int = 0  # cycle files of workers without iteration files (0.7.3 mode, upstream)
    merges: int = 0
    errors: int = 0
    rejections: int = 0
    heartbeat_age_s: float | None = None
    pid: int | None = None  # started.json's: the process that runs the swarm
    problems: list[str] = field(default_factory=list)


class RunFolder:
    """One ``runs/{swarm-id}`` folder; every file read at most once, validated."""

    def __init__(self, runs_dir: Path, swarm_id: str) -> None:
        self.runs_dir = runs_dir
        self.path = runs_dir / swarm_id
        self.id = swarm_id
        self.problems: list[str] = []
        self._cache: dict[str, Any] = {}

    def read(self, rel: str) -> Any:
        """The file's data, or None when it is absent or broken (then noted in problems)."""
        if rel not in self._cache:
            path = self.path / rel
            data = None
            if path.exists():
                try:
                    data = read_any(self.runs_dir, path, lenient=True)
                except (ArtifactError, OSError, UnicodeDecodeError) as exc:
                    self.problems.append(f"corrupt: {exc}")
            self._cache[rel] = data
        return self._cache[rel]

    def iterations(self) -> list[dict[str, Any]]:
        folder = self.path / "iterations"
        found = [self.read(f"iterations/{p.name}") for p in sorted(folder.glob("*.json"))]
        return sorted(
            (i for i in found if i is not None), key=lambda i: (i["worker-id"], i["iteration"])
        )

    def cycles(self) -> list[dict[str, Any]]:
        """oompa 0.7.3's cycle files, by worker and cycle."""
        folder = self.path / "cycles"
        found = [self.read(f"cycles/{p.name}") for p in sorted(folder.glob("*.json"))]
        return sorted(
            (c for c in found if c is not None), key=lambda c: (c["worker-id"], c["cycle"])
        )

    def iteration_workers(self) -> set[str]:
        """Workers shown from their iteration files (the rest from their cycle files)."""
        if "iteration-workers" not in self._cache:
            self._cache["iteration-workers"] = iteration_workers(self.path)
        found: set[str] = self._cache["iteration-workers"]
        return found

    def shown_cycles(self) -> list[dict[str, Any]]:
        """The cycle files of the workers without iteration files (see the module docstring)."""
        skip = self.iteration_workers()
        return [c for c in self.cycles() if c["worker-id"] not in skip]

    def attempts(self, worker_id: str, cycle: int) -> int | None:
        """How many attempts ``calls/{w}-c{N}.json`` records for a cycle (its calls' distinct
        ``attempt`` numbers); None without that file (upstream writes none) or numbers."""
        calls = self.read(f"calls/{worker_id}-c{cycle}.json")
        numbers = {c.get("attempt") for c in (calls or {}).get("calls", [])} - {None}
        return len(numbers) or None

    def written_by(self) -> str | None:
        return written_by(self.path)

    def worker_states(self) -> dict[str, dict[str, Any]]:
        """``workers/{id}.json`` by worker id."""
        folder = self.path / "workers"
        states = {p.stem: self.read(f"workers/{p.name}") for p in sorted(folder.glob("*.json"))}
        return {wid: state for wid, state in states.items() if state is not None}

    def worker_ids(self) -> list[str]:
        """Every worker the run's files name, configured ones first."""
        ids: list[str] = []
        for doc in (self.read("run.json"), self.read("started.json")):
            ids += [w["id"] for w in (doc or {}).get("workers", []) if w["id"] not in ids]
        others = {c["worker-id"] for c in self.cycles()} | set(self.worker_states())
        others |= self.iteration_workers()
        return ids + sorted(others - set(ids))

    def info(
        self,
        stale_after: float = STALE_SECONDS,
        now: datetime | None = None,
        alive: Callable[[object], bool] = pid_alive,
    ) -> RunInfo:
        now = now or datetime.now(timezone.utc)
        meta = self.read("oompa-run.json")
        run = self.read("run.json")
        summary = self.read("summary.json")
        beat = self.read("heartbeat.json")
        started = self.read("started.json")
        stopped = self.read("stopped.json")
        info = RunInfo(id=self.id, status="unknown")
        if meta:
            info.started_at, info.finished_at = meta["started-at"], meta["finished-at"]
            info.config_file = meta["config-file"]
        elif run or started:
            begun = run or started
            info.started_at, info.config_file = begun["started-at"], begun["config-file"]
        if started:
            info.pid = started["pid"]
        if stopped:
            info.finished_at = info.finished_at or stopped["stopped-at"]
        if summary:
            info.finished_at = info.finished_at or summary["finished-at"]
            info.workers = summary["total-workers"]
            for w in summary["workers"]:
                info.merges += w["merges"]
                info.errors += w["errors"]
                info.rejections += w["rejections"]
        if beat:
            info.heartbeat_age_s = (now - _instant(beat["updated-at"])).total_seconds()
        iterations = self.iterations()
        cycles = self.shown_cycles()
        info.iterations, info.cycles = len(iterations), len(cycles)
        if not summary:
            configured = run or started
            info.workers = len(configured["workers"]) if configured else 0
            units = [*iterations, *cycles]
            info.merges = sum(u["outcome"] == "merged" for u in units)
            info.errors = sum(u["outcome"] in CYCLE_ERRORS for u in units)
            info.rejections = sum(u["outcome"] == "rejected" for u in units)
        events = run_status(started, stopped, alive)
        if meta and meta["status"] != "running":
            info.status = meta["status"]
        elif stopped is not None and events:
            info.status = events[0]
        elif info.heartbeat_age_s is not None and info.heartbeat_age_s <= stale_after:
            info.status = "running"
        elif beat is None and events is not None:  # no heartbeat to go by: the pid decides
            info.status = events[0]
        elif summary is None:
            info.status = "dead"
        else:  # summary written, but the process died before recording its final status
            info.status = "interrupted"
        if info.started_at and info.finished_at:
            info.duration_s = round(
                (_instant(info.finished_at) - _instant(info.started_at)).total_seconds(), 1
            )
        elif info.started_at and info.status == "running":
            info.duration_s = round((now - _instant(info.started_at)).total_seconds(), 1)
        info.problems = list(self.problems)
        return info


def list_runs(
    runs_dir: Path, stale_after: float = STALE_SECONDS, alive: Callable[[object], bool] = pid_alive
) -> list[RunInfo]:
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    infos = [RunFolder(runs_dir, p.name).info(stale_after, alive=alive) for p in folders]
    return sorted(infos, key=lambda r: r.started_at or "", reverse=True)


# -- the command line ----------------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m pytest_oompa {prog}")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="the runs folder (default: env OOMPA_RUNS_DIR, else RUNS_DIR, else ./runs)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--stale-after",
        type=float,
        default=STALE_SECONDS,
        help=f"heartbeat age in seconds after which a run is dead (default {STALE_SECONDS:g})",
    )
    return parser


WORKER_COLUMNS = (
    "worker",
    "harness:model",
    "status",
    "completed",
    "merges",
    "claims",
    "rejections",
    "errors",
    "recycled",
    "review rounds",
)


def worker_rows(workers: Iterable[Mapping[str, Any]]) -> list[Row]:
    """oompa's per-worker table, from summary.json's worker entries."""
    rows: list[Row] = [WORKER_COLUMNS]
    for w in workers:
        rows.append(
            (
                w["id"],
                f"{w['harness']}:{w['model']}",
                w["status"],
                str(w["completed"]),
                str(w["merges"]),
                str(w["claims"]),
                str(w["rejections"]),
                str(w["errors"]),
                str(w["recycled"]),
                str(w["review-rounds-total"]),
            )
        )
    return rows


def event_worker_rows(folder: RunFolder, live: bool) -> list[Row]:
    """The per-worker table of a run without summary.json, from its event files: the status by
    unleashd's rules (:func:`~pytest_oompa.runs.events.worker_label`), in the worker's units."""
    configs = {w["id"]: w for w in (folder.read("started.json") or {}).get("workers", [])}
    by_iterations = folder.iteration_workers()
    units = [_unit(i, "iteration") for i in folder.iterations()]
    units += [_unit(c, "cycle") for c in folder.shown_cycles()]
    states = folder.worker_states()
    rows: list[Row] = [("worker", "harness:model", "status", "ran", "merges", "errors")]
    for wid in folder.worker_ids():
        mine = [u for u in units if u["worker-id"] == wid]
        noun = "iteration" if wid in by_iterations else "cycle"
        cfg = configs.get(wid)
        ran = (
            f"{len(mine)} of {plural(cfg['max-cycles'], noun)}" if cfg else plural(len(mine), noun)
        )
        label = worker_label(states.get(wid), mine[-1] if mine else None, live)
        rows.append(
            (
                wid,
                f"{cfg['harness']}:{cfg['model']}" if cfg else "-",
                in_units(label, noun),
                ran,
                str(sum(u["outcome"] == "merged" for u in mine)),
                str(sum(u["outcome"] in CYCLE_ERRORS for u in mine)),
            )
        )
    return rows


def _unit(doc: Mapping[str, Any], noun: str) -> dict[str, Any]:
    """An iteration or cycle file's fields as one shape: ``cycle`` is its number either way
    (what :func:`~pytest_oompa.runs.events.worker_label` reads), ``tasks`` its tasks."""
    n = doc["iteration"] if noun == "iteration" else doc["cycle"]
    tasks = [doc["task-id"]] if doc.get("task-id") else list(doc.get("claimed-task-ids") or [])
    return {
        **doc,
        "cycle": n,
        "noun": noun,
        "key": f"{doc['worker-id']}-{noun[0]}{n}",
        "tasks": tasks,
    }


def unit_rows(folder: RunFolder) -> list[Row]:
    """One row per iteration (``w0-i3``) and per cycle (``w1-c3``) the run shows, by worker;
    a cycle's attempts are counted from its calls record (``-`` without one)."""
    units = [_unit(i, "iteration") for i in folder.iterations()]
    units += [_unit(c, "cycle") for c in folder.shown_cycles()]
    units.sort(key=lambda u: (u["worker-id"], u["cycle"]))
    nouns = sorted({u["noun"] for u in units}, reverse=True)
    rows: list[Row] = [
        ("/".join(nouns), "outcome", "duration", "tasks", "attempts", "review rounds", "error")
    ]
    for u in units:
        snippet = (u.get("error-snippet") or "").splitlines()
        outcome = u["outcome"]
        if u["noun"] == "cycle" and outcome in OPEN_OUTCOMES:
            outcome += " (open)"
        attempts = folder.attempts(u["worker-id"], u["cycle"]) if u["noun"] == "cycle" else None
        rows.append(
            (
                u["key"],
                outcome,
                f"{u['duration-ms'] / 1000:.1f} s",
                ", ".join(u["tasks"]) or "-",
                "-" if attempts is None else str(attempts),
                str(u["review-rounds"]),
                snippet[0][:70] if snippet else "",
            )
        )
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def main_runs(argv: list[str]) -> int:
    args = _parser("runs").parse_args(argv)
    runs_dir = args.runs_dir or default_runs_dir()
    infos = list_runs(runs_dir, args.stale_after)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
    elif not infos:
        print(f"no runs in {runs_dir}")
    else:
        rows: list[Row] = [
            ("id", "status", "started", "duration", "iterations", "cycles", "merges", "errors")
        ]
        for i in infos:
            duration = f"{i.duration_s:g} s" if i.duration_s is not None else "-"
            rows.append(
                (
                    i.id,
                    i.status,
                    i.started_at or "-",
                    duration,
                    str(i.iterations),
                    str(i.cycles),
                    str(i.merges),
                    str(i.errors),
                )
            )
        print(format_table(rows))
        for i in infos:
            for problem in i.problems:
                print(f"{i.id}: {problem}", file=sys.stderr)
    return 1 if any(i.problems for i in infos) else 0


WATCH_HELP = (
    "follow a run that another process is running: show it again every --interval seconds, "
    "with what each worker is doing now, until the run ends; on a terminal the screen is "
    "redrawn, elsewhere a view is printed (under a line with the time) only when it changed; "
    "Ctrl-C ends it with exit status 130. Not with --json: a script polls --json at its own "
    "pace and gets one whole document each time"
)


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--watch`` and ``--interval``, for ``show`` and ``oompa view``."""
    parser.add_argument("--watch", action="store_true", help=WATCH_HELP)
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds between two looks with --watch (default {DEFAULT_INTERVAL:g})",
    )


def _show_parser() -> argparse.ArgumentParser:
    parser = _parser("show")
    parser.add_argument("run", help="a swarm id in the runs folder, or the path of a run folder")
    add_watch_arguments(parser)
    return parser


def watch_problem(watch: bool, as_json: bool, interval: float | None) -> str | None:
    """What is wrong with these ``--watch`` options, or None. ``--json`` with ``--watch`` is
    refused rather than printed once per change: a script that follows a run polls ``show
    --json`` at its own pace and gets one whole document each time."""
    if interval is not None and not watch:
        return "--interval goes with --watch"
    if watch and as_json:
        return "--watch draws for people; a script polls 'show --json' instead"
    if interval is not None and not (interval > 0 and math.isfinite(interval)):
        return f"--interval must be a positive number of seconds, not {interval!r}"
    return None


def show_text(folder: RunFolder, info: RunInfo, now: Sequence[Row] = ()) -> str:
    """``show``'s view of a run; ``now`` (the rows of a "now" table, for ``--watch``) goes
    between the worker table and the units."""
    summary = folder.read("summary.json")
    live = folder.read("live-summary.json")
    duration = f"{info.duration_s:g} s" if info.duration_s is not None else "-"
    pid = f", pid {info.pid}" if info.pid is not None else ""
    parts = [
        f"swarm {info.id}: {info.status}, started {info.started_at or '-'}, {duration}\n"
        f"config: {info.config_file or 'unknown'}{pid}\n"
        f"written by: {folder.written_by() or 'unknown'}"
    ]
    if summary:
        parts.append(format_table(worker_rows(summary["workers"])))
    elif live:
        by_iterations = folder.iteration_workers()
        rows: list[Row] = [("worker", "last", "last outcome", "merges", "errors")]
        for wid, w in sorted(live["workers"].items()):
            unit = f"i{w['iteration']}" if wid in by_iterations else f"c{w['iteration']}"
            rows.append((wid, unit, w["status"], str(w["merges"]), str(w["errors"])))
        parts.append("(live)\n" + format_table(rows))
    elif folder.read("started.json") or folder.cycles() or folder.worker_states():
        parts.append(format_table(event_worker_rows(folder, live=info.status == "running")))
    if len(now) > 1:
        parts.append(format_table(now))
    units = unit_rows(folder)
    if len(units) > 1:
        parts.append(format_table(units))
    return "\n\n".join(parts)


def _watch_frame(
    runs_dir: Path, swarm_id: str, stale_after: float, activity: FolderActivity
) -> Frame:
    """One look at the run for ``--watch``: every file read anew."""
    folder = RunFolder(runs_dir, swarm_id)
    clock = datetime.now(timezone.utc)
    info = folder.info(stale_after, now=clock)
    running = info.status == "running"
    workers = activity.workers(folder.worker_ids()) if running else []
    text = show_text(folder, info, now_rows(workers, clock))
    # the key leaves out what moves by itself: a live run's duration and the elapsed times
    still = replace(info, duration_s=None) if running else info
    key = show_text(folder, still, now_rows(workers, clock, clocks=False))
    problems = "".join(f"\n{problem}" for problem in folder.problems)
    return Frame(text + problems, key + problems, done=not running, status=int(bool(problems)))


def main_show(argv: list[str]) -> int:
    parser = _show_parser()
    args = parser.parse_args(argv)
    problem = watch_problem(args.watch, args.json, args.interval)
    if problem:
        parser.error(problem)
    candidate = Path(args.run)
    if is_run_folder(candidate):
        runs_dir, swarm_id = candidate.resolve().parent, candidate.resolve().name
    else:
        runs_dir, swarm_id = args.runs_dir or default_runs_dir(), args.run
    if not (runs_dir / swarm_id).is_dir():
        print(f"no run {swarm_id!r} in {runs_dir}", file=sys.stderr)
        return 2
    if args.watch:
        activity = FolderActivity(runs_dir / swarm_id)
        return watch(
            lambda: _watch_frame(runs_dir, swarm_id, args.stale_after, activity),
            interval=DEFAULT_INTERVAL if args.interval is None else args.interval,
        )
    folder = RunFolder(runs_dir, swarm_id)
    info = folder.info(args.stale_after)
    if args.json:
        print(
            json.dumps(
                {
                    "run": asdict(info),
                    "written-by": folder.written_by(),
                    "summary": folder.read("summary.json"),
                    "live-summary": folder.read("live-summary.json"),
                    "iterations": folder.iterations(),
                    "started": folder.read("started.json"),
                    "stopped": folder.read("stopped.json"),
                    "cycles": folder.cycles(),
                    "worker-states": folder.worker_states(),
                },
                indent=2,
            )
        )
        return 1 if folder.problems else 0
    print(show_text(folder, info))
    for problem in folder.problems:
        print(problem, file=sys.stderr)
    return 1 if folder.problems else 0
