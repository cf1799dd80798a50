"""The swarm run on the xdist controller, the process you started (xdist collects nothing
there).

It holds the run: it prepares it once at session start (preflight, ``run.json``, tracking,
``started.json`` with this process's pid, which dashboards signal to stop the run),
gives each node what it needs (``pytest_configure_node``), makes the scheduler, and when the
nodes' collections are in runs the planner and reports the ``planner`` item itself. It stops
the nodes (the ``stop`` file) on ``-x``, Ctrl-C, SIGTERM or the swarm timeout, and ends the
run from what the nodes hand back (``pytest_testnodedown``, as pytest-cov does): the task
queue's commit, ``summary.json``, the gate and its item, ``pytest_oompa_swarm_finished``.

Imported only when a swarm runs under xdist (see ``__init__``), so it imports the engine's
side freely; what a node does is in ``node.py``, and the two share only ``handoff.py`` and
``assignment.py``.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import tempfile
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from xdist.dsession import Interrupted as StoppedByXdist  # type: ignore[import-untyped]

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.core.results import IterationResult, WorkerMetrics, WorkerReport, WorkerStatus
from pytest_oompa.plugin.items import GateItem, OompaItem, PlannerItem, SwarmFile
from pytest_oompa.plugin.xdist.assignment import assign, distribute, parse_collection
from pytest_oompa.plugin.xdist.handoff import (
    INPUT_KEY,
    OUTPUT_KEY,
    STOP_FILE,
    STOP_POLL_SECONDS,
    NodeOutput,
)
from pytest_oompa.plugin.xdist.scheduler import OompaScheduling

if TYPE_CHECKING:
    from pytest_oompa.engine.swarm import Swarm
    from pytest_oompa.plugin.session import SwarmSession
    from pytest_oompa.plugin.xdist.protocol import XdistNode

# How long a stopped controller waits for the nodes to stop their agents, recycle their tasks
# and remove their worktrees before it writes the summary without them.
NODE_CLEANUP_SECONDS = 120.0
NOT_REACHED = "the swarm was stopped before this iteration finished"


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
        # This process is started.json's pid (written while preparing): SIGTERM, how dashboards
        # stop a run, must end it cleanly from then on.
        state.signals.running()
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
            # a resumed run: the nodes continue its workers from their resume points
            "resume": str(swarm.run_dir) if swarm.options.resume is not None else None,
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
        workers = {w.id: w.units for w in config.workers}
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
        if self.stop_kind == "stop":
            return {node: [] for node in nodes}  # -x after a failed planner: nothing more runs
        return distribute(len(ids), keys, nodes, self.selected, node_count)

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


def _stopped_report(session: SwarmSession, worker_id: str, reason: str) -> WorkerReport:
    spec = next(w for w in session.swarm_config.workers if w.id == worker_id)
    return WorkerReport(
        worker_id=worker_id,
        harness=spec.agent.harness,
        model=spec.agent.model,
        status=WorkerStatus.IDLE,
        iterations=spec.units,
        cycles=spec.cycles_mode,
        iterations_run=0,
        metrics=WorkerMetrics(),
        stop_reason=reason,
        interrupted=True,
    )
