"""What runs on a cluster node for one worker: its own clone and worktree, on its own disk.

``NodeWorkspace`` is the body of the worker's actor (``ray_cluster.py`` wraps it). It holds a
bare repository and a folder standing for the coordinator's project root: the worktree of
the current iteration (``project/.w0-i3``) and a copy of the task queue (``project/tasks``),
where an agent told to read ``../tasks`` finds it. It never sees the coordinator's disk:
each call arrives with the worktree's state as a bundle, the files the call reads, and the
command to run; it leaves with the process's result and the worktree's state as a bundle.

Paths in the command and its environment name the coordinator's project root; they are
rewritten to this folder on the way in and back on the way out, so that call records and
logs read as a local run's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_oompa.core import paths
from pytest_oompa.engine.cluster.transfer import TreeState, capture, git, pack, restore, unpack
from pytest_oompa.engine.processes import ProcessSupervisor, ProcResult
from pytest_oompa.engine.sandbox import Sandbox

QUEUE = "tasks"


@dataclass(frozen=True)
class CallRequest:
    """One agent call, as the coordinator sends it (the bundle travels beside it, as its own
    object in the object store)."""

    call_id: str
    worktree: str  # its folder's name in the project root: ".w0-i3"
    state: TreeState
    argv: tuple[str, ...]
    env: dict[str, str]
    # Taken from the node's own environment: HOME, PATH, ..., and the keys the actor's
    # runtime environment carries. Never sent with the call.
    inherit: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)  # project-relative path -> content
    timeout: float | None = None
    stall: float | None = None
    sandboxed: bool = False
    fakes: bool = False  # put this node's own fake harnesses first on PATH


@dataclass(frozen=True)
class CallReply:
    proc: ProcResult
    state: TreeState
    bundle: bytes | None
    output: list[tuple[str, bytes]]  # what poll() had not handed over yet


class NodeWorkspace:
    """One worker's workspace on a node. Thread-safe where it must be: ``poll`` and ``stop``
    are called while ``run`` runs."""

    def __init__(
        self,
        swarm_id: str,
        worker_id: str,
        coordinator_root: str,
        identity: dict[str, str],
        scratch: str | None = None,
    ) -> None:
        base = Path(scratch or tempfile.gettempdir())
        self.root = base / f"oompa-node-{swarm_id}" / worker_id
        shutil.rmtree(self.root, ignore_errors=True)  # a workspace of a dead actor, here before
        self.project = self.root / "project"
        self.repo = self.root / "repo.git"
        self.project.mkdir(parents=True)
        git(self.root, "init", "-q", "--bare", str(self.repo))
        for key, value in identity.items():  # the agent's commits carry the project's identity
            git(self.repo, "config", key, value)
        self.coordinator_root = coordinator_root
        self.known: set[str] = set()  # commits the coordinator has, and so has this repository
        self.supervisor = ProcessSupervisor()
        self._output: dict[str, list[tuple[str, bytes]]] = {}
        self._lock = threading.Lock()

    def where(self) -> dict[str, str]:
        """Where this workspace is: host, process, folder (for the run's placement lines)."""
        return {"host": socket.gethostname(), "pid": str(os.getpid()), "root": str(self.root)}

    # -- one call --------------------------------------------------------------------------------

    def run(self, request: CallRequest, bundle: bytes | None) -> CallReply:
        unpack(self.repo, bundle)
        self.known |= request.state.commits
        git(self.repo, "update-ref", "refs/heads/main", request.state.main)
        worktree = self._worktree(request)
        restore(worktree, request.state)
        self._write_files(request.files)
        argv = [self._here(a) for a in request.argv]
        env = {k: self._here(v) for k, v in request.env.items()}
        env.update({k: os.environ[k] for k in request.inherit if k in os.environ})
        if request.fakes:
            env["PATH"] = f"{paths.fake_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
        if request.sandboxed:
            sandbox = Sandbox.named("bwrap", env.get("PATH"))
            assert sandbox is not None
            problem = sandbox.problem()
            if problem is not None:
                refused = ProcResult.unstarted(argv, worktree, spawn_error=problem)
                return self._reply(request, worktree, refused)
            argv = list(sandbox.command(argv, worktree, env))
        with self._lock:
            self._output[request.call_id] = []
        proc = self.supervisor.run(
            argv,
            cwd=worktree,
            env=env,
            timeout=request.timeout,
            stall=request.stall,
            on_output=lambda stream, chunk: self._keep(request.call_id, stream, chunk),
        )
        return self._reply(request, worktree, proc)

    def poll(self, call_id: str) -> list[tuple[str, bytes]]:
        """The call's output since the last poll (its command log is written by the
        coordinator, as it comes)."""
        with self._lock:
            chunks = self._output.get(call_id, [])
            if call_id in self._output:
                self._output[call_id] = []
        return chunks

    def stop(self) -> None:
        """Terminate every running call's process group (then the sweep's leftovers)."""
        self.supervisor.stop_all()

    def close(self) -> None:
        """Stop, then remove the workspace: nothing of the run stays on the node."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.parent.rmdir()  # the swarm's folder, when this was its last worker

    # -- helpers ---------------------------------------------------------------------------------

    def _keep(self, call_id: str, stream: str, chunk: bytes) -> None:
        with self._lock:
            self._output.setdefault(call_id, []).append((stream, chunk))

    def _here(self, text: str) -> str:
        return text.replace(self.coordinator_root, str(self.project))

    def _there(self, text: str) -> str:
        return text.replace(str(self.project), self.coordinator_root)

    def _worktree(self, request: CallRequest) -> Path:
        """The iteration's worktree, made on its first call; the worker's earlier ones go."""
        path = self.project / request.worktree
        if path.is_dir():
            return path
        for old in self.project.glob(".*"):
            if old.is_dir():
                git(self.repo, "worktree", "remove", "--force", "--force", str(old))
        git(self.repo, "worktree", "prune")
        if self._has(request):  # left by a call cut off before it could be cleaned
            git(self.repo, "branch", "-D", request.state.branch)
        git(self.repo, "worktree", "add", "-q", "--detach", str(path), request.state.head)
        return path

    def _has(self, request: CallRequest) -> bool:
        ref = f"refs/heads/{request.state.branch}"
        return bool(git(self.repo, "for-each-ref", ref).strip())

    def _write_files(self, files: dict[str, bytes]) -> None:
        # The queue is replaced as a whole: a task claimed since the last call is gone.
        shutil.rmtree(self.project / QUEUE, ignore_errors=True)
        for rel, data in files.items():
            path = self.project / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def _settle(self, worktree: Path) -> None:
        """A merge the agent left with conflicts is aborted here, as the engine would: a
        conflict's index entries do not travel, and its markers must never come back as a
        resolved file."""
        unmerged = git(worktree, "diff", "--name-only", "--diff-filter=U").strip()
        if unmerged:
            git(worktree, "merge", "--abort")

    def _reply(self, request: CallRequest, worktree: Path, proc: ProcResult) -> CallReply:
        self._settle(worktree)
        state = capture(worktree)
        bundle = pack(self.repo, state, self.known, name=request.worktree.lstrip("."))
        self.known |= state.commits
        back = replace(
            proc,
            argv=tuple(self._there(a) for a in proc.argv),
            cwd=Path(self._there(str(worktree))),
        )
        with self._lock:
            output = self._output.pop(request.call_id, [])
        return CallReply(back, state, bundle, output)
