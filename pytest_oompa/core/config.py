"""The swarm config file (``oompa.json``): validation and resolution.

The file is validated with pydantic models that mirror its JSON shape; every problem is
reported with the JSON path of the field and what was expected, all at once, before anything
runs. The validated file is then *resolved* into frozen specs the engine uses: worker ids
assigned (``count`` expanded), model strings split into harness/model/reasoning, prompt files
read (paths relative to the config file's folder).

A worker speaks one of two oompa versions, chosen by its keys rather than by a version field,
so that a file written for either oompa reads as its author meant: ``iterations`` (oompa 0.7.0,
one item per iteration, and what a worker with neither kind of key gets) or ``max_cycle`` and
its limits (oompa 0.7.3's cycles of attempts). Giving both in one worker is an error rather
than a silent choice. ``sync_before_merge`` (on by default in 0.7.3 mode only) applies to both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_oompa.core.gate import GateSection

REASONING_LEVELS = ("minimal", "low", "medium", "high", "xhigh")
# oompa accepts "max"; the codex CLI calls the same level "xhigh".
REASONING_ALIASES = {"max": "xhigh"}
DEFAULT_HARNESS = "codex"  # oompa's rule: a model string with no known harness prefix is codex


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` holds (json path, message) pairs."""

    headline = "invalid swarm config"

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {self.headline} ({len(problems)} problem(s)):"]
        lines += [f"  {where or '<root>'}: {message}" for where, message in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ModelSpec:
    harness: str
    model: str
    reasoning: str | None = None

    def __str__(self) -> str:
        tail = f":{self.reasoning}" if self.reasoning else ""
        return f"{self.harness}:{self.model}{tail}"


def parse_model(text: str, harnesses: Collection[str]) -> ModelSpec:
    """Split ``harness:model[:reasoning]``.

    A model id may itself contain ``:`` (``opencode:openrouter/x:free``), so only a known
    reasoning word at the very end is split off, and only for codex, the one CLI that takes it.
    """
    text = text.strip()
    if not text:
        raise ValueError("expected 'harness:model', got an empty string")
    head, sep, rest = text.partition(":")
    harness, model = (head, rest) if sep and head in harnesses else (DEFAULT_HARNESS, text)
    reasoning = None
    if harness == "codex":
        base, sep, tail = model.rpartition(":")
        word = REASONING_ALIASES.get(tail.lower(), tail.lower())
        if sep and base and word in REASONING_LEVELS:
            model, reasoning = base, word
    if not model.strip():
        raise ValueError(f"{text!r} names harness {harness!r} but no model after the ':'")
    return ModelSpec(harness, model, reasoning)


# ---------------------------------------------------------------------------------------------
# The file's shape
# ---------------------------------------------------------------------------------------------


class _Section(BaseModel):
    # strict: "5" is not an int and 1 is not a bool; extra="forbid": typos are errors.
    model_config = ConfigDict(extra="forbid", strict=True)


def _prompt_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_model(value: str, info: ValidationInfo) -> str:
    harnesses = (info.context or {}).get("harnesses", ())
    parse_model(value, harnesses)
    return value


class _AgentSection(_Section):
    model: str
    prompt: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)

    _prompts = field_validator("prompt", mode="before")(_prompt_list)
    _model = field_validator("model")(_check_model)

    @field_validator("prompt")
    @classmethod
    def _non_empty_paths(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("prompt paths must be non-empty strings")
        return value


class LimitsSection(_Section):
    """A spend limit, from each CLI's own figures: once reached, no new agent call starts.
    At the root for the whole swarm, in a worker section for each of its workers."""

    cost_usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)  # input + output tokens

    @property
    def active(self) -> bool:
        return self.cost_usd is not None or self.tokens is not None


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(value: str | int) -> int:
    """Bytes from ``2GB``, ``512MiB`` or a number of bytes."""
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(
            f"not an amount of memory: {value!r}; expected bytes or like '2GB', '512MiB'"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class RaySection(_Section):
    """What a worker's actor reserves on a node under --oompa-ray (Ray's own actor options).
    None: Ray's defaults (an actor needs a CPU to be placed and holds none while it runs)."""

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, gt=0)  # bytes; "2GB" in the file
    resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return parse_memory(value) if isinstance(value, str) else value


class RayRootSection(RaySection):
    """The root ``ray`` section: every worker's reservation (a worker's own section wins)
    and how many agents may run at once over the whole cluster."""

    max_concurrent_agents: int | None = Field(default=None, ge=1)


# oompa 0.7.3's worker keys: any one of them makes the worker a 0.7.3 one (cycles).
CYCLE_KEYS = ("max_cycle", "max_resumes", "max_needs_followups", "max_wait_for_tasks")
WorkerMode = Literal["0.7.0", "0.7.3"]


class WorkerSection(_AgentSection):
    iterations: int = Field(default=10, ge=1)  # 0.7.0: one item per iteration
    # 0.7.3, upstream's defaults: cycles to complete (one item each), attempts in one cycle,
    # NEEDS_FOLLOWUP continuations in one cycle, seconds an executor waits for work.
    max_cycle: int = Field(default=10, ge=1)
    max_resumes: int = Field(default=7, ge=1)
    max_needs_followups: int = Field(default=1, ge=0)
    max_wait_for_tasks: float = Field(default=600, ge=0)
    count: int = Field(default=1, ge=1)
    can_plan: bool = True
    wait_between: float = Field(default=0, ge=0)
    limits: LimitsSection = Field(default_factory=LimitsSection)  # each worker's own
    ray: RaySection | None = None  # its actor's reservation under --oompa-ray

    @property
    def mode(self) -> WorkerMode:
        return "0.7.3" if self.model_fields_set.intersection(CYCLE_KEYS) else "0.7.0"


def _mode_problems(data: Any) -> list[tuple[str, str]]:
    """Workers that ask for both versions at once. Read from the file's data, not the
    validated sections, so that they are reported with every other problem of the file."""
    workers = data.get("workers") if isinstance(data, dict) else None
    problems = []
    for i, worker in enumerate(workers if isinstance(workers, list) else []):
        if not isinstance(worker, dict) or "iterations" not in worker:
            continue
        if "max_cycle" in worker:
            problems.append(
                (
                    f"workers[{i}]",
                    "iterations and max_cycle exclude each other: iterations is oompa 0.7.0's "
                    "(one item per iteration), max_cycle is oompa 0.7.3's (one item per cycle of "
                    "up to max_resumes attempts); give one of them",
                )
            )
        for key in CYCLE_KEYS[1:]:
            if key in worker:
                problems.append(
                    (
                        f"workers[{i}].{key}",
                        f"{key} is an oompa 0.7.3 cycle limit and this worker gives iterations "
                        "(oompa 0.7.0, no cycles): drop one of them",
                    )
                )
    return problems


class ReviewerSection(_AgentSection):
    pass


class PlannerSection(_AgentSection):
    max_pending: int = Field(default=10, ge=1)


class FakeHarnessSection(_Section):
    scenario: str | None = None


PYTEST_OUTCOMES = ("pass", "fail", "skip", "xfail")
ITERATION_OUTCOMES = (
    "merged",
    "rejected",
    "error",
    "done",
    "executor-done",
    "no-changes",
    "working",
    "claimed",
    # oompa 0.7.3's cycle outcomes
    "merge-failed",
    "sync-failed",
    "stuck",
    "interrupted",
    "needs-followup",
)
FAILED_OUTCOMES = ("rejected", "error", "merge-failed", "sync-failed", "stuck", "needs-followup")
# An interrupted cycle was cut short by the swarm's stop: like an iteration the stop cut off
# (which has no outcome at all), it is skipped, not failed.
DEFAULT_OUTCOMES = {
    o: "fail" if o in FAILED_OUTCOMES else "skip" if o == "interrupted" else "pass"
    for o in ITERATION_OUTCOMES
}


def check_outcomes(value: dict[str, str]) -> dict[str, str]:
    for outcome, verdict in value.items():
        if outcome not in ITERATION_OUTCOMES:
            known = ", ".join(ITERATION_OUTCOMES)
            raise ValueError(f"unknown outcome {outcome!r}; expected one of: {known}")
        if verdict not in PYTEST_OUTCOMES:
            known = ", ".join(PYTEST_OUTCOMES)
            raise ValueError(f"outcome {outcome!r}: {verdict!r} is not one of {known}")
    return value


def parse_outcomes(text: str) -> dict[str, str]:
    """``rejected=xfail,working=fail`` from the command line, checked like the config's."""
    pairs = (part.partition("=") for part in text.split(",") if part.strip())
    return check_outcomes({k.strip(): v.strip() for k, _, v in pairs})


# How each harness call runs: as it is, or under bubblewrap (engine/sandbox.py).
Sandbox = Literal["none", "bwrap"]
SANDBOXES: tuple[Sandbox, ...] = ("none", "bwrap")


class TimeoutsSection(_Section):
    call: float | None = Field(default=None, gt=0)  # any harness call (an agent's own wins)
    iteration: float | None = Field(default=None, gt=0)  # all the calls of one iteration
    swarm: float | None = Field(default=None, gt=0)  # the whole run
    stall: float | None = Field(default=None, gt=0)  # a call printing nothing for this long


class RetriesSection(_Section):
    """Retries of a harness call that failed for an infrastructure reason (it could not start,
    it was killed by a signal it did not ask for, or it exited with one of its CLI's transient
    codes): never for the model's own failure."""

    attempts: int = Field(default=0, ge=0, le=10)
    backoff: float = Field(default=2.0, ge=0)


class EnvSection(_Section):
    """Environment of the harness processes beyond what each harness needs."""

    # Names (or prefixes ending in '*') of variables to pass through from this environment.
    pass_: list[str] = Field(default_factory=list, alias="pass")
    set: dict[str, str] = Field(default_factory=dict)


class SwarmFileSection(_Section):
    """The whole ``oompa.json``: its root section."""

    workers: list[WorkerSection] = Field(min_length=1)
    reviewer: ReviewerSection | None = None
    review_model: str | None = None
    planner: PlannerSection | None = None
    fake_harnesses: FakeHarnessSection | None = None
    probe: bool = True
    executor_wait: float = Field(default=60, ge=0)
    gate: GateSection | None = None
    outcomes: dict[str, str] = Field(default_factory=dict)
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection)
    retries: RetriesSection = Field(default_factory=RetriesSection)
    env: EnvSection = Field(default_factory=EnvSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    sandbox: Sandbox = "none"
    ray: RayRootSection = Field(default_factory=RayRootSection)  # used under --oompa-ray
    # oompa 0.7.3: merge main into the branch (the agent resolving conflicts) before the merge.
    # None: each worker's mode decides (on for 0.7.3 workers, off for 0.7.0 ones, as today).
    sync_before_merge: bool | None = None

    _outcomes = field_validator("outcomes")(check_outcomes)

    @field_validator("fake_harnesses", mode="before")
    @classmethod
    def _bool_form(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    _review_model = field_validator("review_model")(_check_model)

    @model_validator(mode="after")
    def _one_reviewer_form(self) -> SwarmFileSection:
        if self.reviewer is not None and self.review_model is not None:
            raise ValueError("give either 'reviewer' or the legacy 'review_model', not both")
        return self


# ---------------------------------------------------------------------------------------------
# The resolved config the engine runs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSpec:
    """Who answers a role: harness, model and the concatenated prompt files."""

    harness: str
    model: str
    reasoning: str | None = None
    prompt_files: tuple[Path, ...] = ()
    prompt_text: str = ""
    timeout: float | None = None


@dataclass(frozen=True)
class CycleLimits:
    """An oompa 0.7.3 worker's limits, upstream's defaults (SPEC-upstream-0.7.3.md)."""

    max_cycle: int = 10  # cycles (units of work ending in a terminal outcome) to complete
    max_resumes: int = 7  # attempts one cycle may take
    max_needs_followups: int = 1  # NEEDS_FOLLOWUP continuations one cycle allows
    max_wait_for_tasks: float = 600  # seconds an executor waits for work


@dataclass(frozen=True)
class WorkerSpec:
    """One worker as the engine runs it.

    ``mode`` says which oompa it follows: "0.7.0" runs ``iterations`` iterations; "0.7.3"
    runs ``cycles.max_cycle`` cycles and has no iterations (``iterations`` is 0, so that
    nothing counting iterations runs it as a 0.7.0 worker). ``cycles`` holds upstream's
    defaults for a 0.7.0 worker, unused. ``section`` is the index of the worker's entry in
    the file's ``workers`` list (the copies of a ``count`` share it), for messages.
    """

    id: str
    agent: AgentSpec
    iterations: int = 10
    can_plan: bool = True
    wait_between: float = 0
    limits: LimitsSection = field(default_factory=LimitsSection)
    mode: WorkerMode = "0.7.0"
    cycles: CycleLimits = field(default_factory=CycleLimits)
    sync_before_merge: bool = False
    section: int = 0
    ray: RaySection = field(default_factory=RaySection)  # its actor's reservation (--oompa-ray)

    @property
    def cycles_mode(self) -> bool:
        return self.mode == "0.7.3"

    @property
    def units(self) -> int:
        """How many items the worker has: its iterations, or its cycles in 0.7.3 mode."""
        return self.cycles.max_cycle if self.cycles_mode else self.iterations

    @property
    def unit(self) -> str:
        """The items' and files' letter: ``i`` (iteration) or ``c`` (cycle)."""
        return "c" if self.cycles_mode else "i"

    @property
    def unit_name(self) -> str:
        return "cycle" if self.cycles_mode else "iteration"


@dataclass(frozen=True)
class PlannerSpec:
    agent: AgentSpec
    max_pending: int = 10


@dataclass(frozen=True)
class SwarmConfig:
    path: Path
    workers: tuple[WorkerSpec, ...]
    reviewer: AgentSpec | None = None
    planner: PlannerSpec | None = None
    fake_scenario: Path | None = None
    use_fake_harnesses: bool = False
    probe: bool = True
    executor_wait: float = 60
    gate: GateSection | None = None
    outcomes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_OUTCOMES))
    timeouts: TimeoutsSection = field(default_factory=TimeoutsSection)
    retries: RetriesSection = field(default_factory=RetriesSection)
    env: EnvSection = field(default_factory=EnvSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    sandbox: Sandbox = "none"
    ray: RayRootSection = field(default_factory=RayRootSection)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def agents(self) -> Iterable[AgentSpec]:
        yield from (w.agent for w in self.workers)
        if self.reviewer:
            yield self.reviewer
        if self.planner:
            yield self.planner.agent


def json_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Any, fields_by_loc: dict[str, list[str]]) -> str:
    kind, msg = str(error["type"]), str(error["msg"])
    if kind == "extra_forbidden":
        parent = json_path(error["loc"][:-1])
        allowed = fields_by_loc.get(parent)
        return "unknown field" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required field is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in error and kind not in ("model_type", "list_type") and kind != "value_error":
        return f"{msg} (got {json.dumps(error['input'])[:80]})"
    return msg


def _section_fields(loc_parent: str) -> list[str] | None:
    # The innermost section: "workers[0].limits" is a limits section, "workers[0]" a worker.
    base = loc_parent.split(".")[-1].split("[")[0] if loc_parent else ""
    sections: dict[str, type[BaseModel]] = {
        "": SwarmFileSection,
        "workers": WorkerSection,
        "reviewer": ReviewerSection,
        "planner": PlannerSection,
        "fake_harnesses": FakeHarnessSection,
        "gate": GateSection,
        "timeouts": TimeoutsSection,
        "retries": RetriesSection,
        "env": EnvSection,
        "limits": LimitsSection,
        "ray": RayRootSection if loc_parent == "ray" else RaySection,
    }
    model = sections.get(base)
    return list(model.model_fields) if model else None


def validate_file(data: Any, source: str, harnesses: Collection[str]) -> SwarmFileSection:
    problems = []
    parsed = None
    try:
        parsed = SwarmFileSection.model_validate(data, context={"harnesses": tuple(harnesses)})
    except ValidationError as exc:
        for err in exc.errors():
            where = json_path(err["loc"])
            parent = json_path(err["loc"][:-1])
            fields = _section_fields(parent) or []
            problems.append((where, _describe(err, {parent: fields})))
    problems += _mode_problems(data)
    if problems or parsed is None:
        raise ConfigError(source, problems)
    return parsed


def _read_prompt(base: Path, rel: str) -> tuple[Path, str | None, str | None]:
    """(resolved path, text, problem): exactly one of text and problem is None."""
    path = (base / rel).resolve()
    try:
        return path, path.read_text(encoding="utf-8"), None
    except OSError as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror
        return path, None, f"prompt file {rel!r} {reason} (looked in {base})"


def _prompt_problems(data: Any, base: Path) -> list[tuple[str, str]]:
    """Prompt files named in a file that failed validation: reported in the same breath."""
    if not isinstance(data, dict):
        return []
    workers = data["workers"] if isinstance(data.get("workers"), list) else []
    sections = [(f"workers[{i}]", w) for i, w in enumerate(workers)]
    sections += [(key, data.get(key)) for key in ("reviewer", "planner")]
    problems = []
    for where, section in sections:
        prompt = section.get("prompt") if isinstance(section, dict) else None
        paths = _prompt_list(prompt) if isinstance(prompt, (str, list)) else []
        for i, rel in enumerate(paths):
            if isinstance(rel, str) and rel.strip():
                problem = _read_prompt(base, rel)[2]
                if problem:
                    problems.append((f"{where}.prompt[{i}]", problem))
    return problems


def _resolve_agent(
    section: _AgentSection,
    where: str,
    base: Path,
    harnesses: Collection[str],
    problems: list[tuple[str, str]],
) -> AgentSpec:
    spec = parse_model(section.model, harnesses)
    files, texts = [], []
    for i, rel in enumerate(section.prompt):
        path, text, problem = _read_prompt(base, rel)
        if problem:
            problems.append((f"{where}.prompt[{i}]", problem))
        else:
            files.append(path)
            texts.append(text or "")
    return AgentSpec(
        harness=spec.harness,
        model=spec.model,
        reasoning=spec.reasoning,
        prompt_files=tuple(files),
        prompt_text="\n\n".join(t.strip("\n") for t in texts),
        timeout=section.timeout,
    )


def resolve(data: Any, path: Path, harnesses: Collection[str]) -> SwarmConfig:
    """Validate ``data`` (the parsed file) and resolve it against the config's folder."""
    base = path.parent.resolve()
    try:
        parsed = validate_file(data, str(path), harnesses)
    except ConfigError as exc:
        raise ConfigError(str(path), exc.problems + _prompt_problems(data, base)) from None
    problems: list[tuple[str, str]] = []
    workers: list[WorkerSpec] = []
    for i, section in enumerate(parsed.workers):
        agent = _resolve_agent(section, f"workers[{i}]", base, harnesses, problems)
        mode = section.mode
        sync = parsed.sync_before_merge
        for _ in range(section.count):
            workers.append(
                WorkerSpec(
                    id=f"w{len(workers)}",
                    agent=agent,
                    iterations=section.iterations if mode == "0.7.0" else 0,
                    can_plan=section.can_plan,
                    wait_between=section.wait_between,
                    limits=section.limits,
                    mode=mode,
                    cycles=CycleLimits(
                        max_cycle=section.max_cycle,
                        max_resumes=section.max_resumes,
                        max_needs_followups=section.max_needs_followups,
                        max_wait_for_tasks=section.max_wait_for_tasks,
                    ),
                    sync_before_merge=(mode == "0.7.3") if sync is None else sync,
                    section=i,
                    ray=section.ray or parsed.ray,
                )
            )
    reviewer = None
    if parsed.reviewer is not None:
        reviewer = _resolve_agent(parsed.reviewer, "reviewer", base, harnesses, problems)
    elif parsed.review_model is not None:
        m = parse_model(parsed.review_model, harnesses)
        reviewer = AgentSpec(harness=m.harness, model=m.model, reasoning=m.reasoning)
    planner = None
    if parsed.planner is not None:
        agent = _resolve_agent(parsed.planner, "planner", base, harnesses, problems)
        planner = PlannerSpec(agent=agent, max_pending=parsed.planner.max_pending)
    scenario = None
    if parsed.fake_harnesses is not None and parsed.fake_harnesses.scenario:
        scenario = (base / parsed.fake_harnesses.scenario).resolve()
        if not scenario.is_file():
            problems.append(
                ("fake_harnesses.scenario", f"scenario file {str(scenario)!r} not found")
            )
    if problems:
        raise ConfigError(str(path), problems)
    return SwarmConfig(
        path=path.resolve(),
        workers=tuple(workers),
        reviewer=reviewer,
        planner=planner,
        fake_scenario=scenario,
        use_fake_harnesses=parsed.fake_harnesses is not None,
        probe=parsed.probe,
        executor_wait=parsed.executor_wait,
        gate=parsed.gate,
        outcomes={**DEFAULT_OUTCOMES, **parsed.outcomes},
        timeouts=parsed.timeouts,
        retries=parsed.retries,
        env=parsed.env,
        limits=parsed.limits,
        sandbox=parsed.sandbox,
        ray=parsed.ray,
        raw=data,
    )


def load_config(path: Path, harnesses: Collection[str]) -> SwarmConfig:
    """Read, validate and resolve a swarm config file; raise ConfigError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ConfigError(str(path), [("", f"not valid JSON at {where}: {exc.msg}")]) from None
    return resolve(data, path, harnesses)
