"""A dashboard's view of our runs (unleashd's rules, SPEC-upstream-0.7.3), as tests of ours.

Each run is a real ``python -m pytest --oompa-swarm`` we watch from outside, as unleashd does:
the project is listed as soon as the run starts (``started.json``), the run is live while it has
no ``stopped.json`` and ``started.pid`` is alive, its workers read running, then stopped with a
reason; after ``kill -9`` the run is dead and a worker that was mid-cycle reads so; SIGTERM to
``started.pid`` (the Stop button) ends the run cleanly, ``interrupted``. The state is read with
``run_status`` / ``worker_label`` (our implementation of those rules) and from the raw files;
every file validates against its contract, with and without pytest-xdist.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.contract import assert_events_valid, assert_run_valid
from support.terminal import default_sigint

from pytest_oompa import GitRepo
from pytest_oompa.runs.events import pid_alive, run_status, worker_label
from pytest_oompa.runs.recorder import worker_stop_reason
from pytest_oompa.runs.tracking import stop_reason

FAST = {"probe": False, "executor_wait": 0}
TIMEOUT = 120.0
XDIST = pytest.param(
    ["-n", "2"],
    id="xdist",
    marks=pytest.mark.skipif(
        __import__("importlib").util.find_spec("xdist") is None, reason="needs pytest-xdist"
    ),
)
MODES = [pytest.param([], id="single"), XDIST]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OOMPA_"))}
    env.pop("RUNS_DIR", None)
    return {**env, "PYTHONUNBUFFERED": "1"}


def start(repo: GitRepo, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--oompa-swarm=oompa.json",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=repo.path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )


def wait_until(what: str, check: Callable[[], Any], proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            found = check()
            if found:
                return found
            pytest.fail(f"pytest ended before {what}:\n{proc.communicate()[0]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"never saw {what}:\n{proc.communicate()[0]}")


def run_dir(repo: GitRepo) -> Path | None:
    """The newest run folder of the project, as unleashd picks it (by modification time)."""
    runs = repo.path / "runs"
    found = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def dashboard(folder: Path) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """What unleashd shows for a run: its status, and each worker's label."""
    started, stopped = read(folder / "started.json"), read(folder / "stopped.json")
    status = run_status(started, stopped)
    live = status is not None and status[0] == "running"
    labels = {}
    for w in (started or {}).get("workers", []):
        cycles = sorted(
            (c for p in (folder / "cycles").glob(f"{w['id']}-c*.json") if (c := read(p))),
            key=lambda c: c["cycle"],
        )
        state = read(folder / "workers" / f"{w['id']}.json")
        labels[w["id"]] = worker_label(state, cycles[-1] if cycles else None, live)
    return status, labels


def kill_agents(repo: GitRepo) -> None:
    """The hanging fake agents a ``kill -9``'ed swarm could not stop (its worktrees' cwd)."""
    found = subprocess.run(["pgrep", "-f", str(repo.path / ".w")], capture_output=True, text=True)
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


# -- the whole life of a run, as a dashboard sees it ----------------------------------------------


@pytest.mark.parametrize("args", MODES)
def test_listed_at_start_live_while_it_runs_then_stopped_with_reasons(tmp_path, args):
    # Every agent call takes a while, so the first iteration is still running when we look.
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config(
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}],
            "reviewer": {"model": "claude:sonnet"},
        },
        {"default": {"worker": {"builtin": True, "delay": 2}}},
        tasks=("t1", "t2", "t3", "t4"),
    )
    proc = start(repo, *args)
    try:
        folder = wait_until(
            "started.json",
            lambda: (d := run_dir(repo)) and (d / "started.json").exists() and d,
            proc,
        )
        # Listed as soon as the run starts: before any iteration ended, with the pid of the
        # process we started (xdist's controller, not a node).
        started = read(folder / "started.json")
        assert started is not None and started["pid"] == proc.pid
        assert not list((folder / "cycles").glob("*.json"))
        assert not (folder / "stopped.json").exists()
        assert [(w["id"], w["max-cycles"], w["max-resumes"]) for w in started["workers"]] == [
            ("w0", 2, 1),
            ("w1", 2, 1),
        ]
        # Live, and its workers read running (in their first cycle).
        wait_until(
            "both workers running",
            lambda: all(
                (read(folder / "workers" / f"{w}.json") or {}).get("status") == "running"
                for w in ("w0", "w1")
            ),
            proc,
        )
        status, labels = dashboard(folder)
        assert status is not None and status[0] == "running", status
        assert set(labels.values()) <= {"running: cycle 1", "running: cycle 2"}, labels
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    # Over: not live, each worker stopped with its reason, after its last cycle.
    assert not pid_alive(proc.pid)
    status, labels = dashboard(folder)
    assert status is not None and status[0] == "completed", status
    assert labels == {w: "stopped: completed after cycle 2" for w in ("w0", "w1")}
    files = assert_events_valid(folder, reason="completed")
    assert_run_valid(folder)
    assert files["stopped.json"]["error"] is None
    assert {k: v for k, v in files.items() if k.startswith("workers/")} == {
        f"workers/{w}.json": {"status": "stopped", "cycle": 2, "reason": "completed"}
        for w in ("w0", "w1")
    }
    # One cycle per iteration, with its outcome; the reviews keep 0.7.0's names and shape.
    cycles = sorted(k for k in files if k.startswith("cycles/"))
    assert cycles == [f"cycles/{w}-c{n}.json" for w in ("w0", "w1") for n in (1, 2)]
    for w in ("w0", "w1"):
        for n in (1, 2):
            iteration, cycle = files[f"iterations/{w}-i{n}.json"], files[f"cycles/{w}-c{n}.json"]
            assert cycle["outcome"] == iteration["outcome"] == "merged"
            assert cycle["recycled-tasks"] == iteration["recycled-tasks"]
            task = iteration["task-id"]
            assert cycle["claimed-task-ids"] == ([task] if task else [])
    reviews = sorted(k for k in files if k.startswith("reviews/"))
    assert reviews and all("-i" in k and "iteration" in files[k] for k in reviews), reviews
    index = json.loads((repo.path / "runs" / "index.json").read_text())
    assert [r["status"] for r in index["runs"]] == ["completed"]


def test_kill_9_leaves_a_dead_run_whose_worker_exited_mid_cycle(tmp_path):
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]},
        {"default": {"worker": {"claim": "auto", "hang": True}}},
        tasks=("t1",),
    )
    proc = start(repo)
    try:
        folder = wait_until(
            "w0 running",
            lambda: (
                (d := run_dir(repo))
                and (read(d / "workers" / "w0.json") or {}).get("status") == "running"
                and d
            ),
            proc,
        )
        assert dashboard(folder) == (
            ("running", f"pid {proc.pid} is alive"),
            {"w0": "running: cycle 1"},
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_agents(repo)
    # Nothing ran after the kill: no stopped.json, the pid is gone, the worker still says running.
    assert not (folder / "stopped.json").exists()
    status, labels = dashboard(folder)
    assert status == ("dead", f"no stopped.json, and pid {proc.pid} is not running")
    assert labels == {"w0": "exited mid-cycle 1"}
    assert read(folder / "workers" / "w0.json") == {"status": "running", "cycle": 1}


@pytest.mark.parametrize("args", MODES)
def test_sigterm_to_started_pid_stops_the_swarm_as_interrupted(tmp_path, args):
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]},
        {"default": {"worker": {"claim": "auto", "hang": True}}},
        tasks=("t1", "t2"),
    )
    proc = start(repo, *args)
    try:
        folder = wait_until(
            "both workers running",
            lambda: (
                (d := run_dir(repo))
                and all(
                    (read(d / "workers" / f"{w}.json") or {}).get("status") == "running"
                    for w in ("w0", "w1")
                )
                and d
            ),
            proc,
        )
        time.sleep(0.5)  # the agents are hanging inside their worktrees
        started = read(folder / "started.json")
        assert started is not None
        os.kill(started["pid"], signal.SIGTERM)  # the dashboard's Stop button
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_agents(repo)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    files = assert_events_valid(folder, reason="interrupted")
    assert_run_valid(folder)
    status, labels = dashboard(folder)
    assert status is not None and status[0] == "interrupted"
    assert labels == {w: "stopped: interrupted after cycle 0" for w in ("w0", "w1")}
    assert not [k for k in files if k.startswith("cycles/")]  # no iteration ended
    # The index says interrupted exactly when stopped.json does.
    index = json.loads((repo.path / "runs" / "index.json").read_text())
    assert [r["status"] for r in index["runs"]] == ["interrupted"]
    assert repo.worktrees() == [str(repo.path)] and repo.tasks("pending") == ["t1", "t2"]


@pytest.mark.parametrize("args", MODES)
def test_sigterm_mid_cycle_closes_the_cycle_as_interrupted(tmp_path, args):
    """oompa 0.7.3 mode: the cycle the stop cut short is written, as upstream writes it."""
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "max_cycle": 3}]},
        {"default": {"worker": [{"claim": "auto"}, {"hang": True}]}},
        tasks=("t1",),
    )
    proc = start(repo, *args)
    try:
        folder = wait_until(
            "cycle 1 open after its claim",
            lambda: (
                (d := run_dir(repo))
                and (read(d / "cycles" / "w0-c1.json") or {}).get("outcome") == "claimed"
                and d
            ),
            proc,
        )
        time.sleep(0.5)  # the second attempt's agent is hanging
        started = read(folder / "started.json")
        assert started is not None
        os.kill(started["pid"], signal.SIGTERM)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_agents(repo)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    files = assert_events_valid(folder, reason="interrupted")
    assert_run_valid(folder)
    cycle = files["cycles/w0-c1.json"]
    assert (cycle["outcome"], cycle["recycled-tasks"]) == ("interrupted", ["t1"])
    assert files["workers/w0.json"] == {"status": "stopped", "cycle": 0, "reason": "interrupted"}
    assert repo.tasks("pending") == ["t1"]


# -- the words of the end ---------------------------------------------------------------------


def test_an_engine_failure_ends_the_run_with_stopped_error(pytester, monkeypatch):
    from pytest_oompa.runs.recorder import Recorder

    monkeypatch.delenv("OOMPA_RUNS_DIR", raising=False)
    monkeypatch.delenv("RUNS_DIR", raising=False)
    GitRepo(pytester.path).add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]}
    )

    def summary(self: Recorder, reports: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Recorder, "summary", summary)  # in-process: the run sees it
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    (folder,) = [p for p in (pytester.path / "runs").iterdir() if p.is_dir()]
    stopped = read(folder / "stopped.json")
    assert stopped is not None and stopped["reason"] == "error"
    assert "writing summary.json failed: OSError" in stopped["error"]
    assert read(folder / "workers" / "w0.json") == {
        "status": "stopped",
        "cycle": 2,
        "reason": "completed",
    }
    assert run_status(read(folder / "started.json"), stopped)[0] == "failed"  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "exit_status", "causes", "expected"),
    [
        ("completed", 0, [], ("completed", None)),
        ("interrupted", 2, ["swarm timeout after 5 s"], ("interrupted", None)),
        ("failed", 1, [], ("completed", None)),  # rejected iterations, a failed gate
        ("failed", 1, ["swarm timeout after 5 s"], ("error", "swarm timeout after 5 s")),
        ("failed", 3, ["a", "b"], ("error", "a; b")),
        ("failed", 3, [], ("error", "pytest ended with exit status 3")),
        ("failed", None, [], ("completed", None)),
    ],
)
def test_stop_reason(status, exit_status, causes, expected):
    assert stop_reason(status, exit_status, causes) == expected


def test_worker_stop_reason():
    from pytest_oompa.core.results import WorkerMetrics, WorkerReport, WorkerStatus

    def report(status: WorkerStatus, **kw: Any) -> WorkerReport:
        return WorkerReport("w0", "claude", "opus", status, 3, 1, WorkerMetrics(), **kw)

    assert worker_stop_reason(report(WorkerStatus.EXHAUSTED)) == "completed"
    assert worker_stop_reason(report(WorkerStatus.DONE)) == "done"
    assert worker_stop_reason(report(WorkerStatus.ERROR)) == "error"
    assert worker_stop_reason(report(WorkerStatus.IDLE, interrupted=True)) == "interrupted"
    assert worker_stop_reason(report(WorkerStatus.IDLE, stop_reason="spend limit")) == (
        "interrupted"
    )
    assert worker_stop_reason(report(WorkerStatus.IDLE)) == "idle"


# -- where dashboards look ----------------------------------------------------------------------


def test_the_runs_folder_defaults_to_the_repo_even_when_it_is_not_the_rootdir(
    pytester, monkeypatch
):
    monkeypatch.delenv("OOMPA_RUNS_DIR", raising=False)
    monkeypatch.delenv("RUNS_DIR", raising=False)
    pytester.makeini("[pytest]\n")  # the rootdir: the folder above the project
    repo = GitRepo(pytester.path / "project")
    repo.add_swarm_config({**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    pytester.runpytest("--oompa-swarm=project/oompa.json").assert_outcomes(passed=1)
    assert not (pytester.path / "runs").exists()
    (folder,) = [p for p in (repo.path / "runs").iterdir() if p.is_dir()]
    assert (folder / "started.json").exists() and (folder / "stopped.json").exists()
    exclude = (repo.path / ".git" / "info" / "exclude").read_text()
    assert "/runs/" in exclude.splitlines()
    assert repo.git("status", "--porcelain") == ""
