"""Swarms on a Ray cluster of three nodes on this machine (--oompa-ray=ADDRESS).

One cluster for the module (tests/support/ray_nodes.py): a head with no CPU, so no worker
lands there, and nodes ``a`` and ``b`` of 2 CPUs each. The nodes run under bubblewrap with
this session's temporary folder (every test's repository, config and run folder) replaced
by an empty tmpfs: a swarm that passes here never read or wrote the coordinator's disk, and
an agent's ``pwd`` shows it ran in its node's own workspace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.contract import assert_events_valid, assert_run_valid
from support.ray_nodes import LocalCluster, local_cluster

from pytest_oompa import GitRepo

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
ray = pytest.importorskip("ray")

TIMEOUT = 180
FAST = {"probe": False, "executor_wait": 0}
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "template"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    hidden = tmp_path_factory.getbasetemp()
    # "agents" on both nodes: a worker that asks for it may land on either.
    with local_cluster(hidden, a={"agents": 100.0}, b={"agents": 100.0}) as c:
        yield c


def pytest_argv(cluster: LocalCluster, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--oompa-swarm=oompa.json",
        f"--oompa-ray={cluster.address}",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--oompa-live=off",
        *args,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def run(cluster: LocalCluster, repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_argv(cluster, *args),
        cwd=repo.path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start(cluster: LocalCluster, repo: GitRepo, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        pytest_argv(cluster, *args),
        cwd=repo.path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def the_run(repo: GitRepo) -> Path:
    (folder,) = [p for p in (repo.path / "runs").iterdir() if p.is_dir()]
    return folder


def placements(out: str) -> dict[str, str]:
    """worker -> the short node id of its (last) actor, from the run's notes."""
    found = {}
    for line in out.splitlines():
        if line.startswith("note: ray: ") and " runs on node " in line:
            worker = line.split()[2]
            found[worker] = line.rsplit("(", 1)[1].rstrip(")")
    return found


def remote_agents(swarm_id: str) -> list[psutil.Process]:
    """The agents (fake CLIs) of the swarm running anywhere on this machine."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("OOMPA_SWARM_ID") == swarm_id and "OOMPA_CALL" in proc.environ():
                found.append(proc)
    return found


def nothing_left_of(cluster: LocalCluster, swarm_id: str) -> None:
    """No actor, agent or workspace of the run anywhere in the cluster. (A workspace on a
    node that went away would stay on its disk; here every node's /tmp is this machine's,
    and the worker's new actor took the same folder over.)"""
    deadline = time.monotonic() + 30
    while cluster.actors_of(swarm_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.actors_of(swarm_id) == []
    assert remote_agents(swarm_id) == []
    assert not Path(f"/tmp/oompa-node-{swarm_id}").exists()


def demo_repo(root: Path) -> GitRepo:
    repo = GitRepo(root / "project")
    repo.seed(DEMO)
    return repo


def test_the_demo_spreads_over_both_nodes_and_never_touches_the_coordinators_disk(
    cluster, tmp_path
):
    repo = demo_repo(tmp_path)
    # The nodes cannot see tmp_path at all (an empty tmpfs there): proof that they never
    # touch it, if the swarm still merges everything.
    probe = subprocess.run(
        ["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(cluster.hidden), "ls", str(repo.path)],
        capture_output=True,
    )
    assert probe.returncode != 0  # as a node sees it: no such folder
    result = run(cluster, repo, "--junitxml=../junit.xml")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "15 passed" in out
    folder = the_run(repo)
    files = assert_run_valid(folder)  # ours and oompa's 0.7 contract
    summary = files["summary.json"]
    assert sum(w["merges"] for w in summary["workers"]) == 15
    node_ids = {n.node_id[:8]: name for name, n in cluster.nodes.items()}
    where = placements(out)
    assert sorted(where) == ["w0", "w1", "w2", "w3", "w4"]
    assert {node_ids.get(short, "head") for short in where.values()} == {"a", "b"}
    # The agents' work is on main, made on the nodes.
    assert len(repo.git("ls-tree", "--name-only", "main", "src/").split()) >= 1
    assert repo.tasks("current") == []
    # The call logs were written here, from the polled output.
    (path,) = (folder / "commands").glob("w0-i1-worker*.ndjson")
    log = path.read_text().splitlines()
    assert any(json.loads(line).get("event") == "output" for line in log)
    assert repo.status() == []
    nothing_left_of(cluster, folder.name)


def test_preflight_names_what_each_node_lacks(cluster, tmp_path):
    """A CLI on the coordinator's PATH only (a folder the nodes cannot see): the coordinator's
    own check passes, every node's says it is missing there."""
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config({**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    config = json.loads((repo.path / "oompa.json").read_text())
    del config["fake_harnesses"]  # the real 'claude', which is nowhere but in bin/
    repo.write("oompa.json", json.dumps(config))
    repo.commit("real claude")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "claude").chmod(0o755)
    result = subprocess.run(
        pytest_argv(cluster),
        cwd=repo.path,
        env={**env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    for node in cluster.nodes.values():
        assert f"({node.node_id[:8]}): not on PATH: claude" in out, out
    assert "runs on node" not in out  # nothing was placed


SLOW = {"default": {"worker": {"builtin": True, "delay": 1.5}}}


def slow_project(root: Path, workers: int, iterations: int, **config: Any) -> GitRepo:
    repo = GitRepo(root / "project")
    worker = {"model": "claude:opus", "iterations": iterations, "count": workers}
    tasks = [f"t{n}" for n in range(workers * iterations)]
    repo.add_swarm_config({**FAST, "workers": [worker], **config}, SLOW, tasks)
    return repo


def test_a_node_lost_mid_call_fails_that_iteration_only_and_the_worker_moves(cluster, tmp_path):
    node = cluster.add_node("c", agents=100.0)
    repo = slow_project(tmp_path, workers=3, iterations=3, ray={"resources": {"agents": 1}})
    proc = start(cluster, repo)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not any(p.pid in node.pids() for p in _all_agents()):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "no agent ever ran on node c"
            time.sleep(0.05)
        node.kill()  # the machine goes away under a running agent
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    cluster.wait_gone(node)
    del cluster.nodes["c"]
    folder = the_run(repo)
    files = assert_run_valid(folder)
    iterations = {k: v for k, v in files.items() if k.startswith("iterations/")}
    assert len(iterations) == 9, out  # every iteration once: none lost, none twice
    lost = [v for v in iterations.values() if "node lost" in (v.get("error-snippet") or "")]
    assert len(lost) == 1, out
    assert all(v["outcome"] == "merged" for v in iterations.values() if v not in lost), out
    assert lost[0]["outcome"] == "error"
    summary = files["summary.json"]
    assert sum(w["merges"] for w in summary["workers"]) == 8
    assert sum(w["errors"] for w in summary["workers"]) == 1
    assert "ray: node" in out and "lost under" in out
    # The lost iteration's task went back to the queue and was done by a later iteration.
    assert repo.tasks("current") == []
    assert proc.returncode == 1  # one failed item: the gate of a local run, unchanged
    assert repo.status() == []
    nothing_left_of(cluster, folder.name)


def _all_agents() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if "OOMPA_CALL" in proc.environ() and "OOMPA_SWARM_ID" in proc.environ():
                found.append(proc)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_stops_every_remote_agent_and_the_run_resumes(cluster, tmp_path, sig):
    repo = slow_project(tmp_path, workers=2, iterations=3)
    proc = start(cluster, repo)
    deadline = time.monotonic() + TIMEOUT
    while not (runs := list((repo.path / "runs").glob("*/iterations/*.json"))):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    swarm_id = runs[0].parent.parent.name
    while not remote_agents(swarm_id):  # an agent running on a node right now
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    nothing_left_of(cluster, swarm_id)
    folder = the_run(repo)
    assert json.loads((folder / "oompa-run.json").read_text())["status"] == "interrupted"
    assert_run_valid(folder)
    # Nodes keep nothing: the resumed run starts new actors and sends them everything.
    resumed = run(cluster, repo, "--oompa-resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    files = assert_run_valid(folder)
    assert_events_valid(folder)
    assert sum(w["merges"] for w in files["summary.json"]["workers"]) == 6
    assert files["oompa-run.json"]["status"] == "completed"
    assert repo.status() == []
    nothing_left_of(cluster, swarm_id)


def test_max_concurrent_agents_caps_the_calls_over_the_whole_cluster(cluster, tmp_path):
    # Each agent writes when it starts and ends into a file every node can see (the cluster's
    # own folder, not the hidden session folder).
    log = cluster.temp / f"calls-{tmp_path.name}.txt"
    step = {
        "builtin": True,
        "shell": [
            f"echo start $(date +%s.%N) >> {log}; sleep 0.4; echo end $(date +%s.%N) >> {log}"
        ],
    }
    repo = GitRepo(tmp_path / "project")
    worker = {"model": "claude:opus", "iterations": 1, "count": 4}
    repo.add_swarm_config(
        {**FAST, "workers": [worker], "ray": {"max_concurrent_agents": 1}},
        {"default": {"worker": step}},
        [f"t{n}" for n in range(4)],
    )
    result = run(cluster, repo)
    assert result.returncode == 0, result.stdout + result.stderr
    events = sorted(
        (float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines())
    )
    assert len(events) == 8
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 1  # one agent at a time, though 4 workers on 2 nodes were ready
    assert len(set(placements(result.stdout).values())) == 2
