"""Which schema each file under ``runs/`` follows, and reading them back validated.

One table for the whole folder, so the reader, the report, the fixtures and the tests agree on
what every file is. A run folder may hold oompa 0.7.0's files, oompa 0.7.3's event files, or
both; ``reviews/`` holds either shape, told apart by the file name (``-i{N}-`` or ``-c{N}-``).

Files written by upstream oompa are read *leniently*: its writer adds fields its own schemas
forbid (:data:`UPSTREAM_EXTRAS`), which are dropped before validation so that a user of upstream
can read their runs. Everything else is still validated; :func:`check_tree`, which the tests use
on what we write, is strict.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_oompa.core.atomic import is_leftover
from pytest_oompa.runs.artifacts import ArtifactError, read_artifact, validate_artifact

# relative path inside runs/{swarm-id}/ -> kind; a folder entry covers its *.json files
_RUN_FILES = {
    "run.json": "run",
    "live-summary.json": "live-summary",
    "summary.json": "summary",
    "oompa-run.json": "oompa-run",
    "heartbeat.json": "heartbeat",
    "started.json": "started",
    "stopped.json": "stopped",
}
_RUN_FOLDERS = {
    "iterations": "iteration",
    "reviews": "review",
    "calls": "calls",
    "errors": "error",
    "cycles": "cycle",
    "workers": "worker-state",
    "resume": "worker-resume",
}
#: iterations/{worker-id}-i{N}.json and cycles/{worker-id}-c{N}.json
ITERATION_NAME = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-i(?P<n>[0-9]+)\.json")
CYCLE_NAME = re.compile(r"(?P<w>[A-Za-z0-9._-]+)-c(?P<n>[0-9]+)\.json")
# reviews/{worker-id}-c{N}-r{R}.json is 0.7.3's review; every other review file is 0.7.0's
_CYCLE_REVIEW = re.compile(r".+-c[0-9]+-r[0-9]+\.json")
#: Fields upstream oompa 0.7.3's writer adds that its schemas forbid, per kind: dropped when a
#: run is read leniently (the reader and the report), never written by us.
UPSTREAM_EXTRAS: dict[str, frozenset[str]] = {
    "cycle": frozenset({"session-id", "worktree-path", "signals", "merge-sha", "attempt"}),
}
#: Any of these in a folder makes it a run folder (of either format).
RUN_MARKERS = (
    "run.json",
    "oompa-run.json",
    "summary.json",
    "live-summary.json",
    "iterations",
    "started.json",
    "stopped.json",
    "cycles",
)
# relative path inside runs/ -> kind
_RUNS_FILES = {"index.json": "index", "metrics-summary.json": "metrics-summary"}
# files with one JSON document per line
_LINE_FILES = {"metrics.jsonl": "metrics-line"}
_LINE_FOLDERS = {"commands": "command-event"}
# our own files that are not artifacts: the lock of the runs folder, the HTML report
# .resume-token: 32 random bytes, whose hash oompa-run.json keeps (runs/resume.py)
IGNORED = {".oompa.lock", "report.html", ".resume-token"}
# folders of a run kept verbatim, not ours to validate: stray/ holds what an agent wrote
# outside its worktree, moved there by the engine (engine/guard.py); diffs/ the patch each
# merge brought into main, as git printed it (runs/recorder.py)
VERBATIM_FOLDERS = {"stray", "diffs"}


def kind_for(relpath: str) -> tuple[str, bool] | None:
    """(kind, one document per line) for a path relative to the runs folder; None when the
    file is not one of ours."""
    parts = PurePosixPath(relpath).parts
    if len(parts) == 1:
        name = parts[0]
        if name in _RUNS_FILES:
            return _RUNS_FILES[name], False
        if name in _LINE_FILES:
            return _LINE_FILES[name], True
        return None
    inside = parts[1:]
    if len(inside) == 1 and inside[0] in _RUN_FILES:
        return _RUN_FILES[inside[0]], False
    if len(inside) == 2:
        folder, name = inside
        if folder == "reviews" and _CYCLE_REVIEW.fullmatch(name):
            return "cycle-review", False
        if folder in _RUN_FOLDERS and name.endswith(".json"):
            return _RUN_FOLDERS[folder], False
        if folder in _LINE_FOLDERS and name.endswith(".ndjson"):
            return _LINE_FOLDERS[folder], True
    return None


def read_lines(path: Path, kind: str) -> list[dict[str, Any]]:
    """An NDJSON file, every line validated; the first bad line raises ArtifactError."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except ValueError as exc:
                message = f"{where}: not valid JSON ({exc})"
                raise ArtifactError(message, kind=kind, where=where) from None
            validate_artifact(kind, data, where=where)
            out.append(data)
    return out


def read_lenient(path: Path, kind: str) -> dict[str, Any]:
    """One document validated against its schema, after dropping the fields upstream's writer
    adds to that kind (:data:`UPSTREAM_EXTRAS`)."""
    return read_artifact(path, kind, ignore=UPSTREAM_EXTRAS.get(kind, frozenset()))


def read_any(runs_dir: Path, path: Path, *, lenient: bool = False) -> Any:
    """Read one file under ``runs_dir`` validated against its schema (its lines, for NDJSON);
    ``lenient``: as :func:`read_lenient` (for runs upstream oompa wrote)."""
    rel = path.relative_to(runs_dir).as_posix()
    parts = PurePosixPath(rel).parts
    if len(parts) > 2 and parts[1] in VERBATIM_FOLDERS:  # kept as it was: its text, unchecked
        return path.read_text(encoding="utf-8", errors="replace")
    found = kind_for(rel)
    if found is None:
        raise ArtifactError(f"{path}: not a pytest-oompa run file", where=str(path))
    kind, per_line = found
    if per_line:
        return read_lines(path, kind)
    return read_lenient(path, kind) if lenient else read_artifact(path, kind)


def iteration_workers(run_dir: Path) -> set[str]:
    """The workers of a run that have iteration files (by their names, readable or not).

    Such a worker ran in 0.7.0 mode and is shown from its iteration files: its cycle files
    repeat them (an iteration is a cycle of one attempt). Every other worker (0.7.3 mode, or a
    run upstream oompa 0.7.3 wrote) is shown from its cycle files. Going by worker rather than by
    run lets one run mix workers of both modes.
    """
    folder = run_dir / "iterations"
    if not folder.is_dir():
        return set()
    return {m["w"] for p in folder.glob("*.json") if (m := ITERATION_NAME.fullmatch(p.name))}


def written_by(run_dir: Path) -> str | None:
    """Which program wrote the run folder, as far as its files tell; None when they do not.

    Only pytest-oompa writes ``oompa-run.json``, and only it writes both ``run.json`` (which
    upstream oompa 0.7.3 dropped) and ``started.json`` (which upstream oompa 0.7.0 did not have
    yet); ``run.json`` alone is the 0.7.0 format, which either may have written.
    """

    def has(name: str) -> bool:
        return (run_dir / name).exists()

    if has("oompa-run.json") or (has("run.json") and has("started.json")):
        return "pytest-oompa"
    if has("run.json") or has("iterations"):
        return "oompa 0.7.0's format (oompa 0.7.0 or pytest-oompa)"
    if has("started.json") or has("cycles") or has("stopped.json"):
        return "oompa 0.7.3"
    return None


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder of either format (one of :data:`RUN_MARKERS` in it)."""
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def check_run(run_dir: Path) -> list[str]:
    """What does not validate in one run folder (check_tree's rules, for that run only)."""
    runs_dir = run_dir.parent
    problems: list[str] = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        parts = path.relative_to(runs_dir).parts
        if path.name in IGNORED or is_leftover(path.name):
            continue
        if len(parts) > 2 and parts[1] in VERBATIM_FOLDERS:
            continue
        try:
            read_any(runs_dir, path)
        except (ArtifactError, OSError, UnicodeDecodeError) as exc:
            problems.append(str(exc))
    return problems


def check_tree(runs_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Read and validate every file under ``runs_dir``: (data by relative path, problems).
    A file that is not one of ours is a problem too: nothing unaccounted-for lands there."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    for path in sorted(p for p in runs_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(runs_dir).as_posix()
        if path.name in IGNORED or is_leftover(path.name):  # (kill -9 mid-write)
            continue
        if (
            len(path.relative_to(runs_dir).parts) > 2
            and path.relative_to(runs_dir).parts[1] in VERBATIM_FOLDERS
        ):
            continue
        try:
            found[rel] = read_any(runs_dir, path)
        except (ArtifactError, OSError, UnicodeDecodeError) as exc:
            problems.append(str(exc))
    return found, problems
