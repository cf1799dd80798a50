"""The plugin as a user meets it: pytest --oompa-swarm=oompa.json on a real repo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.contract import assert_run_valid
from support.terminal import default_sigint

from pytest_oompa import GitRepo

FAST = {"probe": False, "executor_wait": 0}


def project(
    pytester: pytest.Pytester,
    config: dict,
    scenario: dict | None = None,
    tasks: tuple[str, ...] = (),
) -> GitRepo:
    """The pytester folder as a git repo holding oompa.json (and a scenario), committed."""
    repo = GitRepo(pytester.path)
    repo.add_swarm_config(config, scenario, tasks)
    return repo


def run_dirs(pytester: pytest.Pytester) -> list[Path]:
    runs = pytester.path / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


def test_collect_only_lists_items_and_runs_nothing(pytester):
    repo = project(
        pytester,
        {
            "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}],
            "planner": {"model": "claude:opus"},
        },
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "oompa.json::planner",
            "oompa.json::w0::i1",
            "oompa.json::w0::i2",
            "oompa.json::w1::i1",
            "oompa.json::w1::i2",
            "5 tests collected*",
        ]
    )
    assert run_dirs(pytester) == [] and repo.branches() == ["main"]


def test_a_run_reports_each_iteration(pytester):
    scenario = {
        "workers": {
            "w1": {"worker": [{"exit": 3, "stderr": "the model is on fire"}]},
            "w2": {
                "worker": [{"write": {"x.txt": "x"}, "commit": True, "merge": True}],
                "reviewer": [{"say": "This is wrong.", "verdict": "rejected"}],
            },
        }
    }
    repo = project(
        pytester,
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 3, "count": 3}],
            "reviewer": {"model": "codex:o3"},
        },
        scenario,
        tasks=("t1",),
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-rA")
    # w0 merges 3 times; w1 errors 3 times (the third stops it: nothing left to skip);
    # w2 is rejected 3 times.
    result.assert_outcomes(passed=3, failed=6)
    result.stdout.fnmatch_lines(
        [
            "*w1 iteration 1: error*",
            "*claude failed: exit code 3*",
            "*argv: */claude -p --dangerously-skip-permissions --output-format stream-json "
            "--verbose --model opus --session-id * -- <* chars: *",
            "*the model is on fire*",
            "*w2 iteration 1: rejected*",
            "*review round 1: rejected*",
            "*This is wrong.*",
            "*diff files: x.txt*",
            "*artifact: runs/*/iterations/w2-i1.json*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*oompa swarm *",
            "worker*harness:model*status*completed*merges*claims*rejections*errors*recycled*",
            "w0*claude:opus*exhausted*3*3*",
            "w1*claude:opus*error*0*0*",
            "w2*claude:opus*exhausted*0*0*",
            "artifacts: runs/*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert repo.status() == [] and repo.branches() == ["main"]
    (run_dir,) = run_dirs(pytester)
    assert_run_valid(run_dir)


def test_iterations_a_stopped_worker_never_reached_are_skipped(pytester):
    project(
        pytester,
        {**FAST, "workers": [{"model": "gemini:pro", "iterations": 4}]},
        {"workers": {"w0": {"worker": [{"say": "all done", "done": True}]}}},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["*not reached: worker w0 stopped after iteration 1*"])


def test_k_selects_one_worker(pytester, monkeypatch):
    project(pytester, {**FAST, "workers": [{"model": "claude:opus", "iterations": 2, "count": 3}]})
    log = pytester.path.parent / "calls.jsonl"
    monkeypatch.setenv("OOMPA_FAKE_LOG", str(log))
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-k", "w1", "-v")
    result.assert_outcomes(passed=2, deselected=4)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c["worker"] for c in calls if c["role"]} == {"w1"}  # role None: --version


def test_junit_carries_iteration_properties(pytester):
    project(pytester, {**FAST, "workers": [{"model": "codex:o3", "iterations": 2}]}, tasks=("t1",))
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--junitxml=out.xml")
    result.assert_outcomes(passed=2)
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in c.iter("property")} for c in cases]
    first = next(p for p in props if p["iteration"] == "1")
    assert first["worker"] == "w0" and first["outcome"] == "merged" and first["task_id"] == "t1"
    assert first["swarm_id"] and first["artifact"].endswith("iterations/w0-i1.json")


def test_a_broken_config_is_a_usage_error_naming_the_field(pytester):
    project(pytester, {"workers": [{"model": "claude:opus", "iterations": 0, "prompt": "x.md"}]})
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "oompa.json: invalid swarm config (2 problem(s)):" in err
    assert "workers[0].iterations: Input should be greater than or equal to 1 (got 0)" in err
    assert "workers[0].prompt[0]: prompt file 'x.md' not found" in err
    assert run_dirs(pytester) == []


def test_a_dirty_repo_stops_before_anything_runs(pytester):
    repo = project(pytester, {"workers": [{"model": "claude:opus", "iterations": 1}]})
    repo.write("notes.txt", "wip")
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*swarm preflight failed:*", "*not clean*", "*notes.txt*"])
    assert run_dirs(pytester) == []


def test_normal_tests_run_beside_the_swarm_when_paths_are_given(pytester):
    project(pytester, {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    subprocess.run(["git", "add", "-A"], cwd=pytester.path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"],
        cwd=pytester.path,
        check=True,
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "test_plain.py", "-v")
    result.assert_outcomes(passed=2)


def test_x_stops_the_swarm_cleanly(pytester):
    scenario = {
        "workers": {
            "w0": {"worker": [{"exit": 1}]},
            "w1": {"worker": [{"claim": ["t1"], "delay": 30}]},
        }
    }
    repo = project(
        pytester,
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]},
        scenario,
        tasks=("t1",),
    )
    start = time.monotonic()
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-x")
    assert time.monotonic() - start < 20
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert repo.branches() == ["main"] and repo.worktrees() == [str(repo.path)]
    assert repo.tasks("pending") == ["t1"]
    (run_dir,) = run_dirs(pytester)
    summary = assert_run_valid(run_dir)["summary.json"]
    assert {w["id"]: w["status"] for w in summary["workers"]} == {"w0": "idle", "w1": "idle"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_iteration_leaves_a_clean_repo_and_valid_artifacts(pytester, sig):
    scenario = {"default": {"worker": {"claim": "auto", "hang": True}}}
    repo = project(
        pytester,
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}]},
        scenario,
        tasks=("t1", "t2"),
    )
    log = pytester.path.parent / "calls.jsonl"
    env = {**os.environ, "OOMPA_FAKE_LOG": str(log), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--oompa-swarm=oompa.json", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=default_sigint,
    )
    # Worktrees exist only once the swarm runs (and the signal handling is in place).
    deadline = time.monotonic() + 60
    while len(repo.worktrees()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(repo.worktrees()) == 3, "the swarm never started its workers"
    time.sleep(0.5)  # the agents are running (hanging) inside their worktrees
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert repo.worktrees() == [str(repo.path)] and repo.branches() == ["main"]
    assert repo.tasks("current") == [] and repo.tasks("pending") == ["t1", "t2"]
    (run_dir,) = run_dirs(pytester)
    assert assert_run_valid(run_dir)["summary.json"]["status-counts"] == {"idle": 2}
    # no agent survived: every hanging fake is gone
    hung = subprocess.run(["pgrep", "-f", str(pytester.path / ".w")], capture_output=True)
    assert hung.stdout == b""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"option": "cli-runs"}, "cli-runs"),
        ({"ini": "ini-runs", "env": "env-runs"}, "ini-runs"),
        ({"env": "env-runs", "env2": "env2-runs"}, "env-runs"),
        ({"env2": "env2-runs"}, "env2-runs"),
        ({}, "runs"),
    ],
)
def test_runs_dir_precedence(pytester, monkeypatch, how, expected):
    project(pytester, {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    args = ["--oompa-swarm=oompa.json"]
    if "option" in how:
        args.append(f"--oompa-runs-dir={how['option']}")
    if "ini" in how:
        pytester.makeini(f"[pytest]\noompa_runs_dir = {how['ini']}\n")
        subprocess.run(["git", "add", "-A"], cwd=pytester.path, check=True)
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ini"],
            cwd=pytester.path,
            check=True,
        )
    if "env" in how:
        monkeypatch.setenv("OOMPA_RUNS_DIR", str(pytester.path / how["env"]))
    if "env2" in how:
        monkeypatch.setenv("RUNS_DIR", str(pytester.path / how["env2"]))
    pytester.runpytest(*args).assert_outcomes(passed=1)
    assert len(list((pytester.path / expected).glob("*/summary.json"))) == 1


def test_an_engine_failure_fails_the_run_with_exit_3(pytester, monkeypatch):
    from pytest_oompa.runs.recorder import Recorder

    project(pytester, {**FAST, "workers": [{"model": "claude:opus", "iterations": 3}]})
    original = Recorder.iteration

    def iteration(self, result):
        # The edge a real full disk would hit: writing an iteration artifact raises.
        if result.iteration == 2:
            raise OSError(28, "No space left on device")
        return original(self, result)

    monkeypatch.setattr(Recorder, "iteration", iteration)  # in-process: the run sees it
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*engine error: worker w0 failed: OSError*",
            "*not reached: worker w0 crashed: OSError: *No space left on device*",
        ]
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR


def test_the_harness_command_hook_can_adjust_each_call(pytester, monkeypatch):
    project(
        pytester,
        {
            **FAST,
            "workers": [{"model": "codex:o3", "iterations": 1}],
            "reviewer": {"model": "claude:sonnet"},
        },
    )
    log = pytester.path.parent / "calls.jsonl"
    monkeypatch.setenv("OOMPA_FAKE_LOG", str(log))
    pytester.makeconftest(
        """
        import dataclasses

        def pytest_oompa_harness_command(command, role):
            if role == "reviewer":
                env = {**command.env, "OOMPA_MARK": "reviewed-by-hook"}
                return dataclasses.replace(command, env=env)
            return None
        """
    )
    subprocess.run(["git", "add", "-A"], cwd=pytester.path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
        cwd=pytester.path,
        check=True,
    )
    pytester.runpytest("--oompa-swarm=oompa.json").assert_outcomes(passed=1)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    marks = {c["role"]: c["env"].get("OOMPA_MARK") for c in calls if c["role"]}
    assert marks == {"worker": None, "reviewer": "reviewed-by-hook"}


# What a pytest run that uses none of the plugin imports of it: the hook module and the few
# small modules it needs to declare options, hooks and fixtures (README, Performance).
IDLE_MODULES = [
    "pytest_oompa",
    "pytest_oompa.plugin",
    "pytest_oompa.plugin.fixtures",
    "pytest_oompa.plugin.hooks",
    "pytest_oompa.plugin.hookspecs",
    "pytest_oompa.plugin.options",
    "pytest_oompa.plugin.stash",
]
HEAVY = ("pydantic", "jsonschema", "filelock")


def test_an_unused_plugin_loads_only_its_hook_modules(pytester: pytest.Pytester) -> None:
    """pytest loads the plugin in every run where pytest-oompa is installed: the engine, the
    rest of the plugin and their dependencies wait until a swarm, a fixture or an option needs
    them."""
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = ("pydantic", "jsonschema", "filelock")
            names = [m for m in sys.modules if m.startswith("pytest_oompa") or m in heavy]
            print("LOADED", sorted(names))
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (line,) = [x for x in result.outlines if "LOADED" in x]
    assert line.partition("LOADED ")[2] == str(IDLE_MODULES)


def test_a_swarm_option_loads_the_engine(pytester: pytest.Pytester) -> None:
    """The same probe sees the engine once a swarm runs: the test above can fail."""
    repo = GitRepo(pytester.path / "project")  # (pytester's own files stay outside it)
    repo.add_swarm_config({"probe": False, "workers": [{"model": "claude:x", "iterations": 1}]})
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            print("LOADED", sorted(m for m in sys.modules if m.startswith("pytest_oompa.engine")))
        """
    )
    result = pytester.runpytest_subprocess("-s", "--oompa-swarm=project/oompa.json")
    result.assert_outcomes(passed=1)
    (line,) = [x for x in result.outlines if "LOADED" in x]
    assert "pytest_oompa.engine.swarm" in line
