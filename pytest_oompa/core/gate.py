"""The gate: thresholds on a swarm's outcome, for CI.

Given in the config (``"gate": {...}``) and/or on the command line
(``--oompa-gate=min_merges=3,max_errors=0``; the command line wins per threshold), evaluated
once the swarm has ended. Each threshold reports the value it measured, so a failed gate says
exactly what fell short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class GateSection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min_merges: int | None = Field(default=None, ge=0)
    min_completed: int | None = Field(default=None, ge=0)
    max_errors: int | None = Field(default=None, ge=0)
    max_rejections: int | None = Field(default=None, ge=0)
    max_rejection_rate: float | None = Field(default=None, ge=0, le=1)
    all_tasks_complete: bool = False
    no_worker_error: bool = False
    max_wall_time: float | None = Field(default=None, gt=0)
    # Spend, from each CLI's own figures (a harness that reports no cost adds none).
    max_cost_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)

    @property
    def active(self) -> bool:
        return any(v not in (None, False) for v in self.model_dump().values())


@dataclass(frozen=True)
class GateFacts:
    """What the swarm did, as the gate measures it."""

    merges: int
    completed: int
    errors: int
    rejections: int
    tasks_left: int  # pending + current at the end
    workers_in_error: tuple[str, ...]
    wall_time_s: float
    cost_usd: float = 0.0
    tokens: int = 0  # input + output
    calls_without_cost: int = 0  # calls whose CLI reported no cost: the cost is a floor

    @property
    def rejection_rate(self) -> float:
        """Rejections among the iterations that went to review and got a verdict."""
        decided = self.merges + self.rejections
        return self.rejections / decided if decided else 0.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    measured: str
    threshold: str

    def __str__(self) -> str:
        mark = "ok" if self.ok else "FAILED"
        return f"{self.name}: {self.measured} (threshold {self.threshold}) {mark}"


def passed(checks: list[Check]) -> bool:
    return all(c.ok for c in checks)


def evaluate(gate: GateSection, facts: GateFacts) -> list[Check]:
    checks = []

    def at_least(name: str, value: int, threshold: int | None) -> None:
        if threshold is not None:
            checks.append(Check(name, value >= threshold, str(value), f">= {threshold}"))

    def at_most(name: str, value: float, threshold: float | None, shown: str) -> None:
        if threshold is not None:
            checks.append(Check(name, value <= threshold, shown, f"<= {threshold:g}"))

    at_least("min_merges", facts.merges, gate.min_merges)
    at_least("min_completed", facts.completed, gate.min_completed)
    at_most("max_errors", facts.errors, gate.max_errors, str(facts.errors))
    at_most("max_rejections", facts.rejections, gate.max_rejections, str(facts.rejections))
    at_most(
        "max_rejection_rate",
        facts.rejection_rate,
        gate.max_rejection_rate,
        f"{facts.rejection_rate:.2f} ({facts.rejections} of {facts.merges + facts.rejections})",
    )
    if gate.all_tasks_complete:
        checks.append(
            Check(
                "all_tasks_complete",
                facts.tasks_left == 0,
                f"{facts.tasks_left} task(s) not complete",
                "0",
            )
        )
    if gate.no_worker_error:
        shown = ", ".join(facts.workers_in_error) or "none"
        checks.append(
            Check(
                "no_worker_error", not facts.workers_in_error, f"workers in error: {shown}", "none"
            )
        )
    at_most("max_wall_time", facts.wall_time_s, gate.max_wall_time, f"{facts.wall_time_s:.1f} s")
    if gate.max_cost_usd is not None:
        unknown = facts.calls_without_cost
        shown = f"${facts.cost_usd:.2f}" + (
            f" (+ {unknown} call(s) that reported no cost)" if unknown else ""
        )
        ok = facts.cost_usd <= gate.max_cost_usd
        checks.append(Check("max_cost_usd", ok, shown, f"<= ${gate.max_cost_usd:.2f}"))
    if gate.max_tokens is not None:
        ok = facts.tokens <= gate.max_tokens
        checks.append(
            Check("max_tokens", ok, f"{facts.tokens:,} tokens", f"<= {gate.max_tokens:,}")
        )
    return checks


class GateOptionError(ValueError):
    pass


def parse_gate_option(text: str) -> dict[str, Any]:
    """``min_merges=3,max_rejection_rate=0.2,all_tasks_complete`` -> typed values, validated
    (a bare name means true). Raises GateOptionError naming the bad part."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        field = GateSection.model_fields.get(name)
        if field is None:
            known = ", ".join(GateSection.model_fields)
            raise GateOptionError(f"unknown gate threshold {name!r} (known: {known})")
        kind = field.annotation
        try:
            if kind is bool:
                values[name] = {"": True, "true": True, "1": True, "false": False, "0": False}[
                    raw.lower() if sep else ""
                ]
            elif kind == int | None:
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        except (KeyError, ValueError):
            raise GateOptionError(f"gate threshold {name}: cannot read {raw!r}") from None
    return values


def merge(config_gate: GateSection | None, option: str | None) -> GateSection:
    """The config's gate with the command line's thresholds on top."""
    base = config_gate.model_dump() if config_gate else {}
    try:
        return GateSection.model_validate({**base, **parse_gate_option(option or "")})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise GateOptionError(f"gate threshold {err['loc'][0]}: {err['msg']}") from None
