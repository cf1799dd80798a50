"""Watching a swarm: the live block on a terminal (read from an emulated screen), the progress
lines in a CI log (timed as they arrive), and the text of both."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from support.screen import run_in_pty

from pytest_oompa import GitRepo
from pytest_oompa.engine.activity import Activity
from pytest_oompa.engine.spend import Spend
from pytest_oompa.plugin.live import change_line, duration, progress_line, status_lines

FAST = {"probe": False, "executor_wait": 0}
NOW = 1_000_000.0


def act(worker: str, item: str, phase: str, ago: float, last: str = "") -> Activity:
    return Activity(worker, item, phase, NOW - ago, last)


# -- the text ----------------------------------------------------------------------------------


def test_a_line_per_worker_with_phase_time_spend_and_last_outcome():
    lines = status_lines(
        {
            "w0": act("w0", "c2", "agent, attempt 3", 65, "merged"),
            "w10": act("w10", "i1", "review round 2", 4),
            "w2": act("w2", "", "stopped", 9, "error"),
        },
        {"w0": Spend(0.0123, 4567, 3)},
        NOW,
        width=100,
    )
    assert lines == [
        "w0   c2  agent, attempt 3   1m05s  4,567 tok  $0.0123  last: merged",
        "w10  i1  review round 2        4s",
        "w2       stopped                   last: error",
    ]


def test_lines_never_wrap_and_many_workers_fold_into_a_summary():
    many = {f"w{n}": act(f"w{n}", "i1", "agent" if n % 3 else "merge", n) for n in range(30)}
    lines = status_lines(many, {}, NOW, width=40, max_lines=5)
    assert len(lines) == 5
    assert lines[0] == "30 workers: 20 agent, 10 merge"
    assert lines[1].startswith("w29 i1 ")  # the longest-running first
    assert all(len(line) < 40 for line in lines)
    long = status_lines({"w0": act("w0", "i1", "x" * 200, 1)}, {}, NOW, width=30)
    assert len(long[0]) < 30 and long[0].endswith("…")


def test_ci_lines_say_what_changed_and_what_is_still_running():
    before = act("w0", "i1", "agent", 90)
    after = act("w0", "i1", "review round 1", 0)
    assert change_line(before, after, NOW) == "oompa: w0 i1: review round 1 (agent took 1m30s)"
    assert change_line(None, act("w1", "", "waiting for tasks", 0), NOW) == (
        "oompa: w1: waiting for tasks"
    )
    assert progress_line([act("w0", "c1", "sync with main", 3)], NOW) == (
        "oompa: still running: w0 c1 sync with main 3s"
    )
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 7325)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]


# -- real swarms -------------------------------------------------------------------------------


def slow_project(root: Path, delay: float, workers: int = 2) -> GitRepo:
    """Workers whose agent calls take ``delay`` seconds: long enough to be watched."""
    scenario = {"default": {"worker": {"builtin": True, "delay": delay}}}
    project = GitRepo(root / "project")
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1, "count": workers}]}
    project.add_swarm_config(config, scenario, [f"t{n}" for n in range(workers)])
    return project


def first_call_started(project: Path) -> float:
    """The wall-clock time the first agent call started, from its command log."""
    (run,) = [p for p in (project / "runs").iterdir() if p.is_dir()]
    starts = []
    for log in (run / "commands").glob("w*-worker-1.ndjson"):
        event = json.loads(log.read_text().splitlines()[0])
        starts.append(datetime.fromisoformat(event["t"].replace("Z", "+00:00")).timestamp())
    return min(starts)


def test_on_a_terminal_the_block_shows_each_worker_and_is_gone_at_the_end(pytester):
    project = slow_project(pytester.path, delay=4)
    started = time.time()
    screen = run_in_pty(
        [
            sys.executable,
            "-m",
            "pytest",
            "--oompa-swarm=project/oompa.json",
            "-p",
            "no:cacheprovider",
        ],
        pytester.path,
    )
    assert screen.status == 0, screen.final
    shown = screen.first(lambda row: row.startswith("w0  i1  agent"))
    assert shown is not None, [rows for _, rows in screen.frames]
    assert screen.first(lambda row: row.startswith("w1  i1  agent")) is not None
    # within 2 s of the first agent call's start
    assert started + shown - first_call_started(project.path) < 2.0
    final = "\n".join(screen.final)
    assert "2 passed" in final
    assert not [row for row in screen.final if re.match(r"w\d\s+i1\s", row)], final


def test_in_a_ci_log_there_is_never_a_silence_longer_than_the_interval(pytester):
    slow_project(pytester.path, delay=5, workers=1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--oompa-swarm=project/oompa.json",
            "-p",
            "no:cacheprovider",
            "--oompa-progress-every=1",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    arrivals: list[tuple[float, str]] = [(time.monotonic(), line) for line in proc.stdout]
    assert proc.wait() == 0
    lines = [line.rstrip("\n") for _, line in arrivals]
    assert "oompa: w0 i1: agent" in lines
    assert any(line.startswith("oompa: still running: w0 i1 agent") for line in lines)
    # the worker's end, printed even though the view stops with the run
    assert any(line.startswith("oompa: w0 i1: stopped, last: merged (") for line in lines), lines
    # from the first oompa line to the last, no gap much longer than the interval (1 s; the
    # view looks twice a second)
    times = [t for t, line in arrivals if line.startswith("oompa:")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 1.8, gaps


def test_under_xdist_the_controller_shows_the_nodes_workers(pytester):
    slow_project(pytester.path, delay=1.5)
    result = pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(["oompa: w0 i1: agent*", "oompa: w1 i1: agent*"])


@pytest.mark.parametrize("live", ["off", "on"])
def test_the_option_chooses_the_view(pytester, live):
    slow_project(pytester.path, delay=1.5, workers=1)
    result = pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-p", "no:cacheprovider", f"--oompa-live={live}"
    )
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    if live == "off":  # no terminal: progress lines either way; off never draws
        assert "oompa: w0 i1: agent" in out and "\x1b[J" not in out
    else:  # forced on, even into a pipe: the block's escape codes, no progress lines
        assert "\x1b[J" in out and "oompa: w0 i1: agent" not in out
