"""A config written for oompa 0.7.3 (cycles) meets the plugin: accepted by the config, refused
at start with a usage error while the engine does not run cycles, never run as oompa 0.7.0."""

from __future__ import annotations

import pytest

from pytest_oompa import GitRepo
from pytest_oompa.core.config import CYCLES_NOT_RUN, SYNC_NOT_RUN


def start(pytester: pytest.Pytester, config: dict) -> pytest.RunResult:
    GitRepo(pytester.path).add_swarm_config(config)
    return pytester.runpytest("--oompa-swarm=oompa.json", "--collect-only", "-q")


def test_a_0_7_3_worker_is_a_usage_error_until_the_engine_runs_cycles(pytester):
    result = start(
        pytester,
        {
            "probe": False,
            "workers": [
                {"model": "claude:opus", "iterations": 1},
                {"model": "claude:opus", "max_cycle": 5},
            ],
        },
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "oompa.json: swarm config asks for what the engine cannot run yet (1 problem(s)):" in err
    assert f"workers[1]: {CYCLES_NOT_RUN}" in err
    assert "oompa.json::w1" not in result.stdout.str()
    assert not (pytester.path / "runs").exists()


def test_sync_before_merge_is_a_usage_error_until_the_engine_syncs(pytester):
    config = {"workers": [{"model": "claude:opus", "iterations": 1}], "sync_before_merge": True}
    result = start(pytester, config)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"sync_before_merge: {SYNC_NOT_RUN}" in result.stderr.str()


def test_both_versions_in_one_worker_is_a_usage_error_naming_the_field(pytester):
    result = start(
        pytester, {"workers": [{"model": "claude:opus", "iterations": 2, "max_cycle": 2}]}
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "oompa.json: invalid swarm config (1 problem(s)):" in err
    assert "workers[0]: iterations and max_cycle exclude each other" in err


def test_sync_before_merge_false_keeps_today_s_items(pytester):
    config = {"workers": [{"model": "claude:opus", "iterations": 2}], "sync_before_merge": False}
    result = start(pytester, config)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["oompa.json::w0::i1", "oompa.json::w0::i2"])
