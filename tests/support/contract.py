"""Checks a run folder against our schemas and against oompa's published contracts.

Every file under the runs folder must validate against a schema in ``schemas/``
(``pytest_oompa.runs.files`` knows which). The five 0.7.0 artifacts must also validate against
oompa 0.7's contract (``../shared/contract/oompa-0.7-schemas``) and the four 0.7.3 event files
against oompa 0.7.3's (``../shared/contract/oompa-0.7.3-schemas``); each is skipped where
absent. The deliberate differences: our writer emits the ``claimed`` outcome (0.7.0), and a
harness a plugin registered is recorded under its own name (both).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from pytest_oompa.runs.artifacts import CONTRACT_073_KINDS, CONTRACT_KINDS, FORMAT_CHECKER
from pytest_oompa.runs.files import check_tree, kind_for

SHARED = Path(__file__).resolve().parents[3] / "shared" / "contract"
CONTRACT_DIR = SHARED / "oompa-0.7-schemas"
CONTRACT_073_DIR = SHARED / "oompa-0.7.3-schemas"
#: our kind -> the 0.7.3 contract file it follows
CONTRACT_073_FILES = {
    "started": "started",
    "cycle": "cycle",
    "cycle-review": "review",
    "stopped": "stopped",
}


@functools.cache
def contract_validator(kind: str) -> Draft7Validator | None:
    path = CONTRACT_DIR / f"{kind}.schema.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    if kind == "iteration":
        schema["properties"]["outcome"]["enum"].append("claimed")
    if kind == "live-summary":
        worker = schema["properties"]["workers"]["additionalProperties"]
        worker["properties"]["status"]["enum"].append("claimed")
    return Draft7Validator(widen_harness(schema), format_checker=FORMAT_CHECKER)


def contract_073_schema(kind: str) -> dict[str, Any] | None:
    """The published 0.7.3 schema our ``kind`` follows, as published; None when absent."""
    path = CONTRACT_073_DIR / f"{CONTRACT_073_FILES[kind]}.schema.json"
    if not path.exists():
        return None
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@functools.cache
def contract_073_validator(kind: str, *, widened: bool = True) -> Draft7Validator | None:
    """The 0.7.3 contract for ``kind``; ``widened``: with our one deliberate difference (any
    registered harness name)."""
    schema = contract_073_schema(kind)
    if schema is None:
        return None
    return Draft7Validator(
        widen_harness(schema) if widened else schema, format_checker=FORMAT_CHECKER
    )


def widen_harness(node: Any) -> Any:
    """Our deliberate difference in both contracts: a harness a plugin registered is recorded
    under its own name (0.7.0's enum and 0.7.3's oneOf list the built-in CLIs)."""
    if isinstance(node, dict):
        return {
            k: {"type": "string", "minLength": 1}
            if k == "harness" and isinstance(v, dict) and ("enum" in v or "oneOf" in v)
            else widen_harness(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [widen_harness(x) for x in node]
    return node


def assert_runs_valid(runs_dir: Path) -> dict[str, Any]:
    """Every file under ``runs_dir`` validates (ours, and the contract where it applies)."""
    found, problems = check_tree(runs_dir)
    assert not problems, problems
    for rel, data in found.items():
        kind, _ = kind_for(rel)  # type: ignore[misc]
        validator = None
        if kind in CONTRACT_KINDS:
            validator = contract_validator(kind)
        elif kind in CONTRACT_073_KINDS:
            validator = contract_073_validator(kind)
        if validator is not None:
            errors = [e.message for e in validator.iter_errors(data)]
            assert not errors, f"{rel} breaks the oompa contract: {errors}"
    return found


def assert_run_valid(run_dir: Path) -> dict[str, Any]:
    """One run's files, valid, keyed by path relative to the run folder; a finished run has
    run.json and summary.json and no live-summary.json."""
    found = assert_runs_valid(run_dir.parent)
    prefix = f"{run_dir.name}/"
    mine = {k[len(prefix) :]: v for k, v in found.items() if k.startswith(prefix)}
    assert "run.json" in mine and "summary.json" in mine, sorted(mine)
    assert "live-summary.json" not in mine  # deleted when summary.json is written
    return mine


def assert_events_valid(run_dir: Path, *, reason: str = "completed") -> dict[str, Any]:
    """One run's 0.7.3 event files, valid (ours and the 0.7.3 contract), keyed by path relative
    to the run folder, for a run that ended: started.json and stopped.json with ``reason`` are
    there and every worker state file reads stopped. (A cycle may still read working or claimed:
    in 0.7.0 mode each iteration is a cycle of one attempt, whatever its outcome.)"""
    found = assert_runs_valid(run_dir.parent)
    prefix = f"{run_dir.name}/"
    mine = {k[len(prefix) :]: v for k, v in found.items() if k.startswith(prefix)}
    assert "started.json" in mine and "stopped.json" in mine, sorted(mine)
    assert mine["stopped.json"]["reason"] == reason, mine["stopped.json"]
    states = {k: v for k, v in mine.items() if k.startswith("workers/")}
    assert all(v["status"] == "stopped" for v in states.values()), states
    return mine
