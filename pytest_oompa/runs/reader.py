"""Reading runs back: ``python -m pytest_oompa runs`` and ``python -m pytest_oompa show ID``.

Only the artifacts are read (so runs written by another machine work too), each validated on
read. A run is ``running`` while its heartbeat is fresh, ``dead`` when the heartbeat is older
than the threshold (30 s by default) and there is no summary.json (the process was killed:
``kill -9``, a lost machine), and otherwise has its recorded final status. A corrupt or invalid
file is reported with its name and reason, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_oompa.runs.artifacts import ArtifactError
from pytest_oompa.runs.files import read_any

Row = tuple[str, ...]
STALE_SECONDS = 30.0
RUNS_DIR_ENV = ("OOMPA_RUNS_DIR", "RUNS_DIR")


def runs_dir_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """Env OOMPA_RUNS_DIR, else RUNS_DIR (seed 003), else None."""
    env = os.environ if environ is None else environ
    return next((Path(env[var]) for var in RUNS_DIR_ENV if env.get(var)), None)


def default_runs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the command-line tools look for runs: the environment's, else ./runs."""
    return runs_dir_from_env(environ) or Path("runs")


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
    merges: int = 0
    errors: int = 0
    rejections: int = 0
    heartbeat_age_s: float | None = None
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
                    data = read_any(self.runs_dir, path)
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

    def info(self, stale_after: float = STALE_SECONDS, now: datetime | None = None) -> RunInfo:
        now = now or datetime.now(timezone.utc)
        meta = self.read("oompa-run.json")
        run = self.read("run.json")
        summary = self.read("summary.json")
        beat = self.read("heartbeat.json")
        info = RunInfo(id=self.id, status="unknown")
        if meta:
            info.started_at, info.finished_at = meta["started-at"], meta["finished-at"]
            info.config_file = meta["config-file"]
        elif run:
            info.started_at, info.config_file = run["started-at"], run["config-file"]
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
        info.iterations = len(iterations)
        if not summary:
            info.workers = len(run["workers"]) if run else 0
            info.merges = sum(i["outcome"] == "merged" for i in iterations)
            info.errors = sum(i["outcome"] == "error" for i in iterations)
            info.rejections = sum(i["outcome"] == "rejected" for i in iterations)
        if meta and meta["status"] != "running":
            info.status = meta["status"]
        elif info.heartbeat_age_s is not None and info.heartbeat_age_s <= stale_after:
            info.status = "running"
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


def list_runs(runs_dir: Path, stale_after: float = STALE_SECONDS) -> list[RunInfo]:
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    infos = [RunFolder(runs_dir, p.name).info(stale_after) for p in folders]
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
            ("id", "status", "started", "duration", "iterations", "merges", "errors")
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
                    str(i.merges),
                    str(i.errors),
                )
            )
        print(format_table(rows))
        for i in infos:
            for problem in i.problems:
                print(f"{i.id}: {problem}", file=sys.stderr)
    return 1 if any(i.problems for i in infos) else 0


def main_show(argv: list[str]) -> int:
    parser = _parser("show")
    parser.add_argument("run", help="a swarm id in the runs folder, or the path of a run folder")
    args = parser.parse_args(argv)
    candidate = Path(args.run)
    is_run_folder = (candidate / "run.json").exists() or (candidate / "oompa-run.json").exists()
    if candidate.is_dir() and is_run_folder:
        runs_dir, swarm_id = candidate.resolve().parent, candidate.resolve().name
    else:
        runs_dir, swarm_id = args.runs_dir or default_runs_dir(), args.run
    if not (runs_dir / swarm_id).is_dir():
        print(f"no run {swarm_id!r} in {runs_dir}", file=sys.stderr)
        return 2
    folder = RunFolder(runs_dir, swarm_id)
    info = folder.info(args.stale_after)
    summary = folder.read("summary.json")
    live = folder.read("live-summary.json")
    iterations = folder.iterations()
    if args.json:
        print(
            json.dumps(
                {
                    "run": asdict(info),
                    "summary": summary,
                    "live-summary": live,
                    "iterations": iterations,
                },
                indent=2,
            )
        )
        return 1 if folder.problems else 0
    duration = f"{info.duration_s:g} s" if info.duration_s is not None else "-"
    print(f"swarm {info.id}: {info.status}, started {info.started_at or '-'}, {duration}")
    print(f"config: {info.config_file or '-'}")
    if summary:
        rows = worker_rows(summary["workers"])
        print("\n" + format_table(rows))
    elif live:
        rows = [("worker", "iteration", "last outcome", "merges", "errors")]
        for wid, w in sorted(live["workers"].items()):
            rows.append((wid, str(w["iteration"]), w["status"], str(w["merges"]), str(w["errors"])))
        print("\n(live)\n" + format_table(rows))
    if iterations:
        rows = [("iteration", "outcome", "duration", "task", "review rounds", "error")]
        for i in iterations:
            snippet = (i.get("error-snippet") or "").splitlines()
            rows.append(
                (
                    f"{i['worker-id']}-i{i['iteration']}",
                    i["outcome"],
                    f"{i['duration-ms'] / 1000:.1f} s",
                    i.get("task-id") or "-",
                    str(i["review-rounds"]),
                    snippet[0][:70] if snippet else "",
                )
            )
        print("\n" + format_table(rows))
    for problem in folder.problems:
        print(problem, file=sys.stderr)
    return 1 if folder.problems else 0
