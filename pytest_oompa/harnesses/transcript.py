"""What an agent did in one call, the same for every CLI: ``transcript(harness, stdout)`` reads a
call's stdout with its registry entry's ``transcript`` reader into a list of ``Entry`` (the
agent's messages, its tool calls with their input, the tools' results, errors), and
``from_command_log(path)`` does it for a call's log, ``runs/{id}/commands/{name}.ndjson``.

For the report, which shows every iteration's transcript: it must render whatever a run left,
so nothing here raises. Lines that are not the CLI's events (a cut log, a CLI's stray output)
are skipped; a harness the registry does not know is read as plain text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_oompa.harnesses.output import Entry, text_transcript
from pytest_oompa.harnesses.registry import HarnessRegistry, UnknownHarness

__all__ = ["Entry", "from_command_log", "transcript"]

_DEFAULT = HarnessRegistry()


def transcript(
    harness: str,
    stdout: str,
    *,
    registry: HarnessRegistry | None = None,
    cwd: str | None = None,
) -> list[Entry]:
    """The entries of one call's stdout. ``cwd`` (the call's working directory), when given,
    is dropped from the paths in tool summaries: ``Write src/app.py``, not the worktree's
    absolute path."""
    try:
        reader = (registry or _DEFAULT).get(harness).transcript
    except UnknownHarness:
        reader = text_transcript
    try:
        entries = list(reader(stdout))
    except Exception as exc:  # a plugin's reader: its failure must not lose the report
        return [Entry("error", f"the {harness} transcript could not be read: {exc!r}")]
    if cwd:
        prefix = cwd.rstrip("/") + "/"
        entries = [
            Entry(e.kind, e.text.replace(prefix, ""), e.tool, e.input) if e.kind == "tool" else e
            for e in entries
        ]
    return entries


def from_command_log(
    path: Path, *, registry: HarnessRegistry | None = None
) -> tuple[str, list[Entry]]:
    """(harness, entries) of the call a command log records; ("", []) for a log that cannot
    be read. A log cut in the middle (its ``truncated`` event) reads as the entries before the
    cut, an error saying how much is missing, and the entries after it."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "", []
    harness, cwd = "", None
    segments: list[list[str]] = [[]]
    omitted: list[int] = []
    failure = None
    for line in lines:
        event = _event(line)
        kind = event.get("event")
        if kind == "start":
            harness = str(event["harness"]) if isinstance(event.get("harness"), str) else ""
            cwd = str(event["cwd"]) if isinstance(event.get("cwd"), str) else None
        elif kind == "output" and event.get("stream") == "stdout":
            data = event.get("data")
            segments[-1].append(data if isinstance(data, str) else "")
        elif kind == "truncated":
            size = event.get("omitted-bytes")
            omitted.append(size if isinstance(size, int) else 0)
            segments.append([])
        elif kind == "exit" and isinstance(event.get("failure"), str):
            failure = event["failure"]
    entries: list[Entry] = []
    for n, segment in enumerate(segments):
        if n:
            entries.append(Entry("error", f"[{omitted[n - 1]} bytes of output omitted]"))
        entries += transcript(harness, "".join(segment), registry=registry, cwd=cwd)
    if failure:
        entries.append(Entry("error", failure))
    return harness, entries


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}
