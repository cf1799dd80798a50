"""One harness call, start to finish: build the argv from the registry, run it in its own
process group while streaming its output to ``commands/{name}.ndjson``, parse its structured
output, keep a ``CallRecord``, and leave ``errors/{name}.json`` when it failed."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.artifacts import utc_now_iso, validate_artifact
from pytest_oompa.atomic import atomic_write_text, dumps_json
from pytest_oompa.commandlog import CommandLog
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
        return self.record.failure

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
        run_dir: Path | None = None,
        stall: float | None = None,
    ) -> None:
        self.registry = registry
        self.supervisor = supervisor
        self.env = dict(env)
        self.default_timeout = default_timeout
        # A last word on each command before it runs (the pytest_oompa_harness_command hook):
        # extra flags, environment, a wrapper. Receives the command and the call's role.
        self.adjust = adjust
        self.run_dir = run_dir  # where commands/ and errors/ go; None: no logs
        self.stall = stall
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
        name: str | None = None,
    ) -> CallOutcome:
        """Run one call. With a ``name`` (and a run folder) it streams to
        commands/{name}.ndjson and, when it fails, leaves errors/{name}.json."""
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
        log = None
        if self.run_dir is not None and name:
            log = CommandLog(self.run_dir / "commands" / f"{name}.ndjson")
            log.start(
                argv=list(command.argv),
                cwd=str(cwd),
                role=role,
                harness=agent.harness,
                model=agent.model,
            )
        proc = self.supervisor.run(
            command.argv,
            cwd=cwd,
            env={**self.env, **command.env},
            timeout=timeout or agent.timeout or self.default_timeout,
            stall=self.stall,
            on_output=log.output if log else None,
        )
        parsed = spec.parse(proc.stdout) if proc.exit_code == 0 else ParsedOutput(text=proc.stdout)
        failure = proc.failure or (f"unparsable output: {parsed.error}" if parsed.error else None)
        duration_ms = int(proc.duration_s * 1000)
        if log is not None:
            log.close(
                **{"exit-code": proc.exit_code, "duration-ms": duration_ms, "failure": failure}
            )
        record = CallRecord(
            role=role,
            harness=agent.harness,
            model=agent.model,
            argv=command.argv,
            cwd=str(cwd),
            exit_code=proc.exit_code,
            duration_ms=duration_ms,
            failure=failure,
            stdout_tail=proc.stdout[-TAIL:],
            stderr_tail=proc.stderr[-TAIL:],
            reply=parsed.text,
            session_id=command.session_id or parsed.session_id,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cost_usd=parsed.cost_usd,
            name=name or "",
            log=f"commands/{name}.ndjson" if log else None,
        )
        if failure and log is not None and not proc.cancelled:
            record = dataclasses.replace(record, error_file=self._error_artifact(record, proc))
        return CallOutcome(record, parsed, proc)

    def _error_artifact(self, record: CallRecord, proc: ProcResult) -> str:
        assert self.run_dir is not None
        rel = f"errors/{record.name}.json"
        data = {
            "swarm-id": self.run_dir.name,
            "name": record.name,
            "timestamp": utc_now_iso(),
            "role": record.role,
            "harness": record.harness,
            "argv": list(record.argv),
            "cwd": record.cwd,
            "exit-code": record.exit_code,
            "duration-ms": record.duration_ms,
            "failure": record.failure or "",
            "stderr-tail": record.stderr_tail,
            "stdout-tail": record.stdout_tail,
            "stdout-bytes": proc.stdout_bytes,
            "stderr-bytes": proc.stderr_bytes,
            "log": record.log,
        }
        path = self.run_dir / rel
        validate_artifact("error", data, where=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, dumps_json(data))
        return rel
