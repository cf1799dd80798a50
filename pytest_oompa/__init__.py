"""pytest-oompa: run coding-agent swarms as pytest sessions.

Every worker iteration of a swarm is a collected test item; the swarm engine itself lives in
plain modules (``pytest_oompa.engine``) that never import pytest. The package is layered, each
layer importing only the ones before it::

    core -> harnesses -> runs -> report -> engine -> offline -> plugin

This module is the public API: import from here, not from the layers. Names are loaded on
first use, so ``import pytest_oompa`` (which every pytest run with the plugin installed does)
costs nothing until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it ("module:attribute" where the module's name for it is a
# word that would be ambiguous here, such as a cassette's ``load``)
_EXPORTS: dict[str, str] = {
    # core: the swarm config and what a swarm produces
    "ConfigError": "pytest_oompa.core.config",
    "SwarmConfig": "pytest_oompa.core.config",
    "load_config": "pytest_oompa.core.config",
    "CallRecord": "pytest_oompa.core.results",
    "IterationResult": "pytest_oompa.core.results",
    "Outcome": "pytest_oompa.core.results",
    "WorkerMetrics": "pytest_oompa.core.results",
    # harnesses: one registry entry per agent CLI
    "HarnessCommand": "pytest_oompa.harnesses.spec",
    "HarnessSpec": "pytest_oompa.harnesses.spec",
    "RealPackage": "pytest_oompa.harnesses.spec",
    "Recipe": "pytest_oompa.harnesses.spec",
    "SessionMode": "pytest_oompa.harnesses.spec",
    "SessionStrategy": "pytest_oompa.harnesses.spec",
    "build_command": "pytest_oompa.harnesses.spec",
    "ParsedOutput": "pytest_oompa.harnesses.output",
    "BUILTIN_HARNESSES": "pytest_oompa.harnesses.registry",
    "HarnessRegistry": "pytest_oompa.harnesses.registry",
    "UnknownHarness": "pytest_oompa.harnesses.registry",
    # runs: the artifacts of a run
    "ArtifactError": "pytest_oompa.runs.artifacts",
    "ArtifactStore": "pytest_oompa.runs.artifacts",
    "read_artifact": "pytest_oompa.runs.artifacts",
    "validate_artifact": "pytest_oompa.runs.artifacts",
    # report
    "render_report": "pytest_oompa.report",
    "write_report": "pytest_oompa.report",
    # engine
    "Swarm": "pytest_oompa.engine.swarm",
    "SwarmListener": "pytest_oompa.engine.swarm",
    "SwarmOptions": "pytest_oompa.engine.swarm",
    "SwarmResult": "pytest_oompa.engine.swarm",
    "parse_signals": "pytest_oompa.engine.markers",
    "parse_verdict": "pytest_oompa.engine.markers",
    # offline: the fake harnesses' scenarios, the fake model API, cassettes
    "MERGE": "pytest_oompa.offline.fake_scenario",
    "Scenario": "pytest_oompa.offline.fake_scenario",
    "ScenarioError": "pytest_oompa.offline.fake_scenario",
    "claim": "pytest_oompa.offline.fake_scenario",
    "verdict": "pytest_oompa.offline.fake_scenario",
    "ApiScenario": "pytest_oompa.offline.fake_api",
    "ApiScenarioError": "pytest_oompa.offline.fake_api",
    "FakeModelAPI": "pytest_oompa.offline.fake_api",
    "CassetteRecorder": "pytest_oompa.offline.cassette",
    "ReplayOrder": "pytest_oompa.offline.cassette",
    "comparable_artifacts": "pytest_oompa.offline.cassette",
    "load_cassette": "pytest_oompa.offline.cassette:load",
    "WireRecorder": "pytest_oompa.offline.wire_cassette",
    "WireReplayer": "pytest_oompa.offline.wire_cassette",
    "upstream_keys": "pytest_oompa.offline.wire_cassette",
    # plugin: what tests use besides the fixtures themselves
    "GitRepo": "pytest_oompa.plugin.git_repo",
    "SwarmRun": "pytest_oompa.plugin.swarm_runner",
    "FakeHarness": "pytest_oompa.plugin.fake_harness",
    "Invocation": "pytest_oompa.plugin.fake_harness",
    "ModelAPI": "pytest_oompa.plugin.real_harness",
    "ModelReply": "pytest_oompa.plugin.real_harness",
    "RealHarness": "pytest_oompa.plugin.real_harness",
    "read_invocations": "pytest_oompa.plugin.fake_harness",
}

# Literal, so linters and type checkers read it; tests/test_public_api.py keeps it in step.
__all__ = [
    "BUILTIN_HARNESSES",
    "MERGE",
    "ApiScenario",
    "ApiScenarioError",
    "ArtifactError",
    "ArtifactStore",
    "CallRecord",
    "CassetteRecorder",
    "ConfigError",
    "FakeHarness",
    "FakeModelAPI",
    "GitRepo",
    "HarnessCommand",
    "HarnessRegistry",
    "HarnessSpec",
    "Invocation",
    "IterationResult",
    "ModelAPI",
    "ModelReply",
    "Outcome",
    "ParsedOutput",
    "RealHarness",
    "RealPackage",
    "Recipe",
    "ReplayOrder",
    "Scenario",
    "ScenarioError",
    "SessionMode",
    "SessionStrategy",
    "Swarm",
    "SwarmConfig",
    "SwarmListener",
    "SwarmOptions",
    "SwarmResult",
    "SwarmRun",
    "UnknownHarness",
    "WireRecorder",
    "WireReplayer",
    "WorkerMetrics",
    "__version__",
    "build_command",
    "claim",
    "comparable_artifacts",
    "load_cassette",
    "load_config",
    "parse_signals",
    "parse_verdict",
    "read_artifact",
    "read_invocations",
    "render_report",
    "upstream_keys",
    "validate_artifact",
    "verdict",
    "write_report",
]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_oompa' has no attribute {name!r}") from None
    module, _, attribute = module.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see; kept in step by tests/test_public_api.py
    from pytest_oompa.core.config import ConfigError, SwarmConfig, load_config
    from pytest_oompa.core.results import CallRecord, IterationResult, Outcome, WorkerMetrics
    from pytest_oompa.engine.markers import parse_signals, parse_verdict
    from pytest_oompa.engine.swarm import Swarm, SwarmListener, SwarmOptions, SwarmResult
    from pytest_oompa.harnesses.output import ParsedOutput
    from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES, HarnessRegistry, UnknownHarness
    from pytest_oompa.harnesses.spec import (
        HarnessCommand,
        HarnessSpec,
        RealPackage,
        Recipe,
        SessionMode,
        SessionStrategy,
        build_command,
    )
    from pytest_oompa.offline.cassette import CassetteRecorder, ReplayOrder, comparable_artifacts
    from pytest_oompa.offline.cassette import load as load_cassette
    from pytest_oompa.offline.fake_api import ApiScenario, ApiScenarioError, FakeModelAPI
    from pytest_oompa.offline.fake_scenario import MERGE, Scenario, ScenarioError, claim, verdict
    from pytest_oompa.offline.wire_cassette import WireRecorder, WireReplayer, upstream_keys
    from pytest_oompa.plugin.fake_harness import FakeHarness, Invocation, read_invocations
    from pytest_oompa.plugin.git_repo import GitRepo
    from pytest_oompa.plugin.real_harness import ModelAPI, ModelReply, RealHarness
    from pytest_oompa.plugin.swarm_runner import SwarmRun
    from pytest_oompa.report import render_report, write_report
    from pytest_oompa.runs.artifacts import (
        ArtifactError,
        ArtifactStore,
        read_artifact,
        validate_artifact,
    )
