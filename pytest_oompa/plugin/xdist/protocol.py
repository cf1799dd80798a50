"""The parts of pytest-xdist's objects this package uses, and what its scheduler asks of the
controller, as Protocols.

xdist ships no type hints, so its ``WorkerController`` is described here by the few members
used. ``Planner`` is the controller as the scheduler sees it: the scheduler calls the
controller's ``plan`` and the controller makes the scheduler, and this Protocol is what
lets ``scheduler.py`` depend on neither ``controller.py`` nor a cycle with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


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


class Planner(Protocol):
    """What the scheduler needs from the controller once every node's collection is in."""

    def plan(
        self, ids: Sequence[str], nodes: Sequence[XdistNode], node_count: int
    ) -> dict[XdistNode, list[int]]:
        """Run the planner, then say which collected items (indices into ``ids``) each node
        runs."""
        ...
