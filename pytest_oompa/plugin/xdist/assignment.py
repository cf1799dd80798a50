"""Which xdist node runs which oompa worker, and which collected items each node is sent.

Pure functions of the collection, the config and the node names, with no process or xdist
object behind them: the controller and every node compute the same assignment from the same
collection, so nothing has to be sent to agree on it, and it can be checked without
starting a process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_oompa.plugin.xdist.protocol import XdistNode


def node_index(workerid: str) -> int | None:
    """``gw3`` -> 3 (None for a name xdist did not give its first nodes)."""
    match = re.fullmatch(r"gw([0-9]+)", workerid)
    return int(match[1]) if match else None


def assign(worker_ids: Sequence[str], node_count: int) -> dict[str, int]:
    """Worker id -> the index of the node that runs it: the j-th selected worker (config
    order) goes to node j mod N. The controller and every node compute the same."""
    return {wid: j % node_count for j, wid in enumerate(worker_ids)}


def parse_collection(
    ids: Sequence[str], workers: dict[str, int], expected_prefix: str | None
) -> tuple[str | None, dict[int, Any]]:
    """(the swarm file's node id, {collection index: item key}) from a node's collection.

    Keys are those of the oompa items: ``"planner"``, ``"gate"``, ``(worker_id, n)``.
    ``workers`` maps each configured worker id to its item count (iterations ``i3``, or an
    oompa 0.7.3 worker's cycles ``c3``).
    """
    found: dict[str, dict[int, Any]] = {}
    for index, nodeid in enumerate(ids):
        head, _, last = nodeid.rpartition("::")
        if not head:
            continue
        if last in ("planner", "gate"):
            found.setdefault(head, {})[index] = last
            continue
        match = re.fullmatch(r"[ic]([1-9][0-9]*)", last)
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


def distribute(
    item_count: int,
    keys: dict[int, Any],
    nodes: Sequence[XdistNode],
    selected: Sequence[str],
    node_count: int,
) -> dict[XdistNode, list[int]]:
    """The collected items (indices below ``item_count``) each node runs.

    ``keys`` are the oompa items (from ``parse_collection``); the planner's and the gate's are
    run by the controller, so they go to no node. Plain test items come first, spread
    round-robin; then each node gets the iterations of the ``selected`` workers ``assign``
    gives it. A worker whose node is not among ``nodes`` (gone) goes nowhere: it is reported
    lost.
    """
    plan: dict[XdistNode, list[int]] = {node: [] for node in nodes}
    numbered = {node_index(n.gateway.id): n for n in nodes}
    ordered = [numbered[i] for i in sorted(i for i in numbered if i is not None)]
    plain = [i for i in range(item_count) if i not in keys]
    for j, index in enumerate(plain if ordered else []):
        plan[ordered[j % len(ordered)]].append(index)
    owner = assign(selected, node_count)
    position = {wid: j for j, wid in enumerate(selected)}
    # Interleaved by iteration: a node reports its workers' iterations about as they end.
    iterations = sorted(
        (key[1], position[key[0]], index, key[0])
        for index, key in keys.items()
        if isinstance(key, tuple)
    )
    for _, _, index, worker in iterations:
        node = numbered.get(owner[worker])
        if node is not None:
            plan[node].append(index)
    return plan
