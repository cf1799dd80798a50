"""Comparing runs: a run folder's artifacts with what varies between two runs set aside.

A recorded run and its replay did the same thing when ``comparable_artifacts`` of their run
folders are equal: timestamps, durations and pids dropped or masked, the swarm id, the given
paths, commit hashes and session ids masked, command logs reduced to their output and exit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .matching import TASK_STATUS, TASK_STATUS_MASK, TIMESTAMP, UUID, path_variants

_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_UUID_RE = re.compile(UUID)
_SES = re.compile(r"\bses_[0-9A-Za-z]{26}\b")
# An id cut short at the end of a text: an error snippet is the head of a call's output cut to
# a fixed length, and a stream's first event (claude's and gemini's init) carries the session id.
_CUT_ID = re.compile(r"\b(?:[0-9a-f]{8}-[0-9a-f-]{0,27}|ses_[0-9A-Za-z]{0,25})\Z")
#: Fields that measure time or the process, not what the run did.
VOLATILE_KEYS = frozenset(
    {"duration-ms", "pid", "t", "updated-at", "interval-s", "resume-token-sha256"}
)
#: Files of a run folder that say how the run went, not what it did.
VOLATILE_FILES = frozenset({"heartbeat.json", "report.html", "live-summary.json"})


def comparable_artifacts(
    run_dir: Path | str, paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Every artifact of a run folder, validated on read, with what varies between a run and
    its replay normalized: timestamps, durations and pids dropped or masked, the swarm id,
    the given ``paths`` (path -> placeholder), commit hashes and session ids masked, the
    queue counts of a prompt's task status masked (workers that start at once see the queue
    in whatever order they were scheduled), command logs reduced to their start, their whole
    stdout and stderr, and their exit. Two runs whose results are equal did the same thing."""
    from pytest_oompa.runs.files import read_any

    run = Path(run_dir)
    swaps = {run.name: "<swarm>"}
    for where, label in (paths or {}).items():
        for variant in path_variants(str(where)):
            swaps[variant] = label
    order = sorted(swaps, key=len, reverse=True)

    def text(s: str) -> str:
        for old in order:
            s = s.replace(old, swaps[old])
        s = TIMESTAMP.sub("<timestamp>", s)
        s = TASK_STATUS.sub(TASK_STATUS_MASK, s)
        s = _SHA.sub("<sha>", s)
        s = _UUID_RE.sub("<uuid>", s)
        s = _SES.sub("<session>", s)
        return _CUT_ID.sub("<id>", s)

    def norm(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {text(k): norm(v, k) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            if key == "argv" and items and isinstance(items[0], str):
                items[0] = os.path.basename(items[0])
            return items
        return text(value) if isinstance(value, str) else value

    out: dict[str, Any] = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run).as_posix()
        if path.name in VOLATILE_FILES or path.name.startswith("."):
            continue
        if rel.startswith("diffs/"):  # a merged patch, verbatim: its text, masked
            out[rel] = text(path.read_text(encoding="utf-8", errors="replace"))
            continue
        data = read_any(run.parent, path)
        if rel.startswith("commands/"):
            data = _command_log(data)
        if rel == "calls/preflight.json":  # probes run at once: listed as they finish
            data = {**data, "calls": sorted(data["calls"], key=lambda c: c["name"])}
        out[rel] = norm(data)
    return out


def _command_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A command log without its chunking: how pipes split the output is not the run's."""
    streams: dict[str, str] = {"stdout": "", "stderr": ""}
    other = []
    for e in events:
        if e.get("event") == "output":
            stream = str(e.get("stream"))
            streams[stream] = streams.get(stream, "") + str(e.get("data", ""))
        else:
            other.append(e)
    return {"events": other, **streams}
