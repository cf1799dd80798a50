"""The harness registry as a pytest session sees it: the built-in entries plus what
``pytest_oompa_register_harnesses`` implementations (plugins, conftest.py files) add.

The one place that builds it, for the swarm option, the fixtures and the contract suite. It is
built anew on each call, not cached: a conftest.py further down the tree is loaded during
collection, after ``pytest_configure``, and its harnesses must reach the fixtures of its tests.
"""

from __future__ import annotations

import pytest

from pytest_oompa.harnesses.registry import HarnessRegistry


def registry_for(config: pytest.Config) -> HarnessRegistry:
    registry = HarnessRegistry()
    config.hook.pytest_oompa_register_harnesses(registry=registry)
    return registry
