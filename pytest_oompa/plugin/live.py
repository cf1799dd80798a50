"""Watching a swarm as it runs: a live status block on a terminal, progress lines in a CI log.

On a terminal (``--oompa-live=auto|on``) a block under pytest's progress line shows one line per
worker: its item, its phase and for how long, its tokens and cost so far, its last outcome;
redrawn about once a second, compact when there are more workers than lines to spare. The
block sits below the cursor: drawing it is "erase below, write the lines, move back up to
pytest's column", erasing it is "erase below". pytest writes only inside its report hooks, so
the hook wrappers here erase the block before pytest writes and draw it again after, under the
lock the drawing thread takes, and the block is gone before the terminal summary.

Off a terminal (or ``--oompa-live=off``), a line per phase change (worker, item, phase, time in
the phase before), and when nothing was printed for ``--oompa-progress-every`` seconds a line
with every busy worker's phase, so a CI log never goes silent for long.

What the workers do comes from the engine's :class:`~pytest_oompa.engine.activity.ActivityBoard`
(shared through files under pytest-xdist, where the view runs in the controller), read by
polling: a slow terminal never slows a worker.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from pytest_oompa.engine.activity import Activity
from pytest_oompa.engine.spend import Spend, usd
from pytest_oompa.plugin.stash import SESSION_KEY

REFRESH_SECONDS = 1.0
ERASE_BELOW = "\x1b[J"
MAX_BLOCK_LINES = 12  # more workers than this: one line per phase, then the longest-running


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _spend_text(spend: Spend | None) -> str:
    if spend is None or not spend.calls:
        return ""
    tokens = f"{spend.tokens:,} tok"
    return f"{tokens}  {usd(spend.cost_usd)}" if spend.cost_usd else tokens


def status_lines(
    activities: dict[str, Activity],
    spend: dict[str, Spend],
    now: float,
    width: int,
    max_lines: int = MAX_BLOCK_LINES,
) -> list[str]:
    """The block: one line per worker, or a compact one when they do not fit in ``max_lines``."""
    if not activities:
        return []
    if len(activities) > max_lines:
        return _compact(activities, now, width, max_lines)
    wid = max(len(a.worker) for a in activities.values())
    item = max(len(a.item) for a in activities.values())
    phase = min(36, max(len(a.phase) for a in activities.values()))
    lines = []
    for a in activities.values():
        parts = [
            f"{a.worker:<{wid}}",
            f"{a.item:<{item}}",
            f"{a.phase[:phase]:<{phase}}",
            f"{duration(a.elapsed(now)):>6}" if a.busy else " " * 6,
        ]
        money = _spend_text(spend.get(a.worker))
        if money:
            parts.append(money)
        if a.last:
            parts.append(f"last: {a.last}")
        lines.append(_fit("  ".join(parts).rstrip(), width))
    return lines


def _compact(activities: dict[str, Activity], now: float, width: int, max_lines: int) -> list[str]:
    by_phase: dict[str, int] = {}
    for a in activities.values():
        key = a.phase.split(",")[0]  # "agent, attempt 3" counts as agent
        by_phase[key] = by_phase.get(key, 0) + 1
    counts = ", ".join(f"{n} {p}" for p, n in sorted(by_phase.items(), key=lambda x: -x[1]))
    lines = [_fit(f"{len(activities)} workers: {counts}", width)]
    busy = sorted((a for a in activities.values() if a.busy), key=lambda a: a.since)
    for a in busy[: max(0, max_lines - 1)]:
        lines.append(_fit(f"{a.worker} {a.item} {a.phase} {duration(a.elapsed(now))}", width))
    return lines


def _fit(line: str, width: int) -> str:
    """One screen row: a wrapped line would break the count of rows to move back up."""
    return line if len(line) < width else line[: max(1, width - 2)] + "…"


def progress_line(busy: list[Activity], now: float) -> str:
    parts = [f"{a.worker} {a.item} {a.phase} {duration(a.elapsed(now))}".strip() for a in busy]
    return "oompa: still running: " + "; ".join(parts)


def change_line(before: Activity | None, after: Activity, now: float) -> str:
    took = ""
    if before is not None and before.phase != after.phase:
        took = f" ({before.phase} took {duration(max(0.0, after.since - before.since))})"
    item = f" {after.item}" if after.item else ""
    last = f", last: {after.last}" if after.last and after.phase == "stopped" else ""
    return f"oompa: {after.worker}{item}: {after.phase}{last}{took}"


class LiveView:
    """The live block (``tty``) or the progress lines (``lines``); a plugin of one run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.mode = ""  # decided when the run starts: the terminal reporter exists by then
        self.progress_every = float(config.getoption("oompa_progress_every"))
        self.terminal: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = 0  # rows of the block on screen now
        self._paused = 0
        self._seen: dict[str, Activity] = {}
        self._last_print = time.monotonic()

    # -- what to show

    def _sources(self) -> tuple[dict[str, Activity], dict[str, Spend]]:
        state = self.config.stash.get(SESSION_KEY, None)
        swarm = state.swarm if state is not None else None
        if swarm is None:
            return {}, {}
        return swarm.activity.snapshot(), swarm.caller.spend.accounts()

    # -- the drawing thread

    def start(self) -> None:
        self.mode = mode_for(self.config)
        if not self.mode:
            return
        self.terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        self._thread = threading.Thread(target=self._loop, name="oompa-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.mode == "lines":  # the last changes (workers stopping) still get their lines
            with contextlib.suppress(Exception):
                self.tick()
        with self._lock:
            self._erase()

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS if self.mode == "tty" else 0.5):
            with contextlib.suppress(Exception):  # a view must never take the run down
                self.tick()

    def tick(self) -> None:
        activities, spend = self._sources()
        now = time.time()
        with self._lock:
            if self._paused:
                return
            if self.mode == "tty":
                self._draw(status_lines(activities, spend, now, self._width()))
            else:
                self._lines(activities, now)

    def _lines(self, activities: dict[str, Activity], now: float) -> None:
        for worker, activity in activities.items():
            before = self._seen.get(worker)
            if before is None or before.changes != activity.changes:
                self._seen[worker] = activity
                if before is None or before.phase != activity.phase:
                    self._write(change_line(before, activity, now))
        quiet = time.monotonic() - self._last_print
        if self.progress_every > 0 and quiet >= self.progress_every:
            busy = [a for a in activities.values() if a.busy]
            if busy:
                self._write(progress_line(busy, now))

    def _write(self, line: str) -> None:
        self.terminal.write_line(line)
        self._last_print = time.monotonic()

    def _width(self) -> int:
        return int(getattr(self.terminal._tw, "fullwidth", 0)) or shutil.get_terminal_size().columns

    def _draw(self, lines: list[str]) -> None:
        tw = self.terminal._tw
        column = int(tw.width_of_current_line)
        text = ERASE_BELOW
        if lines:
            text += "\n" + "\n".join(lines) + f"\x1b[{len(lines)}A\r"
            if column:
                text += f"\x1b[{column}C"
        self._raw(text)
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self.mode == "tty" and self._drawn:
            self._raw(ERASE_BELOW)
            self._drawn = 0

    def _raw(self, text: str) -> None:
        # Past the terminal writer: its column count must stay pytest's own line's.
        file = self.terminal._tw._file
        file.write(text)
        file.flush()

    # -- pytest writes only between these: the block steps aside

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        if not self.mode:
            yield
            return
        with self._lock:
            self._paused += 1
            self._erase()
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self._last_print = time.monotonic()
        if self.mode == "tty" and not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.tick()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None, object, object]:
        with self.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None, object, object]:
        with self.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self) -> Generator[None, object, object]:
        with self.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        self.start()
        try:
            return (yield)
        finally:
            self.stop()


def mode_for(config: pytest.Config) -> str:
    """``tty``, ``lines`` or ``""`` (no terminal reporter: nothing to write to)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return ""
    live = config.getoption("oompa_live")
    if live == "on" or (live == "auto" and terminal.isatty):
        return "tty"
    return "lines"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LiveView(config), "oompa-live-view")
