"""pytest-xdist: ``-n 2`` spreads the swarm's workers over two processes and gives the same
run, the same artifacts and the same verdict as ``-n 0``.

Each run is a real ``python -m pytest`` in its own project; xdist's node start-up dominates
their time.
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.contract import assert_run_valid
from support.terminal import default_sigint

from pytest_oompa import GitRepo
from pytest_oompa.engine.swarm import SharedTaskQueue
from pytest_oompa.engine.tasks import TaskQueue
from pytest_oompa.plugin.xdist.assignment import assign, parse_collection
from pytest_oompa.runs.artifacts import ArtifactStore
from pytest_oompa.runs.files import IGNORED

pytest.importorskip("xdist")

FAST = {"probe": False, "executor_wait": 0}
TIMEOUT = 180


@dataclass
class Run:
    ret: int
    out: str
    repo: GitRepo
    junit: Path

    @property
    def run_dir(self) -> Path:
        (run_dir,) = [p for p in (self.repo.path / "runs").iterdir() if p.is_dir()]
        return run_dir

    def outcomes(self) -> dict[str, tuple[str, str | None]]:
        """testcase -> (pytest result, the iteration's outcome property)."""
        found = {}
        for case in ET.parse(self.junit).getroot().iter("testcase"):
            result = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    result = tag
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            found[f"{case.get('classname')}::{case.get('name')}"] = (result, props.get("outcome"))
        return found

    def files(self) -> set[str]:
        return {
            p.relative_to(self.run_dir).as_posix()
            for p in self.run_dir.rglob("*")
            if p.is_file() and p.name not in IGNORED
        }


def project(
    path: Path, config: dict[str, Any], scenario: dict[str, Any], tasks: tuple[str, ...] = ()
) -> GitRepo:
    repo = GitRepo(path)
    repo.add_swarm_config(config, scenario, tasks)
    return repo


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OOMPA_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _command(repo: GitRepo, *args: str) -> list[str]:
    junit = repo.path.parent / f"{repo.path.name}-junit.xml"
    return [
        sys.executable,
        "-m",
        "pytest",
        "--oompa-swarm=oompa.json",
        "-p",
        "no:cacheprovider",
        "-rA",
        f"--junitxml={junit}",
        *args,
    ]


def run(*runs: tuple[GitRepo, tuple[str, ...]]) -> list[Run]:
    """Run pytest in each project (at the same time), with its arguments."""
    procs = [
        subprocess.Popen(
            _command(repo, *args),
            cwd=repo.path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_sigint,
        )
        for repo, args in runs
    ]
    done = []
    for proc, (repo, _) in zip(procs, runs, strict=True):
        out, _ = proc.communicate(timeout=TIMEOUT)
        junit = repo.path.parent / f"{repo.path.name}-junit.xml"
        done.append(Run(proc.returncode, out, repo, junit))
    return done


def agents_in(path: Path) -> list[str]:
    """The processes (agents) still working in one of the project's worktrees."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd").startswith(f"{path}/.w"):
                found.append((proc / "cmdline").read_text().replace("\0", " ")[:200])
    return found


def assert_clean(repo: GitRepo) -> None:
    assert repo.status() == []
    assert repo.branches() == ["main"]
    assert repo.worktrees() == [str(repo.path)]
    assert agents_in(repo.path) == [], "an agent outlived the run"


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    drop = {"swarm-id", "finished-at", "timestamp", "duration-ms", "error-snippet"}
    return {k: v for k, v in document.items() if k not in drop}


# -- without subprocesses: the pieces processes share ----------------------------------------


def test_workers_are_dealt_to_nodes_in_turn() -> None:
    assert assign(["w0", "w1", "w2", "w5"], 2) == {"w0": 0, "w1": 1, "w2": 0, "w5": 1}
    ids = [
        "test_plain.py::test_one",
        "oompa.json::planner",
        "oompa.json::w0::i1",
        "oompa.json::w1::i2",
        "oompa.json::w9::i1",  # not a configured worker
        "oompa.json::gate",
    ]
    prefix, keys = parse_collection(ids, {"w0": 2, "w1": 2}, "oompa.json")
    assert prefix == "oompa.json"
    assert keys == {1: "planner", 2: ("w0", 1), 3: ("w1", 2), 5: "gate"}


def test_the_live_summary_merges_the_entries_of_every_process(tmp_path: Path) -> None:
    lock = tmp_path / "shared" / "live.lock"
    lock.parent.mkdir()
    # Two stores on one run: what two processes hold.
    a, b = (ArtifactStore(tmp_path / "runs", "run-1", lock) for _ in range(2))
    entry: dict[str, Any] = {"iteration": 1, "status": "merged", "merges": 1, "rejections": 0}
    entry |= {"errors": 0, "recycled": 0, "review-rounds-total": 1}
    a.update_live_summary("w0", entry)
    b.update_live_summary("w1", {**entry, "status": "error"})
    a.update_live_summary("w0", {**entry, "iteration": 2})
    live = json.loads(a.path_for("live-summary").read_text())
    assert {w: (e["iteration"], e["status"]) for w, e in live["workers"].items()} == {
        "w0": (2, "merged"),
        "w1": (1, "error"),
    }
    summary: dict[str, Any] = {"swarm-id": "run-1", "finished-at": "2026-01-01T00:00:00.000Z"}
    summary |= {"total-workers": 0, "total-completed": 0, "total-iterations": 0}
    a.write_summary({**summary, "status-counts": {}, "workers": []})
    b.update_live_summary("w1", entry)  # late: the run is over, no live summary comes back
    assert not a.path_for("live-summary").exists()


def test_a_task_claimed_in_one_process_is_never_adopted_by_another(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "tasks" / "pending").mkdir(parents=True)
    for task in ("t1", "t2"):
        (root / "tasks" / "pending" / f"{task}.json").write_text("{}")
    shared = tmp_path / "shared"
    shared.mkdir()
    one, two = SharedTaskQueue(root, shared), SharedTaskQueue(root, shared)
    one.ensure_dirs()
    assert one.claim(["t1"], "w0").claimed == ("t1",)
    assert two.adopt_unowned("w1") == []  # w0's, though another process holds it
    assert two.owned_by("w0") == ["t1"]
    assert two.recycle(two.owned_by("w0")) == ["t1"]
    assert one.owned_by("w0") == []
    # What a queue per process would do (the bug this prevents):
    one.claim(["t2"], "w0")
    assert TaskQueue(root).adopt_unowned("w1") == ["t2"]


# -- real runs -----------------------------------------------------------------------------------

SWARM = {
    **FAST,
    "workers": [{"model": "claude:opus", "iterations": 2, "count": 3}],
    "reviewer": {"model": "codex:o3"},
    "planner": {"model": "claude:opus", "max_pending": 4},
    "gate": {"min_merges": 2},
}
SCENARIO = {
    "workers": {
        # w0 (node gw0) takes t1 by hand first, then merges; w1 (node gw1) ends its first call
        # after that, and must not take t1 for its own. (The delays keep the others' calls
        # from ending while t1 is in current/ and w0 has not adopted it yet: whoever ends a
        # call then takes it, with or without xdist.)
        "w0": {
            "worker": [
                {"move_task": {"id": "t1", "from": "pending", "to": "current"}, "say": "on t1"},
                {"write": {"w0.txt": "w0\n"}, "commit": True, "merge": True},
            ]
        },
        "w1": {
            "worker": [
                {"delay": 1, "claim": "t2", "write": {"w1.txt": "w1\n"}, "commit": True}
                | {"merge": True},
                {"exit": 3, "stderr": "the model is on fire"},
            ]
        },
        "w2": {
            "worker": [{"delay": 1, "write": {"w2.txt": "w2\n"}, "commit": True, "merge": True}],
            "reviewer": [{"say": "This is wrong.", "verdict": "rejected"}],
        },
    }
}


def test_n2_gives_the_same_run_as_n0(tmp_path: Path) -> None:
    serial, spread = run(
        *((project(tmp_path / f"n{n}", SWARM, SCENARIO, ("t1", "t2")), ("-n", n)) for n in "02")
    )
    runs = {"0": serial, "2": spread}
    assert "[gw0]" in spread.out and "[gw1]" in spread.out, spread.out  # really distributed
    for result in (serial, spread):
        # A failing iteration (and a rejected one) fails the run, with and without xdist.
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.out
        for line in (
            "*w1 iteration 2: error*",
            "*the model is on fire*",
            "*oompa swarm *",
            "w0*claude:opus*exhausted*1*1*",
            "planner: created 2 task(s)",
            "gate: passed",
            "*min_merges: 2 (threshold >= 2) ok*",
            "artifacts: runs/*",
            "*3 failed, 5 passed*",
        ):
            pytest.LineMatcher(result.out.splitlines()).fnmatch_lines([line])
        assert_clean(result.repo)
        assert result.repo.tasks("pending") == ["task-1", "task-2"]
    assert spread.outcomes() == serial.outcomes()
    assert spread.outcomes()["oompa.json.w0::i2"] == ("passed", "merged")  # junit's names
    assert spread.outcomes()["oompa.json.w2::i1"] == ("failure", "rejected")
    assert spread.outcomes()["oompa.json::gate"] == ("passed", None)
    # Same files, every one valid; the same contents where timing does not show.
    assert spread.files() == serial.files()
    found = {n: assert_run_valid(r.run_dir) for n, r in runs.items()}
    for name in sorted(found["0"]):
        if name.startswith(("iterations/", "reviews/")) or name == "summary.json":
            assert _comparable(found["2"][name]) == _comparable(found["0"][name]), name
    for result in runs.values():
        index = json.loads((result.run_dir.parent / "index.json").read_text())["runs"]
        assert [(r["id"], r["status"], r["exit-status"]) for r in index] == [
            (result.run_dir.name, "failed", 1)
        ]
        assert index[0]["counts"] == {
            "workers": 3,
            "iterations": 6,
            "merges": 2,
            "errors": 1,
            "rejections": 2,
        }
        completed = {
            t: json.loads((result.repo.path / "tasks" / "complete" / f"{t}.json").read_text())
            for t in result.repo.tasks("complete")
        }
        assert {t: c["completed-by"] for t, c in completed.items()} == {"t1": "w0", "t2": "w1"}
        assert (result.run_dir / "report.html").is_file()
        meta = json.loads((result.run_dir / "oompa-run.json").read_text())
        assert (meta["status"], meta["exit-status"]) == ("failed", 1)


def test_workers_on_one_node_run_at_the_same_time(tmp_path: Path) -> None:
    repo = project(
        tmp_path / "p",
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1, "count": 4}]},
        {"default": {"worker": {"delay": 1, "say": "thinking"}}},
    )
    (result,) = run((repo, ("-n", "2")))
    assert result.ret == pytest.ExitCode.OK, result.out
    found = assert_run_valid(result.run_dir)
    spans = []
    for n in range(4):
        it = found[f"iterations/w{n}-i1.json"]
        end = _instant(it["timestamp"])
        spans.append((end - it["duration-ms"] / 1000, end))
    # Each node runs two of the four: had a node run its workers one after the other, two
    # iterations would not overlap. Every pair overlaps: all four ran at once.
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    assert wall < sum(e - s for s, e in spans) / 2, spans


def test_x_stops_every_node_cleanly(tmp_path: Path) -> None:
    repo = project(
        tmp_path / "p",
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]},
        {
            "workers": {
                "w0": {"worker": [{"delay": 1, "exit": 1}]},  # node gw0
                "w1": {"worker": [{"claim": ["t1"], "hang": True}]},  # node gw1: stopped
            }
        },
        tasks=("t1",),
    )
    (result,) = run((repo, ("-n", "2", "-x")))
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.out
    assert result.out.splitlines()[-1].startswith("=") and "1 failed in" in result.out
    assert "skipped" not in result.out.splitlines()[-1]  # as without xdist: no more reports
    assert_clean(repo)
    assert repo.tasks("pending") == ["t1"] and repo.tasks("current") == []
    summary = assert_run_valid(result.run_dir)["summary.json"]
    assert {w["id"]: w["status"] for w in summary["workers"]} == {"w0": "idle", "w1": "idle"}
    meta = json.loads((result.run_dir / "oompa-run.json").read_text())
    assert (meta["status"], meta["exit-status"]) == ("failed", 1)


@pytest.mark.parametrize(
    "how", ["SIGINT to every process (Ctrl-C)", "SIGTERM to the controller only"]
)
def test_an_interrupted_run_stops_every_node_cleanly(tmp_path: Path, how: str) -> None:
    repo = project(
        tmp_path / "p",
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]},
        {"default": {"worker": {"claim": "auto", "hang": True}}},
        tasks=("t1", "t2"),
    )
    proc = subprocess.Popen(
        _command(repo, "-n", "2"),
        cwd=repo.path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while len(repo.worktrees()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(repo.worktrees()) == 3, "the nodes never started their workers"
        # The agents themselves (a transient child of one, such as a git call, is not one),
        # counted once: re-reading the count at the assert raced with those children.
        agents: list[str] = []
        while time.monotonic() < deadline:
            agents = [a for a in agents_in(repo.path) if "/claude " in a]
            if len(agents) == 2:
                break
            time.sleep(0.1)
        assert len(agents) == 2, f"the agents never started: {agents}"
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, text
    assert_clean(repo)
    assert repo.tasks("current") == [] and repo.tasks("pending") == ["t1", "t2"]
    run_dir = next(p for p in (repo.path / "runs").iterdir() if p.is_dir())
    assert assert_run_valid(run_dir)["summary.json"]["status-counts"] == {"idle": 2}
    meta = json.loads((run_dir / "oompa-run.json").read_text())
    assert (meta["status"], meta["exit-status"]) == ("interrupted", 2)
