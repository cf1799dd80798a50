"""Replay, the engine's side: replies in the recorded order, and what was replayed.

``ReplayOrder`` is the ``CallObserver`` a replay installs in the engine (``--oompa-replay``);
``expect`` tells the fakes which workers will run, ``unreplayed`` and ``replayed`` read what
the fakes did. All of them share the fakes' ``ReplayState`` (``playback``), so the processes
of one replay (pytest-xdist) see one order.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .matching import call_key, call_slot, infer_role, prompt_tag
from .playback import ReplayState

if TYPE_CHECKING:
    from pytest_oompa.core.config import AgentSpec
    from pytest_oompa.core.results import CallRecord
    from pytest_oompa.harnesses.spec import HarnessCommand


#: How long a reply waits for the replies recorded as coming before it (ReplayOrder).
ORDER_TIMEOUT = 10.0
#: ... and how long after the engine got them: it acts on a reply (claims) right after.
ORDER_SETTLE = 0.03


class ReplayOrder:
    """A ``CallObserver`` for a replay (``--oompa-replay`` installs it): the engine gets the
    calls' replies in the order it got them when recorded.

    The fakes answer at once, so left alone the calls of workers running side by side would
    end in any order, and what the engine decides from that order (which of two workers
    claiming one task gets it, which merge comes first) could go the other way. ``after``
    (which runs before the engine acts on a reply) waits until every call recorded as ending
    before this one has been handed to the engine, ORDER_SETTLE ago: the calls this replay has
    begun, and the worker calls it is going to make (``expect``: the selected workers and
    iterations; all when not said). Bounded by ``timeout``, so a replay that diverged never
    hangs on it. Thread-safe; processes of one replay share ``state_dir`` (pytest-xdist)."""

    def __init__(
        self, cassette: Mapping[str, Any], state_dir: Path | str, timeout: float = ORDER_TIMEOUT
    ) -> None:
        self.calls = {c["key"]: c for c in cassette["calls"]}
        self.state = ReplayState(state_dir)
        self.timeout = timeout
        self._counters: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def before(
        self,
        *,
        name: str,
        role: str,
        agent: AgentSpec,
        command: HarnessCommand,
        prompt: str,
        cwd: Path,
    ) -> object:
        _, worker = prompt_tag(prompt)
        count = (call_slot(worker, agent.harness, agent.model), infer_role(prompt, worker))
        with self._lock:
            n = self._counters[count] = self._counters.get(count, 0) + 1
        key = call_key(*count, n)
        with self.state.locked() as data:
            data["begun"].append(key)
        return key

    def after(self, token: object, *, record: CallRecord, stdout: str, stderr: str) -> None:
        if not isinstance(token, str):
            return
        self.wait(token)
        with self.state.locked() as data:
            data["handed"][token] = time.time()

    def wait(self, key: str) -> None:
        end = (self.calls.get(key) or {}).get("ended-at")
        if not end:
            return
        earlier = {k: c for k, c in self.calls.items() if c.get("ended-at") and c["ended-at"] < end}
        deadline = time.monotonic() + self.timeout
        while earlier and time.monotonic() < deadline:
            data = self.state.read()
            handed: dict[str, float] = data.get("handed") or {}
            begun = set(data.get("begun") or [])
            expected = data.get("expected")
            waiting = [
                k
                for k, c in earlier.items()
                if (k in begun or _will_run(c, expected))
                and (k not in handed or time.time() - handed[k] < ORDER_SETTLE)
            ]
            if not waiting:
                return
            time.sleep(0.005)


_ITERATION = re.compile(r"-i(\d+)-")


def _will_run(call: Mapping[str, Any], expected: Mapping[str, int] | None) -> bool:
    """Whether this replay is going to make ``call``: a worker's call, of a selected worker
    and iteration. (Probes and the planner come before every worker: done, or not made.)"""
    worker = call.get("worker")
    if not worker or worker == "planner" or call.get("role") == "probe":
        return False
    if expected is None:
        return True
    m = _ITERATION.search(str(call.get("name") or ""))
    return worker in expected and (m is None or int(m.group(1)) <= int(expected[worker]))


def expect(state_dir: Path | str, limits: Mapping[str, int] | None) -> None:
    """Tell a replay which workers will run, up to which iteration (None: all)."""
    with ReplayState(state_dir).locked() as data:
        data["expected"] = None if limits is None else dict(limits)


def unreplayed(cassette: Mapping[str, Any], state_dir: Path | str) -> list[str]:
    """The recorded calls no fake asked for (in recording order)."""
    used = set(ReplayState(state_dir).read().get("used", []))
    return [c["key"] for c in cassette["calls"] if c["key"] not in used]


def replayed(state_dir: Path | str) -> list[str]:
    return list(ReplayState(state_dir).read().get("used", []))
