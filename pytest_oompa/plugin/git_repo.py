"""A throwaway git repository for tests: ``GitRepo`` (real ``git``, on ``main``, helpers to
seed tasks, files and a swarm config) and the ``@pytest.mark.oompa_repo`` seeding the
``oompa_repo`` fixture applies."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

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


def seed_from_marker(repo: GitRepo, request: pytest.FixtureRequest) -> None:
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
