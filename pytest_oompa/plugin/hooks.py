"""pytest hook implementations: options, collection of a swarm config, the run loop and the
terminal summary. The work is done elsewhere: config.py validates, swarm.py runs, items.py and
swarm_session.py turn the run into test reports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_oompa.plugin import hookspecs as hooks
from pytest_oompa.plugin.items import SESSION_KEY, OompaItem, SwarmFile

# The engine (pydantic, jsonschema, the swarm) is imported when a swarm is asked for, not
# when pytest loads the plugin: every pytest run in an environment with pytest-oompa
# installed would pay for it otherwise.

pytest_plugins = [
    "pytest_oompa.plugin.fixtures",
    "pytest_oompa.plugin.harness_fixtures",
    "pytest_oompa.plugin.contract.plugin",
    "pytest_oompa.plugin.cassette_options",
    "pytest_oompa.plugin.real_swarm",
    "pytest_oompa.plugin.xdist",
]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oompa", "oompa: run coding-agent swarms")
    group.addoption(
        "--oompa-swarm",
        metavar="PATH",
        default=None,
        help="Run the swarm described by this oompa.json; each worker iteration is a test "
        "item (default: the oompa_swarm ini value, else no swarm).",
    )
    group.addoption(
        "--oompa-repo",
        metavar="DIR",
        default=None,
        help="The project repository the swarm works on (default: oompa_repo ini value, "
        "else the config file's folder).",
    )
    group.addoption(
        "--oompa-runs-dir",
        metavar="DIR",
        default=None,
        help="Where run artifacts go. Precedence: this option, ini oompa_runs_dir, env "
        "OOMPA_RUNS_DIR, env RUNS_DIR; default: <rootdir>/runs.",
    )
    group.addoption(
        "--oompa-fake-harnesses",
        action="store_true",
        default=None,
        help="Put the bundled fake claude/codex/opencode/gemini first on the swarm's PATH "
        "(default: the config's fake_harnesses section).",
    )
    group.addoption(
        "--oompa-gate",
        metavar="THRESHOLDS",
        default=None,
        help="Gate thresholds on the swarm's outcome, over the config's gate: e.g. "
        "min_merges=3,max_errors=0,max_rejection_rate=0.2,all_tasks_complete,no_worker_error,"
        "max_wall_time=600 (default: the config's gate section, else none).",
    )
    group.addoption(
        "--oompa-outcomes",
        metavar="MAPPING",
        default=None,
        help="How iteration outcomes report, over the config's outcomes: e.g. "
        "rejected=xfail,working=fail; each one of pass, fail, skip, xfail (default: rejected "
        "and error fail, the others pass).",
    )
    group.addoption(
        "--oompa-no-probe",
        action="store_true",
        default=False,
        help="Skip the preflight probe of each model (default: probe).",
    )
    group.addoption(
        "--oompa-call-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="Kill a harness call (its whole process group) after this many seconds "
        "(default: the config's per-agent timeout, else none).",
    )
    parser.addini("oompa_swarm", "Swarm config file to run (like --oompa-swarm).", default="")
    parser.addini("oompa_repo", "Project repository (like --oompa-repo).", default="")
    parser.addini("oompa_runs_dir", "Run artifacts folder (like --oompa-runs-dir).", default="")


def _ini_path(config: pytest.Config, name: str) -> Path | None:
    value = str(config.getini(name) or "")
    if not value:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / value).resolve()


def _cli_path(config: pytest.Config, name: str) -> Path | None:
    value = config.getoption(name)
    return Path(value).resolve() if value else None


def runs_dir(config: pytest.Config) -> Path:
    from pytest_oompa.runs.reader import runs_dir_from_env

    found = _cli_path(config, "oompa_runs_dir") or _ini_path(config, "oompa_runs_dir")
    if found:
        return found
    from_env = runs_dir_from_env()
    return from_env.resolve() if from_env else config.rootpath / "runs"


def pytest_configure(config: pytest.Config) -> None:
    swarm_path = _cli_path(config, "oompa_swarm") or _ini_path(config, "oompa_swarm")
    if swarm_path is None:
        return
    from pytest_oompa.core.config import ConfigError, load_config, parse_outcomes
    from pytest_oompa.core.gate import merge as merge_gate
    from pytest_oompa.engine.swarm import SwarmOptions
    from pytest_oompa.plugin.registry import registry_for
    from pytest_oompa.plugin.session import SwarmSession

    registry = registry_for(config)
    try:
        swarm_config = load_config(swarm_path, registry.names())
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("oompa_fake_harnesses"):
        swarm_config = dataclasses.replace(swarm_config, use_fake_harnesses=True)
    outcomes = config.getoption("oompa_outcomes")
    try:
        gate = merge_gate(swarm_config.gate, config.getoption("oompa_gate"))
        if outcomes:
            mapping = {**swarm_config.outcomes, **parse_outcomes(outcomes)}
            swarm_config = dataclasses.replace(swarm_config, outcomes=mapping)
    except ValueError as exc:
        raise pytest.UsageError(f"oompa: {exc}") from None
    options = SwarmOptions(
        runs_dir=runs_dir(config),
        repo_root=_cli_path(config, "oompa_repo") or _ini_path(config, "oompa_repo"),
        probe=False if config.getoption("oompa_no_probe") else None,
        call_timeout=config.getoption("oompa_call_timeout"),
        gate=gate,
        registry=registry,
        adjust_command=lambda command, role: (
            config.hook.pytest_oompa_harness_command(command=command, role=role) or command
        ),
    )
    config.hook.pytest_oompa_swarm_options(
        config=config, swarm_config=swarm_config, options=options
    )
    session = SwarmSession(config, swarm_config, options)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "oompa-session")
    # The swarm is the test run: with no paths on the command line, collect only the swarm;
    # with paths, collect the swarm as well.
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args = [str(swarm_path)]
    elif str(swarm_path) not in config.args:
        config.args.append(str(swarm_path))


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.signals.restore()
        config.pluginmanager.unregister(session, "oompa-session")
        del config.stash[SESSION_KEY]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = parent.config.stash.get(SESSION_KEY, None)
    if session is not None and file_path.resolve() == session.swarm_config.path:
        return SwarmFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None or state.distributed or session.config.option.collectonly:
        return None  # (distributed: pytest-xdist's loop runs the items, see plugin/xdist/)
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return None  # pytest's own loop reports the collection errors
    others = [i for i in session.items if not isinstance(i, OompaItem)]
    for i, item in enumerate(others):
        nextitem = others[i + 1] if i + 1 < len(others) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
    state.runtestloop(session)
    if session.shouldfail:
        raise session.Failed(session.shouldfail)
    if session.shouldstop:
        raise session.Interrupted(session.shouldstop)
    return True
