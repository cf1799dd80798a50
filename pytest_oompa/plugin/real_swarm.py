"""Swarms on the real agent CLIs: ``--oompa-swarm`` with ``--oompa-real-harness``, and the model
API they talk to.

``--oompa-real-harness=NAME[,NAME]`` (or ``all``) runs those harnesses of the swarm as the real
CLIs found on this machine (``real_clis.find``; one that is missing is a usage error naming
why). On its own, each CLI keeps the user's own setup and talks to its real provider. With a
model API option, every selected CLI gets a private HOME and the recipe that points it at the
loopback fake model API (``pytest_oompa.offline.fake_api``), which then:

- ``--oompa-fake-api`` with ``--oompa-fake-api-scenario=FILE``: answers from a scenario;
- ``--oompa-wire-replay=FILE``: answers from a wire cassette, strictly (a request with no
  recording is answered with an error and fails the session);
- ``--oompa-wire-record=FILE``: forwards each request to the real providers (the keys come
  from this process's ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ``GEMINI_API_KEY``; the CLIs
  only ever see a placeholder) or to ``--oompa-wire-upstream``, and records the exchanges.

Everything goes through ``pytest_oompa_swarm_options``; the server lives as long as the session.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oompa.core import paths
from pytest_oompa.harnesses import real_clis
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import HarnessCommand
from pytest_oompa.plugin.real_harness import REAL_OPTION, find_real, selected_real_harnesses

if TYPE_CHECKING:  # (loaded when a swarm runs, not with the plugin)
    from pytest_oompa.core.config import SwarmConfig
    from pytest_oompa.engine.swarm import SwarmOptions
    from pytest_oompa.offline.fake_api import FakeModelAPI

PLUGIN_NAME = "oompa-real-swarm"


def swarm_harnesses(swarm_config: SwarmConfig) -> list[str]:
    return list(dict.fromkeys(agent.harness for agent in swarm_config.agents()))


@dataclass
class RealSwarm:
    """This session's real CLIs and model API; a plugin for the summary and the exit status."""

    clis: list[real_clis.RealCLI]
    rootdir: Path
    api: FakeModelAPI | None = None
    home: Path | None = None
    mode: str = "real providers"
    cassette: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.api is not None:
            self.api.stop()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def unmatched(self) -> list[Any]:
        return self.api.unmatched if self.api is not None else []

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # A request the model API could not answer (no recording, no scripted turn) fails
        # the run even when the CLI shrugged it off (a title call).
        if self.unmatched() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        names = ", ".join(f"{c.name} {c.version}" for c in self.clis)
        write(f"real CLIs: {names}; model API: {self.mode}")
        api = self.api
        if api is None:
            return
        requests = api.requests
        write(f"model API: {len(requests)} request(s) at {api.url}")
        if api.recorder is not None:
            count, where = len(api.recorder.exchanges), self._relative(api.recorder.path)
            write(f"wire cassette: {count} exchange(s) recorded in {where}")
            for problem in api.recorder.problems:
                write(f"wire cassette: {problem}", red=True)
        if api.replayer is not None:
            replayer = api.replayer
            source = self._relative(self.cassette) if self.cassette else "the cassette"
            write(
                f"wire replay: {replayer.replayed()} of {replayer.total} recorded exchange(s) "
                f"replayed from {source}"
            )
            left = replayer.unreplayed()
            if left:
                seqs = ", ".join(str(ex["seq"]) for ex in left[:10])
                write(f"wire replay: never asked for exchange(s) {seqs}", yellow=True)
        for warning in self.warnings:
            write(f"wire replay: {warning}", yellow=True)
        for record in self.unmatched()[:5]:
            first = record.note.splitlines()[0] if record.note else ""
            write(f"model API: unmatched {record.method} {record.path}: {first}", red=True)
        more = len(self.unmatched()) - 5
        if more > 0:
            write(f"model API: … and {more} more unmatched request(s)", red=True)

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootdir))
        except ValueError:
            return str(path)


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"oompa: {message}")


def pytest_oompa_swarm_options(
    config: pytest.Config, swarm_config: SwarmConfig, options: SwarmOptions
) -> None:
    from pytest_oompa.offline import wire_cassette

    selected = selected_real_harnesses(config)
    fake = bool(config.getoption("oompa_fake_api"))
    scenario_file = config.getoption("oompa_fake_api_scenario")
    record = config.getoption("oompa_wire_record")
    replay = config.getoption("oompa_wire_replay")
    upstream = config.getoption("oompa_wire_upstream")
    wanted = [
        name
        for name, given in (
            ("--oompa-fake-api-scenario", scenario_file),
            ("--oompa-wire-record", record),
            ("--oompa-wire-replay", replay),
        )
        if given
    ]
    if len(wanted) > 1:
        raise _usage(f"{' and '.join(wanted)} exclude each other")
    if upstream and not record:
        raise _usage("--oompa-wire-upstream only goes with --oompa-wire-record")
    try:
        upstreams = (
            wire_cassette.parse_upstream(upstream) if upstream else dict(wire_cassette.PROVIDERS)
        )
    except ValueError as exc:
        raise _usage(f"--oompa-wire-upstream: {exc}") from None
    if scenario_file and not fake:
        raise _usage("--oompa-fake-api-scenario needs --oompa-fake-api")
    if not selected:
        if wanted:
            raise _usage(f"{wanted[0]} runs the swarm's real CLIs: add {REAL_OPTION}=NAME|all")
        return
    registry = options.registry or HarnessRegistry()
    used = swarm_harnesses(swarm_config)
    names = [h for h in used if h in selected]
    if not names:
        raise _usage(
            f"{REAL_OPTION}={','.join(selected)}: the swarm uses none of them "
            f"(it uses {', '.join(used)})"
        )
    clis = []
    for name in names:
        binary = registry.get(name).binary if name in registry.names() else name
        cli = find_real(config, binary)
        if not cli.available:
            raise _usage(cli.skip_reason or f"the real {name!r} CLI is not usable")
        clis.append(dataclasses.replace(cli, name=name))
    run = RealSwarm(clis, config.rootpath)
    config.add_cleanup(run.close)  # (first: a failure below still stops the server)
    # Real CLIs first; the bundled fakes stay next for the harnesses not selected.
    rest = os.environ.get("PATH", "")
    if swarm_config.use_fake_harnesses:
        rest = f"{paths.fake_bin_dir()}{os.pathsep}{rest}"
    env: dict[str, str] = {}
    if fake or record or replay:
        run.api = _start_api(config, run, scenario_file, record, replay, upstreams)
        run.home = Path(tempfile.mkdtemp(prefix="oompa-real-home-"))
        env = real_clis.environment(run.api.url, run.home, [c.name for c in clis])
        _chain_adjust(options, real_clis.set_pwd)
    env["PATH"] = real_clis.path_with(dict.fromkeys(c.bin_dir for c in clis), rest)
    options.env = {**(options.env or {}), **env}
    config.pluginmanager.register(run, PLUGIN_NAME)
    config.add_cleanup(lambda: config.pluginmanager.unregister(run, PLUGIN_NAME))


def _start_api(
    config: pytest.Config,
    run: RealSwarm,
    scenario_file: str | None,
    record: str | None,
    replay: str | None,
    upstreams: dict[str, str],
) -> FakeModelAPI:
    from pytest_oompa.offline import wire_cassette
    from pytest_oompa.offline.fake_api import ApiScenario, ApiScenarioError, FakeModelAPI

    clients = {c.name: c.version or "" for c in run.clis}
    distributed = hasattr(config, "workerinput") or config.getoption("numprocesses", None)
    if (record or replay) and distributed:
        # Each xdist process would serve its own cassette: a recording split in several
        # files, a replay whose unmatched requests on a node do not fail the session.
        option = "--oompa-wire-record" if record else "--oompa-wire-replay"
        raise _usage(f"{option} runs in one process: run it without -n")
    if record:
        try:
            protocols = {
                real_clis.RECIPES[c.name].api for c in run.clis if c.name in real_clis.RECIPES
            }
            unmapped = sorted(protocols - set(upstreams))
            if unmapped:
                raise wire_cassette.WireCassetteError(
                    f"--oompa-wire-upstream gives no URL for {', '.join(unmapped)}, which the "
                    "selected CLIs speak"
                )
            # A real provider needs its key (never the CLI's placeholder); any other
            # upstream (a gateway) gets the key when the environment has one.
            real = [p for p in sorted(protocols) if upstreams[p] == wire_cassette.PROVIDERS[p]]
            wire_cassette.upstream_keys(real, os.environ)  # a usage error naming what is missing
            keys = wire_cassette.available_keys(protocols, os.environ)
            recorder = wire_cassette.WireRecorder(
                Path(record).resolve(), upstreams=upstreams, keys=keys, clients=clients
            )
        except (wire_cassette.WireCassetteError, OSError) as exc:
            raise _usage(f"--oompa-wire-record: {exc}") from None
        run.mode = f"recording to {record} via {', '.join(sorted(set(upstreams.values())))}"
        return FakeModelAPI(recorder=recorder).start()
    if replay:
        path = Path(replay).resolve()
        try:
            replayer = wire_cassette.WireReplayer(path, clients=clients)
        except wire_cassette.WireCassetteError as exc:
            raise _usage(f"--oompa-wire-replay: {exc}") from None
        run.mode, run.cassette, run.warnings = f"replaying {replay}", path, replayer.warnings
        return FakeModelAPI(replayer=replayer).start()
    if not scenario_file:
        raise _usage(
            "--oompa-fake-api with --oompa-swarm needs what the model answers: "
            "--oompa-fake-api-scenario=FILE (or --oompa-wire-replay=FILE)"
        )
    try:
        scenario = ApiScenario.load(Path(scenario_file))
    except (OSError, ApiScenarioError) as exc:
        raise _usage(f"--oompa-fake-api-scenario: {scenario_file}: {exc}") from None
    run.mode = f"fake, scenario {scenario_file}"
    return FakeModelAPI(scenario).start()


def _chain_adjust(options: SwarmOptions, first: Any) -> None:
    then = options.adjust_command

    def adjust(command: HarnessCommand, role: str) -> HarnessCommand:
        command = first(command, role)
        return then(command, role) if then is not None else command

    options.adjust_command = adjust
