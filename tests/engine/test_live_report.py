"""report.html kept current while a run goes on: rewritten when the run's files change."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_oompa.engine.live_report import LiveReport


def test_the_page_is_rewritten_only_when_the_runs_files_changed(tmp_path):
    written: list[Path] = []
    live = LiveReport(tmp_path, write=written.append)
    assert not live.refresh()  # nothing there yet
    (tmp_path / "cycles").mkdir()
    (tmp_path / "cycles" / "w0-c1.json").write_text("{}")
    assert live.refresh() and written == [tmp_path]
    assert not live.refresh()  # unchanged
    later = time.time_ns() + 10_000_000
    os.utime(tmp_path / "cycles" / "w0-c1.json", ns=(later, later))  # rewritten in place
    assert live.refresh()
    (tmp_path / "report.html").write_text("x")  # its own output is not a change
    assert not live.refresh()
    assert live.writes == 2


def test_a_failing_write_is_tried_again_at_the_next_change(tmp_path):
    calls = []

    def flaky(run_dir: Path) -> None:
        calls.append(run_dir)
        if len(calls) == 1:
            raise OSError("disk full")

    live = LiveReport(tmp_path, write=flaky)
    (tmp_path / "iterations").mkdir()
    (tmp_path / "iterations" / "w0-i1.json").write_text("{}")
    assert not live.refresh() and live.writes == 0
    (tmp_path / "iterations" / "w0-i2.json").write_text("{}")
    assert live.refresh() and live.writes == 1


def test_the_thread_writes_while_running_and_stops(tmp_path):
    written: list[Path] = []
    live = LiveReport(tmp_path, every=0.05, write=written.append)
    live.start()
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "w0.json").write_text("{}")
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.02)
    live.stop()
    assert written == [tmp_path]
    (tmp_path / "workers" / "w1.json").write_text("{}")
    time.sleep(0.2)
    assert written == [tmp_path]  # stopped: no more writes


def test_a_quiet_run_still_gets_its_page_rewritten_now_and_then(tmp_path, monkeypatch):
    from pytest_oompa.engine import live_report

    written: list[Path] = []
    live = LiveReport(tmp_path, write=written.append)
    assert not live.refresh()  # nothing changed, and it was just written
    monkeypatch.setattr(live_report, "QUIET_SECONDS", 0.0)
    assert live.refresh() and written == [tmp_path]  # 'written at' moves on a long call
