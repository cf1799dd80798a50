"""Containment of writes: an agent that writes outside its worktree, or moves main outside the
merge, on real swarms with the bundled fakes scripted through their ``shell`` step.

Each case checks: the root is clean and on the engine's main afterwards, what was moved is in
the run folder (files under stray/, commits under a quarantine ref), the iteration is an error
saying so, the other iterations are not affected, the artifacts validate, and the next run's
preflight passes on the same repo.
"""

from __future__ import annotations

import time

import pytest
from support.contract import assert_run_valid

from pytest_oompa.core.results import Outcome
from pytest_oompa.engine.git import Repo, Worktree
from pytest_oompa.engine.guard import Guard, GuardedCall, suspects

FAST = {"probe": False, "executor_wait": 0}
GIT = "git -c user.name=a -c user.email=a@b -c commit.gpgsign=false"
# Well-behaved: a task's work, committed, asking for a merge.
GOOD = {"builtin": True}


def two_workers(bad: dict, *, at: int = 2) -> dict:
    """w0 works well three times; w1's ``at``-th call misbehaves, after w0 has finished (its
    delay keeps the two calls apart, so the culprit is certain)."""
    steps: list = [GOOD] * 3
    steps[at - 1] = {"delay": 2.0, **GOOD, **bad}
    return {"workers": {"w0": {"worker": [GOOD]}, "w1": {"worker": steps}}}


def run_two(oompa_repo, oompa_swarm, scenario):
    for n in range(6):
        oompa_repo.add_task(f"t{n}")
    oompa_repo.commit("tasks")
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]}
    return oompa_swarm(config, scenario=scenario)


def assert_contained(oompa_repo, oompa_swarm, run) -> None:
    assert oompa_repo.status() == []
    assert oompa_repo.branches() == ["main"]
    assert oompa_repo.head("main") == run.result.main_after
    assert_run_valid(run.run_dir)
    # The next run's preflight passes on the same repo.
    again = oompa_swarm({**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    assert again.result.preflight_problems == []


def outcomes(run) -> dict[tuple[str, int], Outcome]:
    return {r.key: r.outcome for r in run.result.iterations}


def test_a_write_into_the_root_is_moved_out_and_is_an_error(oompa_repo, oompa_swarm):
    scenario = two_workers(
        {"shell": ["echo x > ../stray.txt", "mkdir -p ../src && echo y > ../src/b.py"]}
    )
    run = run_two(oompa_repo, oompa_swarm, scenario)
    bad = run.iterations[("w1", 2)]
    assert bad.outcome is Outcome.ERROR
    assert bad.error.startswith("wrote outside its worktree: ")
    assert "src/b.py" in bad.error and "stray.txt" in bad.error
    stray = run.run_dir / "stray" / "w1-i2-worker-1"
    assert (stray / "stray.txt").read_text() == "x\n"
    assert (stray / "src" / "b.py").read_text() == "y\n"
    others = {k: o for k, o in outcomes(run).items() if k != ("w1", 2)}
    assert set(others.values()) == {Outcome.MERGED}, others
    assert_contained(oompa_repo, oompa_swarm, run)


def test_a_tracked_file_changed_or_deleted_in_the_root_is_kept_and_restored(
    oompa_repo, oompa_swarm
):
    oompa_repo.write("keep.txt", "original\n")
    oompa_repo.write("gone.txt", "still here\n")
    oompa_repo.commit("two files")
    shell = ["echo changed > ../keep.txt", "rm ../gone.txt"]
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]},
        scenario={"default": {"worker": {**GOOD, "shell": shell}}},
    )
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.ERROR
    assert "keep.txt" in result.error and "gone.txt" in result.error
    assert (run.run_dir / "stray/w0-i1-worker-1/keep.txt").read_text() == "changed\n"
    assert (oompa_repo.path / "keep.txt").read_text() == "original\n"
    assert (oompa_repo.path / "gone.txt").read_text() == "still here\n"
    assert_contained(oompa_repo, oompa_swarm, run)


def test_moving_a_task_by_hand_is_still_tolerated(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("a task")
    step = {"move_task": {"id": "t1", "to": "current"}, "say": "on it"}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]},
        scenario={"default": {"worker": step}},
    )
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.WORKING and result.task_ids == ("t1",)
    assert not (run.run_dir / "stray").exists()


@pytest.mark.parametrize(
    "shell",
    [
        f"{GIT} -C .. commit -q --allow-empty -m sneaky",
        # git refuses to push onto a checked-out branch unless the repository says otherwise
        f"{GIT} commit -q --allow-empty -m sneaky && git config receive.denyCurrentBranch ignore"
        " && git push -q -f . HEAD:main; git config --unset receive.denyCurrentBranch",
        f"{GIT} commit -q --allow-empty -m sneaky && git update-ref refs/heads/main HEAD",
        f"{GIT} commit -q --allow-empty -m sneaky && {GIT} -C .. merge -q --no-ff -m m oompa/w1-i2",
    ],
    ids=["commit-from-the-root", "push-from-the-worktree", "update-ref", "merge-from-the-root"],
)
def test_main_moved_outside_the_merge_is_put_back_and_quarantined(oompa_repo, oompa_swarm, shell):
    run = run_two(oompa_repo, oompa_swarm, two_workers({"shell": shell}))
    bad = run.iterations[("w1", 2)]
    assert bad.outcome is Outcome.ERROR, bad.error
    assert "moved main outside the merge: quarantined as refs/oompa/quarantine/" in bad.error
    ref = f"refs/oompa/quarantine/{run.result.swarm_id}/w1-i2-worker-1/main"
    assert oompa_repo.git("log", "-1", "--format=%s", ref).strip() in ("sneaky", "m")
    # The sneaky commit is on no branch: main holds only the engine's merges.
    assert "sneaky" not in oompa_repo.git("log", "--format=%s", "main")
    others = {k: o for k, o in outcomes(run).items() if k != ("w1", 2)}
    assert set(others.values()) == {Outcome.MERGED}, others
    assert_contained(oompa_repo, oompa_swarm, run)


def test_another_branch_created_by_an_agent_is_quarantined(oompa_repo, oompa_swarm):
    step = {**GOOD, "shell": "git branch side"}
    run = oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]},
        scenario={"default": {"worker": step}},
    )
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.ERROR
    assert result.error.startswith("created side outside the merge: quarantined as ")
    assert oompa_repo.branches() == ["main"]
    assert_contained(oompa_repo, oompa_swarm, run)


def test_a_write_into_another_idle_worktree_is_caught(oompa_repo, oompa_swarm):
    """w0 claims (its worktree .w0-i1 is kept) and waits; meanwhile w1 writes into it and is
    still running when w0's next call begins and finds the file."""
    oompa_repo.add_task("t1")
    oompa_repo.commit("a task")
    scenario = {
        "workers": {
            "w0": {"worker": [{"claim": ["t1"]}, {"say": "still on it"}]},
            "w1": {
                "worker": {
                    "delay": 0.5,
                    "shell": [
                        "until [ -d ../.w0-i1 ]; do sleep 0.05; done",
                        "echo intruder > ../.w0-i1/intruder.txt",
                        "sleep 3",
                    ],
                    "say": "busy",
                }
            },
        }
    }
    config = {
        **FAST,
        "workers": [
            {"model": "claude:opus", "iterations": 2, "wait_between": 1.5},
            {"model": "claude:opus", "iterations": 1},
        ],
    }
    run = oompa_swarm(config, scenario=scenario)
    bad = run.iterations[("w1", 1)]
    assert bad.outcome is Outcome.ERROR, bad.error
    assert bad.error.startswith("wrote into w0-i1, another worker's worktree: intruder.txt")
    assert (run.run_dir / "stray/w1-i1-worker-1/intruder.txt").read_text() == "intruder\n"
    victim = run.iterations[("w0", 2)]
    assert victim.outcome is Outcome.WORKING
    assert any("wrote into this worktree while it waited" in n for n in victim.notes)
    assert_contained(oompa_repo, oompa_swarm, run)


# -- attribution and cost, without agents ------------------------------------------------------


def test_suspects_are_the_calls_in_flight_at_the_change() -> None:
    wt = Worktree(path=__import__("pathlib").Path("/x/.w0-i1"), branch="oompa/w0-i1", name="w0-i1")
    a = GuardedCall("w0-i1-worker-1", "w0", "w0-i1", wt, start_ns=1_000_000_000, refs={})
    b = GuardedCall("w1-i1-worker-1", "w1", "w1-i1", wt, start_ns=2_000_000_000, refs={})
    a.end_ns, b.end_ns = 3_000_000_000, 4_000_000_000
    assert suspects([a, b], 1_500_000_000) == [a]
    assert suspects([a, b], 2_500_000_000) == [a, b]
    assert suspects([a, b], 3_500_000_000) == [b]
    assert suspects([a, b], 5_000_000_000) == []
    assert suspects([a, b], None) == [a, b]


def test_the_check_costs_little_per_call(oompa_repo, tmp_path) -> None:
    """What the guard adds to a call that did nothing outside: begin + end, measured."""
    oompa_repo.write("src/app.py", "A = 1\n")
    oompa_repo.commit("code")
    repo = Repo(oompa_repo.path)
    guard = Guard(repo, "s", tmp_path / "run")
    guard.start()
    wt = repo.add_worktree("w0", 1)
    n = 30
    start = time.perf_counter()
    for i in range(n):
        found = guard.end(guard.begin(f"w0-i1-worker-{i}", "w0", wt))
        assert found.errors == ()
    per_call_ms = (time.perf_counter() - start) * 1000 / n
    repo.remove_worktree(wt)
    print(f"guard: {per_call_ms:.2f} ms per call")
    assert per_call_ms < 40
