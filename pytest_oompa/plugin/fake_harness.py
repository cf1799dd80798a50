"""The bundled fake CLIs as a test sees them: ``FakeHarness`` (the fakes first on ``PATH``, with
their own state folder, invocation log and scenario), ``FakeCall`` (one agent call made through
the registry) and the invocation log read back as typed ``Invocation`` records.

The ``fake_harness`` fixture (``fixtures.py``) hands a test one ``FakeHarness``; scenarios are
built with ``pytest_oompa.offline.fake_scenario``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa.core.paths import FAKE_NAMES, fake_bin_dir
from pytest_oompa.engine import prompts
from pytest_oompa.engine.markers import Signals, parse_signals, parse_verdict
from pytest_oompa.harnesses.output import ParsedOutput
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import HarnessCommand, SessionMode, build_command
from pytest_oompa.offline.fake_scenario import Scenario, as_dict

ENV_STATE = "OOMPA_FAKE_STATE"
ENV_SCENARIO = "OOMPA_FAKE_SCENARIO"
ENV_LOG = "OOMPA_FAKE_LOG"
ROLE_SESSIONS = {
    "worker": "new",
    "fix": "new",
    "sync": "new",
    "reviewer": "none",
    "planner": "none",
}


def prompt_for(role: str, worker: str = "w0", swarm: str = "test", text: str = "") -> str:
    """A prompt built the way the engine builds it for ``role``, so the fakes (and a model
    API) see the same markers: worker/fix/sync/reviewer/planner/probe."""
    if role == "probe":
        return prompts.PROBE_PROMPT
    if role == "reviewer":
        return prompts.review(swarm, worker, text or "+ a change", "", [])
    if role == "fix":
        return prompts.fix(swarm, worker, [text or "- fix it"])
    if role == "planner":
        return prompts.planner(swarm, text, "(no tasks)", 1)
    if role == "sync":
        conflict = text or "CONFLICT (content): Merge conflict in README.md"
        return prompts.sync(swarm, worker, conflict, "", "", "")
    if role == "worker":
        return prompts.fresh(swarm, worker, "(no tasks)", text)
    raise ValueError(f"unknown role {role!r} (worker, fix, sync, reviewer, planner, probe)")


# ---------------------------------------------------------------------------------------------
# The invocation log, typed
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One line of the fakes' invocation log (``fake_harnesses/README.md``)."""

    harness: str
    argv: tuple[str, ...]  # argv[0] is the CLI's name
    cwd: Path
    stdin: str | None
    env: Mapping[str, str]  # OOMPA_*, IS_SANDBOX, *_BASE_URL; secrets redacted
    exit_code: int | None  # None: it hung; negative: killed by that signal
    role: str | None  # worker | fix | reviewer | planner | probe; None: refused, --version
    worker: str | None
    session_id: str | None
    resumed: bool
    call: int | None  # per (worker, role), from 1
    swarm: str | None = None
    model: str | None = None
    reply: str | None = None
    refused: str | None = None  # the first line of a refusal
    step: str | None = None  # the scenario entry that answered, or "builtin"
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Invocation:
        return cls(
            harness=str(rec.get("harness", "")),
            argv=tuple(rec.get("argv") or ()),
            cwd=Path(rec.get("cwd") or "."),
            stdin=rec.get("stdin"),
            env=dict(rec.get("env") or {}),
            exit_code=rec.get("exit_code"),
            role=rec.get("role"),
            worker=rec.get("worker"),
            session_id=rec.get("session_id"),
            resumed=bool(rec.get("resumed")),
            call=rec.get("call"),
            swarm=rec.get("swarm"),
            model=rec.get("model"),
            reply=rec.get("reply"),
            refused=rec.get("refused"),
            step=rec.get("step"),
            record=dict(rec),
        )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def __getitem__(self, key: str) -> Any:
        """Any field of the raw log line (``inv["duration_ms"]``, ``inv["written"]``)."""
        return self.record[key]


def read_invocations(path: str | os.PathLike[str]) -> list[Invocation]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [Invocation.from_record(json.loads(line)) for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------
# fake_harness
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCall:
    """One agent call made through the registry: what ran, what it printed, what it meant."""

    command: HarnessCommand
    proc: subprocess.CompletedProcess[str]
    parsed: ParsedOutput
    invocation: Invocation | None  # the fake's log line (None for a binary that is no fake)

    @property
    def exit_code(self) -> int:
        return self.proc.returncode

    @property
    def text(self) -> str:
        """The reply text the registry's parser extracted."""
        return self.parsed.text

    @property
    def session_id(self) -> str | None:
        """The session: chosen before the call, or read from its output."""
        return self.command.session_id or self.parsed.session_id

    @property
    def signals(self) -> Signals:
        return parse_signals(self.parsed.text)

    @property
    def verdict(self) -> str:
        return parse_verdict(self.parsed.text)


class FakeHarness:
    """The bundled fakes, set up for one test. Use ``scenario`` (a ``Scenario`` builder) to
    script them; the scenario file is rewritten on every change."""

    def __init__(
        self,
        root: Path,
        monkeypatch: pytest.MonkeyPatch,
        registry: HarnessRegistry | None = None,
    ) -> None:
        self.root = root
        self.bin_dir = fake_bin_dir()
        self.state_dir = root / "state"
        self.log_path = root / "invocations.jsonl"
        self.scenario_path = root / "scenario.json"
        self.workdir = root / "work"  # the default cwd of run() and call()
        self.registry = registry or HarnessRegistry()
        for folder in (self.state_dir, self.workdir):
            folder.mkdir(parents=True, exist_ok=True)
        self._scenario = Scenario()
        self._bind(self._scenario)
        path = os.environ.get("PATH", "")
        rest = [p for p in path.split(os.pathsep) if p and p != str(self.bin_dir)]
        monkeypatch.setenv("PATH", os.pathsep.join([str(self.bin_dir), *rest]))
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)

    # -- the scenario ----------------------------------------------------------------------
    def _bind(self, scenario: Scenario) -> None:
        scenario.on_change(self._write_scenario)
        self._write_scenario(scenario)

    def _write_scenario(self, scenario: Scenario) -> None:
        scenario.write(self.scenario_path)

    @property
    def scenario(self) -> Scenario:
        """The builder the fakes follow (``fake_harness.scenario.worker("w0").on_call(1)…``)."""
        return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario | Mapping[str, Any] | str | Path | None) -> None:
        self.use_scenario(value)

    def use_scenario(self, source: Scenario | Mapping[str, Any] | str | Path | None) -> Scenario:
        """Replace the scenario: a builder, JSON data, a JSON file, or None (built-in agent)."""
        scenario = source if isinstance(source, Scenario) else Scenario(as_dict(source))
        self._scenario = scenario
        self._bind(scenario)
        return scenario

    # -- environment -----------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The variables that point a fake at this test's state, log and scenario."""
        return {
            ENV_STATE: str(self.state_dir),
            ENV_LOG: str(self.log_path),
            ENV_SCENARIO: str(self.scenario_path),
        }

    def binary(self, harness: str) -> str:
        """Absolute path of the binary a registry entry (or a fake's name) runs."""
        name = self.registry.get(harness).binary if harness in self.registry.names() else harness
        found = shutil.which(name, path=os.environ.get("PATH"))
        if found is None:
            raise FileNotFoundError(
                f"no {name!r} on PATH (fakes: {', '.join(FAKE_NAMES)} in {self.bin_dir})"
            )
        return found

    # -- calling the fakes -----------------------------------------------------------------
    def run(
        self,
        harness: str,
        *argv: str,
        cwd: str | os.PathLike[str] | None = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a fake with exactly this argv (stdin closed unless ``input`` is given). It gets
        this process's environment, the registry entry's ``env`` (claude: ``IS_SANDBOX=1``,
        which running as root needs) and ``env``."""
        binary = self.binary(harness)
        folder = Path(cwd) if cwd is not None else self.workdir
        full = {**os.environ, "PWD": str(folder)}  # opencode works in $PWD, as the engine sets
        if harness in self.registry.names():
            full.update(self.registry.get(harness).env)
        full.update(env or {})
        return subprocess.run(
            [binary, *argv],
            cwd=folder,
            env=full,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def command(
        self,
        harness: str,
        *,
        role: str = "worker",
        worker: str = "w0",
        prompt: str | None = None,
        session: SessionMode | str | None = None,
        model: str | None = None,
        reasoning: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> HarnessCommand:
        """The command the engine would run for this call (the registry's argv)."""
        if isinstance(session, str):
            session = SessionMode.resume(session)
        if session is None:
            session = SessionMode.new() if ROLE_SESSIONS.get(role) == "new" else SessionMode.none()
        spec = self.registry.get(harness)
        return build_command(
            spec,
            prompt=prompt if prompt is not None else prompt_for(role, worker),
            model=model or spec.default_model,
            cwd=Path(cwd) if cwd is not None else self.workdir,
            session=session,
            reasoning=reasoning,
            binary=self.binary(harness),
        )

    def call(
        self,
        harness: str,
        *,
        role: str = "worker",
        worker: str = "w0",
        prompt: str | None = None,
        session: SessionMode | str | None = None,
        model: str | None = None,
        reasoning: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 60,
    ) -> FakeCall:
        """One agent call as the engine makes it: the registry's argv for ``role`` (a new
        session for worker and fix calls, one-shot otherwise; a string ``session`` resumes
        it), stdin closed, the output parsed by the registry's parser."""
        command = self.command(
            harness,
            role=role,
            worker=worker,
            prompt=prompt,
            session=session,
            model=model,
            reasoning=reasoning,
            cwd=cwd,
        )
        before = len(self.invocations)
        proc = subprocess.run(
            command.argv,
            cwd=command.cwd,
            env={**os.environ, "PWD": str(command.cwd), **command.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        spec = self.registry.get(harness)
        parsed = spec.parse(proc.stdout) if proc.returncode == 0 else ParsedOutput(proc.stdout)
        new = self.invocations[before:]
        return FakeCall(command, proc, parsed, new[-1] if new else None)

    # -- what the fakes did ----------------------------------------------------------------
    @property
    def invocations(self) -> list[Invocation]:
        """Every fake invocation of this test (agent calls, ``--version``, refusals), in the
        order they ended."""
        return read_invocations(self.log_path)

    @property
    def calls(self) -> list[Invocation]:
        """The agent calls only (a role was inferred: the fake accepted the argv)."""
        return [i for i in self.invocations if i.role]

    @property
    def last(self) -> Invocation:
        found = self.invocations
        if not found:
            raise LookupError(f"no fake was invoked yet (log: {self.log_path})")
        return found[-1]

    def session(self, harness: str, session_id: str) -> dict[str, Any] | None:
        """A fake's stored session (``id``, ``cwd``, ``turns`` with prompt and reply)."""
        path = self.state_dir / harness / "sessions" / f"{session_id}.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def sessions(self, harness: str) -> list[dict[str, Any]]:
        folder = self.state_dir / harness / "sessions"
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
