"""oompa 0.7.3's event files: our schema copies, the writer (validated, atomic, once-only files,
closed cycles), several threads and processes of one run, and the rules they are read by."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from support.contract import (
    CONTRACT_073_FILES,
    assert_events_valid,
    assert_runs_valid,
    contract_073_schema,
    contract_073_validator,
    widen_harness,
)

from pytest_oompa.core import atomic
from pytest_oompa.runs.artifacts import (
    ARTIFACT_KINDS,
    CONTRACT_073_KINDS,
    EVENT_KINDS,
    ArtifactError,
    read_artifact,
    schemas_dir,
)
from pytest_oompa.runs.events import (
    CYCLE_OUTCOMES,
    OPEN_OUTCOMES,
    TERMINAL_OUTCOMES,
    WORKER_STOP_REASONS,
    EventWriter,
    StartedPlanner,
    StartedReviewer,
    StartedWorker,
    pid_alive,
    run_status,
    worker_label,
)
from pytest_oompa.runs.files import check_tree, kind_for, read_any, read_lenient

SWARM = "swarm-20260301-0a1b"
TS = "2026-03-01T10:00:00.000Z"
ANNOTATIONS = {"$id", "title", "description", "$comment", "x-oompa-schema-version"}
ANNOTATIONS |= {"x-oompa-contract", "x-oompa-file"}

WORKERS = (
    StartedWorker("w0", "claude", "opus", 5, True, ["prompts/worker.md"], max_resumes=7),
    StartedWorker("w1", "codex", "gpt-5.3-codex", 3, False, reasoning="medium"),
)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def strip(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            k: strip(v, in_properties=(k == "properties" and not in_properties))
            for k, v in node.items()
            if in_properties or k not in ANNOTATIONS
        }
    if isinstance(node, list):
        return [strip(x) for x in node]
    return node


def full_run(writer: EventWriter) -> None:
    """One finished run's every event file, through the writer."""
    writer.started(
        config_file="oompa.json",
        workers=WORKERS,
        planner=StartedPlanner("claude", "opus", 4, ["prompts/planner.md"]),
        reviewer=StartedReviewer("codex", "o3", ["prompts/reviewer.md"]),
        started_at=TS,
    )
    writer.worker_running("w0", 1)
    writer.cycle("w0", 1, "claimed", duration_ms=1200, claimed_task_ids=["t1"])
    writer.cycle("w0", 1, "working", duration_ms=2400, claimed_task_ids=["t1"])
    writer.review("w0", 1, 1, verdict="needs-changes", output="add a test", diff_files=["a.py"])
    writer.review("w0", 1, 2, verdict="approved", output="fine", duration_ms=900)
    writer.cycle(
        "w0",
        1,
        "merged",
        duration_ms=5000,
        claimed_task_ids=["t1"],
        review_rounds=2,
        timing_ms={
            "implementation-rounds-ms": [1200, 1200],
            "harness-ms": 300,
            "llm-calls": [{"name": "worker", "section": "implementation", "duration-ms": 2400}],
        },
    )
    writer.worker_running("w0", 2)
    writer.cycle("w0", 2, "sync-failed", duration_ms=10, error_snippet="CONFLICT (content)")
    writer.worker_stopped("w0", 2, "completed")
    writer.worker_stopped("w1", 0, "interrupted")
    writer.stopped("completed")


# --------------------------------------------------------------------------- the schemas


def test_every_event_kind_has_a_schema() -> None:
    assert set(EVENT_KINDS) <= set(ARTIFACT_KINDS)
    for kind in EVENT_KINDS:
        assert (schemas_dir() / f"{kind}.schema.json").is_file()


@pytest.mark.parametrize("kind", CONTRACT_073_KINDS)
def test_our_copy_differs_from_the_073_contract_only_by_the_harness(kind: str) -> None:
    published = contract_073_schema(kind)
    if published is None:
        pytest.skip("oompa 0.7.3 contract schemas not found")
    ours = json.loads((schemas_dir() / f"{kind}.schema.json").read_text(encoding="utf-8"))
    assert ours["x-oompa-contract"].startswith("oompa 0.7.3 (")
    assert ours["x-oompa-contract"].endswith(f"/{CONTRACT_073_FILES[kind]}.schema.json)")
    assert strip(ours) == strip(widen_harness(published))


def test_outcome_constants_follow_the_cycle_schema() -> None:
    schema = json.loads((schemas_dir() / "cycle.schema.json").read_text(encoding="utf-8"))
    assert tuple(schema["properties"]["outcome"]["enum"]) == CYCLE_OUTCOMES
    assert set(CYCLE_OUTCOMES) == TERMINAL_OUTCOMES | OPEN_OUTCOMES | {"done"}
    state = json.loads((schemas_dir() / "worker-state.schema.json").read_text(encoding="utf-8"))
    assert tuple(state["properties"]["reason"]["enum"]) == WORKER_STOP_REASONS


# --------------------------------------------------------------------------- the writer


def test_a_full_run_validates_against_ours_and_the_published_073_schemas(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    full_run(writer)
    files = assert_events_valid(writer.run_dir)  # ours; the 0.7.3 contract with our widening
    assert sorted(files) == [
        "cycles/w0-c1.json",
        "cycles/w0-c2.json",
        "reviews/w0-c1-r1.json",
        "reviews/w0-c1-r2.json",
        "started.json",
        "stopped.json",
        "workers/w0.json",
        "workers/w1.json",
    ]
    # built-in harnesses only: the files validate against the contract exactly as published
    for rel, data in files.items():
        kind, _ = kind_for(f"{SWARM}/{rel}")  # type: ignore[misc]
        if kind in CONTRACT_073_KINDS:
            validator = contract_073_validator(kind, widened=False)
            if validator is None:
                pytest.skip("oompa 0.7.3 contract schemas not found")
            assert not [e.message for e in validator.iter_errors(data)], rel
    started = files["started.json"]
    assert started["pid"] == os.getpid() and started["swarm-id"] == SWARM
    assert started["workers"][0] == {
        "id": "w0",
        "harness": "claude",
        "model": "opus",
        "reasoning": None,
        "max-cycles": 5,
        "can-plan": True,
        "prompts": ["prompts/worker.md"],
        "max-resumes": 7,
    }
    assert "max-resumes" not in started["workers"][1]
    assert started["planner"]["max-pending"] == 4 and started["reviewer"]["model"] == "o3"
    cycle = files["cycles/w0-c1.json"]
    assert (cycle["outcome"], cycle["duration-ms"], cycle["review-rounds"]) == ("merged", 5000, 2)
    assert cycle["claimed-task-ids"] == ["t1"] and cycle["recycled-tasks"] == []
    assert "timing-ms" in cycle and "timing-ms" not in files["cycles/w0-c2.json"]
    assert files["reviews/w0-c1-r2.json"]["duration-ms"] == 900
    assert files["reviews/w0-c1-r1.json"]["duration-ms"] is None
    assert files["workers/w0.json"] == {"status": "stopped", "cycle": 2, "reason": "completed"}
    assert files["stopped.json"]["reason"] == "completed"
    assert files["stopped.json"]["error"] is None


def test_no_planner_or_reviewer_is_null(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    path = writer.started(config_file=Path("/abs/oompa.json"), workers=WORKERS[:1], pid=4242)
    data = read_artifact(path, "started")
    assert (data["planner"], data["reviewer"]) == (None, None)
    assert (data["pid"], data["config-file"]) == (4242, "/abs/oompa.json")


def test_engine_enums_are_written_as_their_values(tmp_path: Path) -> None:
    class Outcome(str, Enum):
        MERGED = "merged"

    writer = EventWriter(tmp_path, SWARM)
    path = writer.cycle("w0", 1, Outcome.MERGED, duration_ms=1)
    assert json.loads(path.read_text())["outcome"] == "merged"


@pytest.mark.parametrize(
    ("write", "json_path"),
    [
        (lambda w: w.cycle("w0", 1, "nope", duration_ms=1), "$.outcome"),
        (lambda w: w.cycle("w0", 1, "merged", duration_ms=-1), "$.duration-ms"),
        (lambda w: w.cycle("w0", 0, "merged", duration_ms=1), "$.cycle"),
        (lambda w: w.cycle("w0", 1, "merged", duration_ms=1, review_rounds=-1), "$.review-rounds"),
        (lambda w: w.cycle("w0", 1, "merged", duration_ms=1, timestamp="yesterday"), "$.timestamp"),
        (
            lambda w: w.cycle("w0", 1, "merged", duration_ms=1, timing_ms={"harness": 1}),
            "$.timing-ms.harness",
        ),
        (lambda w: w.cycle("../x", 1, "merged", duration_ms=1), "$.worker-id"),
        (lambda w: w.review("w0", 1, 1, verdict="maybe", output=None), "$.verdict"),
        (lambda w: w.review("w0", 1, 0, verdict="approved", output=None), "$.round"),
        (lambda w: w.worker_running("w0", 0), "$.cycle"),
        (lambda w: w.worker_stopped("w0", 1, "bored"), "$.reason"),
        (lambda w: w.worker_stopped("a/b", 1, "done"), "$.worker-id"),
        (lambda w: w.stopped("crashed"), "$.reason"),
        (
            lambda w: w.started(
                config_file="c.json", workers=[StartedWorker("w0", "", "m", 1, False)]
            ),
            "$.workers[0].harness",
        ),
        (
            lambda w: w.started(
                config_file="c.json", workers=[StartedWorker("w0", "claude", "m", 0, False)]
            ),
            "$.workers[0].max-cycles",
        ),
        (
            lambda w: w.started(
                config_file="c.json",
                workers=WORKERS,
                planner=StartedPlanner("claude", "opus", max_pending=0),
            ),
            "$.planner.max-pending",
        ),
    ],
)
def test_a_bad_document_is_refused_before_anything_is_written(
    tmp_path: Path, write: Any, json_path: str
) -> None:
    writer = EventWriter(tmp_path, SWARM)
    with pytest.raises(ArtifactError) as err:
        write(writer)
    assert err.value.json_path == json_path
    assert json_path.rsplit(".", 1)[-1].split("[")[0] in str(err.value)
    assert tree(tmp_path) == []


def test_an_unserializable_value_is_refused_naming_its_path(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    with pytest.raises(ArtifactError, match=r"cannot be serialized at \$\.timing-ms\.other-ms"):
        writer.cycle("w0", 1, "merged", duration_ms=1, timing_ms={"other-ms": float("nan")})
    assert tree(tmp_path) == []


def test_an_invalid_swarm_id_is_refused() -> None:
    with pytest.raises(ArtifactError, match="invalid swarm id"):
        EventWriter(Path("runs"), "../elsewhere")


def test_a_cycle_is_rewritten_until_an_outcome_closes_it(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    path = writer.cycle("w0", 3, "claimed", duration_ms=10, claimed_task_ids=["t1"])
    assert writer.cycle("w0", 3, "working", duration_ms=20) == path
    writer.cycle("w0", 3, "needs-followup", duration_ms=30)
    assert json.loads(path.read_text())["outcome"] == "needs-followup"
    with pytest.raises(ArtifactError, match=r"already ended \(needs-followup\)") as err:
        writer.cycle("w0", 3, "merged", duration_ms=40)
    assert err.value.json_path == "$.outcome"
    # another writer of the run (a restarted process) reads the file and refuses too
    with pytest.raises(ArtifactError, match="a closed cycle is never rewritten"):
        EventWriter(tmp_path, SWARM).cycle("w0", 3, "working", duration_ms=50)
    assert json.loads(path.read_text())["duration-ms"] == 30
    writer.cycle("w0", 4, "done", duration_ms=1)  # the next cycle is a file of its own
    with pytest.raises(ArtifactError, match=r"already ended \(done\)"):
        writer.cycle("w0", 4, "done", duration_ms=2)


def test_started_and_stopped_are_written_once(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    writer.started(config_file="oompa.json", workers=WORKERS, started_at=TS)
    with pytest.raises(ArtifactError, match="written once per run"):
        writer.started(config_file="other.json", workers=WORKERS)
    assert read_artifact(writer.started_path, "started")["config-file"] == "oompa.json"
    writer.stopped("error", "the merge lock timed out")
    with pytest.raises(ArtifactError, match="written once per run"):
        EventWriter(tmp_path, SWARM).stopped("completed")
    assert read_artifact(writer.stopped_path, "stopped")["reason"] == "error"


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = EventWriter(tmp_path, SWARM)
    path = writer.cycle("w0", 1, "claimed", duration_ms=1)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.cycle("w0", 1, "merged", duration_ms=2)
    with pytest.raises(KeyboardInterrupt):
        writer.worker_running("w0", 1)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert tree(tmp_path) == [f"{SWARM}/cycles/w0-c1.json"]  # no .tmp, no half file
    # the cycle is still open: the next attempt may write it
    writer.cycle("w0", 1, "merged", duration_ms=3)


def test_threads_of_one_writer(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, SWARM)
    errors: list[BaseException] = []

    def work(wid: str) -> None:
        try:
            for n in range(1, 6):
                writer.worker_running(wid, n)
                for outcome in ("claimed", "working", "merged"):
                    writer.cycle(wid, n, outcome, duration_ms=n)
                writer.review(wid, n, 1, verdict="approved", output="ok")
            writer.worker_stopped(wid, 5, "completed")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    found = assert_runs_valid(tmp_path)
    assert len([k for k in found if "/cycles/" in k]) == 40
    assert all(v["outcome"] == "merged" for k, v in found.items() if "/cycles/" in k)


NODE = """
import sys
from pathlib import Path
from pytest_oompa.runs.events import EventWriter
runs, swarm, *workers = sys.argv[1:]
writer = EventWriter(Path(runs), swarm)
for wid in workers:
    for n in (1, 2):
        writer.worker_running(wid, n)
        writer.cycle(wid, n, "claimed", duration_ms=5)
        writer.review(wid, n, 1, verdict="approved", output=None)
        writer.cycle(wid, n, "merged", duration_ms=9, review_rounds=1)
    writer.worker_stopped(wid, 2, "completed")
"""


def test_processes_of_one_run_write_their_own_workers(tmp_path: Path) -> None:
    """As under pytest-xdist: the controller writes started and stopped, each node its own
    workers' cycle, review and state files."""
    controller = EventWriter(tmp_path, SWARM)
    controller.started(config_file="oompa.json", workers=WORKERS)
    nodes = [
        subprocess.Popen([sys.executable, "-c", NODE, str(tmp_path), SWARM, *ids])
        for ids in (("w0", "w2"), ("w1", "w3"))
    ]
    assert [p.wait(timeout=60) for p in nodes] == [0, 0]
    controller.stopped("completed")
    files = assert_events_valid(controller.run_dir)
    assert sorted(k for k in files if k.startswith("workers/")) == [
        f"workers/w{i}.json" for i in range(4)
    ]
    assert len([k for k in files if k.startswith("cycles/")]) == 8
    assert files["started.json"]["pid"] == os.getpid()


# --------------------------------------------------------------------------- the files table


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        (f"{SWARM}/started.json", "started"),
        (f"{SWARM}/stopped.json", "stopped"),
        (f"{SWARM}/cycles/w0-c1.json", "cycle"),
        (f"{SWARM}/workers/w0.json", "worker-state"),
        (f"{SWARM}/reviews/w0-c1-r2.json", "cycle-review"),
        (f"{SWARM}/reviews/w0-i1-r2.json", "review"),
        (f"{SWARM}/reviews/w-c1-i2-r1.json", "review"),  # the last -i/-c decides
        (f"{SWARM}/reviews/w-i1-c2-r1.json", "cycle-review"),
    ],
)
def test_kind_for_the_event_files(rel: str, kind: str) -> None:
    assert kind_for(rel) == (kind, False)


def upstream_cycle() -> dict[str, Any]:
    """A cycle file as upstream oompa 0.7.3's writer leaves it: fields its schema forbids."""
    return {
        "worker-id": "w0",
        "cycle": 1,
        "attempt": 2,
        "outcome": "merged",
        "timestamp": TS,
        "duration-ms": 5000,
        "claimed-task-ids": ["t1"],
        "recycled-tasks": [],
        "error-snippet": None,
        "review-rounds": 1,
        "session-id": None,
        "timing-ms": {"harness-ms": 10, "llm-calls": []},
        "worktree-path": ".workers/w0",
        "signals": ["CLAIM", "COMPLETE_AND_READY_FOR_MERGE"],
        "merge-sha": "abc123",
    }


def test_upstreams_extra_fields_are_read_leniently_and_refused_strictly(tmp_path: Path) -> None:
    path = tmp_path / SWARM / "cycles" / "w0-c1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(upstream_cycle()))
    data = read_lenient(path, "cycle")
    assert "merge-sha" not in data and data["outcome"] == "merged"
    assert read_any(tmp_path, path, lenient=True) == data
    with pytest.raises(ArtifactError, match=r"invalid at \$\.attempt"):
        read_any(tmp_path, path)
    _, problems = check_tree(tmp_path)  # what the tests check our own writer with: strict
    assert len(problems) == 1
    other = copy.deepcopy(upstream_cycle())
    other["surprise"] = 1
    path.write_text(json.dumps(other))
    with pytest.raises(ArtifactError, match=r"invalid at \$\.surprise"):
        read_lenient(path, "cycle")


# --------------------------------------------------------------------------- reading rules


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    for nonsense in (0, -1, None, "123", True, 2**40):
        assert not pid_alive(nonsense)


def test_run_status_follows_unleashd() -> None:
    started = {"pid": os.getpid()}
    assert run_status(None, None) is None
    assert run_status(started, None) == ("running", f"pid {os.getpid()} is alive")
    gone = {"pid": dead_pid()}
    status, why = run_status(gone, None)  # type: ignore[misc]
    assert status == "dead" and "no stopped.json" in why
    # stopped.json decides, whatever the pid
    assert run_status(started, {"reason": "completed"})[0] == "completed"  # type: ignore[index]
    assert run_status(gone, {"reason": "interrupted"})[0] == "interrupted"  # type: ignore[index]
    assert run_status(None, {"reason": "error", "error": "boom"}) == (
        "failed",
        "stopped.json says error: boom",
    )
    assert run_status(started, None, alive=lambda pid: False)[0] == "dead"  # type: ignore[index]


@pytest.mark.parametrize(
    ("state", "cycle", "live", "label"),
    [
        ({"status": "running", "cycle": 3}, None, True, "running: cycle 3"),
        ({"status": "running", "cycle": 3}, None, False, "exited mid-cycle 3"),
        (
            {"status": "stopped", "cycle": 4, "reason": "done"},
            {"cycle": 4, "outcome": "done"},
            True,
            "stopped: done after cycle 4",
        ),
        (None, {"cycle": 2, "outcome": "merged"}, True, "running (cycle 2: merged)"),
        (None, {"cycle": 2, "outcome": "merged"}, False, "last: merged (cycle 2)"),
        (None, None, True, "starting"),
        (None, None, False, "no cycle recorded"),
    ],
)
def test_worker_label(
    state: dict[str, Any] | None, cycle: dict[str, Any] | None, live: bool, label: str
) -> None:
    assert worker_label(state, cycle, live) == label
