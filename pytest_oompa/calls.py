"""One harness call, start to finish: build the argv from the registry, run it in its own
process group, parse its structured output, and keep a ``CallRecord`` of what happened."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.config import AgentSpec
from pytest_oompa.harness_output import ParsedOutput
from pytest_oompa.harnesses import HarnessCommand, HarnessRegistry, SessionMode, build_command
from pytest_oompa.procs import ProcessSupervisor, ProcResult
from pytest_oompa.results import CallRecord

TAIL = 2000


@dataclass(frozen=True)
class CallOutcome:
    record: CallRecord
    parsed: ParsedOutput
    proc: ProcResult

    @property
    def failure(self) -> str | None:
        """Why this call cannot be used: the process failed, or its output broke the format."""
        if self.proc.failure:
            return self.proc.failure
        if self.parsed.error:
            return f"unparsable output: {self.parsed.error}"
        return None

    @property
    def cancelled(self) -> bool:
        return self.proc.cancelled

    @property
    def session_id(self) -> str | None:
        return self.record.session_id


class HarnessCaller:
    """Shared by every worker of a swarm; thread-safe."""

    def __init__(
        self,
        registry: HarnessRegistry,
        supervisor: ProcessSupervisor,
        env: Mapping[str, str],
        default_timeout: float | None = None,
        adjust: Callable[[HarnessCommand, str], HarnessCommand] | None = None,
    ) -> None:
        self.registry = registry
        self.supervisor = supervisor
        self.env = dict(env)
        self.default_timeout = default_timeout
        # A last word on each command before it runs (the pytest_oompa_harness_command hook):
        # extra flags, environment, a wrapper. Receives the command and the call's role.
        self.adjust = adjust
        self._binaries: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def binary(self, harness: str) -> str | None:
        """Absolute path of the harness binary on the swarm's PATH (looked up once)."""
        with self._lock:
            if harness not in self._binaries:
                name = self.registry.get(harness).binary
                self._binaries[harness] = shutil.which(name, path=self.env.get("PATH"))
            return self._binaries[harness]

    def call(
        self,
        agent: AgentSpec,
        *,
        role: str,
        prompt: str,
        cwd: Path,
        session: SessionMode,
        timeout: float | None = None,
    ) -> CallOutcome:
        spec = self.registry.get(agent.harness)
        command = build_command(
            spec,
            prompt=prompt,
            model=agent.model,
            reasoning=agent.reasoning,
            cwd=cwd,
            session=session,
            binary=self.binary(agent.harness) or spec.binary,
        )
        if self.adjust is not None:
            command = self.adjust(command, role)
        limit = timeout or agent.timeout or self.default_timeout
        proc = self.supervisor.run(
            command.argv, cwd=cwd, env={**self.env, **command.env}, timeout=limit
        )
        parsed = spec.parse(proc.stdout) if proc.exit_code == 0 else ParsedOutput(text=proc.stdout)
        record = CallRecord(
            role=role,
            harness=agent.harness,
            argv=command.argv,
            cwd=str(cwd),
            exit_code=proc.exit_code,
            duration_ms=int(proc.duration_s * 1000),
            failure=proc.failure
            or (f"unparsable output: {parsed.error}" if parsed.error else None),
            stdout_tail=proc.stdout[-TAIL:],
            stderr_tail=proc.stderr[-TAIL:],
            reply=parsed.text,
            session_id=command.session_id or parsed.session_id,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cost_usd=parsed.cost_usd,
        )
        return CallOutcome(record, parsed, proc)
