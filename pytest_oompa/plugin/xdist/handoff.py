"""What crosses between the xdist controller and its nodes, and how.

Three ways, each one-directional: the controller puts the run's id, its shared folder and
the environment the nodes need in each node's ``workerinput``; it writes a ``stop`` file in
the shared folder when the run must stop, which a thread of every node watches; each node
pickles a ``NodeOutput`` into its ``workeroutput`` at its session's end. Both sides import
the names from here so they cannot disagree on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_oompa.core.results import IterationResult, WorkerReport

INPUT_KEY = "oompa"  # node.workerinput[INPUT_KEY]: what the controller hands each node
OUTPUT_KEY = "oompa"  # config.workeroutput[OUTPUT_KEY]: what each node hands back
STOP_FILE = "stop"  # in the run's shared folder: {"kind": "stop" | "timeout", "reason": ...}
STOP_POLL_SECONDS = 0.1


@dataclass
class NodeOutput:
    """What a node hands back to the controller (pickled into ``workeroutput``)."""

    node: str
    workers: list[WorkerReport] = field(default_factory=list)
    iterations: list[IterationResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # its workers were stopped (not a normal end)
    interrupted: bool = False  # by Ctrl-C / SIGTERM in the node itself
