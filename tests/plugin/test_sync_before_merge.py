"""Sync before merge, in real swarms on real git with the bundled fakes: two workers change the
same file from the same main; the one that merges second must first make its branch merge
main, and its agent (the fakes' sync role) resolves the conflict, or fails, or hangs.

The conflict is made certain, not hoped for: both workers' worktrees are made when the swarm
starts (from the same main), w0 merges at once, and w1 writes only after a delay, so w1's
branch conflicts with w0's merge. Each test checks that the conflict happened (a sync call in
w1's calls file) before it checks what came of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.contract import assert_events_valid, assert_run_valid

from pytest_oompa import GitRepo

FAST = {"probe": False, "executor_wait": 0}


def conflicting_pair(sync_step: dict[str, Any] | None = None) -> dict[str, Any]:
    """w0 and w1 each add their own line to shared.txt, as a new file: an add/add conflict."""

    def work(worker: str, delay: float) -> dict[str, Any]:
        return {
            "delay": delay,
            "write": {"shared.txt": f"{worker} was here\n"},
            "commit": True,
            "merge": True,
        }

    w1: dict[str, Any] = {"worker": work("w1", 1.5)}
    if sync_step is not None:
        w1["sync"] = sync_step
    return {"workers": {"w0": {"worker": work("w0", 0)}, "w1": w1}}


def run(pytester: pytest.Pytester, config: dict[str, Any], scenario: dict[str, Any], *args: str):
    project = GitRepo(pytester.path / "project")
    project.add_swarm_config({**FAST, **config}, scenario)
    result = pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-p", "no:cacheprovider", *args
    )
    (run_dir,) = [p for p in (pytester.path / "project" / "runs").iterdir() if p.is_dir()]
    return result, run_dir, project.path


def main_file(repo: Path, name: str) -> str:
    return subprocess.run(
        ["git", "show", f"main:{name}"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def roles(files: dict[str, Any], who: str) -> list[str]:
    return [c["role"] for c in files[f"calls/{who}.json"]["calls"]]


def two_workers(mode: str, **extra: Any) -> dict[str, Any]:
    key = {"max_cycle": 1} if mode == "0.7.3" else {"iterations": 1}
    return {"workers": [{"model": "claude:opus", **key}, {"model": "codex:o3", **key}], **extra}


@pytest.mark.parametrize("mode", ["0.7.3", "0.7.0"])
def test_a_conflicting_pair_ends_with_both_changes_on_main(pytester, mode):
    config = two_workers(mode, **({"sync_before_merge": True} if mode == "0.7.0" else {}))
    result, run_dir, repo = run(pytester, config, conflicting_pair())
    result.assert_outcomes(passed=2)
    unit = "c1" if mode == "0.7.3" else "i1"
    files = assert_run_valid(run_dir)
    assert_events_valid(run_dir)
    assert roles(files, f"w1-{unit}") == ["worker", "sync"]  # the conflict happened
    # the fakes keep both sides, the branch's (w1) first
    assert main_file(repo, "shared.txt") == "w1 was here\nw0 was here\n"
    assert files["cycles/w1-c1.json"]["outcome"] == "merged"  # (0.7.0: iteration 1 as cycle 1)
    # the agent resolved it in its own session: the sync call resumed the worker's
    calls = files[f"calls/w1-{unit}.json"]["calls"]
    assert calls[1]["session-id"] == calls[0]["session-id"]
    assert "--resume" in " ".join(calls[1]["argv"]) or calls[1]["argv"][1] == "exec"


def test_without_sync_the_second_merge_is_an_error_and_its_work_is_lost(pytester):
    config = two_workers("0.7.3", sync_before_merge=False)
    result, run_dir, repo = run(pytester, config, conflicting_pair())
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*w1 cycle 1: error*", "*merge into main failed, aborted*"])
    files = assert_run_valid(run_dir)
    assert roles(files, "w1-c1") == ["worker"]
    assert main_file(repo, "shared.txt") == "w0 was here\n"


def test_an_agent_that_cannot_resolve_ends_in_sync_failed(pytester):
    result, run_dir, repo = run(
        pytester, two_workers("0.7.3"), conflicting_pair({"resolve": False})
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*w1 cycle 1: sync-failed*",
            "*the branch still does not merge main after 5 attempts to resolve*",
        ]
    )
    files = assert_run_valid(run_dir)
    assert roles(files, "w1-c1") == ["worker"] + ["sync"] * 5
    assert files["cycles/w1-c1.json"]["outcome"] == "sync-failed"
    assert main_file(repo, "shared.txt") == "w0 was here\n"
    # the worktree is gone and main is clean: nothing of the failed sync is left behind
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    assert not (repo / ".w1-c1").exists()


def test_an_agent_that_hangs_on_the_conflict_is_cut_by_its_timeout(pytester):
    config = two_workers("0.7.3", timeouts={"call": 4})
    result, run_dir, _ = run(pytester, config, conflicting_pair({"hang": True}))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*w1 cycle 1: sync-failed*", "*resolving the conflict failed: timeout*"]
    )
    files = assert_run_valid(run_dir)
    assert roles(files, "w1-c1") == ["worker", "sync"]
