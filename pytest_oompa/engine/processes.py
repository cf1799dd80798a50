"""Running agent CLIs: each in its own process group, so a stop or a timeout kills everything
the agent started (pytest-timeout's users keep finding children that outlive a timeout).

Output is read as it comes (for streaming logs and stall detection) into bounded buffers that
keep the head and the tail of a runaway stream: a harness printing 50 MB costs at most
``HEAD + TAIL`` bytes of memory per stream, and the end of its output (where the structured
result usually is) survives.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 3.0
# After the agent itself exits, how long its pipes may stay open (a child it left behind
# holding stdout) before the group is killed and reading stops.
DRAIN_SECONDS = 2.0
HEAD_BYTES = 1 << 20
TAIL_BYTES = 4 << 20
_POLL = 0.5
_READ = 1 << 16

OutputCallback = Callable[[str, bytes], None]


class CappedBuffer:
    """The first ``head`` and the last ``tail`` bytes of a stream, and how much was dropped."""

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._head_limit, self._tail_limit = head, tail
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size - len(self._tail[0]) >= self._tail_limit:
            self._tail_size -= len(self._tail.popleft())

    @property
    def omitted(self) -> int:
        return self.total - len(self._head) - self._tail_size

    def text(self) -> str:
        tail = b"".join(self._tail)
        if self._tail_size > self._tail_limit:  # trim the oldest tail chunk to the limit
            tail = tail[self._tail_size - self._tail_limit :]
        marker = f"\n… [{self.omitted} bytes omitted] …\n".encode() if self.omitted else b""
        return (bytes(self._head) + marker + tail).decode("utf-8", "replace")


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    cwd: Path
    exit_code: int | None  # None: never started
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    stalled: bool = False
    cancelled: bool = False
    spawn_error: str | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    limit_s: float | None = None

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
            return f"timeout after {self.limit_s or self.duration_s:g} s"
        if self.stalled:
            return f"stalled: no output for {self.limit_s:g} s"
        if self.signal:
            return f"killed by signal {signal.Signals(self.signal).name}"
        if self.exit_code:
            return f"exit code {self.exit_code}"
        return None


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ProcessSupervisor:
    """Starts harness processes and can stop all of them at once (Ctrl-C, -x, SIGTERM)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None = None,
        stall: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> ProcResult:
        start = time.monotonic()
        with self._lock:
            if self._stopping:
                return ProcResult(tuple(argv), cwd, None, "", "", 0.0, cancelled=True)
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
                return ProcResult(
                    tuple(argv),
                    cwd,
                    None,
                    "",
                    "",
                    time.monotonic() - start,
                    spawn_error=f"{argv[0]}: {exc.strerror or exc}",
                )
            self._running.add(proc)
        try:
            out, err, why = self._pump(proc, start, timeout, stall, on_output)
        finally:
            with self._lock:
                self._running.discard(proc)
            # Whatever the agent left running in its group (a server, a stray `sleep &`) goes.
            _kill_group(proc.pid, signal.SIGKILL)
        code = proc.wait()
        return ProcResult(
            tuple(argv),
            cwd,
            code,
            out.text(),
            err.text(),
            time.monotonic() - start,
            timed_out=why == "timeout",
            stalled=why == "stall",
            cancelled=self._stopping and code != 0,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            limit_s=timeout if why == "timeout" else stall if why == "stall" else None,
        )

    def _pump(
        self,
        proc: subprocess.Popen[bytes],
        start: float,
        timeout: float | None,
        stall: float | None,
        on_output: OutputCallback | None,
    ) -> tuple[CappedBuffer, CappedBuffer, str]:
        """Read both pipes until they close; enforce the timeout, the stall limit and the
        drain limit; return the buffers and why the process was killed ("" if it was not)."""
        buffers = {"stdout": CappedBuffer(), "stderr": CappedBuffer()}
        with selectors.DefaultSelector() as sel:
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                assert pipe is not None
                os.set_blocking(pipe.fileno(), False)
                sel.register(pipe, selectors.EVENT_READ, name)
            why = ""
            last_output = start
            exited_at: float | None = None
            kill_at: float | None = None  # SIGKILL after the grace period of a SIGTERM
            while sel.get_map():
                for key, _ in sel.select(_POLL):
                    try:
                        data = os.read(key.fd, _READ)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    buffers[key.data].add(data)
                    last_output = time.monotonic()
                    if on_output is not None:
                        on_output(key.data, data)
                now = time.monotonic()
                if kill_at is not None:
                    if now >= kill_at:
                        _kill_group(proc.pid, signal.SIGKILL)
                        kill_at = None
                    continue
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at >= DRAIN_SECONDS:
                    _kill_group(proc.pid, signal.SIGKILL)
                    break
                if why:
                    continue
                if timeout is not None and now - start >= timeout:
                    why = "timeout"
                elif stall is not None and now - last_output >= stall:
                    why = "stall"
                if why:
                    _kill_group(proc.pid, signal.SIGTERM)
                    kill_at = now + GRACE_SECONDS
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return buffers["stdout"], buffers["stderr"], why

    def stop_all(self) -> None:
        """Refuse new processes and terminate the running ones' groups (TERM, then KILL)."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for proc in running:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
