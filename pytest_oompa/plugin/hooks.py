"""The plugin's entry point (``pytest11``: ``oompa``): the hook implementations pytest calls in
every run, and nothing else.

They declare the options (``options.py``), read them, and decide what this run needs; the part
that does the work (the swarm session, the contract suite, cassettes, real harnesses, xdist) is
imported and registered only when an option asks for it. So an installed plugin that a run
does not use costs that run next to nothing: no engine, no pydantic, no jsonschema, and only a
handful of small modules for pytest to compile (README, Performance).
"""

from __future__ import annotations

import os

import pytest

from pytest_oompa.plugin import options
from pytest_oompa.plugin.stash import SESSION_KEY

# The fixtures are declared in every run (a test may ask for one); each imports its classes
# when used.
pytest_plugins = ["pytest_oompa.plugin.fixtures"]

# A swarm runs some of its harnesses as the real CLIs (plugin/real_swarm.py) when any of these
# is given; that part checks how they combine.
REAL_SWARM_OPTIONS = (
    "oompa_real_harness",
    "oompa_fake_api",
    "oompa_fake_api_scenario",
    "oompa_wire_record",
    "oompa_wire_replay",
    "oompa_wire_upstream",
)
# A swarm's CI summary (plugin/ci_output.py) is written when one of these is set.
CI_SUMMARY_ENV = ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_oompa.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "oompa_repo(template=None, tasks=(), files=None): seed the oompa_repo fixture's "
        "repository with a template folder's files (relative to the test file), task ids or "
        "task objects in tasks/pending/, and files; committed on main.",
    )
    config.addinivalue_line(
        "markers",
        "oompa_contract: a check of the harness contract suite (--oompa-contract); select "
        "with -m oompa_contract.",
    )
    # pytest_configure is a historic hook: a part registered here has its own
    # pytest_configure called at once, in this order.
    if config.getoption("oompa_record") or config.getoption("oompa_replay"):
        _use(config, "pytest_oompa.plugin.cassette_options")  # (a replay turns the fakes on)
    swarm_path = options.cli_path(config, "oompa_swarm") or options.ini_path(config, "oompa_swarm")
    if swarm_path is not None:
        if any(config.getoption(name) for name in REAL_SWARM_OPTIONS):
            _use(config, "pytest_oompa.plugin.real_swarm")
        _use(config, "pytest_oompa.plugin.xdist")
        if not hasattr(config, "workerinput") and not config.option.collectonly:
            _use(config, "pytest_oompa.plugin.live")  # (an xdist node's terminal is nobody's)
        from pytest_oompa.plugin import session

        session.start(config, swarm_path)
        if config.getoption("oompa_summary_md") or any(map(os.environ.get, CI_SUMMARY_ENV)):
            _use(config, "pytest_oompa.plugin.ci_output")
    if config.getoption("oompa_contract") or str(config.getini("oompa_contract") or "").strip():
        _use(config, "pytest_oompa.plugin.contract.plugin")  # (after the swarm: config.args)


def _use(config: pytest.Config, module: str) -> None:
    """Import a part of the plugin and register its hooks for this run."""
    config.pluginmanager.import_plugin(module)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.signals.restore()
        config.pluginmanager.unregister(state, "oompa-session")
        del config.stash[SESSION_KEY]
