"""A small builder for the bundled fake harnesses' scenarios, as Python data.

The fakes (``fake_harnesses/README.md``) read a JSON scenario: per worker, per harness or by
default, per role (worker, fix, reviewer, planner, probe, sync), one step or a list of steps indexed
by the call number. This module builds exactly that JSON, checked by the fakes' own validator::

    from pytest_oompa.offline.fake_scenario import MERGE, Scenario

    s = Scenario()
    s.worker("w0").on_call(1).claims("t1")
    s.worker("w0").on_call(2).writes("src/a.py", "A = 1\\n").commits().says(MERGE)
    s.reviewer("w0").verdicts("needs-changes", "approved")
    s.for_harness("gemini").worker().always().exits(1, stderr="quota exceeded")
    s.to_dict()
    # {"workers": {"w0": {"worker": ["default"... ]}}, ...}

Calls the builder says nothing about fall back to the next level (harness, then default, then
the fakes' built-in productive agent): ``on_call(2)`` alone leaves call 1 and calls 3, 4, …
to the fallback. ``repeat_last()`` makes the last step repeat instead, ``always()`` gives one
step for every call.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pytest_oompa.core.paths import fake_harnesses_dir
from pytest_oompa.engine.markers import DONE_SIGNAL, FOLLOWUP_SIGNAL, MERGE_SIGNAL

MERGE = MERGE_SIGNAL  # "COMPLETE_AND_READY_FOR_MERGE"
DONE = DONE_SIGNAL  # "__DONE__"
NEEDS_FOLLOWUP = FOLLOWUP_SIGNAL  # "NEEDS_FOLLOWUP" (oompa 0.7.3)
ROLES = ("worker", "fix", "reviewer", "planner", "probe", "sync")
VERDICTS = ("approved", "needs-changes", "rejected")
FALLBACK = "default"  # a list element (or a trailing one) that falls back down the chain


class ScenarioError(ValueError):
    """A scenario the fake harnesses would refuse (they exit 97 on one)."""


def claim(*task_ids: str) -> str:
    """The text of a claim signal: ``CLAIM(t1, t2)``."""
    return f"CLAIM({', '.join(task_ids)})"


def needs_followup(reason: str = "") -> str:
    """The text of a follow-up signal: ``NEEDS_FOLLOWUP: reason`` (it must open a line)."""
    return NEEDS_FOLLOWUP + (f": {reason}" if reason else "")


def verdict(value: str) -> str:
    """The text of a verdict line: ``VERDICT: NEEDS_CHANGES`` for ``"needs-changes"``."""
    _check_verdict(value)
    return "VERDICT: " + value.upper().replace("-", "_")


def _check_verdict(value: str) -> None:
    if value not in VERDICTS:
        raise ScenarioError(f"unknown verdict {value!r} (expected one of {', '.join(VERDICTS)})")


_FAKES = "_oompa_fake_validator"  # the private name the fakes' package is imported under


@functools.cache
def _fake_module(name: str) -> ModuleType:
    """A module of the fakes' package (``fake_harnesses/_fake/{name}.py``): ``scenario`` for
    its ``validate_scenario``, ``clis`` for the table of fakes.

    The fakes are not importable here by their name (``_fake`` is a top-level package only
    for the fake processes, which put ``fake_harnesses/`` on ``sys.path``): their package is
    imported privately, under ``_FAKES``, and its modules import each other relatively."""
    if _FAKES not in sys.modules:
        folder = fake_harnesses_dir() / "_fake"
        spec = importlib.util.spec_from_file_location(
            _FAKES, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None, folder
        package = importlib.util.module_from_spec(spec)
        sys.modules[_FAKES] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{_FAKES}.{name}")


def validate(data: object, where: str = "scenario") -> None:
    """Raise ``ScenarioError`` unless the fakes accept ``data`` as a scenario."""
    module = _fake_module("scenario")
    try:
        module.validate_scenario(data, where)
    except module.BadScenario as exc:
        raise ScenarioError(str(exc)) from None
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: not JSON data: {exc}") from None


class Step:
    """One scripted agent turn. Every method returns the step, so they chain; ``on_call`` and
    ``then`` move on to another call of the same role."""

    def __init__(self, role: Role, data: dict[str, Any], fallback: bool = False) -> None:
        self._role = role
        self._data = data
        self.fallback = fallback  # this call falls back down the chain (a "default" element)

    def _set(self, key: str, value: Any) -> Step:
        self.fallback = False
        self._data[key] = value
        self._role._changed()
        return self

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    # -- what the agent says ---------------------------------------------------------------
    def says(self, *text: str) -> Step:
        """Reply text (lines joined); may hold signals: ``says(MERGE)``, ``says(claim("t1"))``.
        ``{worker}``, ``{call}``, ``{session_id}``, … are substituted by the fake."""
        lines = [self._data["say"]] if self._data.get("say") else []
        return self._set("say", "\n".join([*lines, *text]))

    def claims(self, *task_ids: str) -> Step:
        """Append ``CLAIM(ids)``; no ids: the first pending task (``"auto"``)."""
        if not task_ids:
            return self._set("claim", "auto")
        return self._set("claim", task_ids[0] if len(task_ids) == 1 else list(task_ids))

    def merges(self) -> Step:
        """Append ``COMPLETE_AND_READY_FOR_MERGE``."""
        return self._set("merge", True)

    def done(self) -> Step:
        """Append ``__DONE__``."""
        return self._set("done", True)

    def needs_followup(self, reason: str = "") -> Step:
        """Open the reply with ``NEEDS_FOLLOWUP: reason`` (oompa 0.7.3: no mergeable change
        this turn; the worker keeps its claims and asks for a follow-up prompt)."""
        return self._set("needs_followup", reason if reason else True)

    def verdict(self, value: str) -> Step:
        """Append ``VERDICT: …`` (``approved``, ``needs-changes`` or ``rejected``)."""
        _check_verdict(value)
        return self._set("verdict", value)

    def builtin(self) -> Step:
        """Also do what the fake's built-in agent does for the role (after ``says``)."""
        return self._set("builtin", True)

    def resolves(self, ok: bool = True) -> Step:
        """A sync call (main no longer merges into the branch): ``True`` merges main into the
        worktree, keeps both sides of every conflict and commits the merge, as the built-in
        sync agent does; ``False`` replies that it could not resolve the conflict and leaves
        the worktree as it was, so the engine's own retry of the merge still conflicts."""
        return self._set("resolve", bool(ok))

    # -- what the agent does ---------------------------------------------------------------
    def writes(self, path: str, content: str) -> Step:
        """Write a file, relative to the agent's working directory."""
        files = dict(self._data.get("write") or {})
        files[path] = content
        return self._set("write", files)

    def deletes(self, *paths: str) -> Step:
        return self._set("delete", [*(self._data.get("delete") or []), *paths])

    def runs(self, *commands: str) -> Step:
        """Shell commands (``/bin/sh -c``, in the working directory) the agent runs with its
        shell tool, after its writes and deletes and before its commit: ``sleep 600 &``."""
        shell = self._data.get("shell") or []
        return self._set("shell", [*([shell] if isinstance(shell, str) else shell), *commands])

    def commits(self, message: str | None = None) -> Step:
        """``git add -A && git commit`` (default message ``<worker>: <role> call <n>``)."""
        return self._set("commit", message if message else True)

    def moves_task(self, task_id: str, to: str = "current", from_: str | None = None) -> Step:
        """Move ``tasks/<from>/<id>.json`` itself (what an agent must not do)."""
        move: dict[str, str] = {"id": task_id, "to": to}
        if from_:
            move["from"] = from_
        old = self._data.get("move_task")
        moves = [] if old is None else old if isinstance(old, list) else [old]
        return self._set("move_task", move if not moves else [*moves, move])

    def creates_tasks(self, *tasks: str | Mapping[str, Any]) -> Step:
        """Write task files in ``tasks/pending/``: an id, or a task object."""
        made = [{"id": t} if isinstance(t, str) else dict(t) for t in tasks]
        return self._set("create_tasks", [*(self._data.get("create_tasks") or []), *made])

    # -- how the process behaves -----------------------------------------------------------
    def exits(self, code: int, stderr: str | None = None) -> Step:
        """Exit with ``code`` (the structured output turns into the CLI's error shape)."""
        if stderr is not None:
            self._data["stderr"] = stderr
        return self._set("exit", int(code))

    def stderr(self, text: str) -> Step:
        return self._set("stderr", text)

    def signals_on_stderr(self) -> Step:
        """Print the reply on stderr instead of in the output (signals there do not count)."""
        return self._set("signals_on_stderr", True)

    def delays(self, seconds: float) -> Step:
        return self._set("delay", seconds)

    def hangs(self) -> Step:
        """Sleep until killed (a timeout or stall test)."""
        return self._set("hang", True)

    def crashes(self, signal: str = "SIGKILL") -> Step:
        """Kill itself with ``signal`` after its side effects."""
        return self._set("crash", signal)

    def malformed_output(self) -> Step:
        """Cut the structured output mid-way."""
        return self._set("output", "malformed")

    def huge_output(self, size: int) -> Step:
        """Print ``size`` bytes of filler lines before the real output."""
        return self._set("output", f"huge:{int(size)}")

    def comment(self, text: str) -> Step:
        return self._set("comment", text)

    # -- moving on -------------------------------------------------------------------------
    def on_call(self, n: int) -> Step:
        """The step for call ``n`` of the same role (and worker/harness)."""
        return self._role.on_call(n)

    def then(self) -> Step:
        """The step for the next call of the same role."""
        return self._role.then()

    def __repr__(self) -> str:
        return f"Step({self._data!r})"


class Role:
    """The scripted calls of one role in one scope (a worker, a harness, or the default)."""

    def __init__(self, scenario: Scenario, scope: tuple[str, ...], role: str) -> None:
        if role not in ROLES:
            raise ScenarioError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        self._scenario = scenario
        self._scope = scope
        self._role = role
        self._always: Step | None = None
        self._steps: dict[int, Step] = {}
        self._repeat_last = False

    def _changed(self) -> None:
        self._scenario._changed()

    def always(self) -> Step:
        """One step for every call of this role (replaces any per-call steps)."""
        self._steps.clear()
        if self._always is None:
            self._always = Step(self, {})
        self._changed()
        return self._always

    def on_call(self, n: int) -> Step:
        """The step for call ``n`` (1 = the first call of this role for this worker)."""
        if not isinstance(n, int) or n < 1:
            raise ScenarioError(f"on_call({n!r}): the call number starts at 1")
        self._always = None
        if n not in self._steps:
            self._steps[n] = Step(self, {})
            self._changed()
        return self._steps[n]

    def then(self) -> Step:
        """The step for the call after the last one scripted (call 1 if none)."""
        return self.on_call(max(self._steps, default=0) + 1)

    def steps(self, *steps: Mapping[str, Any] | None) -> Role:
        """Calls 1, 2, … as raw step objects (``None``: fall back for that call)."""
        for i, raw in enumerate(steps, 1):
            step = self.on_call(i)
            step._data.clear()
            step._data.update(copy.deepcopy(dict(raw)) if raw is not None else {})
            step.fallback = raw is None
        self._changed()
        return self

    def verdicts(self, *values: str) -> Role:
        """Reviewer calls 1, 2, … answer these verdicts; later calls fall back."""
        for i, value in enumerate(values, 1):
            self.on_call(i).verdict(value)
        return self

    def says(self, *texts: str) -> Role:
        """Calls 1, 2, … reply these texts; later calls fall back."""
        for i, text in enumerate(texts, 1):
            self.on_call(i).says(text)
        return self

    def repeat_last(self) -> Role:
        """After the last scripted call, repeat its step (the fakes' list semantics) instead
        of falling back."""
        self._repeat_last = True
        self._changed()
        return self

    def to_json_value(self) -> Any:
        if self._always is not None:
            return self._always.to_dict()
        if not self._steps:
            return None
        last = max(self._steps)
        items: list[Any] = []
        for i in range(1, last + 1):
            step = self._steps.get(i)
            items.append(FALLBACK if step is None or step.fallback else step.to_dict())
        if not self._repeat_last:
            items.append(FALLBACK)
        return items


class Scope:
    """The roles of one scope: ``Scenario.for_worker("w0")``, ``for_harness("codex")`` or
    ``default``."""

    def __init__(self, scenario: Scenario, scope: tuple[str, ...]) -> None:
        self._scenario = scenario
        self._scope = scope

    def role(self, role: str) -> Role:
        return self._scenario._role(self._scope, role)

    def worker(self) -> Role:
        return self.role("worker")

    def fix(self) -> Role:
        return self.role("fix")

    def reviewer(self) -> Role:
        return self.role("reviewer")

    def planner(self) -> Role:
        return self.role("planner")

    def probe(self) -> Role:
        return self.role("probe")

    def sync(self) -> Role:
        return self.role("sync")


class Scenario:
    """What the fake agents do, built in Python; ``to_dict()`` is the fakes' JSON format.

    ``Scenario.from_dict(data)`` / ``Scenario.load(path)`` start from existing JSON (kept
    as given, then added to by the builder)."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._base: dict[str, Any] = copy.deepcopy(dict(data or {}))
        validate(self._base, "scenario")
        self._roles: dict[tuple[tuple[str, ...], str], Role] = {}
        self._listeners: list[Callable[[Scenario], None]] = []

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        return cls(data)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """A scenario JSON file, validated."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScenarioError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{path}: $: expected an object")
        return cls(data)

    # -- scopes and roles ------------------------------------------------------------------
    @property
    def default(self) -> Scope:
        """Every worker's calls, after ``workers`` and ``harnesses`` entries."""
        return Scope(self, ("default",))

    def for_worker(self, worker_id: str) -> Scope:
        return Scope(self, ("workers", worker_id))

    def for_harness(self, name: str) -> Scope:
        """Calls made through one CLI (``claude``, ``codex``, ``opencode``, ``gemini``)."""
        fakes = _fake_module("clis").CLIS
        if name not in fakes:
            known = ", ".join(sorted(fakes))
            raise ScenarioError(f"harnesses.{name}: no fake for it (fakes: {known})")
        return Scope(self, ("harnesses", name))

    def _scope(self, worker_id: str | None) -> tuple[str, ...]:
        return ("workers", worker_id) if worker_id else ("default",)

    def worker(self, worker_id: str | None = None) -> Role:
        """Worker-role calls of ``worker_id`` (None: of every worker)."""
        return self._role(self._scope(worker_id), "worker")

    def fix(self, worker_id: str | None = None) -> Role:
        """Fix calls (after a NEEDS_CHANGES review) of ``worker_id``."""
        return self._role(self._scope(worker_id), "fix")

    def reviewer(self, worker_id: str | None = None) -> Role:
        """Reviews of ``worker_id``'s work (None: of everyone's)."""
        return self._role(self._scope(worker_id), "reviewer")

    def sync(self, worker_id: str | None = None) -> Role:
        """Sync calls (main has moved and conflicts with the branch) of ``worker_id``: the
        agent, in its session, is asked to merge main and resolve the conflicts."""
        return self._role(self._scope(worker_id), "sync")

    def planner(self) -> Role:
        return self._role(("default",), "planner")

    def probe(self) -> Role:
        """The preflight probes (``[_HIDE_TEST_] say ok``); they carry no worker id."""
        return self._role(("default",), "probe")

    def _role(self, scope: tuple[str, ...], role: str) -> Role:
        key = (scope, role)
        if key not in self._roles:
            self._roles[key] = Role(self, scope, role)
        return self._roles[key]

    # -- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = copy.deepcopy(self._base)
        for (scope, role), script in self._roles.items():
            value = script.to_json_value()
            if value is None:
                continue
            node = data
            for key in scope:
                node = node.setdefault(key, {})
            node[role] = value
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    def validate(self) -> dict[str, Any]:
        data = self.to_dict()
        validate(data, "scenario")
        return data

    def write(self, path: str | Path) -> Path:
        """Validate, then write the JSON file the fakes read (``OOMPA_FAKE_SCENARIO``)."""
        path = Path(path)
        text = json.dumps(self.validate(), indent=2) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path

    def on_change(self, listener: Callable[[Scenario], None]) -> None:
        """Call ``listener(self)`` after every change (``fake_harness`` rewrites its file)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Scenario):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scenario({self.to_dict()!r})"


def as_dict(source: Scenario | Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    """A scenario given as a builder, data, a JSON file path or JSON text, as validated data."""
    if source is None:
        return {}
    if isinstance(source, Scenario):
        return source.validate()
    if isinstance(source, Mapping):
        return Scenario(source).to_dict()
    text = str(source)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScenarioError(f"scenario JSON text: {exc}") from None
        return Scenario(data).to_dict()
    return Scenario.load(text).to_dict()
