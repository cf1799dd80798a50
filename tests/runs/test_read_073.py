"""Reading run folders that oompa 0.7.3 itself wrote (started.json, cycles/, reviews with a
cycle, stopped.json; no run.json, no iterations/): the listing, ``show``, the HTML report, and a
runs folder that mixes such a run with a 0.7.0 one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.contract import contract_073_validator

from pytest_oompa.report import load_run, main, render_report
from pytest_oompa.runs.artifacts import ArtifactStore
from pytest_oompa.runs.events import EventWriter, StartedWorker
from pytest_oompa.runs.files import UPSTREAM_EXTRAS
from pytest_oompa.runs.reader import RunFolder, list_runs, main_runs, main_show

T = "2026-03-01T10:{:02d}:00.000Z"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def published(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` after checking that it, without upstream's known extra fields, validates against
    the published 0.7.3 schema as it is (no widening)."""
    validator = contract_073_validator(kind, widened=False)
    if validator is not None:
        plain = {k: v for k, v in data.items() if k not in UPSTREAM_EXTRAS.get(kind, ())}
        assert not [e.message for e in validator.iter_errors(plain)], (kind, data)
    return data


def upstream_run(
    runs: Path,
    swarm_id: str,
    *,
    pid: int,
    stopped: str | None = "completed",
    error: str | None = None,
    states: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A run folder as upstream oompa 0.7.3's writer leaves it (literal JSON, with the extra
    fields its writer adds to cycle files): w0 merges cycle 1 after two review rounds, then fails
    to sync in cycle 2; w1 is rejected in cycle 1."""
    run = runs / swarm_id
    write(
        run / "started.json",
        published(
            "started",
            {
                "swarm-id": swarm_id,
                "started-at": T.format(0),
                "pid": pid,
                "config-file": "oompa.json",
                "workers": [
                    {
                        "id": "w0",
                        "harness": "claude",
                        "model": "opus",
                        "reasoning": None,
                        "max-cycles": 5,
                        "max-resumes": 7,
                        "can-plan": True,
                        "prompts": ["prompts/worker.md"],
                    },
                    {
                        "id": "w1",
                        "harness": "gemini2",
                        "model": "gemini-2.5-pro",
                        "reasoning": None,
                        "max-cycles": 2,
                        "max-resumes": 7,
                        "can-plan": False,
                        "prompts": [],
                    },
                ],
                "planner": None,
                "reviewer": {"harness": "codex", "model": "o3", "prompts": []},
            },
        ),
    )
    cycles = [
        ("w0", 1, "merged", 1, 240_000, ["t1"], None, 2),
        ("w0", 2, "sync-failed", 2, 60_000, ["t3"], "CONFLICT (content): app.py", 0),
        ("w1", 1, "rejected", 3, 120_000, ["t2"], None, 1),
    ]
    for wid, n, outcome, minute, ms, claimed, snippet, rounds in cycles:
        write(
            run / "cycles" / f"{wid}-c{n}.json",
            published(
                "cycle",
                {
                    "worker-id": wid,
                    "cycle": n,
                    "attempt": 2,
                    "outcome": outcome,
                    "timestamp": T.format(minute + 4),
                    "duration-ms": ms,
                    "claimed-task-ids": claimed,
                    "recycled-tasks": [],
                    "error-snippet": snippet,
                    "review-rounds": rounds,
                    "session-id": "0b9c7b8e",
                    "timing-ms": {"harness-ms": 500, "llm-calls": []},
                    "worktree-path": f".workers/{wid}",
                    "signals": ["CLAIM", "COMPLETE_AND_READY_FOR_MERGE"],
                    "merge-sha": "abc123" if outcome == "merged" else None,
                },
            ),
        )
    for wid, n, r, verdict in (("w0", 1, 1, "needs-changes"), ("w0", 1, 2, "approved")):
        write(
            run / "reviews" / f"{wid}-c{n}-r{r}.json",
            published(
                "cycle-review",
                {
                    "worker-id": wid,
                    "cycle": n,
                    "round": r,
                    "verdict": verdict,
                    "timestamp": T.format(4),
                    "output": f"VERDICT: {verdict}",
                    "duration-ms": 30_000,
                    "diff-files": ["app.py"],
                },
            ),
        )
    write(
        run / "reviews" / "w1-c1-r1.json",
        published(
            "cycle-review",
            {
                "worker-id": "w1",
                "cycle": 1,
                "round": 1,
                "verdict": "rejected",
                "timestamp": T.format(6),
                "output": None,
                "diff-files": [],
            },
        ),
    )
    for wid, state in (states or {}).items():
        write(run / "workers" / f"{wid}.json", state)
    if stopped is not None:
        write(
            run / "stopped.json",
            published(
                "stopped",
                {
                    "swarm-id": swarm_id,
                    "stopped-at": T.format(9),
                    "reason": stopped,
                    "error": error,
                },
            ),
        )
    return run


def v070_run(runs: Path, swarm_id: str) -> Path:
    """A finished 0.7.0 run, through the artifact store."""
    store = ArtifactStore(runs, swarm_id)
    store.write_run(
        {
            "swarm-id": swarm_id,
            "started-at": "2026-02-01T10:00:00.000Z",
            "config-file": "old.json",
            "workers": [
                {
                    "id": "w0",
                    "harness": "claude",
                    "model": "opus",
                    "reasoning": None,
                    "iterations": 1,
                    "can-plan": True,
                    "prompts": [],
                }
            ],
            "planner": None,
            "reviewer": None,
        }
    )
    store.write_iteration(
        {
            "worker-id": "w0",
            "iteration": 1,
            "outcome": "merged",
            "timestamp": "2026-02-01T10:01:00.000Z",
            "duration-ms": 60_000,
            "recycled-tasks": [],
            "review-rounds": 0,
        }
    )
    store.write_summary(
        {
            "swarm-id": swarm_id,
            "finished-at": "2026-02-01T10:02:00.000Z",
            "total-workers": 1,
            "total-completed": 1,
            "total-iterations": 1,
            "status-counts": {"exhausted": 1},
            "workers": [
                {
                    "id": "w0",
                    "harness": "claude",
                    "model": "opus",
                    "status": "exhausted",
                    "completed": 1,
                    "iterations": 1,
                    "merges": 1,
                    "claims": 0,
                    "rejections": 0,
                    "errors": 0,
                    "recycled": 0,
                    "review-rounds-total": 0,
                }
            ],
        }
    )
    return store.run_dir


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """One runs folder: a 0.7.0 run, and 0.7.3 runs that completed, failed, run, and died."""
    runs = tmp_path / "runs"
    v070_run(runs, "old-070")
    upstream_run(
        runs,
        "done-073",
        pid=dead_pid(),
        states={
            "w0": {"status": "stopped", "cycle": 2, "reason": "completed"},
            "w1": {"status": "stopped", "cycle": 1, "reason": "done"},
        },
    )
    upstream_run(runs, "error-073", pid=dead_pid(), stopped="error", error="lock timed out")
    upstream_run(
        runs,
        "live-073",
        pid=os.getpid(),
        stopped=None,
        states={"w0": {"status": "running", "cycle": 3}},
    )
    upstream_run(
        runs,
        "dead-073",
        pid=dead_pid(),
        stopped=None,
        states={"w0": {"status": "running", "cycle": 3}},
    )
    return runs


# --------------------------------------------------------------------------- listing


def test_listing_a_mixed_runs_folder(mixed: Path) -> None:
    infos = {i.id: i for i in list_runs(mixed)}
    assert {k: i.status for k, i in infos.items()} == {
        "old-070": "interrupted",  # 0.7.0 leaves no final status: summary, no tracking files
        "done-073": "completed",
        "error-073": "failed",
        "live-073": "running",
        "dead-073": "dead",
    }
    done = infos["done-073"]
    assert (done.started_at, done.finished_at, done.duration_s) == (T.format(0), T.format(9), 540)
    assert (done.workers, done.iterations, done.cycles) == (2, 0, 3)
    assert (done.merges, done.errors, done.rejections) == (1, 1, 1)  # sync-failed is an error
    assert done.config_file == "oompa.json" and done.problems == []
    assert infos["live-073"].pid == os.getpid() and infos["live-073"].finished_at is None
    old = infos["old-070"]
    assert (old.iterations, old.cycles, old.merges, old.pid) == (1, 0, 1, None)
    # newest first, by start
    assert [i.id for i in list_runs(mixed)][-1] == "old-070"


def test_the_pid_decides_only_without_stopped_json(mixed: Path) -> None:
    assert RunFolder(mixed, "live-073").info(alive=lambda pid: False).status == "dead"
    assert RunFolder(mixed, "done-073").info(alive=lambda pid: True).status == "completed"


def test_runs_command_lists_both_formats(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_runs(["--runs-dir", str(mixed)]) == 0  # upstream's extra fields: no problem
    out = capsys.readouterr().out
    assert "cycles" in out.splitlines()[0]
    for run_id in ("old-070", "done-073", "error-073", "live-073", "dead-073"):
        assert run_id in out
    assert main_runs(["--runs-dir", str(mixed), "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["done-073"]["cycles"] == 3 and listed["dead-073"]["status"] == "dead"


# --------------------------------------------------------------------------- show


def test_show_a_finished_073_run(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_show(["--runs-dir", str(mixed), "done-073"]) == 0
    out = capsys.readouterr().out
    assert "swarm done-073: completed" in out and "config: oompa.json, pid " in out
    assert "written by: oompa 0.7.3" in out  # no run.json, no oompa-run.json: not ours
    assert "w0      claude:opus" in out and "stopped: completed after cycle 2" in out
    assert "stopped: done after cycle 1" in out and "2 of 5" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "sync-failed" in lines["w0-c2"] and "CONFLICT (content): app.py" in lines["w0-c2"]
    assert "merged" in lines["w0-c1"] and "t1" in lines["w0-c1"]
    assert "rejected" in lines["w1-c1"]


@pytest.mark.parametrize(
    ("run_id", "status", "w0", "w1"),
    [
        ("live-073", "running", "running: cycle 3", "running (cycle 1: rejected)"),
        ("dead-073", "dead", "exited mid-cycle 3", "last: rejected (cycle 1)"),
        ("error-073", "failed", "last: sync-failed (cycle 2)", "last: rejected (cycle 1)"),
    ],
)
def test_show_worker_status_follows_unleashd(
    mixed: Path, capsys: pytest.CaptureFixture[str], run_id: str, status: str, w0: str, w1: str
) -> None:
    assert main_show([str(mixed / run_id)]) == 0  # a path works: started.json marks the folder
    out = capsys.readouterr().out
    assert f"swarm {run_id}: {status}" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert w0 in rows["w0"] and w1 in rows["w1"]


def test_show_json_carries_the_event_files(mixed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_show(["--runs-dir", str(mixed), "--json", "live-073"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["status"] == "running" and shown["stopped"] is None
    assert [c["cycle"] for c in shown["cycles"]] == [1, 2, 1]
    assert "merge-sha" not in shown["cycles"][0]  # upstream's extras are left out
    assert shown["worker-states"] == {"w0": {"status": "running", "cycle": 3}}
    assert shown["started"]["workers"][1]["harness"] == "gemini2"


def test_a_corrupt_cycle_file_is_named_not_a_traceback(
    mixed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (mixed / "done-073" / "cycles" / "w1-c1.json").write_text("{half", encoding="utf-8")
    write(mixed / "done-073" / "cycles" / "w1-c2.json", {"worker-id": "w1", "surprise": 1})
    assert main_show(["--runs-dir", str(mixed), "done-073"]) == 1
    err = capsys.readouterr().err
    assert "w1-c1.json" in err and "not valid JSON" in err
    assert "w1-c2.json" in err and "invalid" in err


# --------------------------------------------------------------------------- the report


def test_the_report_of_a_073_run(mixed: Path) -> None:
    run = load_run(mixed / "done-073")
    assert run.problems == []
    assert run.swarm_id == "done-073" and run.status()[0] == "completed"
    assert run.complete and run.finished is not None and run.started is not None
    assert [(it.worker, it.n, it.outcome, it.source) for it in run.iterations] == [
        ("w0", 1, "merged", "cycle"),
        ("w0", 2, "sync-failed", "cycle"),
        ("w1", 1, "rejected", "cycle"),
    ]
    w0c1 = run.iterations[0]
    assert [r.verdict for r in w0c1.reviews] == ["needs-changes", "approved"]
    assert w0c1.reviews[0].duration_ms == 30_000 and w0c1.task_id == "t1"
    assert run.worker_ids() == ["w0", "w1"]
    assert run.worker_status("w0") == "stopped: completed after cycle 2"
    assert run.worker_config("w1")["iterations"] == 2  # max-cycles, for "ran 1 of 2"
    text = render_report(mixed / "done-073")
    for needle in ('data-outcome="merged"', 'data-outcome="sync-failed"', "rejected"):
        assert needle in text
    assert ">w0<" in text and ">w1<" in text and "claude:opus" in text
    assert "CONFLICT (content): app.py" in text
    assert "Some files could not be used" not in text
    # the header names started.json's config file and who wrote the run, the rows their cycles
    assert "<dt>config</dt><dd><code>oompa.json</code></dd>" in text
    assert "<dt>written by</dt><dd>oompa 0.7.3</dd>" in text
    assert 'id="cy-w0-2"' in text and "w0 · c2" in text and "w0 · i" not in text


@pytest.mark.parametrize(
    ("run_id", "status", "why", "w0"),
    [
        ("live-073", "running", "is alive", "running: cycle 3"),
        ("dead-073", "incomplete", "cut off: no stopped.json", "exited mid-cycle 3"),
        ("error-073", "failed", "stopped.json says error: lock timed out", "last: sync-failed"),
    ],
)
def test_report_status_of_073_runs(
    mixed: Path, run_id: str, status: str, why: str, w0: str
) -> None:
    run = load_run(mixed / run_id)
    assert run.status()[0] == status and why in run.status()[1]
    assert run.worker_status("w0").startswith(w0)
    text = render_report(mixed / run_id)
    assert f"st-{status}" in text


def test_report_command_on_a_073_run_and_its_0_7_0_neighbour(
    mixed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--runs-dir", str(mixed), "done-073"]) == 0
    assert (mixed / "done-073" / "report.html").is_file()
    assert main([str(mixed / "old-070")]) == 0
    old = load_run(mixed / "old-070")
    assert old.problems == [] and [it.source for it in old.iterations] == ["iteration"]
    assert "<dt>written by</dt><dd>oompa 0.7.0&#x27;s format" in render_report(mixed / "old-070")
    assert old.status()[0] == "finished"
    assert main([str(mixed)]) == 2  # the runs folder itself is not a run
    assert "not a swarm run folder" in capsys.readouterr().err


def test_a_run_written_by_our_event_writer_reads_back(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path, "ours-073")
    writer.started(
        config_file="oompa.json", workers=[StartedWorker("w0", "claude", "opus", 2, True)]
    )
    writer.worker_running("w0", 1)
    writer.cycle("w0", 1, "claimed", duration_ms=100, claimed_task_ids=["t9"])
    run = load_run(writer.run_dir)
    assert run.status()[0] == "running"  # this process wrote it: its pid is alive
    assert run.worker_status("w0") == "running: cycle 1"
    (info,) = list_runs(tmp_path)
    assert (info.status, info.cycles) == ("running", 1)
    writer.cycle("w0", 1, "merged", duration_ms=200, claimed_task_ids=["t9"])
    writer.worker_stopped("w0", 1, "completed")
    writer.stopped("interrupted")
    (info,) = list_runs(tmp_path)
    assert (info.status, info.merges) == ("interrupted", 1)
    run = load_run(writer.run_dir)
    assert run.status()[0] == "interrupted" and run.iterations[0].outcome == "merged"
    assert run.worker_status("w0") == "stopped: completed after cycle 1"
