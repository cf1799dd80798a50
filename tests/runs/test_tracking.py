"""Run tracking: metadata, heartbeat, call logs, error artifacts, the run index, the metrics
history and the reader, on real swarms with the fake harnesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.contract import assert_run_valid, assert_runs_valid
from support.terminal import default_sigint

from pytest_oompa import GitRepo
from pytest_oompa.runs.commandlog import read_events
from pytest_oompa.runs.reader import RunFolder, list_runs, main_runs, main_show

FAST = {"probe": False, "executor_wait": 0}


def test_a_finished_run_has_every_tracking_file(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("task")
    before = oompa_repo.head()
    run = oompa_swarm(
        {
            "workers": [{"model": "claude:opus", "iterations": 1, "prompt": "p.md"}],
            "reviewer": {"model": "codex:o3"},
        },
        prompts={"p.md": "Do the task."},
    )
    files = assert_run_valid(run.run_dir)
    meta = files["oompa-run.json"]
    assert meta["status"] == "completed" and meta["exit-status"] is None
    assert meta["harness-versions"] == {
        "claude": "2.1.197 (Claude Code)",
        "codex": "codex-cli 0.169.0",
    }
    assert meta["prompts"] == {str(run.config_path.parent / "p.md"): "Do the task."}
    assert meta["main-before"] == before and meta["main-after"] == oompa_repo.head()
    assert meta["counts"] == {
        "workers": 1,
        "iterations": 1,
        "merges": 1,
        "errors": 0,
        "rejections": 0,
    }
    assert files["heartbeat.json"]["state"] == "stopped"
    calls = files["calls/w0-i1.json"]["calls"]
    assert [c["role"] for c in calls] == ["worker", "reviewer"]
    assert calls[0]["session-id"] and calls[0]["input-tokens"] and calls[0]["cost-usd"]
    events = files[calls[0]["log"]]
    assert [e["event"] for e in (events[0], events[-1])] == ["start", "exit"]
    assert any("COMPLETE_AND_READY_FOR_MERGE" in e.get("data", "") for e in events)
    assert set(files["calls/preflight.json"]["calls"][0]) >= {"log", "role"}
    runs = assert_runs_valid(run.run_dir.parent)
    (entry,) = runs["index.json"]["runs"]
    assert (entry["id"], entry["status"], entry["counts"]["merges"]) == (
        run.result.swarm_id,
        "completed",
        1,
    )
    assert [line["status"] for line in runs["metrics.jsonl"]] == ["completed"]
    assert runs["metrics-summary.json"]["runs"] == 1
    assert runs["metrics-summary.json"]["success-rate"] == 1.0


def test_a_failed_call_leaves_an_error_artifact(oompa_repo, oompa_swarm):
    scenario = {
        "workers": {"w0": {"worker": [{"say": "oops", "exit": 3, "stderr": "rate limited"}]}}
    }
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "gemini:pro", "iterations": 1}]}, scenario=scenario
    )
    files = assert_run_valid(run.run_dir)
    (call,) = files["calls/w0-i1.json"]["calls"]
    assert call["failure"] == "exit code 3"
    error = files[call["error"]]
    assert error["exit-code"] == 3 and "rate limited" in error["stderr-tail"]
    assert error["log"] == call["log"] == "commands/w0-i1-worker-1.ndjson"
    assert files["oompa-run.json"]["status"] == "failed"


def test_a_runaway_output_is_capped_with_its_tail_and_memory_bounded(tmp_path):
    """50 MB from the harness: the log keeps 10 MB at most, the tail (the result) survives,
    and the engine's memory does not grow with the output (measured in a process of its own:
    peak RSS after a 1 KB run, then after the 50 MB run)."""
    script = tmp_path / "huge.py"
    script.write_text(
        textwrap.dedent(f"""
        import resource, tracemalloc
        from pathlib import Path
        from pytest_oompa import GitRepo
        from pytest_oompa.plugin.swarm_runner import SwarmRunner
        tmp = Path({str(tmp_path)!r})
        runner = SwarmRunner(tmp, GitRepo(tmp / "project"))
        config = {{"probe": False, "workers": [{{"model": "claude:opus", "iterations": 1}}]}}
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        runner(config, scenario={{"default": {{"worker": {{"output": "huge:1024",
                                                          "builtin": True}}}}}})
        small = peak()
        tracemalloc.start()
        run = runner(config, scenario={{"default": {{"worker": {{"output": "huge:52428800",
                                                                "builtin": True}}}}}})
        top = tracemalloc.take_snapshot().statistics("lineno")[:5]
        print(run.outcomes("w0")[0], run.run_dir, small, peak(),
              tracemalloc.get_traced_memory()[1] // (1 << 20))
        print(*top, sep=chr(10))
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    first = out.split("\n", 1)[0].split()
    outcome, run_dir = first[0], Path(first[1])
    small, big, traced_peak = int(first[2]), int(first[3]), int(first[4])
    assert outcome == "merged"  # the result at the end of 50 MB was still parsed
    log = run_dir / "commands" / "w0-i1-worker-1.ndjson"
    assert log.stat().st_size < 11 << 20
    events = read_events(log)
    truncated = next(e for e in events if e["event"] == "truncated")
    assert truncated["omitted-bytes"] > 35 << 20
    tail = "".join(e["data"] for e in events[events.index(truncated) :] if e["event"] == "output")
    assert "COMPLETE_AND_READY_FOR_MERGE" in tail
    # Holding the output would take >= 50 MB of bytes and as much again of text (> 100 MB);
    # the caps keep ~1 + 4 MB per stream, a 10 MB log ring and their copies (~34 MB traced,
    # RSS +32 MB measured here).
    assert traced_peak < 70, out
    assert big - small < 80, out
    assert_run_valid(run_dir)


def _project(path: Path, config: dict, scenario: dict | None = None) -> GitRepo:
    repo = GitRepo(path)
    repo.add_swarm_config(config, scenario)
    return repo


def _pytest(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--oompa-swarm=oompa.json",
            *args,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )


def test_two_swarms_on_two_repos_share_one_runs_dir(tmp_path):
    runs = tmp_path / "runs"
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}]}
    repos = [_project(tmp_path / name, config) for name in ("a", "b")]
    procs = [_pytest(r.path, f"--oompa-runs-dir={runs}") for r in repos]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    found = assert_runs_valid(runs)
    index = found["index.json"]["runs"]
    assert sorted(e["repo"] for e in index) == sorted(str(r.path) for r in repos)
    assert {e["status"] for e in index} == {"completed"}
    assert len(found["metrics.jsonl"]) == 2 and found["metrics-summary.json"]["runs"] == 2


def test_kill_9_leaves_valid_files_and_the_reader_says_dead(tmp_path):
    runs = tmp_path / "runs"
    repo = _project(
        tmp_path / "p",
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 5}]},
        {"default": {"worker": {"delay": 2, "builtin": True}}},
    )
    proc = _pytest(repo.path, f"--oompa-runs-dir={runs}")
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/iterations/*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (info,) = list_runs(runs)
    assert info.status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    time.sleep(1.5)
    (info,) = list_runs(runs, stale_after=1)
    assert info.status == "dead" and info.iterations >= 1
    assert RunFolder(runs, info.id).info(stale_after=3600).status == "running"  # age decides
    assert_runs_valid(runs)  # nothing half-written: every file parses and validates


def test_a_failed_preflight_is_recorded_with_its_probe_logs(tmp_path):
    runs = tmp_path / "runs"
    repo = _project(
        tmp_path / "p",
        {"workers": [{"model": "codex:o3", "iterations": 1}]},
        {"harnesses": {"codex": {"probe": {"exit": 1, "stderr": "401 Unauthorized"}}}},
    )
    proc = _pytest(repo.path, f"--oompa-runs-dir={runs}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    found = assert_runs_valid(runs)
    (entry,) = found["index.json"]["runs"]
    assert (entry["status"], entry["exit-status"]) == ("failed", 4)
    meta = found[f"{entry['id']}/oompa-run.json"]
    assert "401 Unauthorized" in meta["errors"][0]
    assert f"{entry['id']}/commands/preflight-probe-codex-o3.ndjson" in found
    assert f"{entry['id']}/errors/preflight-probe-codex-o3.json" in found
    assert f"{entry['id']}/run.json" not in found  # the swarm itself never started


@pytest.mark.parametrize(
    ("scenario", "args", "status", "code"),
    [
        (None, (), "completed", 0),
        ({"workers": {"w0": {"worker": [{"exit": 1}]}}}, (), "failed", 1),
        ({"workers": {"w0": {"worker": [{"exit": 1}]}}}, ("-x",), "failed", 1),
    ],
)
def test_the_index_status_follows_pytests_exit(tmp_path, scenario, args, status, code):
    runs = tmp_path / "runs"
    repo = _project(
        tmp_path / "p", {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]}, scenario
    )
    proc = _pytest(repo.path, f"--oompa-runs-dir={runs}", *args)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    (entry,) = assert_runs_valid(runs)["index.json"]["runs"]
    assert (entry["status"], entry["exit-status"]) == (status, code)


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_sigint_is_recorded_as_interrupted(tmp_path, presses):
    """A second Ctrl-C during the cleanup does not cut it short: same clean end."""
    runs = tmp_path / "runs"
    repo = _project(
        tmp_path / "p",
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3}]},
        {"default": {"worker": {"hang": True}}},
    )
    proc = _pytest(repo.path, f"--oompa-runs-dir={runs}")
    deadline = time.monotonic() + 60
    while len(repo.worktrees()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert repo.worktrees() == [str(repo.path)] and repo.branches() == ["main"]
    found = assert_runs_valid(runs)
    (entry,) = found["index.json"]["runs"]
    assert (entry["status"], entry["exit-status"]) == ("interrupted", 2)
    assert [m["status"] for m in found["metrics.jsonl"]] == ["interrupted"]


def test_reader_commands(oompa_repo, oompa_swarm, capsys, monkeypatch):
    run = oompa_swarm({**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]})
    runs = run.run_dir.parent
    assert main_runs(["--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert run.result.swarm_id in out and "completed" in out
    monkeypatch.setenv("OOMPA_RUNS_DIR", str(runs))
    assert main_show([run.result.swarm_id]) == 0
    out = capsys.readouterr().out
    assert "w0      claude:opus" in out and "w0-i2" in out
    assert main_runs(["--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["merges"] == 2 and listed["status"] == "completed"
    # a corrupt file is reported by name, not a traceback
    (run.run_dir / "iterations" / "w0-i1.json").write_text("{broken")
    assert main_show([str(run.run_dir)]) == 1
    captured = capsys.readouterr()
    assert "corrupt:" in captured.err and "w0-i1.json" in captured.err
    assert main_show(["no-such-run"]) == 2


def test_python_dash_m_entry_point(oompa_repo, oompa_swarm):
    run = oompa_swarm({**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    env = {**os.environ, "OOMPA_RUNS_DIR": str(run.run_dir.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest_oompa", "runs"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert run.result.swarm_id in out
    assert (
        subprocess.run(
            [sys.executable, "-m", "pytest_oompa", "nope"], capture_output=True
        ).returncode
        == 2
    )
