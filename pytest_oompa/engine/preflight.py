"""Checks before anything runs: the repo, the harness binaries (and the sandbox they run in),
what the spend limits can see, and one probe per model."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_oompa.core.config import AgentSpec, SwarmConfig
from pytest_oompa.core.results import CallRecord
from pytest_oompa.engine.calls import HarnessCaller
from pytest_oompa.engine.git import MAIN, Repo
from pytest_oompa.engine.prompts import PROBE_PROMPT
from pytest_oompa.engine.spend import SpendLimitReached, SpendMeter
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import SessionMode

PROBE_TIMEOUT = 30.0
VERSION_TIMEOUT = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# What each bundled parser reads from its CLI's output: a spend limit sees a harness's calls
# only through these figures. Keyed by parser, so a plugin's harness that reuses one is known.
PARSER_FIGURES: dict[str, frozenset[str]] = {
    "claude-json": frozenset({"cost", "tokens"}),
    "opencode-ndjson": frozenset({"cost", "tokens"}),
    "codex-jsonl": frozenset({"tokens"}),
    "gemini-json": frozenset({"tokens"}),
    "text": frozenset(),
}


class PreflightError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("swarm preflight failed:\n" + "\n".join(f"  - {p}" for p in problems))


def check_repo(repo: Repo, ignored: tuple[str, ...] = ()) -> list[str]:
    if not repo.root.is_dir():
        return [f"{repo.root} does not exist"]
    if not repo.is_repo():
        return [f"{repo.root} is not the top of a git repository"]
    if not repo.has_branch(MAIN):
        return [f"{repo.root} has no '{MAIN}' branch"]
    problems = []
    branch = repo.current_branch()
    if branch != MAIN:
        problems.append(
            f"{repo.root} must have '{MAIN}' checked out (it is on {branch or 'a detached HEAD'})"
        )
    dirty = [p for p in repo.dirty_paths() if not p.startswith(ignored)]
    if dirty:
        shown = "\n      ".join(dirty[:20]) + ("\n      …" if len(dirty) > 20 else "")
        problems.append(f"the working tree of {repo.root} is not clean:\n      {shown}")
    return problems


def check_harnesses(config: SwarmConfig, caller: HarnessCaller) -> list[str]:
    """The harness binaries and the sandbox they would run in. Also notes on the caller's
    spend meter which limits each harness can honour (never a problem: a limit still holds
    for the harnesses that report what it counts)."""
    problems = []
    for harness in sorted({a.harness for a in config.agents()}):
        if caller.binary(harness) is None:
            binary = caller.registry.get(harness).binary
            problems.append(f"harness {harness!r}: '{binary}' is not on PATH")
    if caller.sandbox is not None:
        problem = caller.sandbox.problem()
        if problem:
            problems.append(problem)
    caller.spend.notes = spend_coverage(config, caller.registry, caller.spend)
    return problems


def spend_coverage(config: SwarmConfig, registry: HarnessRegistry, meter: SpendMeter) -> list[str]:
    """Which limits each harness of the swarm can honour: a cost limit sees nothing of a CLI
    that reports no cost (its calls count by tokens), a token limit nothing of one that
    reports no tokens."""
    limits = [meter.limits, *meter.worker_limits.values()]
    wanted = {"cost"} if any(x.cost_usd is not None for x in limits) else set()
    wanted |= {"tokens"} if any(x.tokens is not None for x in limits) else set()
    notes = []
    for harness in sorted({a.harness for a in config.agents()}) if wanted else ():
        parser = registry.get(harness).parser_name
        figures = PARSER_FIGURES.get(parser)
        if figures is None:
            notes.append(
                f"harness {harness!r} ({parser} parser): cannot tell whether it reports cost or "
                "tokens; the spend limits count whatever its records carry"
            )
            continue
        missing = wanted - figures
        if not missing:
            continue
        said = f"harness {harness!r} ({parser} parser) reports "
        if not figures:
            notes.append(said + "neither cost nor tokens: no spend limit sees its calls")
        elif "cost" in missing:
            notes.append(
                said + "no cost: a cost limit does not see its calls (counted by tokens only)"
            )
        else:
            notes.append(said + "no tokens: a token limit does not see its calls")
    return notes


def probe_models(
    config: SwarmConfig, caller: HarnessCaller, repo: Repo, records: list[CallRecord]
) -> list[str]:
    """Ask each distinct harness:model to 'say ok', all at once; list every failure. The
    calls' records are appended to ``records``."""
    distinct: dict[tuple[str, str, str | None], AgentSpec] = {}
    for agent in config.agents():
        distinct.setdefault((agent.harness, agent.model, agent.reasoning), agent)

    def probe(agent: AgentSpec) -> str | None:
        slug = _UNSAFE.sub("_", f"{agent.harness}-{agent.model}")
        try:
            call = caller.call(
                agent,
                role="probe",
                prompt=PROBE_PROMPT,
                cwd=repo.root,
                session=SessionMode.none(),
                timeout=PROBE_TIMEOUT,
                name=f"preflight-probe-{slug}",
            )
        except SpendLimitReached as exc:
            return f"probe of {agent.harness}:{agent.model} not run: {exc.reason}"
        records.append(call.record)
        if not call.failure:
            return None
        tail = (call.proc.stderr or call.proc.stdout).strip().splitlines()[-3:]
        detail = f": {' / '.join(tail)}" if tail else ""
        return f"probe of {agent.harness}:{agent.model} failed ({call.failure}){detail}"

    with ThreadPoolExecutor(max_workers=max(1, len(distinct))) as pool:
        problems = [p for p in pool.map(probe, distinct.values()) if p]
    # The probes alone used up a limit: the swarm could start no call, so it does not start.
    reached = caller.spend.reached()
    if reached and not problems:
        problems.append(f"the preflight probes reached the {reached[0]}")
    return problems


def harness_versions(config: SwarmConfig, caller: HarnessCaller) -> dict[str, str | None]:
    """``<binary> --version`` of each harness the swarm uses (None where it cannot say)."""
    names = sorted({a.harness for a in config.agents()})

    def version(name: str) -> str | None:
        binary = caller.binary(name)
        if binary is None:
            return None
        spec = caller.registry.get(name)
        proc = caller.supervisor.run(
            [binary, *spec.version_args],
            cwd=Path.cwd(),
            env=caller.env_for(name),
            timeout=VERSION_TIMEOUT,
        )
        lines = proc.stdout.strip().splitlines()
        return lines[0][:200] if proc.exit_code == 0 and lines else None

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(version, names), strict=True))
