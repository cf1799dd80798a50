"""Real swarms on throwaway repos with the fake harnesses: every outcome, the review loop,
errors, conflicts, the planner, preflight and stopping. Real git, real processes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from support.contract import assert_run_valid

from pytest_oompa.core.results import Outcome, WorkerStatus
from pytest_oompa.engine.preflight import PreflightError
from pytest_oompa.harnesses.spec import HarnessSpec

FAST = {"probe": False, "executor_wait": 0}


def assert_clean(repo) -> None:
    """main intact, root tree clean, no worktree or branch of ours left, no merge half-done."""
    assert repo.status() == []
    assert repo.branches() == ["main"]
    assert repo.worktrees() == [str(repo.path)]
    assert not (repo.path / ".git" / "MERGE_HEAD").exists()


def test_productive_swarm_merges_every_iteration_and_completes_tasks(oompa_repo, oompa_swarm):
    for t in ("t1", "t2", "t3"):
        oompa_repo.add_task(t)
    oompa_repo.commit("tasks")
    run = oompa_swarm(
        {
            "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}],
            "reviewer": {"model": "codex:o3"},
        }
    )
    assert [run.workers[w].status for w in ("w0", "w1")] == [WorkerStatus.EXHAUSTED] * 2
    assert sum(w.metrics.merges for w in run.workers.values()) == 4
    # Two workers may race for one task (one wins); no task is lost or done twice.
    completed = oompa_repo.tasks("complete")
    assert len(completed) == sum(w.metrics.claims for w in run.workers.values()) >= 2
    assert sorted(completed + oompa_repo.tasks("pending")) == ["t1", "t2", "t3"]
    done = json.loads((oompa_repo.path / f"tasks/complete/{completed[0]}.json").read_text())
    assert done["completed-by"] in ("w0", "w1")
    assert done["review-rounds"] == 1
    assert done["merged-commit"] in oompa_repo.git("log", "--format=%H", "main")
    # the queue's end state is on main, so the project is clean for the next run
    assert f"tasks/complete/{completed[0]}.json" in oompa_repo.files()
    assert_clean(oompa_repo)
    artifacts = assert_run_valid(run.run_dir)
    assert artifacts["summary.json"]["total-completed"] == 4
    assert len([k for k in artifacts if k.startswith("reviews/")]) == 4


def test_every_outcome(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t0")
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    work = {"write": {"a.txt": "a\n"}, "commit": True, "merge": True}
    scenario = {
        "workers": {
            "w0": {"worker": [{"claim": ["t0"]}, {**work, "write": {"w0.txt": "x"}}]},
            "w1": {"worker": [{"say": "still thinking"}, {"merge": True}]},
            "w2": {
                "worker": [
                    {"claim": ["t1"], "write": {"w2.txt": "x"}, "commit": True, "merge": True}
                ],
                "reviewer": [{"verdict": "rejected"}],
            },
            "w3": {"worker": [{"exit": 1, "stderr": "boom"}, {"say": "ok"}]},
            "w4": {"worker": [{"done": True}]},
            "w5": {"worker": [{"done": True}]},
        }
    }
    run = oompa_swarm(
        {
            **FAST,
            "workers": [
                {"model": "claude:opus", "iterations": 2, "count": 5},
                {"model": "claude:opus", "iterations": 2, "can_plan": False},
            ],
            "reviewer": {"model": "claude:sonnet"},
        },
        scenario=scenario,
    )
    assert run.outcomes("w0") == ["claimed", "merged"]
    assert run.outcomes("w1") == ["working", "no-changes"]
    assert run.outcomes("w2") == ["rejected", "rejected"]
    assert run.outcomes("w3") == ["error", "working"]
    assert run.outcomes("w4") == ["done"]
    assert run.outcomes("w5") == ["executor-done", "executor-done"]
    assert run.workers["w4"].status is WorkerStatus.DONE
    assert "stopped after iteration 1" in run.workers["w4"].stop_reason
    # w0's claim carried into its resumed session; its task completed on merge
    w0_calls = [c for c in run.fake_calls if c["worker"] == "w0" and c["role"] == "worker"]
    assert [c["resumed"] for c in w0_calls] == [False, True]
    assert w0_calls[0]["session_id"] == w0_calls[1]["session_id"]
    assert "Claimed: t0" in w0_calls[1]["argv"][-1]
    assert oompa_repo.tasks("complete") == ["t0"]
    # w2's rejected task went back to pending
    assert run.iterations[("w2", 1)].recycled == ("t1",)
    assert "t1" in oompa_repo.tasks("pending")
    assert run.workers["w2"].metrics.rejections == 2
    assert_clean(oompa_repo)
    artifacts = assert_run_valid(run.run_dir)
    assert artifacts["iterations/w0-i1.json"]["outcome"] == "claimed"
    snippet = artifacts["iterations/w3-i1.json"]["error-snippet"]
    assert snippet.startswith("claude failed: exit code 1")


def test_review_loop_needs_changes_then_approved(oompa_repo, oompa_swarm):
    scenario = {
        "workers": {
            "w0": {
                "reviewer": [
                    {"say": "- add a docstring", "verdict": "needs-changes"},
                    {"verdict": "approved"},
                ]
            }
        }
    }
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "gemini:pro", "iterations": 1}],
            "reviewer": {"model": "claude:sonnet"},
        },
        scenario=scenario,
    )
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.MERGED
    assert [r.verdict for r in result.reviews] == ["needs-changes", "approved"]
    artifacts = assert_run_valid(run.run_dir)
    assert artifacts["iterations/w0-i1.json"]["review-rounds"] == 2
    assert artifacts["reviews/w0-i1-r1.json"]["verdict"] == "needs-changes"
    assert artifacts["reviews/w0-i1-r2.json"]["verdict"] == "approved"
    roles = [c["role"] for c in run.fake_calls if c["worker"] == "w0"]
    assert roles == ["worker", "reviewer", "fix", "reviewer"]
    fix = next(c for c in run.fake_calls if c["role"] == "fix")
    assert fix["resumed"] and "add a docstring" in fix["argv"][-1]
    second_review = [c for c in run.fake_calls if c["role"] == "reviewer"][1]
    assert "Previous Review Rounds" in second_review["argv"][-1]
    assert_clean(oompa_repo)


def test_three_review_rounds_then_rejected(oompa_repo, oompa_swarm):
    scenario = {"workers": {"w0": {"reviewer": [{"verdict": "needs-changes"}]}}}
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "codex:o3", "iterations": 1}],
            "reviewer": {"model": "claude:sonnet"},
        },
        scenario=scenario,
    )
    assert run.outcomes("w0") == ["rejected"]
    assert run.iterations[("w0", 1)].review_rounds == 3
    assert sorted(p.name for p in (run.run_dir / "reviews").iterdir()) == [
        "w0-i1-r1.json",
        "w0-i1-r2.json",
        "w0-i1-r3.json",
    ]
    assert_clean(oompa_repo)


def test_three_consecutive_errors_stop_the_worker(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    scenario = {"workers": {"w0": {"worker": [{"claim": ["t1"], "exit": 2}]}}}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "opencode:x/y", "iterations": 6}]}, scenario=scenario
    )
    report = run.workers["w0"]
    assert run.outcomes("w0") == ["error"] * 3
    assert report.status is WorkerStatus.ERROR and report.iterations_run == 3
    assert "3 consecutive errors" in report.stop_reason
    assert oompa_repo.tasks("pending") == ["t1"]
    assert_clean(oompa_repo)
    summary = assert_run_valid(run.run_dir)["summary.json"]
    assert summary["status-counts"] == {"error": 1}


def test_conflicting_merges_one_merged_one_error_main_clean(oompa_repo, oompa_swarm):
    oompa_repo.add_task("a")
    oompa_repo.add_task("b")
    oompa_repo.commit("tasks")
    # The delay makes both worktrees exist before either merges: a real add/add conflict.
    step = {"delay": 0.5, "commit": True, "merge": True}
    scenario = {
        "workers": {
            "w0": {"worker": [{**step, "claim": ["a"], "write": {"same.txt": "from w0\n"}}]},
            "w1": {"worker": [{**step, "claim": ["b"], "write": {"same.txt": "from w1\n"}}]},
        }
    }
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1, "count": 2}]},
        scenario=scenario,
    )
    outcomes = sorted(run.outcomes("w0") + run.outcomes("w1"))
    assert outcomes == ["error", "merged"]
    loser = next(r for r in run.result.iterations if r.outcome is Outcome.ERROR)
    assert "merge into main failed" in loser.error and "CONFLICT" in loser.error
    assert len(oompa_repo.tasks("pending")) == 1 and len(oompa_repo.tasks("complete")) == 1
    winner = "w0" if loser.worker_id == "w1" else "w1"
    assert (oompa_repo.path / "same.txt").read_text() == f"from {winner}\n"
    assert_clean(oompa_repo)
    assert_run_valid(run.run_dir)


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "a/b"])
def test_claims_of_paths_are_refused_and_reported(oompa_repo, oompa_swarm, bad):
    oompa_repo.add_task("ok")
    oompa_repo.commit("tasks")
    scenario = {"workers": {"w0": {"worker": [{"say": f"CLAIM({bad}, ok)"}, {"say": "hm"}]}}}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]}, scenario=scenario
    )
    first = run.iterations[("w0", 1)]
    assert first.outcome is Outcome.CLAIMED and first.task_ids == ("ok",)
    assert any(bad in note for note in first.notes)
    resumed = [c for c in run.fake_calls if c["role"] == "worker"][1]["argv"][-1]
    assert f"Refused (not a valid task id): {bad}" in resumed
    assert oompa_repo.tasks("pending") == ["ok"]  # recycled when the worker ended
    assert_clean(oompa_repo)


def test_task_only_changes_merge_without_review(oompa_repo, oompa_swarm):
    task = json.dumps(
        {
            "id": "new",
            "summary": "s",
            "description": "d",
            "difficulty": "easy",
            "files": [],
            "acceptance": [],
        }
    )
    scenario = {
        "workers": {
            "w0": {
                "worker": [
                    {"write": {"tasks/pending/new.json": task}, "commit": True, "merge": True}
                ]
            }
        }
    }
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 1}],
            "reviewer": {"model": "claude:sonnet"},
        },
        scenario=scenario,
    )
    assert run.outcomes("w0") == ["merged"]
    assert run.iterations[("w0", 1)].review_rounds == 0
    assert not any(c["role"] == "reviewer" for c in run.fake_calls)
    assert "new" in oompa_repo.tasks("pending")


def test_uncommitted_work_is_committed_before_the_merge(oompa_repo, oompa_swarm):
    scenario = {"workers": {"w0": {"worker": [{"write": {"loose.txt": "x"}, "merge": True}]}}}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}, scenario=scenario
    )
    assert run.outcomes("w0") == ["merged"]
    assert "loose.txt" in oompa_repo.files()
    assert_clean(oompa_repo)


def test_planner_adds_tasks_that_executors_then_take(oompa_repo, oompa_swarm):
    run = oompa_swarm(
        {
            **FAST,
            "planner": {"model": "claude:opus", "max_pending": 2},
            "workers": [{"model": "codex:o3", "iterations": 2, "can_plan": False}],
        },
    )
    assert run.result.planner.ran and run.result.planner.tasks_created == 2
    assert "planner adds 2 task(s)" in oompa_repo.git("log", "--format=%s", "main")
    planner_call = next(c for c in run.fake_calls if c["role"] == "planner")
    assert planner_call["cwd"] == str(oompa_repo.path)  # the project root, no worktree
    assert "Maximum 2 new tasks" in planner_call["argv"][-1]
    assert len(oompa_repo.tasks("complete")) == 2
    assert_clean(oompa_repo)


def test_planner_is_skipped_when_the_queue_is_full(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    run = oompa_swarm(
        {
            **FAST,
            "planner": {"model": "claude:opus", "max_pending": 1},
            "workers": [{"model": "claude:opus", "iterations": 1}],
        }
    )
    assert not run.result.planner.ran
    assert "1 tasks pending" in run.result.planner.skipped_reason


def test_preflight_lists_dirty_paths_and_runs_nothing(oompa_repo, oompa_swarm):
    oompa_repo.write("scratch.txt", "uncommitted")
    oompa_repo.write("README.md", "changed")
    with pytest.raises(PreflightError) as info:
        oompa_swarm({"workers": [{"model": "claude:opus", "iterations": 1}]})
    text = str(info.value)
    assert "not clean" in text and "scratch.txt" in text and "README.md" in text
    assert oompa_repo.branches() == ["main"]


def test_preflight_probes_every_model_and_lists_each_failure(oompa_repo, oompa_swarm):
    scenario = {"harnesses": {"codex": {"probe": {"exit": 1, "stderr": "401 Unauthorized"}}}}
    with pytest.raises(PreflightError) as info:
        oompa_swarm(
            {
                "workers": [{"model": "codex:o3"}, {"model": "claude:opus"}],
                "reviewer": {"model": "codex:o4"},
            },
            scenario=scenario,
        )
    problems = info.value.problems
    assert len(problems) == 2
    assert all("401 Unauthorized" in p for p in problems)
    assert {p.split()[2] for p in problems} == {"codex:o3", "codex:o4"}


def test_preflight_names_a_missing_binary(oompa_repo, oompa_swarm):
    oompa_swarm.registry.register(HarnessSpec(name="aider", binary="no-such-agent-cli"))
    with pytest.raises(PreflightError, match="'no-such-agent-cli' is not on PATH"):
        oompa_swarm({"workers": [{"model": "aider:m"}]})


def test_a_hanging_harness_is_killed_at_its_timeout(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    scenario = {"workers": {"w0": {"worker": [{"claim": ["t1"], "hang": True}, {"say": "ok"}]}}}
    start = time.monotonic()
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2, "timeout": 1}]},
        scenario=scenario,
    )
    assert time.monotonic() - start < 15
    first = run.iterations[("w0", 1)]
    assert first.outcome is Outcome.ERROR and "timeout after" in first.error
    assert run.outcomes("w0") == ["error", "working"]
    assert_clean(oompa_repo)


def test_stop_ends_a_running_swarm_cleanly(oompa_repo, tmp_path, oompa_swarm):
    from pytest_oompa.core.config import resolve
    from pytest_oompa.engine.swarm import Swarm, SwarmOptions

    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    scenario = tmp_path / "hang.json"
    scenario.write_text(json.dumps({"default": {"worker": {"claim": ["t1"], "hang": True}}}))
    data = {
        **FAST,
        "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}],
        "fake_harnesses": {"scenario": str(scenario)},
    }
    config = resolve(data, tmp_path / "oompa.json", ("claude",))
    swarm = Swarm(
        config,
        SwarmOptions(
            runs_dir=tmp_path / "runs",
            repo_root=oompa_repo.path,
            env={"OOMPA_FAKE_STATE": str(tmp_path / "state")},
        ),
    )
    swarm.prepare()
    swarm.start()
    deadline = time.monotonic() + 10
    while not swarm.supervisor._running and time.monotonic() < deadline:
        time.sleep(0.05)
    threading.Timer(0.3, swarm.stop).start()
    assert swarm.wait(timeout=15)
    result = swarm.result
    assert result.interrupted
    assert {r.status for r in result.workers.values()} == {WorkerStatus.IDLE}
    assert result.iterations == []  # no iteration finished; none is reported half-done
    assert oompa_repo.tasks("pending") == ["t1"] and oompa_repo.tasks("current") == []
    assert_clean(oompa_repo)
    summary = assert_run_valid(swarm.run_dir)["summary.json"]
    assert summary["status-counts"] == {"idle": 2}
    swarm.finalize()
    assert not swarm.tracker.beating and swarm.result.status == "interrupted"


def test_a_crashing_worker_costs_the_worker_not_the_run(oompa_repo, tmp_path):
    """An exception escaping a worker (here: from a listener) is an engine error: the worker
    ends in error, the others finish, the repo is clean and summary.json is still written."""
    from pytest_oompa.core.config import resolve
    from pytest_oompa.engine.swarm import Swarm, SwarmListener, SwarmOptions

    class Failing(SwarmListener):
        def iteration_finished(self, result):
            if result.worker_id == "w0":
                raise RuntimeError("listener bug")

    data = {
        **FAST,
        "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}],
        "fake_harnesses": True,
    }
    config = resolve(data, tmp_path / "oompa.json", ("claude",))
    swarm = Swarm(
        config,
        SwarmOptions(
            runs_dir=tmp_path / "runs",
            repo_root=oompa_repo.path,
            env={"OOMPA_FAKE_STATE": str(tmp_path / "s")},
        ),
        Failing(),
    )
    result = swarm.run()
    assert result.errors == ["worker w0 failed: RuntimeError: listener bug"]
    assert result.workers["w0"].status is WorkerStatus.ERROR
    assert result.workers["w1"].metrics.merges == 2
    assert_clean(oompa_repo)
    assert_run_valid(swarm.run_dir)


def test_a_failure_while_preparing_still_closes_the_run(oompa_repo, tmp_path, monkeypatch):
    """Not a preflight finding (here: the first artifact write fails): the heartbeat stops
    and the index says failed, instead of a 'running' ghost and a stray thread."""
    from pytest_oompa.core.config import resolve
    from pytest_oompa.engine.swarm import Swarm, SwarmOptions
    from pytest_oompa.runs.reader import list_runs
    from pytest_oompa.runs.recorder import Recorder

    def disk_full(self, started_at):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Recorder, "run_started", disk_full)
    data = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}], "fake_harnesses": True}
    swarm = Swarm(
        resolve(data, tmp_path / "oompa.json", ("claude",)),
        SwarmOptions(runs_dir=tmp_path / "runs", repo_root=oompa_repo.path),
    )
    with pytest.raises(OSError, match="No space left"):
        swarm.run()
    assert not swarm.tracker.beating
    (info,) = list_runs(tmp_path / "runs")
    assert info.status == "failed"
    assert swarm.result.errors == [
        "preparing the run failed: OSError: [Errno 28] No space left on device"
    ]
