"""The gate (CI thresholds on a swarm's outcome) and the outcome policy."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pytest_oompa import GitRepo
from pytest_oompa.core.gate import (
    GateFacts,
    GateOptionError,
    GateSection,
    evaluate,
    merge,
    parse_gate_option,
)

FAST = {"probe": False, "executor_wait": 0}
FACTS = GateFacts(
    merges=3,
    completed=3,
    errors=1,
    rejections=1,
    tasks_left=2,
    workers_in_error=("w2",),
    wall_time_s=42.0,
)


def test_every_threshold_reports_what_it_measured():
    gate = GateSection(
        min_merges=4,
        min_completed=3,
        max_errors=0,
        max_rejections=1,
        max_rejection_rate=0.2,
        all_tasks_complete=True,
        no_worker_error=True,
        max_wall_time=60,
    )
    checks = {c.name: c for c in evaluate(gate, FACTS)}
    assert {n for n, c in checks.items() if not c.ok} == {
        "min_merges",
        "max_errors",
        "max_rejection_rate",
        "all_tasks_complete",
        "no_worker_error",
    }
    assert str(checks["min_merges"]) == "min_merges: 3 (threshold >= 4) FAILED"
    assert checks["max_rejection_rate"].measured == "0.25 (1 of 4)"
    assert checks["no_worker_error"].measured == "workers in error: w2"
    assert checks["max_wall_time"].ok


def test_the_spend_thresholds_report_what_was_spent():
    facts = GateFacts(
        merges=1,
        completed=1,
        errors=0,
        rejections=0,
        tasks_left=0,
        workers_in_error=(),
        wall_time_s=1.0,
        cost_usd=5.02,
        tokens=1_234_567,
        calls_without_cost=2,
    )
    checks = evaluate(GateSection(max_cost_usd=5.0, max_tokens=2_000_000), facts)
    assert [str(c) for c in checks] == [
        "max_cost_usd: $5.02 (+ 2 call(s) that reported no cost) (threshold <= $5.00) FAILED",
        "max_tokens: 1,234,567 tokens (threshold <= 2,000,000) ok",
    ]


def test_a_spend_gate_fails_the_run(pytester):
    project(pytester, {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]})
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-gate=max_tokens=1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*max_tokens: * tokens (threshold <= 1) FAILED*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_empty_gate_checks_nothing():
    assert not GateSection().active and evaluate(GateSection(), FACTS) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min_merges=3", {"min_merges": 3}),
        (
            "max_rejection_rate=0.2, all_tasks_complete",
            {"max_rejection_rate": 0.2, "all_tasks_complete": True},
        ),
        ("no_worker_error=false,max_wall_time=90", {"no_worker_error": False, "max_wall_time": 90}),
        ("max_cost_usd=2.5,max_tokens=100000", {"max_cost_usd": 2.5, "max_tokens": 100000}),
    ],
)
def test_gate_option_parsing(text, expected):
    assert parse_gate_option(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_mrges=3", "unknown gate threshold 'min_mrges'"),
        ("min_merges=three", "cannot read 'three'"),
        ("all_tasks_complete=maybe", "cannot read 'maybe'"),
        ("max_tokens=1.5", "cannot read '1.5'"),
    ],
)
def test_bad_gate_options_are_named(text, message):
    with pytest.raises(GateOptionError, match=message):
        parse_gate_option(text)


def test_the_command_line_wins_per_threshold():
    merged = merge(GateSection(min_merges=1, max_errors=0), "min_merges=5")
    assert (merged.min_merges, merged.max_errors) == (5, 0)
    with pytest.raises(GateOptionError, match="max_rejection_rate"):
        merge(None, "max_rejection_rate=2")


def project(pytester, config, scenario=None):
    repo = GitRepo(pytester.path)
    repo.add_swarm_config(config, scenario)
    return repo


CONFIG = {
    **FAST,
    "workers": [{"model": "claude:opus", "iterations": 2}],
    "gate": {"min_merges": 2, "max_errors": 0},
}


def test_a_passing_gate_is_a_passing_item(pytester):
    project(pytester, CONFIG)
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--junitxml=out.xml", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["oompa.json::gate PASSED*", "gate: passed", "  min_merges: 2 (threshold >= 2) ok"]
    )
    case = next(
        c for c in ET.parse(pytester.path / "out.xml").iter("testcase") if c.get("name") == "gate"
    )
    assert {p.get("name") for p in case.iter("property")} == {"gate_min_merges", "gate_max_errors"}


def test_a_failed_gate_fails_the_run_and_says_why(pytester):
    project(pytester, CONFIG, {"workers": {"w0": {"worker": [{"exit": 1}, "default"]}}})
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-gate=min_merges=2")
    result.assert_outcomes(passed=1, failed=2)  # i2 merged; i1 (error) and the gate failed
    result.stdout.fnmatch_lines(
        [
            "*gate failed:*",
            "*min_merges: 1 (threshold >= 2) FAILED*",
            "*max_errors: 1 (threshold <= 0) FAILED*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_failed_gate_fails_the_run_even_when_its_item_is_deselected(pytester):
    project(pytester, {**CONFIG, "gate": {"min_merges": 5}})
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-k", "not gate")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["gate: FAILED", "*min_merges: 2 (threshold >= 5) FAILED*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_bad_gate_option_is_a_usage_error(pytester):
    project(pytester, CONFIG)
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-gate=max_erors=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown gate threshold 'max_erors'*"])


def test_the_outcome_policy_maps_outcomes_to_pytest_outcomes(pytester):
    scenario = {
        "workers": {
            "w0": {
                "worker": [{"write": {"a": "1"}, "commit": True, "merge": True}, {"say": "hm"}],
                "reviewer": [{"verdict": "rejected"}],
            }
        }
    }
    project(
        pytester,
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 2}],
            "reviewer": {"model": "claude:sonnet"},
            "outcomes": {"rejected": "xfail"},
        },
        scenario,
    )
    pytester.runpytest("--oompa-swarm=oompa.json").assert_outcomes(passed=1, xfailed=1)
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-outcomes=working=skip")
    result.assert_outcomes(xfailed=1, skipped=1)
    bad = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-outcomes=working=maybe")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_a_swarm_timeout_fails_the_session(pytester):
    project(
        pytester,
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 3}], "timeouts": {"swarm": 1}},
        {"default": {"worker": {"hang": True}}},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["swarm timeout after 1 s", "*not reached: swarm timeout after 1 s*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_works_alongside_pytest_timeout(pytester):
    """pytest-timeout's per-test limit applies to each item's report, not to the swarm."""
    pytest.importorskip("pytest_timeout")
    project(
        pytester,
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]},
        {"default": {"worker": {"delay": 1.2, "builtin": True}}},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--timeout=1")
    result.assert_outcomes(passed=2)
