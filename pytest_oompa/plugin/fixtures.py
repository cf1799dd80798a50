"""Fixtures for harness authors and for this project's own tests.

- ``oompa_repo``: a throwaway git repository with ``main``, helpers to seed tasks and files;
  ``@pytest.mark.oompa_repo(template=..., tasks=[...], files={...})`` seeds it, and
  ``oompa_repo_factory`` makes more of them.
- ``oompa_swarm``: runs a swarm in process against such a repo (with the bundled fake
  harnesses unless told otherwise) and returns a ``SwarmRun``: the engine's typed result, the
  parsed artifacts and the fake harnesses' invocation log. Harnesses registered through
  ``pytest_oompa_register_harnesses`` and ``pytest_oompa_harness_command`` apply; with the
  ``fake_harness`` fixture in the same test, the swarm shares its scenario, state and log.

The ``fake_harness`` and ``real_harness`` fixtures are in ``harness_fixtures.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import HarnessCommand
from pytest_oompa.plugin.registry import registry_for

# The engine is imported where a fixture uses it: pytest loads this module in every run.
if TYPE_CHECKING:
    from pytest_oompa.core.results import IterationResult, WorkerReport
    from pytest_oompa.engine.swarm import SwarmResult
    from pytest_oompa.offline.fake_api import FakeModelAPI

IDENTITY = ("-c", "user.name=oompa test", "-c", "user.email=test@oompa.invalid")
# Set by the fake_harness fixture on its test item: oompa_swarm then shares its fakes' setup.
FAKE_HARNESS_KEY = pytest.StashKey[Any]()


class GitRepo:
    """A real git repository on disk, on ``main``, with one initial commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.write("README.md", "# throwaway project\n")
        self.commit("initial commit")

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *IDENTITY, *args], cwd=self.path, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def write(self, relpath: str, text: str) -> Path:
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def add_task(self, task_id: str, **fields: Any) -> Path:
        task = {
            "id": task_id,
            "summary": fields.pop("summary", f"task {task_id}"),
            "description": fields.pop("description", f"do {task_id}"),
            "difficulty": fields.pop("difficulty", "easy"),
            "files": fields.pop("files", []),
            "acceptance": fields.pop("acceptance", []),
            **fields,
        }
        return self.write(f"tasks/pending/{task_id}.json", json.dumps(task, indent=2) + "\n")

    def add_swarm_config(
        self,
        config: Mapping[str, Any],
        scenario: Mapping[str, Any] | None = None,
        tasks: Iterable[str] = (),
    ) -> Path:
        """Commit ``oompa.json`` at the root, with the bundled fake harnesses on (and
        ``scenario.json`` when a scenario is given) and the given tasks seeded, so that
        ``pytest --oompa-swarm=oompa.json`` runs in this repo."""
        fake = {"scenario": "scenario.json"} if scenario else {}
        path = self.write("oompa.json", json.dumps({**config, "fake_harnesses": fake}, indent=2))
        if scenario:
            self.write("scenario.json", json.dumps(scenario, indent=2))
        for task_id in tasks:
            self.add_task(task_id)
        self.commit("swarm config")
        return path

    def seed(
        self,
        template: str | Path | None = None,
        tasks: Iterable[str | Mapping[str, Any]] = (),
        files: Mapping[str, str] | None = None,
        message: str = "seed the project",
    ) -> str:
        """Copy a template folder's files in (not its ``.git``), add files and pending tasks
        (ids, or task objects with an ``id``), and commit them on ``main``."""
        if template is not None:
            source = Path(template)
            if not source.is_dir():
                raise FileNotFoundError(f"oompa_repo template {str(source)!r} is not a folder")
            shutil.copytree(
                source, self.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git")
            )
        for relpath, text in (files or {}).items():
            self.write(relpath, text)
        for task in tasks:
            if isinstance(task, str):
                self.add_task(task)
            else:
                fields = dict(task)
                self.add_task(str(fields.pop("id")), **fields)
        return self.commit(message)

    def commit(self, message: str = "update") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "main") -> str:
        return self.git("rev-parse", ref).strip()

    def files(self, ref: str = "main") -> list[str]:
        return self.git("ls-tree", "-r", "--name-only", ref).split()

    def status(self) -> list[str]:
        return self.git("status", "--porcelain", "--untracked-files=all").splitlines()

    def branches(self) -> list[str]:
        return self.git("branch", "--format=%(refname:short)").split()

    def worktrees(self) -> list[str]:
        out = self.git("worktree", "list", "--porcelain")
        return [line[9:] for line in out.splitlines() if line.startswith("worktree ")]

    def tasks(self, state: str) -> list[str]:
        folder = self.path / "tasks" / state
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@dataclass
class SwarmRun:
    """What a swarm left behind, parsed: a test reads ``run.workers["w0"].metrics.merges``."""

    result: SwarmResult
    repo: GitRepo
    config_path: Path
    fake_log_path: Path

    @property
    def workers(self) -> dict[str, WorkerReport]:
        return self.result.workers

    @property
    def iterations(self) -> dict[tuple[str, int], IterationResult]:
        return {r.key: r for r in self.result.iterations}

    def outcomes(self, worker_id: str) -> list[str]:
        return [
            r.outcome.value
            for r in sorted(self.result.iterations, key=lambda r: r.iteration)
            if r.worker_id == worker_id
        ]

    @property
    def run_dir(self) -> Path:
        return self.result.run_dir

    def artifact(self, relpath: str) -> Any:
        """One file of the run (``summary.json``, ``iterations/w0-i1.json``, …), validated."""
        from pytest_oompa.runs.files import read_any

        return read_any(self.run_dir.parent, self.run_dir / relpath)

    def artifacts(self) -> dict[str, Any]:
        """Every file of the run folder, validated on read, by path relative to it."""
        from pytest_oompa.runs.files import IGNORED, read_any

        return {
            p.relative_to(self.run_dir).as_posix(): read_any(self.run_dir.parent, p)
            for p in sorted(self.run_dir.rglob("*"))
            if p.is_file() and p.name not in IGNORED
        }

    @property
    def fake_invocations(self) -> list[dict[str, Any]]:
        """Every line of the fake harnesses' log: agent calls, ``--version`` checks, refusals."""
        if not self.fake_log_path.exists():
            return []
        lines = self.fake_log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    @property
    def fake_calls(self) -> list[dict[str, Any]]:
        """The agent calls (worker, fix, reviewer, planner, probe), in the order they ended."""
        return [c for c in self.fake_invocations if c.get("role")]


@dataclass
class SwarmRunner:
    tmp_path: Path
    repo: GitRepo
    registry: HarnessRegistry = field(default_factory=HarnessRegistry)
    _count: int = 0
    adjust_command: Callable[[HarnessCommand, str], HarnessCommand] | None = None
    node: Any = None  # the test item, whose stash may hold a fake_harness (FAKE_HARNESS_KEY)

    def __call__(
        self,
        config: Mapping[str, Any],
        *,
        scenario: Mapping[str, Any] | None = None,
        prompts: Mapping[str, str] | None = None,
        fake: bool = True,
        **options: Any,
    ) -> SwarmRun:
        from pytest_oompa.core.config import resolve
        from pytest_oompa.engine.swarm import Swarm, SwarmOptions

        self._count += 1
        folder = self.tmp_path / f"swarm-{self._count}"
        folder.mkdir()
        data = dict(config)
        for name, text in (prompts or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        # A fake_harness in the same test: its scenario, state folder and log are the swarm's.
        shared = self.node.stash.get(FAKE_HARNESS_KEY, None) if fake and self.node else None
        if fake:
            fake_section: dict[str, Any] = dict(data.get("fake_harnesses") or {})
            if shared is not None:
                if scenario is not None:
                    shared.use_scenario(scenario)
                fake_section["scenario"] = str(shared.scenario_path)
            elif scenario is not None:
                (folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
                fake_section["scenario"] = "scenario.json"
            data["fake_harnesses"] = fake_section
        config_path = folder / "oompa.json"
        config_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        swarm_config = resolve(data, config_path, self.registry.names())
        if shared is not None:
            log, state = Path(shared.log_path), Path(shared.state_dir)
        else:
            log, state = folder / "fake-calls.jsonl", folder / "fake-state"
        env = {"OOMPA_FAKE_LOG": str(log), "OOMPA_FAKE_STATE": str(state)}
        env.update(options.pop("env", {}))
        opts = SwarmOptions(
            runs_dir=options.pop("runs_dir", folder / "runs"),
            repo_root=self.repo.path,
            env=env,
            registry=self.registry,
            adjust_command=options.pop("adjust_command", self.adjust_command),
            **options,
        )
        result = Swarm(swarm_config, opts).run()
        return SwarmRun(result, self.repo, config_path, log)


def _seed_from_marker(repo: GitRepo, request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("oompa_repo")
    if marker is None:
        return
    kwargs = dict(marker.kwargs)
    if marker.args:
        kwargs.setdefault("template", marker.args[0])
    template = kwargs.get("template")
    if template is not None and not Path(template).is_absolute():
        kwargs["template"] = request.path.parent / template  # relative to the test file
    repo.seed(**kwargs)


@pytest.fixture
def fake_model_api(tmp_path: Path) -> Iterator[FakeModelAPI]:
    """The loopback fake model API (pytest_oompa.offline.fake_api), started for the test: script it
    with ``fake_model_api.script(match, replies)``, point real CLIs at it with
    ``fake_model_api.environment(home)``, read ``fake_model_api.requests`` afterwards."""
    from pytest_oompa.offline.fake_api import FakeModelAPI

    with FakeModelAPI(log_path=tmp_path / "model-api.jsonl") as api:
        yield api


@pytest.fixture
def oompa_repo(request: pytest.FixtureRequest, tmp_path: Path) -> GitRepo:
    """A throwaway git repository on ``main`` with one commit; seeded by
    ``@pytest.mark.oompa_repo(template=..., tasks=[...], files={...})``."""
    repo = GitRepo(tmp_path / "project")
    _seed_from_marker(repo, request)
    return repo


@pytest.fixture
def oompa_repo_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., GitRepo]:
    """``oompa_repo_factory(template=None, tasks=(), files=None, name=None)``: another
    throwaway repository on ``main``, seeded (a relative template is relative to the test
    file)."""
    count = 0

    def make(
        template: str | Path | None = None,
        tasks: Iterable[str | Mapping[str, Any]] = (),
        files: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> GitRepo:
        nonlocal count
        count += 1
        repo = GitRepo(tmp_path / (name or f"repo-{count}"))
        if template is not None and not Path(template).is_absolute():
            template = request.path.parent / template
        if template is not None or tasks or files:
            repo.seed(template, tasks, files)
        return repo

    return make


@pytest.fixture
def oompa_swarm(
    request: pytest.FixtureRequest, tmp_path: Path, oompa_repo: GitRepo
) -> Callable[..., SwarmRun]:
    """``oompa_swarm(config_dict, scenario=..., prompts=...)`` runs a swarm on ``oompa_repo``
    with the bundled fake harnesses and returns a ``SwarmRun``."""
    hook = request.config.hook
    registry = registry_for(request.config)

    def adjust(command: HarnessCommand, role: str) -> HarnessCommand:
        adjusted: HarnessCommand | None = hook.pytest_oompa_harness_command(
            command=command, role=role
        )
        return adjusted or command

    return SwarmRunner(tmp_path, oompa_repo, registry, adjust_command=adjust, node=request.node)
