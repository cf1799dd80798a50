"""Running agent CLIs: each in its own process group, so a stop or a timeout kills everything
the agent started (pytest-timeout's users keep finding children that outlive a timeout)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    cwd: Path
    exit_code: int | None  # None: never started
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False
    spawn_error: str | None = None

    @property
    def signal(self) -> int | None:
        return -self.exit_code if self.exit_code is not None and self.exit_code < 0 else None

    @property
    def failure(self) -> str | None:
        """Why the call failed as a process, or None if it exited 0."""
        if self.spawn_error:
            return f"could not start: {self.spawn_error}"
        if self.cancelled:
            return "stopped: the swarm is shutting down"
        if self.timed_out:
            return f"timeout after {self.duration_s:.0f} s"
        if self.signal:
            return f"killed by signal {signal.Signals(self.signal).name}"
        if self.exit_code:
            return f"exit code {self.exit_code}"
        return None


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class ProcessSupervisor:
    """Starts harness processes and can stop all of them at once (Ctrl-C, -x, SIGTERM)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None = None,
    ) -> ProcResult:
        start = time.monotonic()

        def result(
            code: int | None, out: bytes = b"", err: bytes = b"", **kw: object
        ) -> ProcResult:
            return ProcResult(
                tuple(argv),
                cwd,
                code,
                out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"),
                time.monotonic() - start,
                **kw,  # type: ignore[arg-type]
            )

        with self._lock:
            if self._stopping:
                return result(None, cancelled=True)
            try:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                return result(None, spawn_error=f"{argv[0]}: {exc.strerror or exc}")
            self._running.add(proc)
        timed_out = False
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                out, err = self._terminate(proc)
        finally:
            with self._lock:
                self._running.discard(proc)
        # Whatever the agent left running in its group (a server, a stray `sleep &`) goes too.
        _kill_group(proc, signal.SIGKILL)
        cancelled = self._stopping and proc.returncode != 0
        return result(proc.returncode, out, err, timed_out=timed_out, cancelled=cancelled)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        _kill_group(proc, signal.SIGTERM)
        try:
            return proc.communicate(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            return proc.communicate()

    def stop_all(self) -> None:
        """Refuse new processes and terminate the running ones' groups (TERM, then KILL)."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
