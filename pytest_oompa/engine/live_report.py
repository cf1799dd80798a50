"""Keeps ``report.html`` current while a run goes on.

The report is built from the run's files alone, so keeping it current is rewriting it when the
files changed: a thread looks every few seconds at the folders a worker writes into (a cheap
``stat`` of each entry) and rewrites the page when something is new, at most once per look. It
runs in the process that ends the run (the only one that writes the final report: the
controller under pytest-xdist, whose nodes write the files it looks at), and stops before that
final write, so the last page is always the finished run's.

This module never imports pytest.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pytest_oompa.report import write_report

__all__ = ["LiveReport"]

EVERY_SECONDS = 5.0
QUIET_SECONDS = 60.0
# where a run's progress shows: a new or rewritten file in one of these
WATCHED = ("iterations", "cycles", "reviews", "calls", "workers", "diffs")


class LiveReport:
    def __init__(
        self,
        run_dir: Path,
        every: float = EVERY_SECONDS,
        write: Callable[[Path], object] = write_report,
    ) -> None:
        self.run_dir = run_dir
        self.every = every
        self.write = write
        self.writes = 0
        self._seen: tuple[int, int] = (0, 0)
        self._written = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="oompa-live-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)  # a write in progress finishes (it is atomic anyway)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.refresh()

    def refresh(self) -> bool:
        """Rewrite the page if the run's files changed since the last look, or at least every
        ``QUIET_SECONDS`` (its 'written at' then says the run is alive through a long agent
        call); True if it did."""
        now = self._fingerprint()
        if now == self._seen and time.monotonic() - self._written < QUIET_SECONDS:
            return False
        self._seen = now
        self._written = time.monotonic()
        with contextlib.suppress(Exception):  # a view: the next look tries again
            self.write(self.run_dir)
            self.writes += 1
            return True
        return False

    def _fingerprint(self) -> tuple[int, int]:
        count, newest = 0, 0
        for name in WATCHED:
            try:
                entries = list((self.run_dir / name).iterdir())
            except OSError:
                continue
            for entry in entries:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat().st_mtime_ns)
                    count += 1
        return count, newest
