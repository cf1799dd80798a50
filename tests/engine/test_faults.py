"""Fault injection: harnesses that fail in every way we know, on real swarms.

Every case checks the same things besides its own outcome: the swarm ends in bounded time,
claimed tasks are back in pending/, no worktree, branch or agent process is left, main is
intact (``git fsck``), and every file of the run validates.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from support.contract import assert_run_valid

from pytest_oompa.core.results import Outcome
from pytest_oompa.engine.markers import MAX_CLAIM_IDS
from pytest_oompa.engine.preflight import PreflightError
from pytest_oompa.harnesses.spec import HarnessSpec

FAST = {"probe": False, "executor_wait": 0}


def processes_in(folder: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append(int(entry.name))
    return found


def assert_no_litter(repo, run) -> None:
    assert repo.status() == []
    assert repo.branches() == ["main"]
    assert repo.worktrees() == [str(repo.path)]
    assert repo.tasks("current") == []
    repo.git("fsck", "--strict", "--no-progress")
    assert processes_in(repo.path) == []
    assert_run_valid(run.run_dir)


def seed(repo, *tasks: str) -> None:
    for t in tasks:
        repo.add_task(t)
    repo.commit("tasks")


def swarm(oompa_swarm, scenario, *, model="claude:opus", iterations=1, **extra):
    config = {**FAST, "workers": [{"model": model, "iterations": iterations}], **extra}
    start = time.monotonic()
    run = oompa_swarm(config, scenario=scenario)
    return run, time.monotonic() - start


CLAIM_T1 = {"claim": ["t1"]}
# A failed call's output is never trusted (its CLAIM is not honoured), so each case first
# claims a task in a good call, then fails while holding it.


@pytest.mark.parametrize(
    ("case", "step", "extra", "error"),
    [
        ("exits non-zero", {**CLAIM_T1, "exit": 2, "stderr": "boom"}, {}, "exit code 2"),
        ("crashes by signal", {**CLAIM_T1, "crash": "SIGSEGV"}, {}, "killed by signal SIGSEGV"),
        ("hangs", {**CLAIM_T1, "hang": True}, {"timeouts": {"call": 1}}, "timeout after 1 s"),
        (
            "stalls",
            {**CLAIM_T1, "hang": True},
            {"timeouts": {"stall": 1}},
            "stalled: no output for 1 s",
        ),
        (
            "outlives its iteration",
            {**CLAIM_T1, "delay": 5},
            {"timeouts": {"iteration": 1}},
            "iteration timeout after 1 s",
        ),
        (
            "prints malformed JSON",
            {**CLAIM_T1, "output": "malformed", "merge": True},
            {},
            "unparsable output",
        ),
    ],
)
def test_a_failing_harness_is_an_error_and_loses_nothing(
    oompa_repo, oompa_swarm, case, step, extra, error
):
    seed(oompa_repo, "t1")
    scenario = {"workers": {"w0": {"worker": [CLAIM_T1, step]}}}
    run, took = swarm(oompa_swarm, scenario, iterations=2, **extra)
    assert took < 30, case
    assert run.outcomes("w0") == ["claimed", "error"]
    result = run.iterations[("w0", 2)]
    assert error in result.error
    assert result.recycled == ("t1",) and oompa_repo.tasks("pending") == ["t1"]
    (call,) = run.artifact("calls/w0-i2.json")["calls"]
    assert run.artifact(call["error"])["failure"] == call["failure"]
    assert_no_litter(oompa_repo, run)


def test_signals_printed_only_on_stderr_are_not_signals(oompa_repo, oompa_swarm):
    step = {"say": "CLAIM(t1)\nCOMPLETE_AND_READY_FOR_MERGE", "signals_on_stderr": True}
    seed(oompa_repo, "t1")
    run, _ = swarm(oompa_swarm, {"workers": {"w0": {"worker": [step]}}})
    assert run.outcomes("w0") == ["working"]
    assert oompa_repo.tasks("pending") == ["t1"]
    assert_no_litter(oompa_repo, run)


def test_a_missing_binary_stops_the_swarm_before_anything_runs(oompa_repo, oompa_swarm):
    oompa_swarm.registry.register(HarnessSpec(name="ghost", binary="ghost-agent-cli"))
    with pytest.raises(PreflightError, match="'ghost-agent-cli' is not on PATH"):
        oompa_swarm({"workers": [{"model": "ghost:m"}]})
    assert oompa_repo.branches() == ["main"] and oompa_repo.status() == []


def test_shell_metacharacters_in_prompts_travel_verbatim(oompa_repo, oompa_swarm, tmp_path):
    canary = tmp_path / "pwned"
    nasty = f"$(touch {canary}); `touch {canary}` && touch {canary} | x > y\n'\"\\ {{model}}\n\t;"
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "codex:o3; rm -rf /", "iterations": 1, "prompt": "nasty.md"}],
        },
        prompts={"nasty.md": nasty},
    )
    (call,) = run.fake_calls
    assert nasty in call["argv"][-1]
    assert call["argv"][call["argv"].index("-m") + 1] == "o3; rm -rf /"
    assert not canary.exists()
    assert_no_litter(oompa_repo, run)


@pytest.mark.parametrize(
    ("claim", "claimed", "refused"),
    [
        ("CLAIM(../../etc/passwd)", 0, 1),
        ("CLAIM()", 0, 0),
        ("CLAIM(" + ", ".join(f"t{i}" for i in range(1000)) + ")", 2, 1000 - MAX_CLAIM_IDS),
    ],
    ids=["traversal", "empty", "a-thousand-ids"],
)
def test_hostile_claims(oompa_repo, oompa_swarm, claim, claimed, refused):
    seed(oompa_repo, "t1", "t2")
    run, took = swarm(oompa_swarm, {"workers": {"w0": {"worker": [{"say": claim}]}}})
    assert took < 30
    result = run.iterations[("w0", 1)]
    assert len(result.task_ids) == claimed
    if refused:
        assert any("refused invalid task ids" in note for note in result.notes)
    assert not Path("/etc/passwd.json").exists()
    assert sorted(oompa_repo.tasks("pending")) == ["t1", "t2"]  # recycled at the worker's end
    assert_no_litter(oompa_repo, run)


def test_a_task_file_with_invalid_json_is_reported_and_left_whole(oompa_repo, oompa_swarm):
    oompa_repo.write("tasks/pending/bad.json", "{this is not json")
    oompa_repo.commit("a broken task")
    step = {"claim": ["bad"], "write": {"x.txt": "x"}, "commit": True, "merge": True}
    run, _ = swarm(oompa_swarm, {"workers": {"w0": {"worker": [step]}}})
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.MERGED
    assert any("not valid task JSON" in note for note in result.notes)
    done = oompa_repo.path / "tasks" / "complete" / "bad.json"
    assert done.read_text() == "{this is not json"
    assert_no_litter(oompa_repo, run)


def test_two_workers_claiming_one_task_at_once_get_one_winner(oompa_repo, oompa_swarm):
    seed(oompa_repo, "only")
    step = {
        "delay": 0.3,
        "claim": ["only"],
        "write": {"{worker}.txt": "x"},
        "commit": True,
        "merge": True,
    }
    scenario = {"default": {"worker": step}}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1, "count": 4}]},
        scenario=scenario,
    )
    holders = [r.worker_id for r in run.result.iterations if r.task_ids == ("only",)]
    assert len(holders) == 1
    assert oompa_repo.tasks("complete") == ["only"]
    done = json.loads((oompa_repo.path / "tasks/complete/only.json").read_text())
    assert done["completed-by"] == holders[0]
    assert_no_litter(oompa_repo, run)


def test_sixteen_workers_merging_at_once_lose_nothing(oompa_repo, oompa_swarm):
    run = oompa_swarm({**FAST, "workers": [{"model": "claude:opus", "iterations": 2, "count": 16}]})
    assert sum(w.metrics.merges for w in run.workers.values()) == 32
    work = [f for f in oompa_repo.files() if f.startswith("oompa-work/")]
    assert len(work) == 32  # every merge really landed on main
    assert_no_litter(oompa_repo, run)


def test_an_infrastructure_failure_is_retried(oompa_repo, oompa_swarm):
    """gemini exits 244 (HTTP 500 in its json modes): retried, then merged."""
    scenario = {"workers": {"w0": {"worker": [{"exit": 244, "stderr": "500"}, "default"]}}}
    run, _ = swarm(
        oompa_swarm, scenario, model="gemini:pro", retries={"attempts": 2, "backoff": 0.1}
    )
    assert run.outcomes("w0") == ["merged"]
    (call, *_) = run.artifact("calls/w0-i1.json")["calls"]
    assert call["attempts"] == 2 and call["failure"] is None
    starts = [e for e in run.artifact(call["log"]) if e["event"] == "start"]
    assert len(starts) == 2
    assert_no_litter(oompa_repo, run)


def test_a_models_own_failure_is_not_retried(oompa_repo, oompa_swarm):
    scenario = {"workers": {"w0": {"worker": [{"exit": 1}, "default"]}}}
    run, _ = swarm(
        oompa_swarm, scenario, model="gemini:pro", retries={"attempts": 3, "backoff": 0.1}
    )
    assert run.outcomes("w0") == ["error"]
    assert run.artifact("calls/w0-i1.json")["calls"][0]["attempts"] == 1


def test_a_swarm_timeout_stops_every_worker_and_fails_the_run(oompa_repo, oompa_swarm):
    seed(oompa_repo, "t1", "t2")
    scenario = {"default": {"worker": {"claim": "auto", "hang": True}}}
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}],
            "timeouts": {"swarm": 1.5},
        },
        scenario=scenario,
    )
    assert run.result.timed_out == "swarm timeout after 1.5 s"
    assert run.result.status == "failed" and not run.result.interrupted
    assert sorted(oompa_repo.tasks("pending")) == ["t1", "t2"]
    assert_no_litter(oompa_repo, run)


def test_the_harness_gets_no_blanket_copy_of_the_environment(oompa_repo, oompa_swarm, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-for-claude")
    run, _ = swarm(oompa_swarm, None)
    (call,) = run.fake_calls
    assert "MY_SERVICE_TOKEN" not in call["env"]  # the fake logs *TOKEN* names when present
    assert call["env"]["ANTHROPIC_API_KEY"] == "<redacted>"  # claude reads it: passed
    passed, _ = swarm(oompa_swarm, None, env={"pass": ["MY_SERVICE_*"], "set": {"OOMPA_X": "1"}})
    (call,) = passed.fake_calls
    assert call["env"]["MY_SERVICE_TOKEN"] == "<redacted>" and call["env"]["OOMPA_X"] == "1"
    assert "s3cr3t" not in json.dumps(passed.artifacts())  # and never in an artifact


def test_a_stop_mid_review_recycles_and_cleans(oompa_repo, oompa_swarm):
    """Stopping while the reviewer hangs: the iteration is abandoned, nothing is left."""
    from pytest_oompa.core.config import resolve
    from pytest_oompa.engine.swarm import Swarm, SwarmOptions

    seed(oompa_repo, "t1")
    folder = oompa_repo.path.parent / "cfg"
    folder.mkdir()
    (folder / "s.json").write_text(
        json.dumps(
            {
                "workers": {
                    "w0": {
                        "worker": [
                            {"claim": ["t1"], "write": {"a": "b"}, "commit": True, "merge": True}
                        ],
                        "reviewer": [{"hang": True}],
                    }
                }
            }
        )
    )
    data = {
        **FAST,
        "workers": [{"model": "claude:opus", "iterations": 2}],
        "reviewer": {"model": "claude:sonnet"},
        "fake_harnesses": {"scenario": "s.json"},
    }
    swarm_ = Swarm(
        resolve(data, folder / "oompa.json", ("claude",)),
        SwarmOptions(runs_dir=folder / "runs", repo_root=oompa_repo.path),
    )
    swarm_.prepare()
    swarm_.start()
    deadline = time.monotonic() + 20
    while not list((folder / "runs").glob("*/commands/*reviewer*")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    threading.Timer(0.2, swarm_.stop).start()
    assert swarm_.wait(20)
    swarm_.finalize()
    assert swarm_.result.status == "interrupted"
    assert oompa_repo.tasks("pending") == ["t1"]
    assert oompa_repo.branches() == ["main"] and oompa_repo.worktrees() == [str(oompa_repo.path)]
    assert processes_in(oompa_repo.path) == []


def test_each_call_runs_with_pwd_set_to_its_worktree(
    oompa_repo, oompa_swarm, tmp_path, monkeypatch
):
    """opencode works in $PWD, not its process's cwd: a PWD inherited from whoever started
    the swarm would send it to the wrong folder (found against the real opencode)."""
    agent = tmp_path / "pwd-agent"
    agent.write_text('#!/bin/sh\nprintf "PWD=%s\\n" "$PWD"\n')
    agent.chmod(0o755)
    oompa_swarm.registry.register(HarnessSpec(name="pwdcheck", binary=str(agent)))
    monkeypatch.setenv("PWD", "/decoy")
    run = oompa_swarm({**FAST, "workers": [{"model": "pwdcheck:m", "iterations": 1}]}, fake=False)
    (call,) = run.iterations[("w0", 1)].calls
    assert call.reply.strip() == f"PWD={oompa_repo.path / '.w0-i1'}"
    assert_no_litter(oompa_repo, run)
