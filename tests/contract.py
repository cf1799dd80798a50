"""Checks a whole run folder against our schemas and against oompa's published contract.

The contract lives beside the project (``../shared/contract/oompa-0.7-schemas``); where it is
absent the contract half is skipped and our own schemas still apply. The one documented,
deliberate difference: our writer emits the ``claimed`` outcome, which the contract forgot.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from pytest_oompa.artifacts import FORMAT_CHECKER, read_artifact

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "shared" / "contract" / "oompa-0.7-schemas"


def kind_of(run_dir: Path, path: Path) -> str:
    rel = path.relative_to(run_dir)
    if rel.parts[0] in ("iterations", "reviews"):
        return rel.parts[0][:-1]
    return path.stem


@functools.cache
def contract_validator(kind: str) -> Draft7Validator | None:
    path = CONTRACT_DIR / f"{kind}.schema.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    # The documented difference: 'claimed' is an outcome our writer emits.
    if kind == "iteration":
        schema["properties"]["outcome"]["enum"].append("claimed")
    if kind == "live-summary":
        schema["properties"]["workers"]["additionalProperties"]["properties"]["status"][
            "enum"
        ].append("claimed")
    return Draft7Validator(schema, format_checker=FORMAT_CHECKER)


def assert_run_valid(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every JSON file of the run validates against ours and the contract; returns them."""
    found = {}
    for path in sorted(run_dir.rglob("*.json")):
        kind = kind_of(run_dir, path)
        data = read_artifact(path, kind)  # ours, on read
        validator = contract_validator(kind)
        if validator is not None:
            errors = [e.message for e in validator.iter_errors(data)]
            assert not errors, f"{path} breaks the oompa contract: {errors}"
        found[path.relative_to(run_dir).as_posix()] = data
    assert "run.json" in found and "summary.json" in found, sorted(found)
    assert "live-summary.json" not in found  # deleted when summary.json is written
    return found
