"""``--oompa-record=DIR`` and ``--oompa-replay=PATH``: the pytest side of cassettes.

Recording hands the swarm a ``CassetteRecorder`` as its call observer; replaying switches the
bundled fake harnesses on and points them at the cassette (``OOMPA_FAKE_CASSETTE``) with a
state folder of their own. Both go through ``pytest_oompa_swarm_options``; the engine side is
``pytest_oompa.offline.cassette``. Format and rules: docs/cassettes.md.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oompa.core import paths
from pytest_oompa.engine.git import Repo
from pytest_oompa.offline import cassette

if TYPE_CHECKING:  # (the engine loads when a swarm runs, not with the plugin)
    from pytest_oompa.core.config import AgentSpec, SwarmConfig
    from pytest_oompa.core.results import CallRecord
    from pytest_oompa.engine.calls import CallObserver
    from pytest_oompa.engine.swarm import SwarmOptions, SwarmResult
    from pytest_oompa.harnesses.spec import HarnessCommand

REPLAY_KEY = pytest.StashKey[Path]()
PLUGIN_NAME = "oompa-cassette"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before the oompa plugin reads its options: a replay runs on the fake harnesses."""
    record, replay = config.getoption("oompa_record"), config.getoption("oompa_replay")
    if record and replay:
        raise pytest.UsageError("oompa: --oompa-record and --oompa-replay exclude each other")
    if replay:
        try:
            path = cassette.resolve_cassette(Path(replay).resolve())
            cassette.validate(cassette.load(path), where=str(path))
        except cassette.CassetteError as exc:
            raise pytest.UsageError(f"oompa: --oompa-replay: {exc}") from None
        config.stash[REPLAY_KEY] = path
        config.option.oompa_fake_harnesses = True


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(run, CassetteRun):
        config.pluginmanager.unregister(run, PLUGIN_NAME)
        if run.state is not None:
            shutil.rmtree(run.state, ignore_errors=True)


def pytest_oompa_swarm_options(
    config: pytest.Config, swarm_config: SwarmConfig, options: SwarmOptions
) -> None:
    root = Path(options.repo_root or swarm_config.path.parent).resolve()
    record = config.getoption("oompa_record")
    replay = config.stash.get(REPLAY_KEY, None)
    if not record and replay is None:
        return
    # Under pytest-xdist a node runs some of the workers of the controller's run: its
    # recorder learns the run's swarm id from the prompts and merges into the same cassette,
    # and its fakes share the controller's replay state (handed over as OOMPA_FAKE_STATE).
    node = hasattr(config, "workerinput")
    run = CassetteRun(root=root, rootdir=config.rootpath)
    if record:
        directory = Path(record).resolve()
        if not node:
            from pytest_oompa.engine.swarm import new_swarm_id

            options.swarm_id = options.swarm_id or new_swarm_id()
        _exclude(root, directory)
        run.recorder = cassette.CassetteRecorder(
            directory,
            swarm_id=None if node else options.swarm_id,
            repo_root=root,
            registry=options.registry,
            extra_env={**swarm_config.env.set, **(options.env or {})},
            env_pass=swarm_config.env.pass_,
        )
        _observe(options, run.recorder)
    if replay is not None:
        run.replay = replay
        options.env = {**(options.env or {}), cassette.ENV_CASSETTE: str(replay)}
        if not node:  # counters, session ids and order of this replay only
            run.state = paths.scratch_dir("oompa-replay")
            options.env["OOMPA_FAKE_STATE"] = str(run.state)
        state = options.env.get("OOMPA_FAKE_STATE") or _node_state(config)
        if state:
            _observe(options, cassette.ReplayOrder(cassette.load(replay), state))
    config.pluginmanager.register(run, PLUGIN_NAME)


def _observe(options: SwarmOptions, observer: CallObserver) -> None:
    current = options.call_observer
    options.call_observer = observer if current is None else ObserverPair(current, observer)


def _node_state(config: pytest.Config) -> str | None:
    """On a pytest-xdist node: the controller's replay state (its OOMPA_FAKE_STATE)."""
    data = getattr(config, "workerinput", {}).get("oompa") or {}
    state = (data.get("env") or {}).get("OOMPA_FAKE_STATE")
    return str(state) if state else None


def _exclude(root: Path, directory: Path) -> None:
    """A cassette folder inside the project must not make its tree dirty (preflight)."""
    if directory.is_relative_to(root) and directory != root:
        repo = Repo(root)
        if repo.is_repo():
            repo.exclude(f"/{directory.relative_to(root).as_posix()}/")


class ObserverPair:
    """Two call observers where the options hold one: both see every call."""

    def __init__(self, first: CallObserver, second: CallObserver) -> None:
        self.first, self.second = first, second

    def before(
        self,
        *,
        name: str,
        role: str,
        agent: AgentSpec,
        command: HarnessCommand,
        prompt: str,
        cwd: Path,
    ) -> object:
        kw: dict[str, Any] = dict(
            name=name, role=role, agent=agent, command=command, prompt=prompt, cwd=cwd
        )
        return (self.first.before(**kw), self.second.before(**kw))

    def after(self, token: object, *, record: CallRecord, stdout: str, stderr: str) -> None:
        first, second = token if isinstance(token, tuple) else (None, None)
        self.first.after(first, record=record, stdout=stdout, stderr=stderr)
        self.second.after(second, record=record, stdout=stdout, stderr=stderr)


@dataclass
class CassetteRun:
    """This session's recording or replay; registered as a plugin for the two hooks below."""

    root: Path
    rootdir: Path
    recorder: cassette.CassetteRecorder | None = None
    replay: Path | None = None
    state: Path | None = None
    result: SwarmResult | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The workers and iterations selected (``-k``): a replayed call never waits for the
        replies of the others (see cassette.ReplayOrder)."""
        if self.state is not None:
            limits: dict[str, int] = {}
            for item in session.items:
                worker, n = getattr(item, "worker_id", None), getattr(item, "iteration", None)
                if isinstance(worker, str) and isinstance(n, int):
                    limits[worker] = max(limits.get(worker, 0), n)
            cassette.expect(self.state, limits or None)  # none seen (xdist controller): all

    def pytest_oompa_swarm_finished(self, result: SwarmResult) -> None:
        self.result = result

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        if self.recorder is not None:
            where = self.recorder.path
            calls = len(self.recorder.calls)
            with contextlib.suppress(cassette.CassetteError):
                calls = len(cassette.load(where)["calls"]) if where else calls  # all processes'
            shown = self._relative(where) if where else "(nothing: no call was tagged)"
            write(f"cassette: {calls} call(s) recorded in {shown}")
            for problem in self.recorder.problems:
                write(f"cassette: {problem}", yellow=True)
        if self.replay is not None and self.state is not None:
            try:
                data = cassette.load(self.replay)
            except cassette.CassetteError as exc:
                write(f"replay: {exc}", red=True)
                return
            left = cassette.unreplayed(data, self.state)
            done = len(data["calls"]) - len(left)
            source = self._relative(self.replay)
            write(f"replay: {done} of {len(data['calls'])} recorded call(s) replayed from {source}")
            if left:
                more = f", … ({len(left) - 10} more)" if len(left) > 10 else ""
                write(f"replay: never asked for: {', '.join(left[:10])}{more}", yellow=True)
            start = self._start_tree()
            recorded = data.get("main-tree-before")
            if start and recorded and start != recorded:
                write(
                    "replay: main did not start from the recorded content (tree "
                    f"{start[:10]}, recorded {recorded[:10]}): differences are expected",
                    yellow=True,
                )

    def _start_tree(self) -> str | None:
        if self.result is None or not self.result.main_before:
            return None
        proc = subprocess.run(
            ["git", "rev-parse", "-q", "--verify", f"{self.result.main_before}^{{tree}}"],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout.strip() or None

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootdir))
        except ValueError:
            return str(path)
