"""``python -m pytest_oompa show ID --watch``: a run followed from another process, from its
files alone, while they change.

The run folders are written with the run's own writers (EventWriter, CommandLog, ArtifactStore),
as a swarm writes them, with this test process's pid in ``started.json`` and a fresh heartbeat,
so that the watcher in its own process judges the run live until ``stopped.json`` says it ended.
"""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.terminal import default_sigint

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.runs.artifacts import ArtifactStore, utc_now_iso, validate_artifact
from pytest_oompa.runs.commandlog import CommandLog
from pytest_oompa.runs.events import EventWriter, StartedWorker
from pytest_oompa.runs.watch import (
    CLEAR_SCREEN,
    INTERRUPTED,
    FolderActivity,
    Frame,
    WorkerNow,
    elapsed,
    now_rows,
    watch,
)

SWARM = "20260101T000000Z-watch1"
TIMEOUT = 30.0
SEPARATOR = re.compile(r"^--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ ---$", re.M)


class LiveRun:
    """A run folder as a live swarm leaves it: w0 runs cycles, w1 iterations."""

    def __init__(self, runs: Path) -> None:
        self.runs = runs
        self.dir = runs / SWARM
        self.events = EventWriter(runs, SWARM)
        self.events.started(
            config_file="oompa.json",
            workers=[
                StartedWorker("w0", "claude", "opus", max_cycles=2, can_plan=False, max_resumes=3),
                StartedWorker("w1", "codex", "o3", max_cycles=1, can_plan=False, max_resumes=1),
            ],
            pid=os.getpid(),  # alive for as long as the test runs
        )
        self.beat()

    def beat(self) -> None:
        beat = {
            "swarm-id": SWARM,
            "pid": os.getpid(),
            "host": "test",
            "updated-at": utc_now_iso(),
            "interval-s": 5.0,
            "state": "running",
        }
        validate_artifact("heartbeat", beat)
        atomic_write_text(self.dir / "heartbeat.json", dumps_json(beat))

    def call(self, name: str, role: str) -> CommandLog:
        log = CommandLog(self.dir / "commands" / f"{name}.ndjson")
        log.start(argv=["claude", "-p", "work"], cwd=str(self.dir), role=role, harness="claude")
        log.output("stdout", b'{"type": "system"}\n' * 50)
        return log

    def end(self) -> None:
        self.events.worker_stopped("w0", 1, "completed")
        self.events.worker_stopped("w1", 1, "completed")
        self.events.stopped("completed")
        worker = {
            "completed": 1,
            "iterations": 1,
            "merges": 1,
            "claims": 1,
            "rejections": 0,
            "errors": 0,
            "recycled": 0,
            "review-rounds-total": 1,
            "status": "exhausted",
        }
        ArtifactStore(self.runs, SWARM).write_summary(
            {
                "swarm-id": SWARM,
                "finished-at": utc_now_iso(),
                "total-workers": 2,
                "total-completed": 2,
                "total-iterations": 2,
                "status-counts": {"exhausted": 2},
                "workers": [
                    {"id": "w0", "harness": "claude", "model": "opus", **worker},
                    {"id": "w1", "harness": "codex", "model": "o3", **worker},
                ],
            }
        )


def _closed(log: CommandLog, code: int = 0, failure: str | None = None) -> None:
    log.close(**{"exit-code": code, "duration-ms": 5, "failure": failure})


def show(runs: Path, *args: str) -> list[str]:
    """The command line of ``python -m pytest_oompa show SWARM`` with ``args``."""
    return [sys.executable, "-m", "pytest_oompa", "show", SWARM, "--runs-dir", str(runs), *args]


class Watcher:
    """``show ID --watch`` in its own process, its output collected as it comes."""

    def __init__(self, runs: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            show(runs, "--watch", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out += line

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.last_block():
            assert self.proc.poll() is None or self._reader.is_alive(), self.out
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.out}"
            time.sleep(0.05)

    def blocks(self) -> list[str]:
        return [b.strip("\n") for b in SEPARATOR.split(self.out)[1:]]

    def last_block(self) -> str:
        found = self.blocks()
        return found[-1] if found else ""

    def finish(self) -> tuple[int, str]:
        code = self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watcher_for() -> Iterator[Callable[..., Watcher]]:
    """Starts watchers, and kills any that a failed test left running."""
    started: list[Watcher] = []

    def start(runs: Path, *args: str) -> Watcher:
        started.append(Watcher(runs, *args))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def _row(block: str, worker: str) -> str:
    """The "now" table's row of ``worker`` (the table under its ``worker  unit  now`` head)."""
    table = block.split("worker  unit", 1)[1].split("\n\n", 1)[0]
    (row,) = [line for line in table.splitlines() if line.split()[:1] == [worker]]
    return row


# -- following a run from another process --------------------------------------------------------


def test_the_watcher_shows_each_state_and_exits_when_the_run_ends(tmp_path, watcher_for):
    run = LiveRun(tmp_path / "runs")
    run.events.worker_running("w0", 1)
    run.events.worker_running("w1", 1)
    agent = run.call("w0-c1-worker-1", "worker")
    retried = run.call("w1-i1-worker-1", "worker")
    _closed(retried, 1, "exit code 1")
    retried = CommandLog(retried.path)  # the caller's retry appends to the same log
    retried.start(argv=["codex"], cwd=str(run.dir), role="worker", harness="codex")

    watcher = watcher_for(tmp_path / "runs", "--interval", "0.2")
    watcher.wait_for("agent call running")
    first = watcher.last_block()
    assert first.startswith(f"swarm {SWARM}: running, started ")
    assert re.search(r"^w0 +c1 +agent call running +\d+ s$", _row(first, "w0"))
    assert re.search(r"^w1 +i1 +agent call running \(attempt 2\) +\d+ s$", _row(first, "w1"))

    _closed(agent)
    watcher.wait_for("after agent (exit 0)")
    reviewer = run.call("w0-c1-reviewer-1", "reviewer")
    watcher.wait_for("review round 1 running")
    _closed(reviewer)
    run.events.cycle("w0", 1, "merged", duration_ms=900, claimed_task_ids=["t1"], review_rounds=1)
    watcher.wait_for("between cycles (c1: merged)")
    assert "w0-c1  merged" in watcher.last_block()  # show's own table of units, as it grows

    run.end()
    code, err = watcher.finish()
    assert (code, err) == (0, "")
    last = watcher.last_block()
    assert last.startswith(f"swarm {SWARM}: completed, ")
    assert "exhausted" in last  # summary.json's worker table
    assert "worker  unit" not in last  # an ended run has no "now"
    # one block per state the files went through: nothing printed twice
    assert len(watcher.blocks()) == 5, watcher.out


def test_off_a_terminal_a_view_is_printed_only_when_it_changed(tmp_path, watcher_for):
    run = LiveRun(tmp_path / "runs")
    run.events.worker_running("w0", 1)
    run.call("w0-c1-worker-1", "worker")
    watcher = watcher_for(tmp_path / "runs", "--interval", "0.1")
    watcher.wait_for("agent call running")
    time.sleep(2.5)  # 25 looks, and the clocks of the view moved on: still one block
    assert len(watcher.blocks()) == 1, watcher.out
    run.beat()  # a newer heartbeat changes nothing shown either
    time.sleep(0.5)
    assert len(watcher.blocks()) == 1, watcher.out
    run.events.cycle("w0", 1, "working", duration_ms=100)
    watcher.wait_for("w0-c1  working (open)")
    assert len(watcher.blocks()) == 2


def test_ctrl_c_ends_the_watch_quietly_with_status_130(tmp_path, watcher_for):
    run = LiveRun(tmp_path / "runs")
    run.events.worker_running("w0", 1)
    watcher = watcher_for(tmp_path / "runs", "--interval", "0.2")
    watcher.wait_for("starting cycle 1")
    watcher.proc.send_signal(signal.SIGINT)
    assert watcher.finish() == (INTERRUPTED, "")


def test_on_a_terminal_the_screen_is_redrawn_at_every_look(tmp_path):
    run = LiveRun(tmp_path / "runs")
    run.events.worker_running("w0", 1)
    run.call("w0-c1-worker-1", "worker")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        show(tmp_path / "runs", "--watch", "--interval", "0.1"),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "LINES": "8", "COLUMNS": "100"},
        preexec_fn=default_sigint,
    )
    os.close(follower)
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the watcher and its terminal are gone
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while screen.count(CLEAR_SCREEN.encode()) < 5:
            assert time.monotonic() < deadline, bytes(screen)
            time.sleep(0.05)
        run.end()
        assert proc.wait(TIMEOUT) == 0
        reader.join(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = screen.decode().replace("\r\n", "\n")
    frames = text.split(CLEAR_SCREEN)
    assert frames[0] == ""  # every view starts on a cleared screen
    assert not SEPARATOR.search(text)  # no timestamp lines on a terminal
    # the live view is taller than the 8 lines of this terminal: it is cut to fit
    live = frames[1].rstrip("\n").splitlines()
    assert live[0].startswith(f"swarm {SWARM}: running")
    assert len(live) == 7 and re.fullmatch(r"\.\.\. \d+ more lines", live[-1])
    assert frames[-1].startswith(f"swarm {SWARM}: completed")


def test_a_run_that_has_ended_is_shown_once(tmp_path):
    run = LiveRun(tmp_path / "runs")
    run.end()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_oompa", "show", str(run.dir), "--watch"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    blocks = SEPARATOR.split(proc.stdout)
    assert len(blocks) == 2 and blocks[1].lstrip().startswith(f"swarm {SWARM}: completed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--watch", "--json"], "--watch draws for people; a script polls 'show --json'"),
        (["--interval", "1"], "--interval goes with --watch"),
        (["--watch", "--interval", "0"], "--interval must be a positive number"),
        (["--watch", "--interval", "inf"], "--interval must be a positive number"),
    ],
)
def test_what_watch_cannot_do_is_a_usage_error(tmp_path, args, message):
    LiveRun(tmp_path / "runs")
    proc = subprocess.run(
        show(tmp_path / "runs", *args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


# -- what each worker does now, read from the files ----------------------------------------------


def test_a_log_is_read_as_it_grows_and_a_half_written_line_waits(tmp_path):
    run = LiveRun(tmp_path / "runs")
    run.events.worker_running("w0", 2)
    activity = FolderActivity(run.dir)
    path = run.dir / "commands" / "w0-c2-fix-1.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = '{"t": "2026-01-01T00:00:00.000Z", "event": "start", "role": "fix"}\n'
    path.write_text(start + '{"t": "2026-01-01T00:00:03.000Z", "event": "ex')
    (w0, _) = activity.workers(["w0", "w1"])
    assert (w0.unit, w0.doing) == ("c2", "fix 1 running")
    assert w0.since == datetime(2026, 1, 1, tzinfo=timezone.utc)
    with path.open("a") as fh:
        fh.write('it", "exit-code": 2, "failure": "the harness reported an error"}\n')
    (w0, _) = activity.workers(["w0", "w1"])
    assert w0.doing == "after fix 1: the harness reported an error"
    assert w0.since == datetime(2026, 1, 1, 0, 0, 3, tzinfo=timezone.utc)


def test_what_each_worker_does_between_calls(tmp_path):
    run = LiveRun(tmp_path / "runs")
    activity = FolderActivity(run.dir)
    assert [w.doing for w in activity.workers(["w0", "w1"])] == ["starting", "starting"]
    # w0: a cycle's attempt ended and left the cycle open
    run.events.worker_running("w0", 1)
    _closed(run.call("w0-c1-worker-1", "worker"))
    run.events.cycle("w0", 1, "claimed", duration_ms=10, claimed_task_ids=["t1"])
    # w1: no state file; its logs name the unit (a sync call: a conflict with main)
    run.call("w1-i3-sync-2", "sync")
    planner = run.call("planner-1", "planner")
    w0, w1, plan = activity.workers(["w0", "w1"])
    assert (w0.unit, w0.doing) == ("c1", "between attempts (claimed)")
    assert (w1.unit, w1.doing) == ("i3", "resolving conflict 2 running")
    assert (plan.worker, plan.doing) == ("planner", "planner running")
    _closed(planner)
    run.events.worker_stopped("w0", 1, "done")
    w0, w1 = activity.workers(["w0", "w1"])
    assert w0.doing == "stopped: done"


def test_the_now_table_and_its_clocks():
    now = datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc)
    workers = [
        WorkerNow("w0", "c2", "review round 2 running", now - timedelta(seconds=42)),
        WorkerNow("w1", "i1", "agent call running", now - timedelta(minutes=3, seconds=5)),
        WorkerNow("w2", "-", "starting", None),
    ]
    assert now_rows(workers, now) == [
        ("worker", "unit", "now", "for"),
        ("w0", "c2", "review round 2 running", "42 s"),
        ("w1", "i1", "agent call running", "3 min 05 s"),
        ("w2", "-", "starting", "-"),
    ]
    assert {row[3] for row in now_rows(workers, now, clocks=False)[1:]} == {""}
    assert elapsed(2 * 3600 + 7 * 60 + 9) == "2 h 07 min"


# -- the loop itself -----------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _frames(*frames: Frame) -> Iterator[Frame]:
    yield from frames


def test_the_loop_prints_changes_off_a_terminal_and_every_look_on_one():
    looks = [
        Frame("running 1 s", "running", done=False),
        Frame("running 2 s", "running", done=False),
        Frame("running 3 s, w0 merged", "running, w0 merged", done=False),
        Frame("completed", "completed", done=True, status=1),
    ]
    when = datetime(2026, 1, 1, 12, 30, 5, tzinfo=timezone.utc)
    naps: list[float] = []
    log = io.StringIO()
    source = _frames(*looks)
    code = watch(lambda: next(source), interval=0.5, out=log, sleep=naps.append, clock=lambda: when)
    assert code == 1 and naps == [0.5, 0.5, 0.5]
    stamp = "--- 2026-01-01 12:30:05Z ---"
    assert log.getvalue() == (
        f"{stamp}\nrunning 1 s\n{stamp}\nrunning 3 s, w0 merged\n{stamp}\ncompleted\n"
    )
    screen = _Tty()
    source = _frames(*looks)
    assert watch(lambda: next(source), out=screen, sleep=lambda _: None) == 1
    assert screen.getvalue() == "".join(f"{CLEAR_SCREEN}{f.text}\n" for f in looks)


def test_ctrl_c_in_the_loop_is_status_130_and_no_more_output():
    out = io.StringIO()

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    look = Frame("running", "running", done=False)
    assert watch(lambda: look, out=out, tty=False, sleep=interrupted) == INTERRUPTED
    assert out.getvalue().count("running") == 1
