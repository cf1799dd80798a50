"""The keys under which this plugin keeps per-run state in ``config.stash``.

Their own module, importing only pytest, so the hook module that pytest loads in every run can
look up a swarm session without importing the session, the items or the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_oompa.plugin.session import SwarmSession  # noqa: F401 (in a string below)

SESSION_KEY = pytest.StashKey["SwarmSession"]()
# The fake_harness fixture of the running test, for oompa_swarm to share its scenario and log.
FAKE_HARNESS_KEY = pytest.StashKey[Any]()
