"""One harness call, start to finish: build the argv from the registry, run it in its own
process group while streaming its output to ``commands/{name}.ndjson``, parse its structured
output, keep a ``CallRecord``, and leave ``errors/{name}.json`` when it failed.

Every call passes here, so this is also where the swarm's containment applies to each: the
spend meter refuses a call once a limit is reached and is charged when a call ends
(engine/spend.py), and the sandbox, when one is on, wraps the final argv (engine/sandbox.py).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import AgentSpec
from pytest_oompa.core.results import CallRecord, Leftover
from pytest_oompa.engine.processes import OutputCallback, ProcessSupervisor, ProcResult
from pytest_oompa.engine.sandbox import Sandbox
from pytest_oompa.engine.spend import SpendMeter
from pytest_oompa.harnesses.output import ParsedOutput
from pytest_oompa.harnesses.registry import BASE_ENV, HarnessRegistry, env_matches
from pytest_oompa.harnesses.spec import HarnessCommand, HarnessSpec, SessionMode, build_command
from pytest_oompa.runs.artifacts import utc_now_iso, validate_artifact
from pytest_oompa.runs.commandlog import CommandLog

TAIL = 2000


class CallObserver(Protocol):
    """Sees every harness call: ``before`` it runs (what it will run, where) and ``after``
    (its record and full output). Used by --oompa-record; called from worker threads."""

    def before(
        self,
        *,
        name: str,
        role: str,
        agent: AgentSpec,
        command: HarnessCommand,
        prompt: str,
        cwd: Path,
    ) -> object: ...

    def after(self, token: object, *, record: CallRecord, stdout: str, stderr: str) -> None: ...


class RemoteCalls(Protocol):
    """Runs a worker's calls somewhere else (engine/cluster/): in the worker's own workspace
    on a cluster node, the worktree carried there and back. Same result as a local run."""

    def run(
        self,
        worker: str,
        *,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        stall: float | None,
        on_output: OutputCallback | None,
        sandboxed: bool,
    ) -> ProcResult: ...


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
        *,
        extra_env: Mapping[str, str] | None = None,
        env_pass: Sequence[str] = (),
        retries: int = 0,
        backoff: float = 2.0,
        stop: threading.Event | None = None,
        observer: CallObserver | None = None,
        spend: SpendMeter | None = None,
        sandbox: Sandbox | None = None,
        remote: RemoteCalls | None = None,
    ) -> None:
        self.registry = registry
        self.supervisor = supervisor
        self.env = dict(env)  # the environment harness variables are picked from
        self.extra_env = dict(extra_env or {})  # always given: fakes' settings, the user's own
        self.env_pass = tuple(env_pass)
        self.default_timeout = default_timeout
        # A last word on each command before it runs (the pytest_oompa_harness_command hook):
        # extra flags, environment, a wrapper. Receives the command and the call's role.
        self.adjust = adjust
        self.run_dir = run_dir  # where commands/ and errors/ go; None: no logs
        self.stall = stall
        self.retries = retries
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self.observer = observer
        self.spend = spend or SpendMeter()
        self.sandbox = sandbox
        # Where a worker's calls run when not here (--oompa-ray); the planner's, the probes'
        # and the version checks' always run here.
        self.remote = remote
        self._binaries: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def env_for(self, harness: str) -> dict[str, str]:
        """What one harness process gets: BASE_ENV, the variables its CLI reads, the user's
        pass-through patterns, then the explicitly given variables. No blanket copy."""
        patterns = (*BASE_ENV, *self.registry.get(harness).env_pass, *self.env_pass)
        env = {k: v for k, v in self.env.items() if env_matches(k, patterns)}
        env.update(self.extra_env)
        return env

    def binary(self, harness: str) -> str | None:
        """Absolute path of the harness binary on the swarm's PATH (looked up once)."""
        with self._lock:
            if harness not in self._binaries:
                name = self.registry.get(harness).binary
                path = self.extra_env.get("PATH", self.env.get("PATH"))
                self._binaries[harness] = shutil.which(name, path=path)
            return self._binaries[harness]

    @staticmethod
    def _transient(spec: HarnessSpec, proc: ProcResult) -> bool:
        """An infrastructure failure worth a retry; never the model's own failure."""
        if proc.cancelled or proc.timed_out or proc.stalled:
            return False
        return (
            proc.spawn_error is not None
            or proc.lost is not None  # a retry runs on another node
            or proc.signal is not None
            or proc.exit_code in spec.transient_exit_codes
        )

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
        worker: str | None = None,
    ) -> CallOutcome:
        """Run one call (retried on infrastructure failures when retries are on). With a
        ``name`` (and a run folder) it streams to commands/{name}.ndjson (every attempt,
        appended) and, when it finally fails, leaves errors/{name}.json.

        Each attempt is charged to ``worker`` (else to the role) on the spend meter; raises
        SpendLimitReached, without starting anything, once a limit is reached (a retry that
        would start then is not made: the last attempt's outcome stands)."""
        spec = self.registry.get(agent.harness)
        account = worker or role
        self.spend.check(account)
        attempt = 0
        leftovers: list[Leftover] = []  # every attempt's, not only the last one's
        while True:
            attempt += 1
            outcome = self._attempt(
                spec,
                agent,
                role=role,
                prompt=prompt,
                cwd=cwd,
                session=session,
                timeout=timeout,
                name=name,
                worker=worker,
            )
            self.spend.record(account, outcome.record)
            leftovers += outcome.proc.leftovers
            if attempt > self.retries or not self._transient(spec, outcome.proc):
                break
            if self.spend.refusal(account):
                break
            if self.stop.wait(self.backoff * 2 ** (attempt - 1)):
                break
        record = dataclasses.replace(outcome.record, attempts=attempt, leftovers=tuple(leftovers))
        if record.failure and record.log is not None and not outcome.proc.cancelled:
            record = dataclasses.replace(
                record, error_file=self._error_artifact(record, outcome.proc)
            )
        return dataclasses.replace(outcome, record=record)

    def _attempt(
        self,
        spec: HarnessSpec,
        agent: AgentSpec,
        *,
        role: str,
        prompt: str,
        cwd: Path,
        session: SessionMode,
        timeout: float | None,
        name: str | None,
        worker: str | None = None,
    ) -> CallOutcome:
        # Built anew each attempt: a new chosen session id, since a CLI may have registered
        # the first one before it failed.
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
        token = None
        if self.observer is not None:
            token = self.observer.before(
                name=name or "", role=role, agent=agent, command=command, prompt=prompt, cwd=cwd
            )
        # PWD too: opencode works in $PWD when it is set, not in its process's cwd, and a
        # PWD inherited from whoever started the swarm points elsewhere.
        env = {**self.env_for(agent.harness), "PWD": str(cwd), **command.env}
        remote = self.remote if worker is not None else None
        # Sandboxed last, so whatever the hook added runs inside too; the log shows what ran.
        # A remote call is wrapped on its node, around the node's own paths.
        argv = command.argv
        if self.sandbox and remote is None:
            argv = self.sandbox.command(command.argv, cwd, env)
        log = None
        if self.run_dir is not None and name:
            log = CommandLog(self.run_dir / "commands" / f"{name}.ndjson")
            log.start(
                argv=list(argv),
                cwd=str(cwd),
                role=role,
                harness=agent.harness,
                model=agent.model,
            )
        limit = timeout or agent.timeout or self.default_timeout
        on_output = log.output if log else None
        if remote is not None and worker is not None:
            proc = remote.run(
                worker,
                argv=argv,
                cwd=cwd,
                env=env,
                timeout=limit,
                stall=self.stall,
                on_output=on_output,
                sandboxed=self.sandbox is not None,
            )
        else:
            proc = self.supervisor.run(
                argv, cwd=cwd, env=env, timeout=limit, stall=self.stall, on_output=on_output
            )
        parsed = spec.parse(proc.stdout) if proc.exit_code == 0 else ParsedOutput(text=proc.stdout)
        failure = proc.failure or (
            f"unparsable output: {parsed.error}"
            if parsed.error
            else "the harness reported an error in its output (exit code 0)"
            if parsed.is_error
            else None
        )
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
            leftovers=proc.leftovers,
        )
        if self.observer is not None:
            self.observer.after(token, record=record, stdout=proc.stdout, stderr=proc.stderr)
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
