"""Fixtures for harness authors and for this project's own tests.

- ``oompa_repo``: a throwaway git repository with ``main``, helpers to seed tasks and files.
- ``oompa_swarm``: runs a swarm in process against such a repo (with the bundled fake
  harnesses unless told otherwise) and returns a ``SwarmRun``: the engine's typed result, the
  parsed artifacts and the fake harnesses' invocation log.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa.config import resolve
from pytest_oompa.harnesses import HarnessRegistry
from pytest_oompa.results import IterationResult, WorkerReport
from pytest_oompa.runfiles import IGNORED, read_any
from pytest_oompa.swarm import Swarm, SwarmOptions, SwarmResult

IDENTITY = ("-c", "user.name=oompa test", "-c", "user.email=test@oompa.invalid")


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
        return read_any(self.run_dir.parent, self.run_dir / relpath)

    def artifacts(self) -> dict[str, Any]:
        """Every file of the run folder, validated on read, by path relative to it."""
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

    def __call__(
        self,
        config: Mapping[str, Any],
        *,
        scenario: Mapping[str, Any] | None = None,
        prompts: Mapping[str, str] | None = None,
        fake: bool = True,
        **options: Any,
    ) -> SwarmRun:
        self._count += 1
        folder = self.tmp_path / f"swarm-{self._count}"
        folder.mkdir()
        data = dict(config)
        for name, text in (prompts or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        if fake:
            fake_section: dict[str, Any] = dict(data.get("fake_harnesses") or {})
            if scenario is not None:
                (folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
                fake_section["scenario"] = "scenario.json"
            data["fake_harnesses"] = fake_section
        config_path = folder / "oompa.json"
        config_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        swarm_config = resolve(data, config_path, self.registry.names())
        log = folder / "fake-calls.jsonl"
        env = {"OOMPA_FAKE_LOG": str(log), "OOMPA_FAKE_STATE": str(folder / "fake-state")}
        env.update(options.pop("env", {}))
        opts = SwarmOptions(
            runs_dir=options.pop("runs_dir", folder / "runs"),
            repo_root=self.repo.path,
            env=env,
            registry=self.registry,
            **options,
        )
        result = Swarm(swarm_config, opts).run()
        return SwarmRun(result, self.repo, config_path, log)


@pytest.fixture
def oompa_repo(tmp_path: Path) -> GitRepo:
    """A throwaway git repository on ``main`` with one commit."""
    return GitRepo(tmp_path / "project")


@pytest.fixture
def oompa_swarm(tmp_path: Path, oompa_repo: GitRepo) -> Callable[..., SwarmRun]:
    """``oompa_swarm(config_dict, scenario=..., prompts=...)`` runs a swarm on ``oompa_repo``
    with the bundled fake harnesses and returns a ``SwarmRun``."""
    return SwarmRunner(tmp_path, oompa_repo)
