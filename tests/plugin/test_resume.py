"""Resuming a run that was cut off: kill -9 or Ctrl-C mid-run, then --oompa-resume. Real swarms
with the bundled fakes, real git, real processes.

Every fake call merges (its built-in agent), so a clean run's result is known: each worker's
iterations each merge one work line. A run is cut once some iterations are recorded; the resume
must end with every iteration recorded exactly once, main holding what a clean run holds, the
sessions of cut-off iterations resumed, and nothing left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.contract import assert_events_valid, assert_run_valid

from pytest_oompa import GitRepo

FAST = {"probe": False, "executor_wait": 0}
TIMEOUT = 90


def project(root: Path, scenario: dict[str, Any], workers: int = 2, iterations: int = 3, **kw):
    repo = GitRepo(root / "project")
    unit = {"max_cycle": iterations} if kw.pop("cycles", False) else {"iterations": iterations}
    config = {**FAST, "workers": [{"model": "claude:opus", **unit, "count": workers}], **kw}
    repo.add_swarm_config(config, scenario, [f"t{n}" for n in range(workers * iterations)])
    return repo


def pytest_argv(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--oompa-swarm=oompa.json",
        "-p",
        "no:cacheprovider",
        "--oompa-live=off",
        *args,
    ]


def start(repo: GitRepo, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        pytest_argv(*args),
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: kill -9 takes the xdist nodes with it
    )


def resume(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_argv("--oompa-resume", "--junitxml=../junit.xml", *args),
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def the_run(repo: GitRepo) -> Path:
    (run,) = [p for p in (repo.path / "runs").iterdir() if p.is_dir()]
    return run


def wait_until(what: str, check: Callable[[], Any], proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if found := check():
            return found
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}:\n{proc.communicate()[0]}")
        time.sleep(0.05)
    pytest.fail(f"never saw {what}")


def recorded(repo: GitRepo, kind: str = "iterations") -> int:
    runs = repo.path / "runs"
    return sum(1 for _ in runs.glob(f"*/{kind}/*.json")) if runs.is_dir() else 0


def kill_9(repo: GitRepo, proc: subprocess.Popen[str]) -> None:
    """kill -9 the run's whole process group, and the agents it could not stop."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    found = subprocess.run(["pgrep", "-f", str(repo.path / ".w")], capture_output=True, text=True)
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def nothing_left(repo: GitRepo) -> None:
    git = ["git", "-C", str(repo.path)]
    assert (
        subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    )
    assert repo.worktrees() == [str(repo.path)]
    branches = subprocess.run(
        [*git, "branch", "--list", "oompa/*"], capture_output=True, text=True
    ).stdout
    assert branches == ""
    assert repo.tasks("current") == []


def work_files(repo: GitRepo) -> list[str]:
    """The built-in agent writes oompa-work/<its worktree>.txt: one file per merged unit of
    work, on main (a cut iteration that continues in its worktree adds a line to its file)."""
    out = subprocess.run(
        ["git", "-C", str(repo.path), "ls-tree", "--name-only", "main", "oompa-work/"],
        capture_output=True,
        text=True,
    ).stdout
    return sorted(Path(line).stem for line in out.split())


def merges(run: Path) -> int:
    summary = json.loads((run / "summary.json").read_text())
    return sum(w["merges"] for w in summary["workers"])


def junit(repo: GitRepo) -> dict[str, dict[str, str]]:
    """Each item's junit properties, by ``w0::i1``."""
    tree = ET.parse(repo.path.parent / "junit.xml")
    return {
        f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}": {
            p.get("name", ""): p.get("value", "") for p in case.iter("property")
        }
        for case in tree.iter("testcase")
    }


MERGING = {"default": {"worker": {"builtin": True, "delay": 0.8}}}


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "-n 2"])
def test_kill_9_then_resume_records_every_iteration_once(tmp_path, xdist):
    repo = project(tmp_path, MERGING)
    args = ["-n", "2"] if xdist else []
    proc = start(repo, *args)
    wait_until("2 iterations recorded", lambda: recorded(repo) >= 2, proc)
    kill_9(repo, proc)
    cut = recorded(repo)
    assert 2 <= cut < 6
    result = resume(repo, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
    run = the_run(repo)
    files = assert_run_valid(run)
    assert_events_valid(run)
    assert sorted(k for k in files if k.startswith("iterations/")) == [
        f"iterations/w{w}-i{n}.json" for w in (0, 1) for n in (1, 2, 3)
    ]
    # what a clean run merges: each iteration's work, once
    assert work_files(repo) == [f".w{w}-i{n}" for w in (0, 1) for n in (1, 2, 3)]
    assert merges(run) == 6
    nothing_left(repo)
    props = junit(repo)
    resumed = [k for k, v in props.items() if v.get("resumed") == "True"]
    assert len(resumed) == cut  # the iterations recorded before the kill, reported again
    meta = files["oompa-run.json"]
    assert meta["status"] == "completed" and len(meta["resumes"]) == 1
    assert meta["resumes"][0]["previous-status"] == "dead"
    (entry,) = json.loads((repo.path / "runs" / "index.json").read_text())["runs"]
    assert (entry["status"], entry["resumes"], entry["counts"]["iterations"]) == (
        "completed",
        1,
        6,
    )
    lines = (repo.path / "runs" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # the run counts once


def test_a_cut_iteration_resumes_its_session_in_its_worktree(tmp_path):
    # w0: iteration 1 claims (the session and worktree carry on), iteration 2 is slow: cut
    # there. The fakes count calls per worker across the run, so the rerun is call 3: fast.
    slow = {"builtin": True, "delay": 30}
    scenario = {"workers": {"w0": {"worker": [{"claim": "t0"}, slow, {"builtin": True}]}}}
    repo = project(tmp_path, scenario, workers=1, iterations=2)
    proc = start(repo)
    wait_until(
        "iteration 2's call",
        lambda: any(repo.path.glob("runs/*/commands/w0-i2-worker-1.ndjson")),
        proc,
    )
    kill_9(repo, proc)
    run = the_run(repo)
    first = json.loads((run / "calls" / "w0-i1.json").read_text())["calls"][0]["session-id"]
    result = resume(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    files = assert_run_valid(run)
    log = (run / "commands" / "w0-i2-worker-1.ndjson").read_text().splitlines()
    rerun = [json.loads(line) for line in log]
    argv = rerun[0]["argv"]
    assert "--resume" in argv and argv[argv.index("--resume") + 1] == first
    assert rerun[0]["cwd"].endswith("/.w0-i1")  # the same worktree, carried on
    assert (run / "commands" / "w0-i2-worker-1.cut-1.ndjson").exists()  # the paid-for call, kept
    assert files["iterations/w0-i2.json"]["outcome"] == "merged"
    nothing_left(repo)


def test_ctrl_c_then_resume_and_resuming_twice(tmp_path):
    repo = project(tmp_path, MERGING, iterations=4)
    first = start(repo)
    wait_until("2 iterations recorded", lambda: recorded(repo) >= 2, first)
    first.send_signal(signal.SIGINT)  # Ctrl-C: cleans up, and records the run as interrupted
    out, _ = first.communicate(timeout=TIMEOUT)
    assert first.returncode == pytest.ExitCode.INTERRUPTED, out
    run = the_run(repo)
    assert json.loads((run / "oompa-run.json").read_text())["status"] == "interrupted"
    second = subprocess.Popen(
        pytest_argv("--oompa-resume"),
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    before = recorded(repo)
    wait_until("one more iteration", lambda: recorded(repo) > before, second)
    kill_9(repo, second)  # the resumed attempt dies too
    result = resume(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    files = assert_run_valid(run)
    assert_events_valid(run)
    assert len([k for k in files if k.startswith("iterations/")]) == 8
    assert work_files(repo) == [f".w{w}-i{n}" for w in (0, 1) for n in (1, 2, 3, 4)]
    assert merges(run) == 8
    meta = files["oompa-run.json"]
    assert [e["previous-status"] for e in meta["resumes"]] == ["interrupted", "dead"]
    assert meta["status"] == "completed"
    nothing_left(repo)


def test_a_0_7_3_cycle_cut_mid_attempt_reruns_in_its_session(tmp_path):
    # cycle 1: attempt 1 claims, attempt 2 is slow (cut there); the rerun is call 3: it merges
    slow = {"builtin": True, "delay": 30}
    scenario = {"workers": {"w0": {"worker": [{"claim": "t0"}, slow, {"builtin": True}]}}}
    repo = project(tmp_path, scenario, workers=1, iterations=1, cycles=True)
    proc = start(repo)
    wait_until(
        "cycle 1 open after its claim",
        lambda: any(
            json.loads(p.read_text() or "{}").get("outcome") == "claimed"
            for p in repo.path.glob("runs/*/cycles/w0-c1.json")
        ),
        proc,
    )
    time.sleep(0.5)  # attempt 2 is under way
    kill_9(repo, proc)
    run = the_run(repo)
    session = json.loads((run / "resume" / "w0.json").read_text())["session-id"]
    result = resume(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    files = assert_run_valid(run)
    assert_events_valid(run)
    assert files["cycles/w0-c1.json"]["outcome"] == "merged"
    calls = files["calls/w0-c1.json"]["calls"]
    assert calls[0]["session-id"] == session  # the cycle went on in its session
    assert "--resume" in calls[0]["argv"]
    nothing_left(repo)


# -- refusals ----------------------------------------------------------------------------------


def refused(repo: GitRepo, *args: str) -> str:
    result = resume(repo, *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    return result.stderr


def finished_run(tmp_path: Path) -> GitRepo:
    repo = project(tmp_path, {"default": {"worker": {"builtin": True}}}, workers=1, iterations=1)
    done = subprocess.run(pytest_argv(), cwd=repo.path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    return repo


def test_a_completed_run_is_not_resumed(tmp_path):
    repo = finished_run(tmp_path)
    assert "completed: there is nothing to resume" in refused(repo)
    assert "completed: there is nothing to resume" in refused(repo, the_run(repo).name)


def test_a_run_still_alive_is_not_resumed(tmp_path):
    repo = project(tmp_path, {"default": {"worker": {"hang": True}}}, workers=1, iterations=1)
    proc = start(repo)
    try:
        wait_until("the run started", lambda: recorded(repo, "workers") >= 1, proc)
        assert f"is still running (its process {proc.pid} is alive" in refused(repo)
    finally:
        kill_9(repo, proc)


def cut_run(tmp_path: Path) -> GitRepo:
    repo = project(tmp_path, MERGING, workers=1, iterations=3)
    proc = start(repo)
    wait_until("1 iteration recorded", lambda: recorded(repo) >= 1, proc)
    kill_9(repo, proc)
    return repo


def test_a_changed_config_or_prompt_is_refused_unless_forced(tmp_path):
    repo = cut_run(tmp_path)
    config = json.loads((repo.path / "oompa.json").read_text())
    config["executor_wait"] = 5
    (repo.path / "oompa.json").write_text(json.dumps(config))
    repo.commit("change the config")
    err = refused(repo)
    assert "cannot be resumed as it is:" in err and "oompa.json changed since" in err
    result = resume(repo, "--oompa-resume-force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resumed despite: the config" in result.stdout
    meta = json.loads((the_run(repo) / "oompa-run.json").read_text())
    assert "changed since the run started" in meta["resumes"][0]["forced"][0]


def test_a_main_that_lost_a_merge_is_refused(tmp_path):
    repo = cut_run(tmp_path)
    subprocess.run(["git", "-C", str(repo.path), "reset", "-q", "--hard", "HEAD~1"], check=True)
    assert "main no longer contains" in refused(repo)


def test_a_run_folder_that_does_not_validate_is_refused(tmp_path):
    repo = cut_run(tmp_path)
    (the_run(repo) / "iterations" / "w0-i1.json").write_text('{"worker-id": 3}')
    assert "files do not validate" in refused(repo)


def test_a_run_without_its_token_is_refused(tmp_path):
    repo = cut_run(tmp_path)
    (the_run(repo) / ".resume-token").write_bytes(b"x" * 32)
    assert "no matching .resume-token" in refused(repo)


def test_a_merge_the_dead_run_did_not_record_is_not_merged_twice(tmp_path):
    """Killed between a merge and its record: the resume point says which unit was merging
    and which branch head; main contains it, so the unit is recorded as merged, not rerun.
    (The moment is made by hand: a finished run's record of that unit is taken away.)"""
    repo = finished_run(tmp_path)
    run = the_run(repo)
    head = subprocess.run(
        ["git", "-C", str(repo.path), "rev-parse", "main"], capture_output=True, text=True
    ).stdout.strip()
    for name in ("iterations/w0-i1.json", "cycles/w0-c1.json", "summary.json", "stopped.json"):
        (run / name).unlink()
    point = json.loads((run / "resume" / "w0.json").read_text())
    point.update(finished=0, status="running", merging={"unit": 1, "head": head})
    (run / "resume" / "w0.json").write_text(json.dumps(point))
    meta = json.loads((run / "oompa-run.json").read_text())
    meta.update(status="running", pid=2**22 + 7)  # a pid that is not running
    (run / "oompa-run.json").write_text(json.dumps(meta))
    result = resume(repo, f"--oompa-resume={run.name}")  # (the index says it completed)
    assert result.returncode == 0, result.stdout + result.stderr
    files = assert_run_valid(run)
    assert files["iterations/w0-i1.json"]["outcome"] == "merged"
    log = subprocess.run(
        ["git", "-C", str(repo.path), "log", "--oneline", "main"], capture_output=True, text=True
    ).stdout
    assert log.count("w0: work") == 1  # not worked on, nor merged, a second time
    assert "resumed" in junit(repo)["w0::i1"]
    calls = [c for c in (run / "commands").glob("w0-i1-worker-*.ndjson")]
    assert len(calls) == 1  # the agent was not called again
