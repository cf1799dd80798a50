"""pytest-xdist: ``pytest --oompa-swarm=oompa.json -n N`` spreads a swarm's workers over N
processes and gives the same run, the same artifacts and the same verdict as without xdist.

Who does what:

- The **controller** (the process you started; xdist collects nothing there) holds the run. At
  session start it prepares it once (preflight, ``run.json``, tracking); when the nodes'
  collections are in it runs the planner and reports the ``planner`` item itself, then sends
  each node the items of the oompa workers that node runs. When the nodes are done it ends the
  run from what they handed back in ``workeroutput`` (as pytest-cov does, through
  ``pytest_testnodedown``): the task queue's commit, ``summary.json``, the gate (and the
  ``gate`` item, reported there), the terminal summary, the index, the metrics, the report.
- Each **node** runs its oompa workers, all at once in threads (an *attached* ``Swarm``: no
  preflight, planner, run.json or summary), from its first item on; each item waits for its
  iteration and reports it.

Which node runs which worker: the selected workers in config order, the j-th on ``gw{j mod
N}``. Both sides work it out from the same collection; the scheduler below sends each node
exactly its workers' items (all at once, interleaved by iteration, so they report about in the
order they finish; plain test items first, spread round-robin), so every iteration of a
worker runs, in order, on one process, and a process runs all its workers at the same time.

What the processes share: the merge and worktree locks (files in ``.git``), and a folder the
controller makes for the run (``shared_dir``) holding who holds which task, the live
summary's lock and, when the run must stop (Ctrl-C or SIGTERM on the controller, ``-x``, the
swarm timeout), a ``stop`` file every node watches. Nodes must therefore share the machine
(``-n N``, popen; not ``--tx ssh=...``).

Where hooks run: ``pytest_oompa_iteration_finished`` on the node that ran the iteration,
``pytest_oompa_swarm_finished`` once, on the controller. A node that dies (``kill -9``, a
segfault) takes its workers with it: their remaining items are not reported, they are
``error`` in summary.json and the run exits 3 (an engine error names them).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.core.results import IterationResult, WorkerMetrics, WorkerReport, WorkerStatus
from pytest_oompa.plugin.items import SESSION_KEY, GateItem, OompaItem, PlannerItem, SwarmFile

if TYPE_CHECKING:  # (loaded when a swarm runs, not with the plugin)
    from pytest_oompa.engine.swarm import Swarm
    from pytest_oompa.plugin.session import SwarmSession

INPUT_KEY = "oompa"  # node.workerinput[INPUT_KEY]: what the controller hands each node
OUTPUT_KEY = "oompa"  # config.workeroutput[OUTPUT_KEY]: what each node hands back
STOP_FILE = "stop"
STOP_POLL_SECONDS = 0.1
# How long a stopped controller waits for the nodes to stop their agents, recycle their tasks
# and remove their worktrees before it writes the summary without them.
NODE_CLEANUP_SECONDS = 120.0
NOT_REACHED = "the swarm was stopped before this iteration finished"


class _Channel(Protocol):
    def isclosed(self) -> bool: ...


class _Gateway(Protocol):
    id: str


class XdistNode(Protocol):
    """The part of xdist's ``WorkerController`` used here."""

    gateway: _Gateway
    workerinput: dict[str, Any]
    channel: _Channel

    def send_runtest_some(self, indices: Sequence[int]) -> None: ...

    def shutdown(self) -> None: ...


def node_index(workerid: str) -> int | None:
    """``gw3`` -> 3 (None for a name xdist did not give its first nodes)."""
    match = re.fullmatch(r"gw([0-9]+)", workerid)
    return int(match[1]) if match else None


def assign(worker_ids: Sequence[str], node_count: int) -> dict[str, int]:
    """Worker id -> the index of the node that runs it: the j-th selected worker (config
    order) goes to node j mod N. The controller and every node compute the same."""
    return {wid: j % node_count for j, wid in enumerate(worker_ids)}


@dataclass
class NodeOutput:
    """What a node hands back to the controller (pickled into ``workeroutput``)."""

    node: str
    workers: list[WorkerReport] = field(default_factory=list)
    iterations: list[IterationResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # its workers were stopped (not a normal end)
    interrupted: bool = False  # by Ctrl-C / SIGTERM in the node itself


def parse_collection(
    ids: Sequence[str], workers: dict[str, int], expected_prefix: str | None
) -> tuple[str | None, dict[int, Any]]:
    """(the swarm file's node id, {collection index: item key}) from a node's collection.

    Keys are those of the oompa items: ``"planner"``, ``"gate"``, ``(worker_id, n)``.
    ``workers`` maps each configured worker id to its iteration count.
    """
    found: dict[str, dict[int, Any]] = {}
    for index, nodeid in enumerate(ids):
        head, _, last = nodeid.rpartition("::")
        if not head:
            continue
        if last in ("planner", "gate"):
            found.setdefault(head, {})[index] = last
            continue
        match = re.fullmatch(r"i([1-9][0-9]*)", last)
        if match is None:
            continue
        prefix, _, worker = head.rpartition("::")
        n = int(match[1])
        if prefix and workers.get(worker, 0) >= n:
            found.setdefault(prefix, {})[index] = (worker, n)
    if not found:
        return None, {}
    if expected_prefix in found:
        return expected_prefix, found[expected_prefix]
    prefix = max(found, key=lambda p: len(found[p]))
    return prefix, found[prefix]


def _stopped_report(session: SwarmSession, worker_id: str, reason: str) -> WorkerReport:
    spec = next(w for w in session.swarm_config.workers if w.id == worker_id)
    return WorkerReport(
        worker_id=worker_id,
        harness=spec.agent.harness,
        model=spec.agent.model,
        status=WorkerStatus.IDLE,
        iterations=spec.iterations,
        iterations_run=0,
        metrics=WorkerMetrics(),
        stop_reason=reason,
        interrupted=True,
    )


# -- the hooks every process gets ----------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, take the controller's or a node's part (before xdist starts the nodes)."""
    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        data = workerinput.get(INPUT_KEY)
        if data is None:
            raise pytest.UsageError("oompa: this xdist node got no swarm from its controller")
        state.distributed = "node"
        config.pluginmanager.register(Node(state, data, workerinput), "oompa-xdist-node")
    elif config.pluginmanager.has_plugin("dsession"):
        state.distributed = "controller"
        controller = Controller(state, session)
        config.pluginmanager.register(controller, "oompa-xdist-controller")
        controller.prepare()


# -- the controller ----------------------------------------------------------------------------


class Controller:
    """The run, on the xdist controller: prepared at session start, planned and scheduled when
    the nodes' collections are in, ended from the nodes' outputs."""

    def __init__(self, state: SwarmSession, session: pytest.Session) -> None:
        self.state = state
        self.session = session
        self.config = session.config
        self.shared_dir = Path(tempfile.mkdtemp(prefix="oompa-xdist-"))
        self.nodes: list[XdistNode] = []
        self.outputs: dict[str, NodeOutput] = {}
        self.selected: list[str] = []  # the workers the run's items select, config order
        self.node_count = 0
        self.prefix: str | None = None  # the swarm file's node id
        self.gate_selected = False
        self.stop_kind = ""  # "stop" or "timeout" once the nodes were told to stop
        self.ended = False
        self._stop_lock = threading.Lock()
        self._timer: threading.Timer | None = None

    @property
    def swarm(self) -> Swarm:
        assert self.state.swarm is not None
        return self.state.swarm

    def prepare(self) -> None:
        """Preflight, run.json and tracking, once for every node."""
        state = self.state
        state.options.shared_dir = self.shared_dir
        try:
            state.new_swarm(None, run_planner=False)
        except BaseException as exc:
            # Without xdist the session's end records this; a failing session start has none.
            interrupted = isinstance(exc, KeyboardInterrupt)
            status = pytest.ExitCode.INTERRUPTED if interrupted else pytest.ExitCode.USAGE_ERROR
            if state.swarm is not None:
                state.swarm.stop()
                with contextlib.suppress(Exception):
                    state.swarm.finalize(int(status))
            shutil.rmtree(self.shared_dir, ignore_errors=True)
            raise
        state.signals.running()

    # -- xdist hooks

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: XdistNode) -> None:
        swarm = self.swarm
        env = {}
        fake_state = swarm.caller.extra_env.get("OOMPA_FAKE_STATE")
        if fake_state:  # the fakes' sessions and call counters: one folder for the run
            env["OOMPA_FAKE_STATE"] = fake_state
        node.workerinput[INPUT_KEY] = {
            "swarm_id": swarm.swarm_id,
            "shared_dir": str(self.shared_dir),
            "env": env,
        }
        self.nodes.append(node)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> OompaScheduling:
        return OompaScheduling(config, log, self)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: XdistNode, error: object | None) -> None:
        self._collect(node)

    # -- pytest hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        from xdist.dsession import Interrupted as StoppedByXdist  # type: ignore[import-untyped]

        try:
            result = yield
        except StoppedByXdist:
            # xdist ends its loop so after -x/--maxfail (a failure, as without xdist) and
            # after a node's Ctrl-C (an interruption).
            interrupted = not session.shouldfail or any(
                o.interrupted for o in self.outputs.values()
            )
            self.end(stopped=True, interrupted=interrupted)
            if not interrupted:
                raise session.Failed(session.shouldfail) from None
            raise
        except BaseException as exc:
            self.end(stopped=True, interrupted=isinstance(exc, KeyboardInterrupt))
            raise
        self.end(stopped=bool(self.stop_kind == "stop"), interrupted=False)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        if self.gate_selected:
            self._report("gate")  # last: its verdict needs the whole run
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        session = self.session
        if (session.shouldfail or session.shouldstop) and not self.ended:
            self.stop_nodes("stop", str(session.shouldfail or session.shouldstop))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        shutil.rmtree(self.shared_dir, ignore_errors=True)

    # -- planning

    def plan(
        self, ids: Sequence[str], nodes: Sequence[XdistNode], node_count: int
    ) -> dict[XdistNode, list[int]]:
        """Run the planner (as without xdist: before any worker starts), then say which
        collected items each of the ``node_count`` nodes runs."""
        config = self.state.swarm_config
        expected: str | None
        try:
            expected = config.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            expected = None
        workers = {w.id: w.iterations for w in config.workers}
        self.prefix, keys = parse_collection(ids, workers, expected)
        limits: dict[str, int] = {}
        for key in keys.values():
            if isinstance(key, tuple):
                limits[key[0]] = max(limits.get(key[0], 0), key[1])
        self.selected = [w.id for w in config.workers if w.id in limits]
        self.gate_selected = "gate" in keys.values()
        self.node_count = node_count
        swarm = self.swarm
        swarm.options.limits = limits
        swarm.options.run_planner = "planner" in keys.values()
        limit = self.state.swarm_config.timeouts.swarm
        if limit:  # from here, as without xdist (the nodes' start-up is not the swarm's)
            self._timer = threading.Timer(limit, self._timed_out, args=(limit,))
            self._timer.daemon = True
            self._timer.start()
        session = self.session
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            # Collection errors: the nodes run nothing (as pytest without xdist), neither
            # does the swarm; the run is recorded as stopped.
            self.stop_nodes("stop", "errors during collection")
        if swarm.options.run_planner and self.stop_kind != "stop":
            if not self.stop_kind:  # (after a swarm timeout it did not run: reported so)
                try:
                    swarm.run_planner()
                except Exception as exc:  # as the coordinator thread does without xdist
                    swarm.result.errors.append(
                        f"the swarm coordinator failed: {type(exc).__name__}: {exc}"
                    )
                    self.stop_nodes("stop", "the planner failed")
            self.state.absorb_pending()
            self._report("planner")
        plan: dict[XdistNode, list[int]] = {node: [] for node in nodes}
        if self.stop_kind == "stop":
            return plan  # -x after a failed planner: nothing more runs
        numbered = {node_index(n.gateway.id): n for n in nodes}
        ordered = [numbered[i] for i in sorted(i for i in numbered if i is not None)]
        plain = [i for i in range(len(ids)) if i not in keys]
        for j, index in enumerate(plain if ordered else []):
            plan[ordered[j % len(ordered)]].append(index)
        owner = assign(self.selected, node_count)
        position = {wid: j for j, wid in enumerate(self.selected)}
        # Interleaved by iteration: a node reports its workers' iterations about as they end.
        iterations = sorted(
            (key[1], position[key[0]], index, key[0])
            for index, key in keys.items()
            if isinstance(key, tuple)
        )
        for _, _, index, worker in iterations:
            node = numbered.get(owner[worker])
            if node is not None:  # else its node is gone: the worker is reported lost
                plan[node].append(index)
        return plan

    def _report(self, name: str) -> None:
        """Run the planner's or the gate's item here: its verdict is this process's."""
        if self.prefix is None:
            return
        file = SwarmFile.from_parent(
            self.session, path=self.state.swarm_config.path, nodeid=self.prefix
        )
        item: OompaItem = (PlannerItem if name == "planner" else GateItem).from_parent(
            file, name=name
        )
        item.ihook.pytest_runtest_protocol(item=item, nextitem=None)

    # -- stopping and ending

    def stop_nodes(self, kind: str, reason: str) -> None:
        """Tell every node to stop its workers (the ``stop`` file), and stop the planner."""
        with self._stop_lock:
            if self.stop_kind:
                return
            self.stop_kind = kind
        if kind == "timeout":
            self.swarm.result.timed_out = reason
        atomic_write_text(self.shared_dir / STOP_FILE, json.dumps({"kind": kind, "reason": reason}))
        self.swarm.stop()

    def _timed_out(self, limit: float) -> None:
        if not self.ended:
            self.stop_nodes("timeout", f"swarm timeout after {limit:g} s")

    def _collect(self, node: XdistNode) -> None:
        output = getattr(node, "workeroutput", {}).get(OUTPUT_KEY)
        if output is not None and node.gateway.id not in self.outputs:
            self.outputs[node.gateway.id] = pickle.loads(output)

    def _wait_for_nodes(self) -> None:
        """After an interruption: every node stops its workers (told by the stop file and a
        shutdown), cleans up and hands back its output; wait for that, within reason."""
        deadline = time.monotonic() + NODE_CLEANUP_SECONDS
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.shutdown()  # a node waiting for its first items ends too
        while time.monotonic() < deadline:
            for node in self.nodes:
                self._collect(node)
            waiting = [n for n in self.nodes if n.gateway.id not in self.outputs and not _closed(n)]
            if not waiting:
                return
            time.sleep(STOP_POLL_SECONDS)

    def end(self, *, stopped: bool, interrupted: bool) -> None:
        """The run's end, from the nodes' outputs: task queue, summary.json, gate."""
        if self.ended:
            return
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
        state = self.state
        if interrupted:
            state.interrupted = True
            state.signals.shield()
        if stopped:
            self.stop_nodes("stop", "interrupted" if interrupted else "stopped")
            self._wait_for_nodes()
        for node in self.nodes:
            self._collect(node)
        reports: dict[str, WorkerReport] = {}
        iterations: list[IterationResult] = []
        errors: list[str] = []
        for output in self.outputs.values():
            reports.update((r.worker_id, r) for r in output.workers)
            iterations += output.iterations
            errors += [f"{e} (xdist node {output.node})" for e in output.errors]
            if output.stopped and not self.stop_kind:
                self.stop_nodes("stop", f"xdist node {output.node} stopped")
        owner = assign(self.selected, self.node_count or 1)
        for worker in self.selected:
            if worker in reports:
                continue
            at = f"gw{owner[worker]}"
            if at in self.outputs:  # its node was stopped before it started it
                reports[worker] = _stopped_report(state, worker, NOT_REACHED)
            else:  # its node crashed, or never came back from a stop
                reason = f"worker {worker} was lost: xdist node {at} ended without its report"
                errors.append(reason)
                report = _stopped_report(state, worker, reason)
                report.status, report.interrupted = WorkerStatus.ERROR, False
                reports[worker] = report
        self.swarm.conclude(reports.values(), iterations, errors)
        state.absorb_pending()
        if state.result is not None:
            self.config.hook.pytest_oompa_swarm_finished(result=state.result)


def _closed(node: XdistNode) -> bool:
    try:
        return node.channel.isclosed()
    except Exception:
        return True


class OompaScheduling:
    """xdist's scheduler for a swarm run: each node gets the items of the oompa workers it
    runs (see ``assign``) all at once, then its shutdown, so it runs them in one go while
    its workers run concurrently. A node that replaces a crashed one gets nothing (the
    crashed node's workers are lost with it; their remaining items are not reported)."""

    def __init__(self, config: pytest.Config, log: Any, controller: Controller) -> None:
        from xdist.workermanage import parse_tx_spec_config  # type: ignore[import-untyped]

        self.config = config
        self.log = log.oompasched if log is not None else None
        self.controller = controller
        self.numnodes = len(parse_tx_spec_config(config))
        self.node2collection: dict[XdistNode, list[str]] = {}
        self.node2pending: dict[XdistNode, list[int]] = {}
        self.collection_is_completed = False
        self._started: set[str] = set()

    @property
    def nodes(self) -> list[XdistNode]:
        return list(self.node2pending)

    @property
    def tests_finished(self) -> bool:
        return self.collection_is_completed and bool(self._started) and not self.has_pending

    @property
    def has_pending(self) -> bool:
        return any(self.node2pending.values())

    def add_node(self, node: XdistNode) -> None:
        self.node2pending[node] = []

    def add_node_collection(self, node: XdistNode, collection: Sequence[str]) -> None:
        if self.collection_is_completed:
            return  # a node replacing a crashed one
        self.node2collection[node] = list(collection)
        if len(self.node2collection) >= self.numnodes:
            self.collection_is_completed = True

    def mark_test_complete(self, node: XdistNode, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)

    def mark_test_pending(self, item: str) -> None:
        raise NotImplementedError

    def remove_pending_tests_from_node(self, node: XdistNode, indices: Sequence[int]) -> None:
        raise NotImplementedError

    def remove_node(self, node: XdistNode) -> str | None:
        pending = self.node2pending.pop(node)
        collection = self.node2collection.get(node, [])
        return collection[pending[0]] if pending and collection else None

    def schedule(self) -> None:
        if self._started:  # a replacement node came up: it gets nothing
            for node in self.nodes:
                if node.gateway.id not in self._started:
                    self._started.add(node.gateway.id)
                    node.shutdown()
            return
        nodes = [n for n in self.nodes if n in self.node2collection]
        plan: dict[XdistNode, list[int]] = {}
        if nodes and self._same_collections(nodes):
            plan = self.controller.plan(self.node2collection[nodes[0]], nodes, self.numnodes)
        for node in self.nodes:
            indices = plan.get(node, [])
            self.node2pending[node] = list(indices)
            self._started.add(node.gateway.id)
            if indices:
                node.send_runtest_some(indices)
            node.shutdown()

    def _same_collections(self, nodes: list[XdistNode]) -> bool:
        from xdist.report import report_collection_diff  # type: ignore[import-untyped]

        first = nodes[0]
        same = True
        for node in nodes[1:]:
            msg = report_collection_diff(
                self.node2collection[first],
                self.node2collection[node],
                first.gateway.id,
                node.gateway.id,
            )
            if msg:
                same = False
                report = pytest.CollectReport(
                    nodeid=node.gateway.id, outcome="failed", longrepr=msg, result=[]
                )
                self.config.hook.pytest_collectreport(report=report)
        return same


# -- a node ------------------------------------------------------------------------------------


class Node:
    """The workers one xdist node runs, all at once, from its first item on."""

    def __init__(self, state: SwarmSession, data: dict[str, Any], workerinput: Any) -> None:
        self.state = state
        self.workerid = str(workerinput.get("workerid", ""))
        self.workercount = int(workerinput.get("workercount", 1))
        self.shared_dir = Path(data["shared_dir"])
        options = state.options
        options.swarm_id = data["swarm_id"]
        options.shared_dir = self.shared_dir
        options.attached = True
        options.env = {**data.get("env", {}), **(options.env or {})}
        self.started = False
        self.loop_completed = False
        self.stop_kind = ""
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, session: pytest.Session) -> None:
        config = self.state.swarm_config
        from pytest_oompa.plugin.session import SwarmSession

        limits = SwarmSession.limits(session.items)
        selected = [w.id for w in config.workers if w.id in limits]
        index = node_index(self.workerid)
        mine = {
            wid
            for wid, at in assign(selected, self.workercount).items()
            if index is not None and at == index
        }
        limits = {wid: n for wid, n in limits.items() if wid in mine}
        if not limits:
            return
        swarm = self.state.new_swarm(limits, run_planner=False)
        self.state.signals.running()
        swarm.start()
        self._watcher = threading.Thread(target=self._watch, name="oompa-stop-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        path = self.shared_dir / STOP_FILE
        while not self._done.wait(STOP_POLL_SECONDS):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            swarm = self.state.swarm
            if swarm is None:
                return
            kind = str(data.get("kind", "stop"))
            if kind == "timeout":
                swarm.result.timed_out = str(data.get("reason", "swarm timeout"))
            self.stop_kind = kind
            swarm.stop()
            return

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> bool | None:
        if not self.started:
            self.started = True
            self.start(item.session)
        if not isinstance(item, OompaItem):
            return None
        self.state.wait_for(item.key)
        if self.stop_kind == "stop":
            # Stopped (-x, Ctrl-C or SIGTERM on the controller): like without xdist, the
            # iterations the stop cut off are not reported, and this node takes no more items.
            item.session.shouldstop = "oompa: the swarm was stopped"
            if item.key not in self.state.iteration_results:
                return True
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        self.loop_completed = not (session.shouldfail or session.shouldstop)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop this node's workers if its loop ended early (its own -x, a stop, Ctrl-C),
        wait for their cleanup, and hand their reports to the controller."""
        state, swarm = self.state, self.state.swarm
        output = NodeOutput(self.workerid, interrupted=state.interrupted)
        if swarm is not None and swarm.started:
            if not self.loop_completed and swarm.running:
                swarm.stop()
            state.drain()
            result = swarm.result
            output.workers = list(result.workers.values())
            output.iterations = list(result.iterations)
            output.errors = list(result.errors)
            output.stopped = swarm.stopping and not result.timed_out
        self._done.set()
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[OUTPUT_KEY] = pickle.dumps(output)
