"""``oompa tasks [--repo DIR]``: the queue's folders, after a real swarm worked on them."""

from __future__ import annotations

import json

from oompa_cli import FAST, oompa


def test_tasks_shows_each_state_after_a_swarm(oompa_repo, oompa_swarm, tmp_path):
    for task_id in ("t1", "t2", "t3"):
        oompa_repo.add_task(task_id, summary=f"the {task_id} job")
    oompa_repo.commit("tasks")
    work = {"claim": ["t1"], "write": {"t1.txt": "done\n"}, "commit": True, "merge": True}
    oompa_swarm(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]},
        scenario={"workers": {"w0": {"worker": [work]}}},
    )
    assert oompa_repo.tasks("complete") == ["t1"]
    # A claim in progress, and a task file an agent wrote badly: listed, never a crash.
    (oompa_repo.path / "tasks/pending/t2.json").rename(oompa_repo.path / "tasks/current/t2.json")
    oompa_repo.write("tasks/pending/t4.json", "{not json")

    proc = oompa("tasks", "--repo", oompa_repo.path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith(": 2 pending, 1 current, 1 complete")
    pending = lines.index("pending (2):")
    assert [line.split(maxsplit=1) for line in lines[pending + 1 : pending + 3]] == [
        ["t3", "the t3 job"],
        ["t4"],
    ]
    assert lines[lines.index("in progress (current) (1):") + 1].split() == [
        "t2",
        "the",
        "t2",
        "job",
    ]
    assert lines[lines.index("complete (1):") + 1].split()[0] == "t1"

    as_json = json.loads(oompa("tasks", "--json", cwd=oompa_repo.path).stdout)
    assert as_json == {"pending": ["t3", "t4"], "current": ["t2"], "complete": ["t1"]}


def test_a_project_without_a_queue(oompa_repo):
    proc = oompa("tasks", cwd=oompa_repo.path)
    assert proc.returncode == 1
    assert "no task queue in" in proc.stdout and "Traceback" not in proc.stderr
