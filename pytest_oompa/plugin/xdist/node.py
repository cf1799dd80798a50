"""One xdist node's share of a swarm run: the oompa workers it runs, all at once in threads,
from its first item on.

The node's swarm is *attached* to the controller's run (no preflight, planner, run.json or
summary: the controller did or does those); which workers are its own it works out from its
collection with ``assignment.assign``, as the controller does. Each of its items waits for its
iteration's result and reports it; a thread watches the run's ``stop`` file; at the session's
end the node hands its workers' reports back in ``workeroutput``.

Imported only when a swarm runs on an xdist node (see ``__init__``); what the controller does
is in ``controller.py``, and the two share only ``handoff.py`` and ``assignment.py``.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa.plugin.items import OompaItem
from pytest_oompa.plugin.session import SwarmSession
from pytest_oompa.plugin.xdist.assignment import assign, node_index
from pytest_oompa.plugin.xdist.handoff import OUTPUT_KEY, STOP_FILE, STOP_POLL_SECONDS, NodeOutput
from pytest_oompa.runs.resume import ResumePlan, finished_results, read_states


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
        resumed = data.get("resume")
        if resumed:  # the controller checked the run; its workers' resume points are here
            run_dir = Path(resumed)
            states = read_states(run_dir, state.swarm_config)
            options.resume = ResumePlan(data["swarm_id"], run_dir, "resumed", states, {})
        self.started = False
        self.loop_completed = False
        self.stop_kind = ""
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, session: pytest.Session) -> None:
        config = self.state.swarm_config
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
        plan = self.state.options.resume
        if plan is not None:
            for spec in config.workers:
                if spec.id in limits:  # its finished units are reported again, not run
                    done = plan.finished(spec.id)
                    earlier = finished_results(plan.run_dir, spec.id, spec.cycles_mode, done)
                    self.state.report_earlier(earlier)
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
