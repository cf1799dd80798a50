"""Hookspecs other plugins (and conftest.py files) can implement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_oompa.core.config import SwarmConfig
    from pytest_oompa.core.results import IterationResult
    from pytest_oompa.engine.swarm import SwarmOptions, SwarmResult
    from pytest_oompa.harnesses.registry import HarnessRegistry
    from pytest_oompa.harnesses.spec import HarnessCommand


@pytest.hookspec
def pytest_oompa_register_harnesses(registry: HarnessRegistry) -> None:
    """Add or replace harness entries (``registry.register(HarnessSpec(...))``) before a
    swarm's config is validated, so its model strings may name the new harness."""


@pytest.hookspec
def pytest_oompa_iteration_finished(result: IterationResult) -> None:
    """Called in the main thread when a worker iteration's result is reported."""


@pytest.hookspec
def pytest_oompa_swarm_finished(result: SwarmResult) -> None:
    """Called once the swarm has ended (normally or interrupted) and summary.json is written."""


@pytest.hookspec(firstresult=True)
def pytest_oompa_harness_command(command: HarnessCommand, role: str) -> HarnessCommand | None:
    """Return a replacement for a harness command before it runs (extra flags, environment,
    a wrapper), or None to leave it. Called from worker threads: keep it pure and quick."""


@pytest.hookspec
def pytest_oompa_swarm_options(
    config: pytest.Config, swarm_config: SwarmConfig, options: SwarmOptions
) -> None:
    """Adjust the options of the swarm this session will run (set ``options.env``,
    ``options.call_observer``, …) after the command line and the config were read."""
