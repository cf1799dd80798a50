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
N}``. Both sides work it out from the same collection; the scheduler sends each node exactly
its workers' items (all at once, interleaved by iteration, so they report about in the order
they finish; plain test items first, spread round-robin), so every iteration of a worker
runs, in order, on one process, and a process runs all its workers at the same time.

What the processes share: the merge and worktree locks (files in ``.git``), and a folder the
controller makes for the run (``shared_dir``) holding who holds which task, the live
summary's lock and, when the run must stop (Ctrl-C or SIGTERM on the controller, ``-x``, the
swarm timeout), a ``stop`` file every node watches. Nodes must therefore share the machine
(``-n N``, popen; not ``--tx ssh=...``).

Where hooks run: ``pytest_oompa_iteration_finished`` on the node that ran the iteration,
``pytest_oompa_swarm_finished`` once, on the controller. A node that dies (``kill -9``, a
segfault) takes its workers with it: their remaining items are not reported, they are
``error`` in summary.json and the run exits 3 (an engine error names them).

The package keeps the two sides apart, as pytest-xdist does (``dsession.py`` /
``remote.py``, ``scheduler/``):

- ``assignment``: which node runs which worker and which items, pure functions both sides use;
- ``handoff``: what crosses between the processes (``workerinput``, ``workeroutput``, the
  stop file);
- ``protocol``: the parts of xdist's objects used here, and what the scheduler asks of the
  controller;
- ``scheduler``: the xdist scheduler of a swarm run (controller side);
- ``controller``: the run on the controller: prepared, planned, ended from the nodes' outputs;
- ``node``: the workers one node runs.

This module is what ``hooks.py`` registers (``pytest_plugins``), so pytest imports it whenever
pytest-oompa is installed, swarm or not: it holds only the hook that picks a side, and imports
the rest when a swarm runs. The xdist-only hooks live on the controller, registered only when
xdist is there (``optionalhook=True``).
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, take the controller's or a node's part (before xdist starts the nodes)."""
    # Already imported by hooks.py; the rest waits until a swarm runs.
    from pytest_oompa.plugin.stash import SESSION_KEY

    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        from pytest_oompa.plugin.xdist.handoff import INPUT_KEY
        from pytest_oompa.plugin.xdist.node import Node

        data = workerinput.get(INPUT_KEY)
        if data is None:
            raise pytest.UsageError("oompa: this xdist node got no swarm from its controller")
        state.distributed = "node"
        config.pluginmanager.register(Node(state, data, workerinput), "oompa-xdist-node")
    elif config.pluginmanager.has_plugin("dsession"):
        from pytest_oompa.plugin.xdist.controller import Controller

        state.distributed = "controller"
        controller = Controller(state, session)
        config.pluginmanager.register(controller, "oompa-xdist-controller")
        controller.prepare()
