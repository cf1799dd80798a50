"""Running agent CLIs: each in its own process group, and nothing a call starts outlives it.

Real agents start dev servers, watchers and test daemons in the background (``npm run dev &``,
``setsid …``, ``nohup … & disown``). So when a call ends, for any reason (exit 0 included,
error, timeout, stall, a retry, Ctrl-C, ``-x``), ``ProcessSupervisor`` ends it in two steps:

1. its process group: SIGTERM, up to ``GRACE_SECONDS`` for the members to go, then SIGKILL;
2. the escapees, found by the sweep (``_Sweep``) and killed the same way, each recorded as a
   ``Leftover`` (pid, command line, how it escaped: ``same-group`` still in the call's group
   after the agent exited, ``own-session`` it started a session of its own (setsid, a daemon),
   ``orphaned`` it left the group another way (a process group of its own) within the call's
   session). A leftover is reported, never a failure by itself.

How escapees are found, and what holds where:

- Every call's processes inherit a marker, ``OOMPA_CALL=<engine pid>-<random>-<n>`` in their
  environment (set by the supervisor, whatever the caller passes).
- Linux: the engine registers once as a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``),
  so a process whose parents have exited is re-parented to the engine instead of init. Every
  live process a call started is then a descendant of the engine, and the sweep walks only
  that tree (``/proc/<pid>/task/*/children``: no scan of the whole machine, well under a
  millisecond when nothing is left). A descendant belongs to the call if it carries the call's
  marker, lives in the call's session, or descends from one that does; one with no marker at
  all (its environment cleared) in a session of its own, re-parented to the engine during the
  call, is taken only when no other call is in flight (it cannot be told whose it is then).
  The engine reaps the zombies it inherits, but only those in a call's session and never a
  call process itself, so no ``Popen`` (the supervisor's own, a ``git`` run by another thread,
  anyone's in the same process) loses its exit status: an escapee that started a session of
  its own and died by itself before its call ended stays a zombie until the engine exits.
  Being a subreaper holds for the whole engine process: orphans of anything else it started
  re-parent to it too, and those outside a call's session stay zombies until it exits.
- Elsewhere (macOS has no subreaper), or if ``prctl`` is refused: the sweep scans the same
  user's processes with psutil for the call's marker or session (each process's environment
  is read: a few ms per call on a busy machine). Same-user escapees that kept their
  environment are found; one that cleared it and left the session is not.
- Neither finds a process handed to a daemon that was already running (an existing tmux
  server, ``systemd-run --user``, ``docker run -d``): it is not the call's descendant and
  does not carry its environment.

Output is read as it comes (for streaming logs and stall detection) into bounded buffers that
keep the head and the tail of a runaway stream: a harness printing 50 MB costs at most
``HEAD + TAIL`` bytes of memory per stream, and the end of its output (where the structured
result usually is) survives.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from pytest_oompa.core.results import Leftover

GRACE_SECONDS = 3.0
MARKER_VAR = "OOMPA_CALL"
# Rounds of the end-of-call sweep: a leftover may fork while it is being killed.
SWEEP_ROUNDS = 3
CMDLINE_SHOWN = 300
_PR_SET_CHILD_SUBREAPER = 36
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
    marker: str = ""  # the call's OOMPA_CALL value
    leftovers: tuple[Leftover, ...] = ()  # killed after the call ended
    lost: str | None = None  # the cluster node running it went away (engine/cluster/)

    @classmethod
    def unstarted(
        cls, argv: Sequence[str], cwd: Path, duration_s: float = 0.0, **why: Any
    ) -> ProcResult:
        """A call that never ran a process; ``why`` says so (cancelled, spawn_error, lost)."""
        return cls(tuple(argv), cwd, None, "", "", duration_s, **why)

    @property
    def signal(self) -> int | None:
        return -self.exit_code if self.exit_code is not None and self.exit_code < 0 else None

    @property
    def failure(self) -> str | None:
        """Why the call failed as a process, or None if it exited 0."""
        if self.spawn_error:
            return f"could not start: {self.spawn_error}"
        if self.lost:
            return f"node lost: {self.lost}"
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


# -------------------------------------------------------------------- the end-of-call sweep

_subreaper_lock = threading.Lock()
_subreaper_pid = 0  # the pid that registered (0: not tried; a fork must try again)
_subreaper_ok = False


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux), once; False where that is not possible."""
    global _subreaper_pid, _subreaper_ok
    with _subreaper_lock:
        if _subreaper_pid != os.getpid():
            _subreaper_pid, _subreaper_ok = os.getpid(), False
            if sys.platform.startswith("linux"):
                with contextlib.suppress(OSError, AttributeError):
                    libc = ctypes.CDLL(None, use_errno=True)
                    _subreaper_ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        return _subreaper_ok


# The calls in flight in this process, of every supervisor: marker -> the call's pid (0 until
# it is started). A sweep never takes another call's processes, never reaps a call process.
_calls_lock = threading.Lock()
_calls: dict[str, int] = {}
# The session of every call this process started (its pid): a dead orphan of the engine in
# one of them is a call's, and the engine may collect its exit status.
_sessions: set[int] = set()


def _call_pids() -> set[int]:
    with _calls_lock:
        return {pid for pid in _calls.values() if pid}


def _children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from /proc (Linux, CONFIG_PROC_CHILDREN); None elsewhere."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            if tid == str(pid):  # the kernel has no children file: not usable
                return None
        except OSError:
            continue
    return found


def _ids(pid: int) -> tuple[int, int] | None:
    """(process group, session) of a live process, or None if it is gone."""
    try:
        return os.getpgid(pid), os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _environ(p: psutil.Process) -> dict[str, str] | None:
    """The process's environment; None when it cannot be read (another user, a zombie)."""
    try:
        return p.environ()
    except psutil.Error:
        return None


SWARM_VAR = "OOMPA_SWARM_ID"  # every call of a swarm run has it (engine/swarm.py)


def kill_orphans_of(swarm_id: str, grace: float = 1.0) -> list[Leftover]:
    """Kill what a dead run's calls left running: every process of this user with a call
    marker and ``OOMPA_SWARM_ID=swarm_id`` (after a ``kill -9`` of the engine, or of the xdist
    nodes, its agents run on, orphaned, writing into worktrees a resume is about to reuse).
    SIGTERM, ``grace`` seconds, SIGKILL; returns what was found."""
    found: list[tuple[psutil.Process, str]] = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        env = _environ(proc)
        if env is not None and MARKER_VAR in env and env.get(SWARM_VAR) == swarm_id:
            found.append((proc, _cmdline(proc)))
    for proc, _ in found:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs([p for p, _ in found], timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)
    return [Leftover(p.pid, cmd, "orphaned") for p, cmd in found]


@dataclass(frozen=True)
class _Found:
    proc: psutil.Process
    escaped: str


class _Sweep:
    """Finds, kills and reports what one ended call left running (see the module docstring)."""

    def __init__(self, pid: int, marker: str, children_before: frozenset[int]) -> None:
        self.pid = pid  # the call's process: leader of its group and of its session
        self.marker = marker
        self.children_before = children_before
        self.me = os.getpid()
        self.my_session = os.getsid(0)

    def _alone(self) -> bool:
        """No other call is in flight or starting (markers register before the fork)."""
        with _calls_lock:
            return not any(m != self.marker for m in _calls)

    def _kind(self, pgid: int, sid: int) -> str:
        if pgid == self.pid:
            return "same-group"
        if sid != self.pid:
            return "own-session"
        return "orphaned"

    def _belongs(self, env: dict[str, str] | None, pgid: int, sid: int) -> bool:
        return (env is not None and env.get(MARKER_VAR) == self.marker) or self.pid in (pgid, sid)

    def find(self, alone: bool) -> list[_Found]:
        """The call's live escapees. ``alone``: no other call is in flight."""
        calls = _call_pids()
        if become_subreaper():
            tree = self._tree(calls, alone)
            if tree is not None:
                return tree
        return self._scan(calls)

    def _tree(self, calls: set[int], alone: bool) -> list[_Found] | None:
        """Walk the engine's descendants (the subreaper keeps every escapee among them)."""
        top = _children(self.me)
        if top is None:
            return None
        found: list[_Found] = []
        # (pid, whether an ancestor below the engine belongs to the call). The call's own
        # process is not taken (it is ended by its group), but what it still parents is.
        stack = [(pid, False) for pid in top if pid not in calls]
        stack += [(pid, True) for pid in _children(self.pid) or ()]
        while stack:
            pid, inherited = stack.pop()
            ids = _ids(pid)
            if ids is None:
                continue
            pgid, sid = ids
            try:
                proc = psutil.Process(pid)
            except psutil.Error:
                continue
            env = _environ(proc)
            mine = inherited or self._belongs(env, pgid, sid)
            if not mine and env is not None and MARKER_VAR not in env:
                # No marker at all: its environment was cleared. Only a process re-parented
                # to the engine during this call, outside the engine's session, with no other
                # call that could own it.
                # "alone" is read after the environment: a call registers before it forks, so
                # a child caught between fork and exec (the engine's environment, no marker
                # yet) always finds its call registered by now.
                mine = (
                    alone
                    and self._alone()
                    and sid != self.my_session
                    and pid not in self.children_before
                    and proc.ppid() == self.me
                )
            if mine and env is not None:  # None: a zombie, or not ours to kill
                found.append(_Found(proc, self._kind(pgid, sid)))
            stack += [(c, mine) for c in _children(pid) or ()]
        return found

    def _scan(self, calls: set[int]) -> list[_Found]:
        """Scan the same user's processes for the call's marker or session."""
        found: list[_Found] = []
        for proc in psutil.process_iter():
            pid = proc.pid
            if pid in (self.me, self.pid) or pid in calls:
                continue
            ids = _ids(pid)
            if ids is None:
                continue
            env = _environ(proc)
            if env is not None and self._belongs(env, *ids):
                found.append(_Found(proc, self._kind(*ids)))
        return found

    def reap(self, calls: set[int]) -> None:
        """Collect the exit status of the call orphans that died as the engine's children:
        only in a call's session and never a call process itself, so that no Popen (ours, or
        another thread's git, or anyone's in this process) loses its status to us."""
        with _calls_lock:
            sessions = set(_sessions)
        for pid in _children(self.me) or ():
            if pid in calls or pid == self.pid:
                continue
            ids = _ids(pid)
            if ids is None or ids[1] not in sessions:
                continue
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)

    def _leader_gone(self) -> bool:
        """Whether the call's process has exited: then the kernel has re-parented its
        children (to the engine, its subreaper), and a walk of the tree finds them."""
        try:
            if not hasattr(os, "waitid"):
                return psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE
            # WNOWAIT: look, do not reap (Popen.wait does, after the sweep).
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            return os.waitid(os.P_PID, self.pid, flags) is not None
        except (OSError, psutil.Error):  # reaped already (by Popen.poll): it has exited
            return True

    def _wait_leader(self, seconds: float) -> bool:
        # Usually a matter of microseconds (it is between closing its files and exiting):
        # short naps first.
        deadline, nap = time.monotonic() + seconds, 0.0002
        while not self._leader_gone():
            if time.monotonic() >= deadline:
                return False
            time.sleep(nap)
            nap = min(nap * 2, 0.02)
        return True

    def run(self, grace: float) -> tuple[Leftover, ...]:
        """End the call's group and its escapees: SIGTERM, grace, SIGKILL; in rounds, as the
        agent may still be exiting (its pipes close before its children are re-parented) and
        a leftover may fork while it is killed. Returns what was found alive."""
        killed: dict[int, Leftover] = {}
        with _calls_lock:  # a call about to start counts: its child is not marked yet
            alone = not any(m != self.marker for m in _calls)
        for _ in range(SWEEP_ROUNDS):
            settled = self._leader_gone()
            found = [f for f in self.find(alone) if f.proc.pid not in killed]
            for f in found:
                killed[f.proc.pid] = Leftover(f.proc.pid, _cmdline(f.proc), f.escaped)
            _kill_group(self.pid, signal.SIGTERM)
            if settled and not found:
                break
            for f in found:
                with contextlib.suppress(psutil.Error):
                    f.proc.terminate()
            deadline = time.monotonic() + grace
            self._wait_leader(grace)
            # wait_procs reaps the ones re-parented to us (waitpid WNOHANG): never a call's.
            _, alive = psutil.wait_procs(
                [f.proc for f in found], timeout=max(0.0, deadline - time.monotonic())
            )
            _kill_group(self.pid, signal.SIGKILL)
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(alive, timeout=1.0)
            self._wait_leader(1.0)
        _kill_group(self.pid, signal.SIGKILL)
        self.reap(_call_pids())
        return tuple(sorted(killed.values(), key=lambda x: x.pid))


def _cmdline(proc: psutil.Process) -> str:
    try:
        text = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        text = "?"
    return text if len(text) <= CMDLINE_SHOWN else text[: CMDLINE_SHOWN - 1] + "…"


class ProcessSupervisor:
    """Starts harness processes, can stop all of them at once (Ctrl-C, -x, SIGTERM), and ends
    each call with nothing left running (``sweep``; off only to measure what it costs)."""

    def __init__(self, *, sweep: bool = True) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopping = False
        self.sweep = sweep
        self._prefix = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._count = itertools.count(1)
        if sweep:
            become_subreaper()

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
        marker = f"{self._prefix}-{next(self._count)}"
        # Known before the process exists: a sweep running meanwhile leaves it alone.
        with _calls_lock:
            _calls[marker] = 0
        try:
            return self._run(argv, cwd, env, timeout, stall, on_output, start, marker)
        finally:
            with _calls_lock:
                _calls.pop(marker, None)

    def _run(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        timeout: float | None,
        stall: float | None,
        on_output: OutputCallback | None,
        start: float,
        marker: str,
    ) -> ProcResult:
        children_before = frozenset(_children(os.getpid()) or ()) if self.sweep else frozenset()
        with self._lock:
            if self._stopping:
                return ProcResult.unstarted(argv, cwd, cancelled=True)
            try:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env={**env, MARKER_VAR: marker},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                return ProcResult.unstarted(
                    argv,
                    cwd,
                    time.monotonic() - start,
                    spawn_error=f"{argv[0]}: {exc.strerror or exc}",
                )
            self._running.add(proc)
            with _calls_lock:
                _calls[marker] = proc.pid
                _sessions.add(proc.pid)
        leftovers: tuple[Leftover, ...] = ()
        try:
            out, err, why = self._pump(proc, start, timeout, stall, on_output)
        finally:
            with self._lock:
                self._running.discard(proc)
            # Before proc.wait(): the unreaped leader keeps its pid (the group's and the
            # session's id) from being reused while they are swept.
            if self.sweep:
                leftovers = _Sweep(proc.pid, marker, children_before).run(GRACE_SECONDS)
            else:
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
            marker=marker,
            leftovers=leftovers,
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
                    break  # what holds the pipes goes at the end of the call (run)
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
