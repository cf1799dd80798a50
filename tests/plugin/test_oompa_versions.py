"""Configs written for oompa 0.7.3 (cycles) run as 0.7.3 runs: one item per cycle
(``oompa.json::w0::c3``), attempts in one session, NEEDS_FOLLOWUP, max_resumes, and the files
0.7.3 writes; a config may mix both versions. Real swarms with the bundled fakes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.contract import assert_events_valid, assert_run_valid

from pytest_oompa import GitRepo

FAST = {"probe": False, "executor_wait": 0}


def only_run(root: Path) -> Path:
    (run,) = [p for p in (root / "project" / "runs").iterdir() if p.is_dir()]
    return run


def run_swarm(pytester: pytest.Pytester, config: dict, scenario: dict | None, *args: str):
    """The swarm in ``project/`` (pytester's own files stay outside the repository)."""
    project = GitRepo(pytester.path / "project")
    project.add_swarm_config({**FAST, **config}, scenario, ("t1", "t2"))
    return pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-p", "no:cacheprovider", "--junitxml=junit.xml", *args
    )


def junit_properties(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    tree = ET.parse(pytester.path / "junit.xml")
    return {
        f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}": {
            p.get("name", ""): p.get("value", "") for p in case.iter("property")
        }
        for case in tree.iter("testcase")
    }


def test_a_mixed_config_collects_iterations_and_cycles(pytester):
    config = {
        "workers": [
            {"model": "claude:opus", "iterations": 2},
            {"model": "codex:o3", "max_cycle": 3},
        ]
    }
    GitRepo(pytester.path).add_swarm_config({**FAST, **config})
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "oompa.json::w0::i1",
            "oompa.json::w0::i2",
            "oompa.json::w1::c1",
            "oompa.json::w1::c2",
            "oompa.json::w1::c3",
        ]
    )


def test_both_versions_in_one_worker_is_a_usage_error_naming_the_field(pytester):
    GitRepo(pytester.path).add_swarm_config(
        {"workers": [{"model": "claude:opus", "iterations": 2, "max_cycle": 2}]}
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "oompa.json: invalid swarm config (1 problem(s)):" in err
    assert "workers[0]: iterations and max_cycle exclude each other" in err


def test_a_cycle_takes_attempts_in_one_session_until_it_merges(pytester):
    scenario = {
        "workers": {
            "w0": {
                "worker": [
                    {"claim": "t1"},
                    {"say": "still reading"},
                    {"write": {"a.txt": "a\n"}, "commit": True, "merge": True},
                    {"write": {"b.txt": "b\n"}, "commit": True, "merge": True},
                ]
            }
        }
    }
    config = {"workers": [{"model": "claude:opus", "max_cycle": 2}]}
    result = run_swarm(pytester, config, scenario, "-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*cycle 1: 3 attempt(s)*",
            "*attempt 1: claimed*",
            "*attempt 2: working*",
            "*attempt 3: merged*",
        ]
    )
    props = junit_properties(pytester)
    assert props["w0::c1"]["cycle"] == "1"
    assert props["w0::c1"]["attempts"] == "3"
    assert props["w0::c1"]["attempt_outcomes"] == "claimed, working, merged"
    assert props["w0::c2"]["attempts"] == "1"
    run = only_run(pytester.path)
    files = assert_run_valid(run)
    assert_events_valid(run)
    # what oompa 0.7.3 writes: cycle files, no iteration files
    assert not any(k.startswith("iterations/") for k in files)
    assert files["cycles/w0-c1.json"]["outcome"] == "merged"
    assert files["cycles/w0-c1.json"]["claimed-task-ids"] == ["t1"]
    assert files["started.json"]["workers"][0]["max-resumes"] == 7
    assert files["started.json"]["workers"][0]["max-cycles"] == 2
    calls = files["calls/w0-c1.json"]
    assert (calls["iteration"], calls["cycle"]) == (None, 1)
    assert [c["attempt"] for c in calls["calls"]] == [1, 2, 3]
    # one session: the second and third calls resumed the first's
    sessions = {c["session-id"] for c in calls["calls"]}
    assert len(sessions) == 1
    assert files["workers/w0.json"] == {"status": "stopped", "cycle": 2, "reason": "completed"}


def test_needs_followup_then_merge_and_a_cycle_that_runs_out_of_attempts(pytester):
    scenario = {
        "workers": {
            "w0": {
                "worker": [
                    {"claim": "t1"},
                    {"needs_followup": "the schema is missing"},
                    {"write": {"a.txt": "a\n"}, "commit": True, "merge": True},
                    {"claim": "t2"},
                    {"say": "reading"},
                ]
            }
        }
    }
    # the last step repeats: cycle 2 claims, then reads until its attempts run out
    config = {"workers": [{"model": "claude:opus", "max_cycle": 2, "max_resumes": 3}]}
    result = run_swarm(pytester, config, scenario, "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*w0 cycle 2: stuck*",
            "*no outcome ended the cycle in 3 attempts (max_resumes)*",
            "*PASSES*",
            "*attempt 2: needs-followup*NEEDS_FOLLOWUP 1/1*",
        ]
    )
    files = assert_run_valid(only_run(pytester.path))
    assert files["cycles/w0-c2.json"]["outcome"] == "stuck"
    assert files["cycles/w0-c2.json"]["recycled-tasks"] == ["t2"]
    # the follow-up prompt went to the agent, in its session
    log = only_run(pytester.path) / "commands"
    prompts = "".join(p.read_text() for p in log.glob("w0-c1-worker-3*"))
    assert "NEEDS_FOLLOWUP Follow-up" in prompts and "the schema is missing" in prompts


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "-n 2"])
def test_the_0_7_3_demo_shapes_validate_with_and_without_xdist(pytester, xdist):
    config = {
        "workers": [
            {"model": "claude:opus", "max_cycle": 2},
            {"model": "codex:o3", "iterations": 2},
        ],
        "reviewer": {"model": "claude:sonnet"},
    }
    result = run_swarm(pytester, config, None, *(["-n", "2"] if xdist else []))
    result.assert_outcomes(passed=4)
    run = only_run(pytester.path)
    files = assert_run_valid(run)
    assert_events_valid(run)
    assert {k for k in files if k.startswith("cycles/")} == {
        "cycles/w0-c1.json",
        "cycles/w0-c2.json",
        "cycles/w1-c1.json",  # w1's iterations, each a cycle of one attempt
        "cycles/w1-c2.json",
    }
    assert {k for k in files if k.startswith("iterations/")} == {
        "iterations/w1-i1.json",
        "iterations/w1-i2.json",
    }
    reviews = {k for k in files if k.startswith("reviews/")}
    assert {"reviews/w0-c1-r1.json", "reviews/w1-i1-r1.json"} <= reviews
    assert json.loads((run / "reviews" / "w0-c1-r1.json").read_text())["cycle"] == 1
