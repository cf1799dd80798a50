"""The collected tree of a swarm: ``oompa.json`` -> ``w0`` -> ``i1`` (an oompa 0.7.0 worker's
iterations) or ``c1`` (an oompa 0.7.3 worker's cycles), plus ``planner`` and ``gate``.

Items do not run anything themselves: the swarm runs every worker at once in the background,
and each item reports the result of its iteration when it is known (see session.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oompa.core.results import CallRecord, IterationResult, Leftover, PlannerResult
from pytest_oompa.plugin.stash import SESSION_KEY

if TYPE_CHECKING:
    from pytest_oompa.core.config import SwarmConfig
    from pytest_oompa.plugin.session import SwarmSession

ARG_SHOWN = 120


class IterationFailure(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class SwarmFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        config: SwarmConfig = self.session_state.swarm_config
        if config.planner is not None:
            yield PlannerItem.from_parent(self, name="planner")
        for worker in config.workers:
            yield WorkerNode.from_parent(self, name=worker.id)
        if self.session_state.gate.active:
            yield GateItem.from_parent(self, name="gate")

    @property
    def session_state(self) -> SwarmSession:
        return self.config.stash[SESSION_KEY]


class WorkerNode(pytest.Collector):
    def collect(self) -> Iterator[pytest.Item]:
        spec = next(w for w in self.session_state.swarm_config.workers if w.id == self.name)
        for n in range(1, spec.units + 1):
            name = f"{spec.unit}{n}"  # i3, or c3 for an oompa 0.7.3 worker's cycles
            yield IterationItem.from_parent(
                self, name=name, worker_id=spec.id, iteration=n, cycle=spec.cycles_mode
            )

    @property
    def session_state(self) -> SwarmSession:
        return self.config.stash[SESSION_KEY]


class OompaItem(pytest.Item):
    key: Any

    @property
    def session_state(self) -> SwarmSession:
        return self.config.stash[SESSION_KEY]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, IterationFailure):
            return excinfo.value.text
        return super().repr_failure(excinfo)


class IterationItem(OompaItem):
    def __init__(
        self, *, worker_id: str, iteration: int, cycle: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.worker_id = worker_id
        self.iteration = iteration
        self.cycle = cycle
        self.key = (worker_id, iteration)

    def runtest(self) -> None:
        state = self.session_state
        result = state.iteration_results.get(self.key)
        if result is None:
            pytest.skip(state.unreached_reason(self.worker_id, self.iteration))
        self.user_properties.extend(_properties(state.swarm_id, result))
        leftovers = _leftover_lines(result.calls)
        _record_leftovers(self, leftovers)
        verdict = state.swarm_config.outcomes[result.outcome.value]
        if verdict == "pass":
            # A passing item shows them with -rA (or -rP); any other verdict in its text.
            shown = _attempt_lines(result) + leftovers
            if shown:
                self.add_report_section("call", "oompa", "\n".join(shown))
            return
        text = describe_failure(result, state.relative(result.artifact))
        if verdict == "skip":
            pytest.skip(text)
        if verdict == "xfail":
            pytest.xfail(text)
        raise IterationFailure(text)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        unit = "cycle" if self.cycle else "iteration"
        return self.path, None, f"{self.worker_id} {unit} {self.iteration}"


class GateItem(OompaItem):
    """The swarm-level verdict: each threshold of the gate with the value it measured."""

    key = "gate"

    def runtest(self) -> None:
        state = self.session_state
        result = state.result
        if result is None or result.interrupted:
            pytest.skip("the swarm was stopped before its end: no gate verdict")
        checks = result.gate
        self.user_properties += [(f"gate_{c.name}", c.measured) for c in checks]
        failed = [c for c in checks if not c.ok]
        if failed:
            lines = ["gate failed:", *(f"  {c}" for c in checks)]
            raise IterationFailure("\n".join(lines))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, "gate"


class PlannerItem(OompaItem):
    key = "planner"

    def runtest(self) -> None:
        state = self.session_state
        result: PlannerResult | None = state.planner_result
        if result is None:
            pytest.skip("the planner did not run (the swarm stopped first)")
        self.user_properties += [
            ("swarm_id", state.swarm_id),
            ("tasks_created", result.tasks_created),
        ]
        if not result.ran:
            pytest.skip(f"planner skipped: {result.skipped_reason}")
        leftovers = _leftover_lines([result.call] if result.call else [])
        _record_leftovers(self, leftovers)
        if result.error:
            lines = [f"planner: {result.error}", *result.notes]
            if result.call:
                lines += _call_lines(result.call)
            lines += leftovers
            raise IterationFailure("\n".join(lines))
        if leftovers:
            self.add_report_section("call", "oompa", "\n".join(leftovers))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, "planner"


def _properties(swarm_id: str, r: IterationResult) -> list[tuple[str, object]]:
    attempts: list[tuple[str, object]] = []
    if r.cycle:
        attempts = [
            ("attempts", len(r.attempts)),
            ("attempt_outcomes", ", ".join(a.outcome.value for a in r.attempts)),
        ]
    return [
        ("swarm_id", swarm_id),
        ("worker", r.worker_id),
        (r.unit, r.iteration),
        ("outcome", r.outcome.value),
        *attempts,
        *([("resumed", True)] if r.resumed else []),
        ("task_id", r.task_ids[0] if r.task_ids else ""),
        ("review_rounds", r.review_rounds),
        ("duration_ms", r.duration_ms),
        ("artifact", str(r.artifact or "")),
    ]


def _shorten(arg: str) -> str:
    if len(arg) <= ARG_SHOWN and "\n" not in arg:
        return arg
    return f"<{len(arg)} chars: {arg[:40].splitlines()[0]!r}…>"


def _indent(text: str, lines: int = 15) -> list[str]:
    tail = text.rstrip().splitlines()[-lines:]
    return [f"    {line}" for line in tail] or ["    (empty)"]


def _call_lines(call: CallRecord) -> list[str]:
    out = [
        f"  {call.role} call: {call.harness}, exit code {call.exit_code}, {call.duration_ms} ms"
        + (f" ({call.failure})" if call.failure and "exit code" not in call.failure else ""),
        f"    argv: {' '.join(_shorten(a) for a in call.argv)}",
        f"    cwd:  {call.cwd}",
    ]
    if call.stderr_tail.strip():
        out += ["    stderr (tail):", *(f"  {x}" for x in _indent(call.stderr_tail))]
    if call.failure and call.stdout_tail.strip():
        out += ["    stdout (tail):", *(f"  {x}" for x in _indent(call.stdout_tail))]
    return out


def _leftover_lines(calls: list[CallRecord]) -> list[str]:
    """What the calls left running, killed after them (empty: nothing)."""
    found: list[tuple[CallRecord, Leftover]] = [(c, x) for c in calls for x in c.leftovers]
    if not found:
        return []
    return [
        f"  left running by the agent, killed after its call ({len(found)}):",
        *(f"    {c.role} call {c.name or '?'}: {x}" for c, x in found),
    ]


def _record_leftovers(item: pytest.Item, lines: list[str]) -> None:
    """The leftovers as a property of the item, for the JUnit XML (one per line)."""
    if lines:
        item.user_properties.append(("leftovers", "\n".join(x.strip() for x in lines[1:])))


def _attempt_lines(r: IterationResult) -> list[str]:
    """A cycle's attempts, one line each (an iteration has none)."""
    if not r.attempts:
        return []
    return [f"  {r.unit} {r.iteration}: {len(r.attempts)} attempt(s)"] + [
        f"    {a}" for a in r.attempts
    ]


def describe_failure(r: IterationResult, artifact: str) -> str:
    lines = [f"{r.worker_id} {r.unit} {r.iteration}: {r.outcome.value}"]
    if r.error:
        lines.append(f"  {r.error}")
    lines += _attempt_lines(r)
    for call in r.calls:
        if call.failure or call is r.calls[-1]:
            lines += _call_lines(call)
    for review in r.reviews:
        lines.append(f"  review round {review.round}: {review.verdict}")
        lines += [f"  {x}" for x in _indent(review.output, 8)]
    if r.diff_files:
        lines.append(f"  diff files: {', '.join(r.diff_files)}")
    if r.task_ids:
        lines.append(f"  tasks held: {', '.join(r.task_ids)}")
    if r.recycled:
        lines.append(f"  recycled to pending: {', '.join(r.recycled)}")
    lines += [f"  note: {n}" for n in r.notes]
    lines += _leftover_lines(r.calls)
    lines.append(f"  artifact: {artifact}")
    return "\n".join(lines)
