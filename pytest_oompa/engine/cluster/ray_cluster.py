"""A swarm's workers on a Ray cluster (``--oompa-ray``), with no shared filesystem.

The coordinator (the pytest process) keeps the repository, the task queue, the reviews, the
merges and every artifact; each worker gets an actor (``NodeWorkspace``) that Ray places on a
node, spread over the cluster. A call goes out as a git bundle in the object store (only what
the node does not have yet), runs on the node in the worker's own clone, and comes back the
same way; its output is polled while it runs and written to the command log here.

- ``local`` starts a private cluster for the run and shuts it down after; ``auto`` or an
  address joins a running one and only disconnects.
- Keys: the harness variables taken from this environment (API keys, endpoints) reach the
  actors as their runtime environment's variables, never in a call's arguments, a log or an
  artifact. A call names the variables it takes from its node (``CallRequest.inherit``).
- A node lost mid-call (the actor died, the node went) fails that call with "node lost"; the
  worker's next call starts a new actor, which Ray places on a node still alive.
- Stop: every actor's running process groups are ended on their nodes; close: each actor
  removes its workspace, and is killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pytest_oompa import __version__
from pytest_oompa.core import paths
from pytest_oompa.core.config import RaySection
from pytest_oompa.engine.cluster.node import QUEUE, CallReply, CallRequest, NodeWorkspace
from pytest_oompa.engine.cluster.transfer import capture, pack, restore, unpack
from pytest_oompa.engine.processes import OutputCallback, ProcResult
from pytest_oompa.harnesses.registry import BASE_ENV

PLACEMENT_ATTEMPTS = 5  # a replacement actor tried on another node while a lost one fades
POLL_SECONDS = 0.5  # how often a running call's output is fetched from its node
CARRY_LIMIT = 10 * 2**20  # a file named in a call (a scenario, a prompt) carried to the node
NAMESPACE = "oompa"


def _node_ip() -> str:
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


class _RayWorkspace(NodeWorkspace):
    def where(self) -> dict[str, str]:
        context = ray.get_runtime_context()
        return {
            **super().where(),
            "node": context.get_node_id(),
            "ip": _node_ip(),
        }


@ray.remote(num_cpus=0)
def _check_node(binaries: list[str], fakes: bool) -> dict[str, Any]:
    """What a node lacks of what the swarm's workers run there."""
    path = os.environ.get("PATH", "")
    if fakes:
        path = f"{paths.fake_bin_dir()}{os.pathsep}{path}"
    missing = [b for b in ["git", *binaries] if shutil.which(b, path=path) is None]
    return {"missing": missing, "version": __version__}


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a ``host:port`` address (ray.init would retry for minutes), or
    None; other forms (``auto``, ``ray://``) are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return None
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except OSError as exc:
        return f"nothing answers at {address} ({exc.strerror or exc})"
    return None


@dataclass
class _Actor:
    handle: Any
    name: str
    known: set[str] = field(default_factory=set)  # commits its repository has
    where: dict[str, str] = field(default_factory=dict)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


class RayCluster:
    """The cluster side of one swarm: connection, preflight, one actor per worker."""

    def __init__(
        self,
        address: str,
        *,
        placement_timeout: float = 120.0,
        scratch: str | None = None,
        ray_init: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.placement_timeout = placement_timeout
        self.scratch = scratch  # where workspaces go on the nodes (default: their temp dir)
        self.ray_init = dict(ray_init or {})  # extra ray.init arguments (a local cluster's CPUs)
        self.notes: list[str] = []  # placements and losses, for the run's summary
        # What each call cost beyond its process, placement excluded: benchmarks/run.py (j).
        self.call_overheads: list[float] = []
        self._actors: dict[str, _Actor] = {}
        self._lost_nodes: set[str] = set()  # where an actor was lost: no new actor goes there
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = False
        self._connected = False
        self._slots: threading.BoundedSemaphore | None = None
        self._resources: dict[str, RaySection] = {}
        self._secrets: dict[str, str] = {}
        self._inherit: tuple[str, ...] = ()
        self._identity: dict[str, str] = {}
        self._swarm_id = ""
        self._root = Path()
        self._fakes = False

    # -- the run's start and end -------------------------------------------------------------

    def start(
        self,
        *,
        swarm_id: str,
        repo_root: Path,
        resources: Mapping[str, RaySection],
        max_agents: int | None,
        binaries: Sequence[str],
        secrets: Mapping[str, str],
        identity: Mapping[str, str],
        fakes: bool,
    ) -> list[str]:
        """Connect, then check every node; returns the problems found (none: ready)."""
        self._swarm_id = swarm_id
        self._root = repo_root
        self._resources = dict(resources)
        self._secrets = dict(secrets)
        # Taken from each node's own environment: the base variables, and the keys, which the
        # actors' runtime environment carries.
        self._inherit = tuple(sorted({*BASE_ENV, *self._secrets}))
        self._identity = dict(identity)
        self._fakes = fakes
        self._slots = threading.BoundedSemaphore(max_agents) if max_agents else None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
            if self.address == "local":
                # address="local": a new cluster even when RAY_ADDRESS or a `ray start`
                # cluster on this machine would be found otherwise.
                kwargs |= {"address": "local", "include_dashboard": False, **self.ray_init}
            else:
                kwargs["address"] = self.address
                problem = _unreachable(self.address)
                if problem:
                    return [f"--oompa-ray={self.address}: cannot reach a Ray cluster: {problem}"]
            # ray.init sets handlers of its own for SIGTERM (it aborts the process); the
            # swarm's own stop them cleanly, so they are put back.
            handlers = _signal_handlers()
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                return [f"--oompa-ray={self.address}: cannot reach a Ray cluster: {exc}"]
            finally:
                _restore(handlers)
            self._connected = True
        return self._check_nodes(sorted(set(binaries)))

    def _check_nodes(self, binaries: list[str]) -> list[str]:
        everyone: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        nodes = [n for n in everyone if n.get("Alive")]
        checks = [
            _check_node.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(binaries, self._fakes)
            for n in nodes
        ]
        problems = []
        for node, check in zip(nodes, checks, strict=True):
            label = f"node {node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
            try:
                found = ray.get(check, timeout=120)
            except ray.exceptions.RayError as exc:  # pytest-oompa not importable there, ...
                problems.append(f"{label}: the check could not run: {_first_line(exc)}")
                continue
            if found["missing"]:
                problems.append(f"{label}: not on PATH: {', '.join(found['missing'])}")
            if found["version"] != __version__:
                problems.append(
                    f"{label}: has pytest-oompa {found['version']}, this one is {__version__}"
                )
        return problems

    def stop_all(self) -> None:
        """End every running call on its node (its process group, then the sweep's finds)."""
        with self._lock:
            self._stopping = True
            actors = list(self._actors.values())
        self._each(actors, "stop")

    def close(self) -> None:
        """Stop, remove every workspace, kill the actors; a private cluster is shut down."""
        self.stop_all()
        with self._lock:
            actors = list(self._actors.values())
            self._actors.clear()
        self._each(actors, "close")
        for actor in actors:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(actor.handle, no_restart=True)
        if self._connected:
            ray.shutdown()
            self._connected = False

    @staticmethod
    def _each(actors: list[_Actor], method: str, timeout: float = 15.0) -> None:
        refs = [getattr(a.handle, method).remote() for a in actors]
        for ref in refs:
            with contextlib.suppress(ray.exceptions.RayError):  # a dead actor: nothing to stop
                ray.get(ref, timeout=timeout)

    # -- calls -----------------------------------------------------------------------------------

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
    ) -> ProcResult:
        if self._stopping:
            return ProcResult.unstarted(argv, cwd, cancelled=True)
        with self._slots or contextlib.nullcontext():  # max_concurrent_agents
            start = time.monotonic()
            actor = self._actor(worker)
            if isinstance(actor, ProcResult):
                return dataclasses.replace(actor, argv=tuple(argv), cwd=cwd)
            sent = time.monotonic()
            state = capture(cwd)
            bundle = pack(self._root, state, actor.known, name=worker)
            inherit = self._inherit
            # The CLI by its name, found on the node's PATH (the path here is this machine's),
            # unless it is a file of the project, which the node has at its own path.
            program = Path(argv[0])
            if program.is_absolute() and not program.is_relative_to(self._root):
                argv = (program.name, *argv[1:])
            request = CallRequest(
                call_id=f"{worker}-{time.monotonic_ns()}",
                worktree=cwd.name,
                state=state,
                argv=tuple(argv),
                env={k: v for k, v in env.items() if k not in inherit},
                inherit=inherit,
                files=self._files(cwd, argv, env),
                timeout=timeout,
                stall=stall,
                sandboxed=sandboxed,
                fakes=self._fakes,
            )
            try:
                # The bundle is its own object: Ray moves it to the node through the object store.
                ref = actor.handle.run.remote(request, ray.put(bundle) if bundle else None)
                actor.known |= state.commits
                while not ray.wait([ref], timeout=POLL_SECONDS)[0]:
                    if on_output is not None:
                        self._deliver(ray.get(actor.handle.poll.remote(request.call_id)), on_output)
                reply: CallReply = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # our code failed on the node (a git step)
                actor.known = set()  # what it holds is unsure now: the next bundle is a whole one
                why = str(exc.cause if exc.cause is not None else exc).strip().splitlines()[-1]
                return ProcResult.unstarted(argv, cwd, time.monotonic() - start, spawn_error=why)
            except ray.exceptions.RayError as exc:
                return self._node_lost(worker, actor, argv, cwd, exc)
            if on_output is not None:
                self._deliver(reply.output, on_output)
            unpack(self._root, reply.bundle)
            restore(cwd, reply.state)
            actor.known |= reply.state.commits
            with self._lock:
                self.call_overheads.append(time.monotonic() - sent - reply.proc.duration_s)
            return reply.proc

    def _actor(self, worker: str) -> _Actor | ProcResult:
        """The worker's actor, started (and placed) on its first call or after a loss. A
        node that just failed may not be declared dead yet: an actor placed there, or one
        that dies being placed, is tried again elsewhere a few times."""
        with self._lock:
            if worker in self._actors:
                return self._actors[worker]
        why = ""
        for attempt in range(PLACEMENT_ATTEMPTS):
            if self._stopping:
                break
            placed = self._place(worker)
            if isinstance(placed, _Actor) and placed.where["node"] not in self._lost_nodes:
                with self._lock:
                    self._actors[worker] = placed
                    where = f"{placed.where['ip']} ({placed.where['node'][:8]})"
                    self.notes.append(f"ray: {worker} runs on node {where}")
                return placed
            if isinstance(placed, ProcResult):
                if placed.lost is None:
                    return placed  # no node can host it: trying again changes nothing
                why = placed.lost
            else:
                why = f"placed on node {placed.where['node'][:8]}, which was lost"
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.kill(placed.handle, no_restart=True)
            time.sleep(1.0 + attempt)  # for the cluster to declare the node dead
        return ProcResult.unstarted((), self._root, lost=why or "stopped")

    def _place(self, worker: str) -> _Actor | ProcResult:
        with self._lock:
            name = f"oompa-{self._swarm_id}-{worker}-{next(self._names)}"
        wants = self._resources.get(worker, RaySection())
        options: dict[str, Any] = {
            "name": name,
            "namespace": NAMESPACE,
            "max_concurrency": 4,  # run, poll, stop and close may overlap
            "max_restarts": 0,  # a lost worker is restarted by us, with its call failed
            "scheduling_strategy": "SPREAD",
            "resources": dict(wants.resources),
        }
        for key in ("num_cpus", "num_gpus", "memory"):
            if getattr(wants, key) is not None:
                options[key] = getattr(wants, key)
        if self._secrets:
            options["runtime_env"] = {"env_vars": dict(self._secrets)}
        workspace: Any = ray.remote(_RayWorkspace)  # (Ray's stubs do not follow .options)
        handle: Any = workspace.options(**options).remote(
            self._swarm_id, worker, str(self._root), self._identity, self.scratch
        )
        actor = _Actor(handle, name)
        try:
            actor.where = ray.get(handle.where.remote(), timeout=self.placement_timeout)
        except ray.exceptions.GetTimeoutError:
            ray.kill(handle, no_restart=True)
            asked = {k: v for k, v in options.items() if k in ("num_cpus", "num_gpus", "memory")}
            asked |= options["resources"]
            why = (
                f"worker {worker} could not be placed on the cluster in "
                f"{self.placement_timeout:g} s: no node has what it asks for ({asked or 'a CPU'})"
            )
            return ProcResult.unstarted((), self._root, spawn_error=why)
        except ray.exceptions.RayError as exc:
            return ProcResult.unstarted((), self._root, lost=_first_line(exc))
        return actor

    def _node_lost(
        self, worker: str, actor: _Actor, argv: Sequence[str], cwd: Path, exc: Exception
    ) -> ProcResult:
        why = _first_line(exc)
        with self._lock:
            if self._actors.get(worker) is actor:
                del self._actors[worker]
            if "node" in actor.where:
                self._lost_nodes.add(actor.where["node"])
            where = actor.where.get("ip", "?"), actor.where.get("node", "?")[:8]
            self.notes.append(
                f"ray: node {where[0]} ({where[1]}) lost under {worker} ({why}); "
                f"{worker} goes on from a new actor"
            )
        with contextlib.suppress(ray.exceptions.RayError):
            ray.kill(actor.handle, no_restart=True)
        return ProcResult.unstarted(argv, cwd, lost=why)

    def _files(self, cwd: Path, argv: Sequence[str], env: Mapping[str, str]) -> dict[str, bytes]:
        """The task queue, and the project's files a call names outside its worktree (the
        fakes' scenario, a prompt file): what the agent reads besides its worktree."""
        files: dict[str, bytes] = {}
        queue = self._root / QUEUE
        for path in sorted(queue.rglob("*")) if queue.is_dir() else []:
            if path.is_file():
                files[path.relative_to(self._root).as_posix()] = path.read_bytes()
        for value in (*argv, *env.values()):
            if "\n" in value or len(value) > 4096:  # a prompt, not a path
                continue
            path = Path(value)
            if not (path.is_absolute() and path.is_relative_to(self._root)):
                continue
            try:
                if path.is_relative_to(cwd) or path.stat().st_size > CARRY_LIMIT:
                    continue
                if path.is_file():
                    files[path.relative_to(self._root).as_posix()] = path.read_bytes()
            except OSError:
                continue
        return files

    @staticmethod
    def _deliver(chunks: list[tuple[str, bytes]], on_output: OutputCallback) -> None:
        for stream, chunk in chunks:
            on_output(stream, chunk)
