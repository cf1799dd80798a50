"""Files shared by every run in a runs folder: ``index.json``, ``metrics.jsonl`` and
``metrics-summary.json``.

Two pytest processes may finish at the same moment, so every update takes a file lock
(``runs/.oompa.lock``, cross-process), reads, changes and atomically replaces the file: no
entry is ever lost and a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.runs.artifacts import ArtifactError, read_artifact, utc_now_iso, validate_artifact

LOCK_NAME = ".oompa.lock"


@contextmanager
def runs_lock(runs_dir: Path) -> Iterator[None]:
    runs_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(runs_dir / LOCK_NAME), thread_local=False):
        yield


def _write(path: Path, kind: str, data: dict[str, Any]) -> None:
    validate_artifact(kind, data, where=str(path))
    atomic_write_text(path, dumps_json(data))


def read_index(runs_dir: Path) -> list[dict[str, Any]]:
    path = runs_dir / "index.json"
    if not path.exists():
        return []
    return list(read_artifact(path, "index")["runs"])


def update_index(runs_dir: Path, entry: dict[str, Any]) -> None:
    """Insert or replace the run ``entry['id']``; newest first by start time."""
    path = runs_dir / "index.json"
    with runs_lock(runs_dir):
        try:
            runs = read_index(runs_dir)
        except ArtifactError:
            # Never lose the evidence, never stop recording: keep the bad file aside.
            os.replace(path, path.with_name(f"index.json.corrupt-{int(time.time())}"))
            runs = []
        runs = [r for r in runs if r["id"] != entry["id"]] + [entry]
        runs.sort(key=lambda r: r["started-at"], reverse=True)
        _write(path, "index", {"runs": runs})


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(lines: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(lines)
    durations = [line["duration-s"] for line in lines]
    return {
        "updated-at": utc_now_iso(),
        "runs": n,
        "success-rate": sum(line["status"] == "completed" for line in lines) / n if n else 0.0,
        "mean-duration-s": round(statistics.fmean(durations), 3) if n else 0.0,
        "p95-duration-s": round(_p95(durations), 3) if n else 0.0,
        "merges-per-run": round(sum(line["merges"] for line in lines) / n, 3) if n else 0.0,
        "errors-per-run": round(sum(line["errors"] for line in lines) / n, 3) if n else 0.0,
        "status-counts": dict(Counter(line["status"] for line in lines)),
    }


def read_metrics(runs_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, each line validated; a line that is not valid is skipped, not fatal."""
    path = runs_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
            validate_artifact("metrics-line", line)
        except (ValueError, ArtifactError):
            continue
        lines.append(line)
    return lines


def append_metrics(runs_dir: Path, line: dict[str, Any], *, replace: bool = False) -> None:
    """Add the line of a run that ended; ``replace``: a resumed run's earlier attempt left a
    line already, which this one replaces, so the run counts once."""
    validate_artifact("metrics-line", line)
    with runs_lock(runs_dir):
        path = runs_dir / "metrics.jsonl"
        if replace and path.exists():
            kept = [
                raw
                for raw in path.read_text(encoding="utf-8").splitlines(keepends=True)
                if f'"swarm-id": "{line["swarm-id"]}"' not in raw
            ]
            atomic_write_text(path, "".join(kept))
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        _write(
            runs_dir / "metrics-summary.json", "metrics-summary", summarize(read_metrics(runs_dir))
        )
