"""Swarms run in process for a test (the ``oompa_swarm`` fixture): ``SwarmRunner`` runs one
on a ``GitRepo`` with the bundled fake harnesses (sharing a ``fake_harness`` of the same test
when there is one) and returns a ``SwarmRun``: the engine's typed result, the parsed artifacts
and the fakes' invocation log."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_oompa.core.config import resolve
from pytest_oompa.core.results import IterationResult, WorkerReport
from pytest_oompa.engine.swarm import Swarm, SwarmOptions, SwarmResult
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import HarnessCommand
from pytest_oompa.plugin.git_repo import GitRepo
from pytest_oompa.plugin.stash import FAKE_HARNESS_KEY
from pytest_oompa.runs.files import IGNORED, read_any


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
