"""Checks a run folder against our schemas and against oompa's published contract.

Every file under the runs folder must validate against a schema in ``schemas/``
(``pytest_oompa.runs.files`` knows which). The five contract artifacts must also validate
against oompa's contract (``../shared/contract/oompa-0.7-schemas``; skipped where absent),
with the one documented, deliberate difference: our writer emits the ``claimed`` outcome.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from pytest_oompa.runs.artifacts import CONTRACT_KINDS, FORMAT_CHECKER
from pytest_oompa.runs.files import check_tree, kind_for

CONTRACT_DIR = Path(__file__).resolve().parents[3] / "shared" / "contract" / "oompa-0.7-schemas"


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


def widen_harness(node: Any) -> Any:
    """Our second deliberate difference: a harness a plugin registered is recorded under its
    own name (the contract's enum lists the four built-in CLIs)."""
    if isinstance(node, dict):
        return {
            k: {"type": "string", "minLength": 1}
            if k == "harness" and isinstance(v, dict) and "enum" in v
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
        validator = contract_validator(kind) if kind in CONTRACT_KINDS else None
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
