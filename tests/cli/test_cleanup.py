"""``oompa cleanup``: the engine's leftover worktrees and branches go, nothing else does, and
never while a run of the repo is live."""

from __future__ import annotations

import json
import shutil
import threading
import time

from oompa_cli import FAST, oompa

from pytest_oompa.core.config import resolve
from pytest_oompa.engine.swarm import Swarm, SwarmOptions


def test_removes_what_a_crash_left_and_leaves_the_users_own(oompa_repo, tmp_path):
    git = oompa_repo.git
    # What a killed run leaves, named the way the engine names it: a worktree with work in it,
    # a worktree whose folder is gone, a 0.7.3 cycle's worktree, a branch without a worktree.
    git("worktree", "add", "-q", "-b", "oompa/w0-i3", ".w0-i3", "main")
    (oompa_repo.path / ".w0-i3" / "half-done.txt").write_text("uncommitted\n")
    git("worktree", "add", "-q", "-b", "oompa/w1-i1", ".w1-i1", "main")
    shutil.rmtree(oompa_repo.path / ".w1-i1")
    git("worktree", "add", "-q", "-b", "oompa/w2-c4", ".w2-c4", "main")
    git("branch", "oompa/w3-i2")
    # The user's own: names outside the engine's, or in its shape but elsewhere.
    git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature-wt"), "main")
    git("worktree", "add", "-q", "-b", "notes", ".wip", "main")
    git("worktree", "add", "-q", "-b", "mine/w0-i4", str(tmp_path / "elsewhere" / ".w0-i4"))
    git("branch", "oompa/experiment")
    git("branch", "oompa/w0-i1-backup")
    before_worktrees, before_branches = oompa_repo.worktrees(), oompa_repo.branches()

    dry = oompa("cleanup", "--dry-run", cwd=oompa_repo.path)
    assert dry.returncode == 0, dry.stderr
    root = oompa_repo.path.resolve()
    assert dry.stdout.splitlines() == [
        f"would remove worktree {root}/.w0-i3",
        f"would remove worktree {root}/.w1-i1",
        f"would remove worktree {root}/.w2-c4",
        "would remove branch oompa/w0-i3",
        "would remove branch oompa/w1-i1",
        "would remove branch oompa/w2-c4",
        "would remove branch oompa/w3-i2",
    ]
    assert (oompa_repo.worktrees(), oompa_repo.branches()) == (before_worktrees, before_branches)

    done = oompa("cleanup", "--repo", oompa_repo.path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry.stdout.replace("would remove", "removed")
    assert sorted(oompa_repo.branches()) == [
        "feature",
        "main",
        "mine/w0-i4",
        "notes",
        "oompa/experiment",
        "oompa/w0-i1-backup",
    ]
    ours = {f"{oompa_repo.path}/{name}" for name in (".w0-i3", ".w1-i1", ".w2-c4")}
    assert oompa_repo.worktrees() == [w for w in before_worktrees if w not in ours]
    assert len(oompa_repo.worktrees()) == 4
    assert not (oompa_repo.path / ".w0-i3").exists() and (oompa_repo.path / ".wip").is_dir()
    assert (tmp_path / "elsewhere" / ".w0-i4").is_dir()

    again = oompa("cleanup", cwd=oompa_repo.path)
    assert again.returncode == 0
    assert again.stdout.strip() == f"nothing to clean up in {root}"


def test_refused_while_a_run_of_the_repo_is_live(oompa_repo, tmp_path):
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    scenario = tmp_path / "hang.json"
    scenario.write_text(json.dumps({"default": {"worker": {"claim": ["t1"], "hang": True}}}))
    data = {
        **FAST,
        "workers": [{"model": "claude:opus", "iterations": 1}],
        "fake_harnesses": {"scenario": str(scenario)},
    }
    swarm = Swarm(
        resolve(data, tmp_path / "oompa.json", ("claude",)),
        SwarmOptions(
            runs_dir=oompa_repo.path / "runs",  # the repo's own runs folder: cleanup looks there
            repo_root=oompa_repo.path,
            env={"OOMPA_FAKE_STATE": str(tmp_path / "state")},
        ),
    )
    swarm.prepare()
    swarm.start()
    try:
        deadline = time.monotonic() + 20
        while not (oompa_repo.path / ".w0-i1").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (oompa_repo.path / ".w0-i1").is_dir()
        proc = oompa("cleanup", "--repo", oompa_repo.path, cwd=tmp_path)
        assert proc.returncode == 1
        assert f"run {swarm.swarm_id} of {oompa_repo.path.resolve()} is live" in proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert (oompa_repo.path / ".w0-i1").is_dir() and "oompa/w0-i1" in oompa_repo.branches()
    finally:
        threading.Timer(0.1, swarm.stop).start()
        assert swarm.wait(timeout=30)
        swarm.finalize()
    # Over: the engine removed its own worktree, and cleanup runs (with nothing to do).
    after = oompa("cleanup", "--repo", oompa_repo.path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.startswith("nothing to clean up")
