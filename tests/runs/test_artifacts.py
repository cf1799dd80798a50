"""Run artifacts: our schemas vs the oompa 0.7 contract, validation, atomic writes, the store."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import stat
import threading
import time
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from support.contract import widen_harness

from pytest_oompa.core import atomic, paths
from pytest_oompa.core.atomic import atomic_write_json, atomic_write_text
from pytest_oompa.runs import artifacts
from pytest_oompa.runs.artifacts import (
    ARTIFACT_KINDS,
    CONTRACT_KINDS,
    FORMAT_CHECKER,
    ArtifactError,
    ArtifactStore,
    read_artifact,
    schemas_dir,
    utc_now_iso,
    validate_artifact,
    validator,
)

REPO = Path(__file__).resolve().parents[2]
CONTRACT_DIR = Path(__file__).resolve().parents[3] / "shared" / "contract" / "oompa-0.7-schemas"
SWARM = "swarm-20250131-1a2b"
TS = "2025-01-31T12:34:56.789Z"

# Where each schema has the enum we deliberately widened with "claimed" (the only difference).
CLAIMED_ENUMS: dict[str, tuple[str, ...]] = {
    "iteration": ("properties", "outcome"),
    "live-summary": ("properties", "workers", "additionalProperties", "properties", "status"),
}
# Keys that only annotate or identify a schema; they never change what validates.
ANNOTATIONS = {
    "$id",
    "title",
    "description",
    "$comment",
    "x-oompa-schema-version",
    "x-oompa-contract",
}


# --------------------------------------------------------------------------- samples


def worker_metrics(**overrides: Any) -> dict[str, Any]:
    base = {"merges": 2, "rejections": 1, "errors": 0, "recycled": 1, "review-rounds-total": 4}
    return {**base, **overrides}


def live_entry(iteration: int = 3, status: str = "merged", **overrides: Any) -> dict[str, Any]:
    return {**worker_metrics(), "iteration": iteration, "status": status, **overrides}


SAMPLES: dict[str, dict[str, Any]] = {
    "run": {
        "swarm-id": SWARM,
        "started-at": "2025-01-31T12:00:00.000Z",
        "config-file": "oompa.json",
        "workers": [
            {
                "id": "w0",
                "harness": "claude",
                "model": "claude-sonnet-4",
                "reasoning": None,
                "iterations": 5,
                "can-plan": False,
                "prompts": ["prompts/worker.md"],
            },
            {
                "id": "w1",
                "harness": "codex",
                "model": "gpt-5-codex",
                "reasoning": "high",
                "iterations": 3,
                "can-plan": True,
                "prompts": ["prompts/worker.md", "prompts/tests.md"],
            },
        ],
        "planner": {
            "harness": "claude",
            "model": "claude-opus-4",
            "prompts": ["prompts/planner.md"],
            "max-pending": 4,
        },
        "reviewer": None,
    },
    "iteration": {
        "worker-id": "w0",
        "iteration": 2,
        "outcome": "merged",
        "timestamp": TS,
        "duration-ms": 84_213,
        "task-id": "task-007",
        "recycled-tasks": [],
        "error-snippet": None,
        "review-rounds": 2,
        "metrics": worker_metrics(),
    },
    "review": {
        "worker-id": "w0",
        "iteration": 2,
        "round": 1,
        "verdict": "needs-changes",
        "timestamp": "2025-01-31T12:30:00+01:00",
        "output": "VERDICT: NEEDS_CHANGES\nThe new test does not cover the empty input. ✗",
        "diff-files": ["src/app.py", "tests/test_app.py"],
    },
    "live-summary": {
        "swarm-id": SWARM,
        "updated-at": TS,
        "workers": {
            "w0": {**live_entry(2), "updated-at": TS},
            "w1": {**live_entry(1, "no-changes"), "updated-at": "2025-01-31T12:20:00.5Z"},
        },
    },
    "summary": {
        "swarm-id": SWARM,
        "finished-at": "2025-01-31T13:00:00.000Z",
        "total-workers": 2,
        "total-completed": 6,
        "total-iterations": 8,
        "status-counts": {"done": 1, "exhausted": 1},
        "workers": [
            {
                "id": "w0",
                "harness": "claude",
                "model": "claude-sonnet-4",
                "status": "done",
                "completed": 4,
                "iterations": 5,
                "merges": 3,
                "claims": 4,
                "rejections": 1,
                "errors": 0,
                "recycled": 1,
                "review-rounds-total": 6,
            },
            {
                "id": "w1",
                "harness": "codex",
                "model": "gpt-5-codex",
                "status": "exhausted",
                "completed": 2,
                "iterations": 3,
                "merges": 1,
                "claims": 2,
                "rejections": 0,
                "errors": 1,
                "recycled": 0,
                "review-rounds-total": 2,
            },
        ],
    },
}


def sample(kind: str) -> dict[str, Any]:
    return copy.deepcopy(SAMPLES[kind])


# --------------------------------------------------------------------------- contract helpers


@pytest.fixture(scope="module")
def contract() -> dict[str, dict[str, Any]]:
    if not CONTRACT_DIR.is_dir():
        pytest.skip(f"oompa 0.7 contract schemas not found at {CONTRACT_DIR}")
    return {
        kind: json.loads((CONTRACT_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
        for kind in CONTRACT_KINDS
    }


def with_claimed(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The contract schema with our deliberate widenings applied: the ``claimed`` outcome,
    and any registered harness name where the contract lists the four built-in ones."""
    schema = copy.deepcopy(schema)
    if kind in CLAIMED_ENUMS:
        node = schema
        for key in CLAIMED_ENUMS[kind]:
            node = node[key]
        node["enum"] = [*node["enum"], "claimed"]
    return widen_harness(schema)


def strip_annotations(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            key: strip_annotations(value, in_properties=(key == "properties" and not in_properties))
            for key, value in node.items()
            if in_properties or key not in ANNOTATIONS
        }
    if isinstance(node, list):
        return [strip_annotations(item) for item in node]
    return node


def contract_validator(schema: dict[str, Any]) -> Draft7Validator:
    return Draft7Validator(schema, format_checker=FORMAT_CHECKER)


def ours(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (schemas_dir() / f"{kind}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the schemas


def test_schemas_dir_has_every_kind() -> None:
    package = Path(paths.__file__).resolve().parents[1]
    assert schemas_dir() in (package / "schemas", REPO / "schemas")
    assert sorted(p.name for p in schemas_dir().glob("*.schema.json")) == sorted(
        f"{kind}.schema.json" for kind in ARTIFACT_KINDS
    )


def test_schemas_dir_prefers_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pytest_oompa"
    monkeypatch.setattr(paths, "_PACKAGE", package)
    for folder in (package / "schemas", tmp_path / "schemas"):
        folder.mkdir(parents=True)
    assert schemas_dir() == package / "schemas"  # installed: setuptools maps schemas/ there
    (package / "schemas").rmdir()
    assert schemas_dir() == tmp_path / "schemas"  # source checkout
    (tmp_path / "schemas").rmdir()
    with pytest.raises(FileNotFoundError, match="schemas' folder is missing"):
        schemas_dir()


@pytest.mark.parametrize("kind", ARTIFACT_KINDS)
def test_our_schema_header(kind: str) -> None:
    schema = ours(kind)
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == f"https://pytest-oompa.invalid/schemas/{kind}.schema.json"
    assert schema["x-oompa-schema-version"] == 1


@pytest.mark.parametrize("kind", CONTRACT_KINDS)
def test_only_documented_difference_from_contract(
    kind: str, contract: dict[str, dict[str, Any]]
) -> None:
    assert strip_annotations(ours(kind)) == strip_annotations(with_claimed(kind, contract[kind]))


def test_validator_is_compiled_once() -> None:
    assert validator("iteration") is validator("iteration")
    assert validator("iteration").format_checker is FORMAT_CHECKER


def test_unknown_kind() -> None:
    with pytest.raises(ArtifactError, match="unknown artifact kind 'runs'"):
        validate_artifact("runs", {})


@pytest.mark.parametrize("kind", CONTRACT_KINDS)
def test_sample_validates_against_ours_and_contract(
    kind: str, contract: dict[str, dict[str, Any]]
) -> None:
    validate_artifact(kind, sample(kind))
    contract_validator(contract[kind]).validate(sample(kind))


@pytest.mark.parametrize("kind", sorted(CLAIMED_ENUMS))
def test_claimed_is_ours_and_the_only_contract_failure(
    kind: str, contract: dict[str, dict[str, Any]]
) -> None:
    data = sample(kind)
    if kind == "iteration":
        data["outcome"] = "claimed"
        where = ["outcome"]
    else:
        data["workers"]["w1"]["status"] = "claimed"
        where = ["workers", "w1", "status"]
    validate_artifact(kind, data)
    errors = list(contract_validator(contract[kind]).iter_errors(data))
    assert [(e.validator, list(e.absolute_path), e.instance) for e in errors] == [
        ("enum", where, "claimed")
    ]


def test_model_must_stay_a_string(contract: dict[str, dict[str, Any]]) -> None:
    data = sample("run")
    data["workers"][0]["model"] = None
    assert not contract_validator(contract["run"]).is_valid(data)
    with pytest.raises(ArtifactError, match=r"\$\.workers\[0\]\.model"):
        validate_artifact("run", data)


# --------------------------------------------------------------------------- date-time


@pytest.mark.parametrize(
    "value",
    [
        TS,
        "2025-01-31T12:34:56Z",
        "2025-01-31t12:34:56.123456789z",
        "2024-02-29T23:59:59-00:00",
        "2025-01-31T12:34:56+05:30",
    ],
)
def test_date_time_accepted(value: str) -> None:
    assert FORMAT_CHECKER.conforms(value, "date-time")


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-31",
        "2025-01-31T12:34:56",  # no offset
        "2025-01-31 12:34:56Z",  # space separator
        "2025-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2025-01-31T24:00:00Z",
        "2025-01-31T12:60:00Z",
        "2025-01-31T12:34:60Z",
        "2025-01-31T12:34:56.Z",
        "2025-01-31T12:34:56+24:00",
        "2025-01-31T12:34:56+0530",
        "٢٠٢٥-01-31T12:34:56Z",  # non-ASCII digits
        "2025-01-31T12:34:56Z\n",
        "yesterday",
    ],
)
def test_date_time_refused(value: str) -> None:
    assert not FORMAT_CHECKER.conforms(value, "date-time")
    data = sample("iteration")
    data["timestamp"] = value
    with pytest.raises(ArtifactError, match=r"at \$\.timestamp"):
        validate_artifact("iteration", data)


def test_utc_now_iso() -> None:
    now = utc_now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert FORMAT_CHECKER.conforms(now, "date-time")


# ---------------------------------------------------------------- ours == contract + claimed

WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.text(max_size=3),
    st.lists(st.integers(0, 1), max_size=1),
    st.dictionaries(st.sampled_from(["id", "x"]), st.integers(0, 1), max_size=1),
)
BAD_DATE_TIMES = st.sampled_from(
    ["2025-01-31", "2025-01-31T12:34:56", "2025-02-30T00:00:00Z", "2025-01-31 12:34:56Z", "now"]
)
GOOD_DATE_TIMES = st.builds(
    lambda dt, sep, frac, z: dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + z,
    st.datetimes(timezones=st.just(timezone.utc)),
    st.sampled_from(["T", "t"]),
    st.sampled_from(["", ".5", ".123", ".123456789"]),
    st.sampled_from(["Z", "z", "+00:00", "-07:30"]),
)


def rarely(
    common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], noisy: bool
) -> st.SearchStrategy[Any]:
    """Noisy: ``common`` about 19 times in 20, else ``rare``. Clean: always ``common``."""
    return st.integers(0, 19).flatmap(lambda n: rare if n == 0 else common) if noisy else common


def strategy_for(schema: dict[str, Any], noisy: bool) -> st.SearchStrategy[Any]:
    """Values for a schema node, built from its field types.

    Clean values follow the types, enums, minimums and formats; noisy ones now and then break one
    of them (a wrong type, an unknown enum value, a bad date-time, a missing or unexpected key).
    """
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    options: list[st.SearchStrategy[Any]] = []
    for type_ in types:
        if type_ == "object":
            options.append(object_strategy(schema, noisy))
        elif type_ == "string" and "enum" in schema:
            extra = ["claimed", "bogus"] if noisy else []
            options.append(st.sampled_from([*schema["enum"], *extra]))
        elif type_ == "string" and schema.get("format") == "date-time":
            options.append(rarely(GOOD_DATE_TIMES, BAD_DATE_TIMES, noisy))
        elif type_ == "string":
            options.append(st.text(max_size=6))
        elif type_ == "integer":
            low = schema.get("minimum", 0)
            # 1.0 is an integer to JSON Schema; True is not.
            odd = st.sampled_from([low - 1, float(low), True])
            options.append(rarely(st.integers(low, low + 50), odd, noisy))
        elif type_ == "boolean":
            options.append(st.booleans())
        elif type_ == "null":
            options.append(st.none())
        elif type_ == "array":
            options.append(st.lists(strategy_for(schema["items"], noisy), max_size=3))
        else:  # pragma: no cover - the schemas use no other type
            raise AssertionError(type_)
    return rarely(st.one_of(options), WRONG_TYPE, noisy)


def object_strategy(schema: dict[str, Any], noisy: bool) -> st.SearchStrategy[dict[str, Any]]:
    properties = {
        name: strategy_for(sub, noisy) for name, sub in schema.get("properties", {}).items()
    }
    required = set(schema.get("required", []))
    extra = schema.get("additionalProperties")
    extra_values = strategy_for(extra, noisy) if isinstance(extra, dict) else None

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, values in properties.items():
            if name in required:
                keep = not noisy or draw(st.integers(0, 29)) != 0
            else:
                keep = draw(st.booleans())
            if keep:
                out[name] = draw(values)
        if extra_values is not None:
            keys = st.sampled_from(["w0", "w1", "done", "exhausted", "x"])
            out.update(draw(st.dictionaries(keys, extra_values, max_size=3)))
        elif noisy and draw(st.integers(0, 19)) == 0:
            out[draw(st.sampled_from(["extra", "x-oompa", "model", "id"]))] = draw(WRONG_TYPE)
        return out

    return build()


@pytest.mark.parametrize("kind", CONTRACT_KINDS)
def test_ours_accepts_exactly_contract_plus_claimed(
    kind: str, contract: dict[str, dict[str, Any]]
) -> None:
    reference = contract_validator(with_claimed(kind, contract[kind]))
    mine = validator(kind)
    seen = {True: 0, False: 0}

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.one_of(object_strategy(ours(kind), False), object_strategy(ours(kind), True)))
    def check(data: dict[str, Any]) -> None:
        expected = reference.is_valid(data)
        seen[expected] += 1
        assert mine.is_valid(data) == expected

    check()
    assert seen[True] and seen[False], seen  # both sides of the "iff" were exercised


# --------------------------------------------------------------------------- invalid data


@pytest.mark.parametrize(
    ("kind", "mutate", "json_path"),
    [
        ("iteration", lambda d: d.pop("duration-ms"), "$.duration-ms"),
        ("iteration", lambda d: d.update(outcome="exploded"), "$.outcome"),
        ("iteration", lambda d: d.update(surprise=1), "$.surprise"),
        ("iteration", lambda d: d["metrics"].pop("merges"), "$.metrics.merges"),
        ("iteration", lambda d: d.update(iteration=0), "$.iteration"),
        ("review", lambda d: d.update(round=True), "$.round"),
        ("review", lambda d: d["diff-files"].append(3), "$.diff-files[2]"),
        ("run", lambda d: d["workers"][1].update(harness=""), "$.workers[1].harness"),
        ("run", lambda d: d.update(reviewer={"harness": "claude"}), "$.reviewer.model"),
        ("summary", lambda d: d["status-counts"].update(done=-1), "$.status-counts.done"),
        ("summary", lambda d: d["workers"][0].update(extra=1), "$.workers[0].extra"),
        ("live-summary", lambda d: d["workers"]["w0"].pop("updated-at"), "$.workers.w0.updated-at"),
    ],
)
def test_invalid_artifact_names_the_field(kind: str, mutate: Any, json_path: str) -> None:
    data = sample(kind)
    mutate(data)
    with pytest.raises(ArtifactError) as info:
        validate_artifact(kind, data, where="some/file.json")
    message = str(info.value)
    assert message.startswith(f"some/file.json: {kind} artifact is invalid at {json_path}: ")
    assert info.value.json_path == json_path
    assert info.value.kind == kind


@pytest.mark.parametrize("kind", ["run", "iteration", "review", "summary"])
def test_store_refuses_invalid_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    data = sample(kind)
    data["unexpected"] = True
    write = getattr(store, f"write_{kind}")
    with pytest.raises(ArtifactError, match=rf"{kind} artifact is invalid at \$\.unexpected"):
        write(data)
    assert tree(tmp_path) == []


def test_store_error_names_the_intended_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    data = sample("iteration")
    data["outcome"] = "exploded"
    with pytest.raises(ArtifactError) as info:
        store.write_iteration(data)
    assert str(info.value).startswith(f"{store.run_dir / 'iterations' / 'w0-i2.json'}: iteration")


def test_store_refuses_another_swarm_id(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    data = sample("run")
    data["swarm-id"] = "other"
    with pytest.raises(ArtifactError, match=r"\$\.swarm-id: 'other' is not this store's"):
        store.write_run(data)
    assert tree(tmp_path) == []


# --------------------------------------------------------------------------- the store


def test_store_layout_and_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "runs", SWARM)
    run_dir = tmp_path / "runs" / SWARM
    assert store.run_dir == run_dir
    review = sample("review")
    paths = {
        "run": store.write_run(sample("run")),
        "iteration": store.write_iteration(sample("iteration")),
        "review": store.write_review(review),
        "live-summary": store.update_live_summary("w0", live_entry(2)),
    }
    assert paths == {
        "run": run_dir / "run.json",
        "iteration": run_dir / "iterations" / "w0-i2.json",
        "review": run_dir / "reviews" / "w0-i2-r1.json",
        "live-summary": run_dir / "live-summary.json",
    }
    for kind, path in paths.items():
        assert path == store.path_for(kind, **_ids(kind))
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and text.startswith('{\n  "')
        if kind != "live-summary":
            assert read_artifact(path, kind) == SAMPLES[kind]
    assert "✗" in paths["review"].read_text(encoding="utf-8")  # ensure_ascii=False


def _ids(kind: str) -> dict[str, Any]:
    return {
        "iteration": {"worker_id": "w0", "iteration": 2},
        "review": {"worker_id": "w0", "iteration": 2, "round": 1},
    }.get(kind, {})


def test_store_writes_what_it_validated(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    data = sample("iteration")
    data["recycled-tasks"] = ("task-1", "task-2")  # a tuple is written (and checked) as an array
    path = store.write_iteration(data)
    assert read_artifact(path, "iteration")["recycled-tasks"] == ["task-1", "task-2"]


def test_path_for_needs_the_right_ids(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    assert store.path_for("summary") == tmp_path / SWARM / "summary.json"
    with pytest.raises(ArtifactError, match="needs ids"):
        store.path_for("iteration", worker_id="w0")
    with pytest.raises(ArtifactError, match="needs ids"):
        store.path_for("run", worker_id="w0")
    with pytest.raises(ArtifactError, match=r"invalid round 0 at \$\.round"):
        store.path_for("review", worker_id="w0", iteration=1, round=0)
    with pytest.raises(ArtifactError, match="invalid iteration True"):
        store.path_for("iteration", worker_id="w0", iteration=True)


BAD_IDS = ["../x", "a/b", "..", ".", "", "a\\b", "w0\n", "/abs", "w 0", "wø", 7, None]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_unsafe_worker_ids_are_refused(tmp_path: Path, bad: Any) -> None:
    store = ArtifactStore(tmp_path / "runs", SWARM)
    iteration, review = sample("iteration"), sample("review")
    iteration["worker-id"] = review["worker-id"] = bad
    with pytest.raises(ArtifactError, match="worker"):
        store.write_iteration(iteration)
    with pytest.raises(ArtifactError, match="worker"):
        store.write_review(review)
    with pytest.raises(ArtifactError, match="invalid worker id"):
        store.update_live_summary(bad, live_entry())
    with pytest.raises(ArtifactError, match="invalid worker id"):
        store.path_for("iteration", worker_id=bad, iteration=1)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("bad", ["..", "a/b", "../runs2", ""])
def test_unsafe_swarm_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ArtifactError, match="invalid swarm id"):
        ArtifactStore(tmp_path, bad)


def test_live_summary_merges_entries(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    store.update_live_summary("w0", live_entry(1, "working"))
    store.update_live_summary("w1", live_entry(1, "claimed", **{"updated-at": TS}))
    path = store.update_live_summary("w0", {"iteration": 2, "status": "merged", "merges": 3})
    data = read_artifact(path, "live-summary")
    assert data["swarm-id"] == SWARM
    assert data["workers"]["w0"] == {
        **live_entry(2, "merged", merges=3),
        "updated-at": data["workers"]["w0"]["updated-at"],
    }
    assert data["workers"]["w1"]["updated-at"] == TS
    assert data["workers"]["w0"]["updated-at"] == data["updated-at"]


def test_invalid_live_update_changes_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    path = store.update_live_summary("w0", live_entry(1))
    before = path.read_bytes()
    with pytest.raises(ArtifactError, match=r"at \$\.workers\.w1\.status"):
        store.update_live_summary("w1", live_entry(1, "exploded"))
    with pytest.raises(ArtifactError, match=r"cannot be serialized at \$\.workers\.w0\.merges"):
        store.update_live_summary("w0", {"merges": object()})
    assert path.read_bytes() == before
    store.update_live_summary("w2", live_entry(1))
    assert sorted(read_artifact(path, "live-summary")["workers"]) == ["w0", "w2"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_summary_ends_live_updates(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    live = store.update_live_summary("w0", live_entry())
    assert live.exists()
    summary = store.write_summary(sample("summary"))
    assert summary == tmp_path / SWARM / "summary.json"
    assert not live.exists()
    assert store.update_live_summary("w0", live_entry(4)) == live
    assert not live.exists()
    assert read_artifact(summary, "summary") == SAMPLES["summary"]


def test_invalid_summary_keeps_live_summary(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    live = store.update_live_summary("w0", live_entry())
    with pytest.raises(ArtifactError, match=r"\$\.total-workers"):
        store.write_summary({**sample("summary"), "total-workers": -1})
    assert live.exists() and not (tmp_path / SWARM / "summary.json").exists()
    store.update_live_summary("w1", live_entry())
    assert sorted(read_artifact(live, "live-summary")["workers"]) == ["w0", "w1"]


def test_concurrent_live_updates_lose_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, SWARM)
    path = store.update_live_summary("init", live_entry(1))
    threads_n, calls = 8, 50
    barrier = threading.Barrier(threads_n + 1)
    done = threading.Event()
    failures: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        barrier.wait()
        while not done.is_set():
            try:
                assert json.loads(path.read_text(encoding="utf-8"))["swarm-id"] == SWARM
                reads[0] += 1
                time.sleep(0.0002)  # read often, without starving the writers of the GIL
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

    def writer(t: int) -> None:
        barrier.wait()
        try:
            for i in range(calls):
                store.update_live_summary(f"w{t}", live_entry(i + 1, "working"))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    read_thread = threading.Thread(target=reader)
    for thread in [*writers, read_thread]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    read_thread.join()

    assert failures == []
    assert reads[0] > 0
    workers = read_artifact(path, "live-summary")["workers"]
    expected = {"init": 1} | {f"w{t}": calls for t in range(threads_n)}
    assert {w: entry["iteration"] for w, entry in workers.items()} == expected
    assert not list(tmp_path.rglob("*.tmp"))


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_json_format_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"name": "Zoë", "n": [1]})
    assert target.read_text(encoding="utf-8") == '{\n  "name": "Zoë",\n  "n": [\n    1\n  ]\n}\n'
    umask = atomic._umask()
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    os.chmod(target, 0o640)
    atomic_write_text(target, "{}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("bad", [object(), float("nan"), {1j: 1}])
def test_unserializable_leaves_previous_file(tmp_path: Path, bad: Any) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises((TypeError, ValueError)):
        atomic_write_json(target, {"v": bad})
    assert json.loads(target.read_text(encoding="utf-8")) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_failure_mid_write_leaves_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)  # the os module atomic.py uses
    with pytest.raises(OSError, match="No space left"):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text(encoding="utf-8")) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_interrupt_mid_write_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "a.json", "{}\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- reading


def test_read_artifact_corrupt_json(tmp_path: Path) -> None:
    path = tmp_path / "w0-i1.json"
    path.write_text('{"worker-id": "w0", ', encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"^{re.escape(str(path))}: iteration artifact is not"):
        read_artifact(path, "iteration")


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xfe{}", b'{"duration-ms": NaN}', b"[]", b'{"a": 1} trailing']
)
def test_read_artifact_refuses_non_json_or_non_object(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    with pytest.raises(ArtifactError, match=re.escape(str(path))):
        read_artifact(path, "iteration")


def test_read_artifact_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "w0-i2.json"
    atomic_write_json(path, sample("review"))  # a review where an iteration belongs
    with pytest.raises(ArtifactError) as info:
        read_artifact(path, "iteration")
    assert str(info.value).startswith(f"{path}: iteration artifact is invalid at $.")
    assert info.value.where == str(path)


def test_read_artifact_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_artifact(tmp_path / "nope.json", "run")


# --------------------------------------------------------------------------- module hygiene


@pytest.mark.parametrize("module", [artifacts, atomic])
def test_engine_modules_do_not_import_pytest(module: Any) -> None:
    tree_ = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree_)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert "pytest" not in imported and "_pytest" not in imported


def test_the_run_check_ignores_what_a_kill_mid_write_leaves(tmp_path: Path) -> None:
    """A kill -9 between the temporary file and the rename leaves ``.{name}.XXXX.tmp``
    (core.atomic): not an artifact, and not a stranger in the run folder either."""
    from pytest_oompa.core.atomic import is_leftover
    from pytest_oompa.runs.files import check_tree

    run = tmp_path / "20260101T000000Z-abcdef"
    run.mkdir()
    (run / ".live-summary.json.k2x9q1.tmp").write_text('{"swarm-id": ', encoding="utf-8")
    (run / "stranger.txt").write_text("x", encoding="utf-8")
    _, problems = check_tree(tmp_path)
    assert [p for p in problems if "stranger.txt" in p] and not [p for p in problems if ".tmp" in p]
    assert is_leftover(".summary.json.abc.tmp") and not is_leftover("summary.json")
