"""The command line of swarms on the real CLIs (pytest_oompa.plugin.real_swarm): what is refused,
and why, before anything runs. Runs that use the real CLIs are in
tests/harnesses/test_real_clis.py."""

from __future__ import annotations

import pytest

from pytest_oompa import GitRepo

CONFIG = {"workers": [{"model": "claude:opus", "iterations": 1}]}
GHOST = """
import dataclasses
from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES

def pytest_oompa_register_harnesses(registry):
    claude = next(spec for spec in BUILTIN_HARNESSES if spec.name == "claude")
    registry.register(dataclasses.replace(claude, name="ghost", binary="oompa-ghost-cli"))
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> GitRepo:
    repo = GitRepo(pytester.path)
    repo.add_swarm_config(CONFIG, tasks=["t1"])
    return repo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--oompa-wire-replay=c.json"], "--oompa-wire-replay runs the swarm's real CLIs: add"),
        (
            ["--oompa-fake-api", "--oompa-fake-api-scenario=s.json"],
            "--oompa-fake-api-scenario runs the swarm's real CLIs: add --oompa-real-harness",
        ),
        (
            ["--oompa-real-harness=claude", "--oompa-wire-record=a", "--oompa-wire-replay=b"],
            "--oompa-wire-record and --oompa-wire-replay exclude each other",
        ),
        (
            ["--oompa-real-harness=claude", "--oompa-wire-upstream=http://x"],
            "--oompa-wire-upstream only goes with --oompa-wire-record",
        ),
        (
            ["--oompa-real-harness=claude", "--oompa-fake-api-scenario=s.json"],
            "--oompa-fake-api-scenario needs --oompa-fake-api",
        ),
        (
            ["--oompa-real-harness=codex,gemini"],
            "--oompa-real-harness=codex,gemini: the swarm uses none of them (it uses claude)",
        ),
        (
            [
                "--oompa-real-harness=claude",
                "--oompa-wire-record=c.json",
                "--oompa-wire-upstream=bogus=http://x",
            ],
            "--oompa-wire-upstream: 'bogus=http://x' is not PROTOCOL=URL",
        ),
    ],
)
def test_refused_before_anything_runs(
    pytester: pytest.Pytester, project: GitRepo, args: list[str], message: str
) -> None:
    result = pytester.runpytest("--oompa-swarm=oompa.json", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*oompa: {message}*"])
    assert not (pytester.path / "runs").exists()


def test_a_missing_cli_is_a_usage_error_naming_where_it_looked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OOMPA_CLIS_DIR", str(pytester.path / "no-clis"))
    pytester.makeconftest(GHOST)
    repo = GitRepo(pytester.path)
    repo.add_swarm_config({"workers": [{"model": "ghost:m", "iterations": 1}]}, tasks=["t1"])
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-real-harness=ghost")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*oompa: the real 'oompa-ghost-cli' CLI is not installed (looked in *no-clis*"]
    )
