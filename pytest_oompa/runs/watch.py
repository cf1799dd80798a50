"""``show --watch``: following a run that another process is running, from its files alone.

Two parts. :class:`FolderActivity` says what each worker of a live run is doing now, as the
files it keeps writing tell it: ``workers/{id}.json`` (running, cycle N), the file that closes
the unit (``iterations/{w}-i{N}.json``, or ``cycles/{w}-c{N}.json`` with a closed outcome) and
the command logs ``commands/{w}-{i|c}{N}-{role}-{k}.ndjson``, whose ``start`` event names the
role: a start with no ``exit`` after it is a call in progress. A log grows to megabytes while an
agent works and the watcher looks every two seconds, so each log is read incrementally: only
the bytes appended since the last look.

:func:`watch` is the loop. It asks its caller for a :class:`Frame` (the view, and whether the run
has ended), redraws the screen on a terminal, and elsewhere prints a view only when it changed,
each under a line with the time, so that a CI log of ``show --watch`` is not a wall of repeats.
"Changed" compares the frame's ``key``: the view without its clocks, which move at every look.
The view itself is built by :func:`pytest_oompa.runs.reader.main_show`, which imports this module
(never the other way round).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from pytest_oompa.runs.events import OPEN_OUTCOMES

__all__ = [
    "CLEAR_SCREEN",
    "DEFAULT_INTERVAL",
    "INTERRUPTED",
    "FolderActivity",
    "Frame",
    "WorkerNow",
    "elapsed",
    "now_rows",
    "watch",
]

DEFAULT_INTERVAL = 2.0
#: The exit status of a watch ended with Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Cursor home, then erase the screen: a redraw without curses.
CLEAR_SCREEN = "\x1b[H\x1b[2J"
NOW_COLUMNS = ("worker", "unit", "now", "for")
# commands/{worker}-{i|c}{N}-{role}-{k}.ndjson (engine/worker.py's call names); planner-1.ndjson
_CALL_LOG = re.compile(r"(?P<w>.+)-(?P<u>[ic])(?P<n>[0-9]+)-(?P<role>[a-z]+)-(?P<k>[0-9]+)")
_PLANNER_LOG = re.compile(r"planner-(?P<k>[0-9]+)")
# CommandLog writes ``{"t": ..., "event": ...}`` first on every line: an output line (nearly all
# of a log's bytes) is told by its first bytes, without parsing its data.
_OUTPUT_MARK = b'"event": "output"'


def _instant(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


def _json(path: Path) -> dict[str, Any] | None:
    """A file's JSON object, or None: absent, half-written or broken files are the reader's
    to report (``show`` names them); here they only mean "nothing to tell yet"."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return None


def elapsed(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


# -- one command log, read as it grows -----------------------------------------------------------


@dataclass
class _CallLog:
    """What a command log says so far about its newest attempt."""

    offset: int = 0  # bytes read: up to the last complete line
    role: str | None = None
    started: datetime | None = None
    ended: datetime | None = None  # None while the newest attempt runs
    exit_code: int | None = None
    failure: str | None = None
    attempts: int = 0  # the caller retries an infrastructure failure in the same log

    def read(self, path: Path, size: int) -> None:
        """Take in what was appended to the log up to ``size`` bytes."""
        if size <= self.offset:
            return
        try:
            with path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(size - self.offset)
        except OSError:
            return
        complete = chunk.rfind(b"\n") + 1  # a line being written is read at the next look
        for line in chunk[:complete].splitlines():
            if line.strip() and _OUTPUT_MARK not in line[:64]:
                self._event(line)
        self.offset += complete

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("event") == "start":
            self.role = str(event.get("role") or self.role or "call")
            self.started = _instant(event.get("t"))
            self.ended, self.exit_code, self.failure = None, None, None
            self.attempts += 1
        elif event.get("event") == "exit":
            self.ended = _instant(event.get("t"))
            code, failure = event.get("exit-code"), event.get("failure")
            self.exit_code = code if isinstance(code, int) else None
            self.failure = failure if isinstance(failure, str) else None


def _phase(role: str | None, k: int) -> str:
    """The words for a call, those of the live terminal view (:mod:`pytest_oompa.engine.
    activity`): the worker's own call is "agent", the reviewer's "review round k" (its k-th
    call in the unit is its k-th round)."""
    if role == "worker":
        return "agent"
    if role == "reviewer":
        return f"review round {k}"
    if role == "fix":
        return f"fix {k}"
    if role == "sync":  # the agent resolving a conflict that syncing with main left
        return "resolving conflict" if k == 1 else f"resolving conflict {k}"
    return role or "call"


# -- what each worker does now -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerNow:
    """One worker's state as its files tell it; ``since`` is when it entered that state."""

    worker: str
    unit: str  # "c3", "i2"; "-" before the first unit or when the files name none
    doing: str
    since: datetime | None = None


@dataclass(frozen=True)
class _Call:
    unit: str
    number: int
    role: str
    k: int
    path: Path


class FolderActivity:
    """Reads what each worker of a run is doing now; one per watch (it keeps its place in
    every command log it has read)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._logs: dict[Path, _CallLog] = {}

    def _log(self, path: Path) -> _CallLog:
        log = self._logs.get(path)
        try:
            size = path.stat().st_size
        except OSError:
            return log or _CallLog()
        if log is None or size < log.offset:  # new, or replaced rather than appended to
            log = self._logs[path] = _CallLog()
        log.read(path, size)
        return log

    def _calls(self) -> tuple[dict[str, list[_Call]], list[Path]]:
        """The command logs by worker, and the planner's."""
        by_worker: dict[str, list[_Call]] = {}
        planner: list[Path] = []
        with contextlib.suppress(OSError):
            for path in sorted((self.run_dir / "commands").glob("*.ndjson")):
                found = _CALL_LOG.fullmatch(path.stem)
                if found:
                    call = _Call(found["u"], int(found["n"]), found["role"], int(found["k"]), path)
                    by_worker.setdefault(found["w"], []).append(call)
                elif _PLANNER_LOG.fullmatch(path.stem):
                    planner.append(path)
        return by_worker, planner

    def workers(self, worker_ids: Iterable[str]) -> list[WorkerNow]:
        """Each worker's state (in ``worker_ids``' order, then any other a log names), and
        the planner while its call runs."""
        by_worker, planner_logs = self._calls()
        ids = list(worker_ids)
        ids += sorted(set(by_worker) - set(ids))
        found = [self._worker(wid, by_worker.get(wid, [])) for wid in ids]
        for path in planner_logs:
            log = self._log(path)
            if log.started is not None and log.ended is None:
                found.append(WorkerNow("planner", "-", "planner running", log.started))
        return found

    def _worker(self, wid: str, calls: list[_Call]) -> WorkerNow:
        state_path = self.run_dir / "workers" / f"{wid}.json"
        state = _json(state_path)
        if state is not None and state.get("status") == "stopped":
            return WorkerNow(wid, "-", f"stopped: {state.get('reason')}", _mtime(state_path))
        number = state.get("cycle") if state is not None else None
        if not isinstance(number, int):  # no state file: the newest unit its logs name
            number = max((c.number for c in calls), default=None)
        if number is None:
            return WorkerNow(wid, "-", "starting", _mtime(state_path))
        mine = [c for c in calls if c.number == number]
        letter = mine[0].unit if mine else self._letter(wid)
        unit = f"{letter}{number}"
        noun = "iteration" if letter == "i" else "cycle"
        written = self._unit_file(wid, letter, number)
        # an iteration file is written once, at the end; a cycle file after every attempt
        if written is not None and (letter == "i" or written[0] not in OPEN_OUTCOMES):
            return WorkerNow(wid, unit, f"between {noun}s ({unit}: {written[0]})", written[1])
        logs = [(c, self._log(c.path)) for c in mine]
        begun = [(log.started, c, log) for c, log in logs if log.started is not None]
        if not begun:
            return WorkerNow(wid, unit, f"starting {noun} {number}", _mtime(state_path))
        _, call, log = max(begun, key=lambda found: found[0])
        phase = _phase(log.role or call.role, call.k)
        retry = f" (attempt {log.attempts})" if log.attempts > 1 else ""
        if log.ended is None:
            doing = "agent call running" if phase == "agent" else f"{phase} running"
            return WorkerNow(wid, unit, doing + retry, log.started)
        if written is not None and written[1] is not None and log.ended <= written[1]:
            # the attempt ended and left the cycle open: the next attempt starts soon
            return WorkerNow(wid, unit, f"between attempts ({written[0]})", written[1])
        if log.failure:
            return WorkerNow(wid, unit, f"after {phase}: {log.failure[:60]}", log.ended)
        return WorkerNow(wid, unit, f"after {phase} (exit {log.exit_code})", log.ended)

    def _letter(self, wid: str) -> str:
        """A unit's letter before its first call: ``i`` when the worker left iteration files."""
        return "i" if any((self.run_dir / "iterations").glob(f"{wid}-i*.json")) else "c"

    def _unit_file(self, wid: str, letter: str, number: int) -> tuple[str, datetime | None] | None:
        """(outcome, when) of the unit's iteration or cycle file; None before there is one."""
        folder = "iterations" if letter == "i" else "cycles"
        path = self.run_dir / folder / f"{wid}-{letter}{number}.json"
        doc = _json(path)
        if doc is None:
            return None
        return str(doc.get("outcome")), _instant(doc.get("timestamp")) or _mtime(path)


def now_rows(
    workers: Iterable[WorkerNow], now: datetime, clocks: bool = True
) -> list[tuple[str, ...]]:
    """The "now" table; without ``clocks`` the elapsed column is left blank (a frame's key)."""
    rows: list[tuple[str, ...]] = [NOW_COLUMNS]
    for w in workers:
        since = elapsed((now - w.since).total_seconds()) if clocks and w.since else "-"
        rows.append((w.worker, w.unit, w.doing, since if clocks else ""))
    return rows


# -- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One look at the run: the view, its ``key`` (the view without clocks), whether the run
    has ended, and the exit status to end with if it has."""

    text: str
    key: str
    done: bool
    status: int = 0


def _fit(text: str, rows: int) -> str:
    """A view cut to the terminal's height: a redraw taller than the screen would scroll."""
    lines = text.splitlines()
    if rows < 3 or len(lines) < rows:
        return text
    keep = rows - 2
    return "\n".join([*lines[:keep], f"... {len(lines) - keep} more lines"])


def watch(
    frame: Callable[[], Frame],
    *,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    tty: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> int:
    """Show ``frame()`` every ``interval`` seconds until a frame is done; its status, or
    :data:`INTERRUPTED` on Ctrl-C (quietly: the view stays as it was)."""
    stream = sys.stdout if out is None else out
    redraw = stream.isatty() if tty is None else tty
    shown: str | None = None
    try:
        while True:
            current = frame()
            if redraw:
                rows = shutil.get_terminal_size().lines
                stream.write(CLEAR_SCREEN + _fit(current.text, rows) + "\n")
            elif current.key != shown:
                stamp = clock().strftime("%Y-%m-%d %H:%M:%SZ")
                stream.write(f"--- {stamp} ---\n{current.text}\n")
            stream.flush()
            shown = current.key
            if current.done:
                return current.status
            sleep(interval)
    except KeyboardInterrupt:
        return INTERRUPTED
