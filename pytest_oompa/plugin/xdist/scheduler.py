"""The xdist scheduler of a swarm run (``pytest_xdist_make_scheduler``), on the controller.

xdist's own schedulers hand out items a few at a time as nodes finish them; a swarm cannot
run so: a node must get all the iterations of its workers at once to run those workers
concurrently, and the planner must have run before any of them starts. So this scheduler
waits for every node's collection, asks the controller (a ``Planner``) for the plan, sends
each node its items and its shutdown in one go, and afterwards only keeps count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest
from xdist.report import report_collection_diff  # type: ignore[import-untyped]
from xdist.workermanage import parse_tx_spec_config  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from pytest_oompa.plugin.xdist.protocol import Planner, XdistNode


class OompaScheduling:
    """xdist's scheduler for a swarm run: each node gets the items of the oompa workers it
    runs (see ``assignment.assign``) all at once, then its shutdown, so it runs them in one go
    while its workers run concurrently. A node that replaces a crashed one gets nothing (the
    crashed node's workers are lost with it; their remaining items are not reported)."""

    def __init__(self, config: pytest.Config, log: Any, planner: Planner) -> None:
        self.config = config
        self.log = log.oompasched if log is not None else None
        self.planner = planner
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
            plan = self.planner.plan(self.node2collection[nodes[0]], nodes, self.numnodes)
        for node in self.nodes:
            indices = plan.get(node, [])
            self.node2pending[node] = list(indices)
            self._started.add(node.gateway.id)
            if indices:
                node.send_runtest_some(indices)
            node.shutdown()

    def _same_collections(self, nodes: list[XdistNode]) -> bool:
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
