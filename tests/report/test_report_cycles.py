"""Cycles in the report and in ``python -m pytest_oompa show``: our run that mixes a 0.7.0-mode
worker (iterations) with a 0.7.3-mode one (cycles of several attempts, with calls records and
0.7.3-shaped reviews), and a run folder upstream oompa 0.7.3 wrote (no run.json).

The folders are written with the package's own writers (the artifact store, the event writer),
calls records as plain JSON checked against their schema, the way the recorder leaves them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.run_meta import oompa_run

from pytest_oompa.report import load_run, render_report
from pytest_oompa.runs.artifacts import ArtifactStore, validate_artifact
from pytest_oompa.runs.events import EventWriter, StartedReviewer, StartedWorker
from pytest_oompa.runs.reader import list_runs, main_show

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
SID = "20260301T100000Z-mixed1"


def iso(seconds: float) -> str:
    return (
        (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class Page(HTMLParser):
    """The report's ids, its table rows (by id, with their text) and its timeline bars."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.rows: dict[str, str] = {}
        self.bars: list[dict[str, str]] = []
        self.facts: dict[str, str] = {}
        self._row: str | None = None
        self._in: str | None = None  # inside a <dt> or <dd> of the header's facts
        self._dt = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "tr" and a.get("id"):
            self._row = a["id"]
            self.rows[self._row] = ""
        if tag == "a" and "bar" in a.get("class", "").split():
            self.bars.append(a)
        if tag in ("dt", "dd"):
            self._in = tag
            if tag == "dt":
                self._dt = ""
            else:
                self.facts[self._dt] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag in ("dt", "dd"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self.rows[self._row] += data
        if self._in == "dt":
            self._dt += data
        elif self._in == "dd":
            self.facts[self._dt] += data


# --------------------------------------------------------------------------- the runs


def call(stem: str, role: str, attempt: int | None, **kw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": stem,
        "role": role,
        "harness": "codex",
        "model": "o3",
        "argv": ["codex", "exec"],
        "cwd": "/p/.workers/w1",
        "exit-code": kw.get("exit", 0),
        "duration-ms": 2000,
        "session-id": "s1",
        "input-tokens": 100,
        "output-tokens": 10,
        "cost-usd": 0.01,
        "failure": kw.get("failure"),
        "log": f"commands/{stem}.ndjson",
        "error": None,
    }
    if attempt is not None:
        entry["attempt"] = attempt
    return entry


def calls_record(run_dir: Path, worker: str, cycle: int, calls: list[dict[str, Any]]) -> None:
    """``calls/{w}-c{N}.json`` as the recorder writes it in 0.7.3 mode, schema-checked."""
    data = {
        "swarm-id": run_dir.name,
        "worker-id": worker,
        "iteration": None,
        "cycle": cycle,
        "calls": calls,
    }
    path = run_dir / "calls" / f"{worker}-c{cycle}.json"
    validate_artifact("calls", data, where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def mixed_run(runs: Path, *, finished: bool = True, pid: int | None = None) -> Path:
    """Our run of two workers: w0 in 0.7.0 mode (2 iterations: claimed t1, then merged it; each
    iteration written as a cycle too, as the recorder does), w1 in 0.7.3 mode (max_cycle 4,
    max_resumes 3): cycle 1 merges t2 after three attempts and two review rounds, cycle 2 fails
    to sync main into its branch."""
    store = ArtifactStore(runs, SID)
    events = EventWriter(runs, SID)
    run_dir = store.run_dir
    store.write_run(
        {
            "swarm-id": SID,
            "started-at": iso(0),
            "config-file": "/p/oompa.json",
            "workers": [
                {
                    "id": "w0",
                    "harness": "claude",
                    "model": "opus",
                    "reasoning": None,
                    "iterations": 2,
                    "can-plan": True,
                    "prompts": [],
                },
                {
                    "id": "w1",
                    "harness": "codex",
                    "model": "o3",
                    "reasoning": None,
                    "iterations": 4,  # its max_cycle
                    "can-plan": True,
                    "prompts": [],
                },
            ],
            "planner": None,
            "reviewer": {"harness": "claude", "model": "sonnet", "prompts": []},
        }
    )
    events.started(
        config_file="/p/oompa.json",
        workers=[
            StartedWorker("w0", "claude", "opus", 2, True, max_resumes=1),
            StartedWorker("w1", "codex", "o3", 4, True, max_resumes=3),
        ],
        reviewer=StartedReviewer("claude", "sonnet"),
        pid=pid,
        started_at=iso(0),
    )
    # w0: 0.7.0 mode
    for n, outcome, end, task in ((1, "claimed", 10, "t1"), (2, "merged", 30, "t1")):
        store.write_iteration(
            {
                "worker-id": "w0",
                "iteration": n,
                "outcome": outcome,
                "timestamp": iso(end),
                "duration-ms": 9000,
                "task-id": task,
                "recycled-tasks": [],
                "error-snippet": None,
                "review-rounds": 0,
            }
        )
        events.cycle(
            "w0", n, outcome, duration_ms=9000, claimed_task_ids=[task], timestamp=iso(end)
        )
    # w1: 0.7.3 mode. Cycle 1: claimed, working, then a merge request reviewed twice.
    for attempt, outcome in ((1, "claimed"), (2, "working")):
        events.cycle(
            "w1", 1, outcome, duration_ms=attempt * 5000, claimed_task_ids=["t2"], timestamp=iso(0)
        )
    for r, verdict in ((1, "needs-changes"), (2, "approved")):
        events.review(
            "w1",
            1,
            r,
            verdict=verdict,
            output=f"VERDICT: {verdict}",
            diff_files=["app.py"],
            duration_ms=3000,
            timestamp=iso(20 + r),
        )
    events.cycle(
        "w1",
        1,
        "merged",
        duration_ms=24000,
        claimed_task_ids=["t2"],
        review_rounds=2,
        timestamp=iso(25),
    )
    calls_record(
        run_dir,
        "w1",
        1,
        [
            call("w1-c1-worker-1", "worker", 1),
            call("w1-c1-worker-2", "worker", 2),
            call("w1-c1-worker-3", "worker", 3),
            call("w1-c1-reviewer-1", "reviewer", 3),
            call("w1-c1-fix-1", "fix", 3),
            call("w1-c1-reviewer-2", "reviewer", 3),
        ],
    )
    # Cycle 2: a merge request, then main conflicts with the branch; the agent cannot fix it.
    events.cycle(
        "w1",
        2,
        "sync-failed",
        duration_ms=15000,
        claimed_task_ids=["t3", "t4"],
        recycled_tasks=["t3", "t4"],
        error_snippet="CONFLICT (content): app.py",
        timestamp=iso(45),
    )
    calls_record(
        run_dir,
        "w1",
        2,
        [
            call("w1-c2-worker-1", "worker", 1),
            call("w1-c2-sync-1", "sync", 1, exit=1, failure="merge conflict in app.py"),
        ],
    )
    if finished:
        events.worker_stopped("w0", 2, "completed")
        events.worker_stopped("w1", 2, "interrupted")
        entry = {"harness": "claude", "model": "opus", "claims": 1, "recycled": 0}
        store.write_summary(
            {
                "swarm-id": SID,
                "finished-at": iso(50),
                "total-workers": 2,
                "total-completed": 2,
                "total-iterations": 4,
                "status-counts": {"exhausted": 1, "idle": 1},
                "workers": [
                    {
                        **entry,
                        "id": "w0",
                        "status": "exhausted",
                        "completed": 1,
                        "iterations": 2,
                        "merges": 1,
                        "rejections": 0,
                        "errors": 0,
                        "review-rounds-total": 0,
                    },
                    {
                        **entry,
                        "id": "w1",
                        "harness": "codex",
                        "model": "o3",
                        "status": "idle",
                        "completed": 1,
                        "iterations": 4,
                        "merges": 1,
                        "claims": 3,
                        "rejections": 0,
                        "errors": 1,
                        "recycled": 2,
                        "review-rounds-total": 2,
                    },
                ],
            }
        )
        meta = oompa_run(
            SID,
            "interrupted",
            iso(0),
            finished_at=iso(50),
            exit_status=2,
            tool_version="0.9.0",
            pytest_version="8.3.3",
        )
        (run_dir / "oompa-run.json").write_text(json.dumps(meta), encoding="utf-8")
        events.stopped("interrupted", stopped_at=iso(50))
    else:
        events.worker_running("w0", 3)  # counts iterations as cycles, in 0.7.0 mode
        events.worker_stopped("w1", 2, "error")
    return run_dir


def upstream_run(runs: Path, swarm_id: str = "up-073", config_file: str = "oompa.json") -> Path:
    """A run folder as upstream oompa 0.7.3 leaves it: event files only, no run.json."""
    events = EventWriter(runs, swarm_id)
    events.started(
        config_file=config_file,
        workers=[StartedWorker("w0", "claude", "opus", 3, True, max_resumes=7)],
        pid=dead_pid(),
        started_at=iso(0),
    )
    events.cycle("w0", 1, "stuck", duration_ms=20000, claimed_task_ids=["t1"], timestamp=iso(20))
    events.cycle(
        "w0", 2, "needs-followup", duration_ms=5000, claimed_task_ids=["t2"], timestamp=iso(26)
    )
    events.cycle("w0", 3, "interrupted", duration_ms=3000, timestamp=iso(30))
    events.stopped("interrupted", stopped_at=iso(31))
    return events.run_dir


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# --------------------------------------------------------------------------- the report


def test_a_mixed_run_shows_iterations_and_cycles_per_worker(runs: Path) -> None:
    run_dir = mixed_run(runs)
    run = load_run(run_dir)
    assert run.problems == []
    # w0 from its iteration files (its cycle files repeat them), w1 from its cycle files
    assert [(it.label, it.outcome, it.source) for it in run.iterations] == [
        ("w0 i1", "claimed", "iteration"),
        ("w0 i2", "merged", "iteration"),
        ("w1 c1", "merged", "cycle"),
        ("w1 c2", "sync-failed", "cycle"),
    ]
    c1, c2 = run.iterations[2:]
    assert [r.verdict for r in c1.reviews] == ["needs-changes", "approved"]
    assert c1.attempts == [1, 2, 3] and c2.attempts == [1]
    assert [c.role for c in c2.calls or []] == ["worker", "sync"]
    assert c2.task_ids == ["t3", "t4"]
    assert (run.worker_unit("w0"), run.worker_unit("w1")) == ("iteration", "cycle")

    text = render_report(run_dir)
    page = Page(text)
    dupes = [i for i, n in Counter(page.ids).items() if n > 1]
    assert dupes == []
    # rows: one per unit, named as what it is; no row for w0's repeated cycles
    assert [k for k in page.rows] == ["it-w0-1", "it-w0-2", "cy-w1-1", "cy-w1-2"]
    assert page.rows["it-w0-2"].startswith("w0 · i2merged")
    c1_row, c2_row = page.rows["cy-w1-1"], page.rows["cy-w1-2"]
    assert c1_row.startswith("w1 · c1merged")
    assert "3 attempts, 6 calls" in c1_row and "a3 reviewer codex:o3" in c1_row
    assert "r1: needs-changes" in c1_row and "r2: approved" in c1_row
    assert "reviews/w1-c1-r2.json" not in c1_row  # links say "review r2", hrefs are below
    assert 'href="reviews/w1-c1-r1.json"' in text and 'href="calls/w1-c1.json"' in text
    assert 'href="cycles/w1-c1.json">cycle</a>' in text
    assert 'href="iterations/w0-i1.json">iteration</a>' in text
    assert c2_row.startswith("w1 · c2sync-failed") and "1 attempt, 2 calls" in c2_row
    assert "a1 sync codex:o3" in c2_row and "merge conflict in app.py" in c2_row
    assert "CONFLICT (content): app.py" in c2_row and "t3, t4" in c2_row
    # the timeline: bars named i/c, with a cycle's attempts
    bars = {b["href"]: b for b in page.bars}
    assert bars["#it-w0-1"]["aria-label"].startswith("w0 i1: claimed")
    assert bars["#it-w0-1"]["data-iteration"] == "1"
    w1c1 = bars["#cy-w1-1"]
    assert w1c1["data-cycle"] == "1" and "data-iteration" not in w1c1
    assert w1c1["aria-label"].startswith("w1 c1: merged")
    assert "task t2, 3 attempts, 2 review round(s): needs-changes, approved" in w1c1["aria-label"]
    assert "o-sync-failed" in bars["#cy-w1-2"]["class"].split()
    assert "<b>w1</b><small>idle: interrupted · ran 2/4 cycles</small>" in text
    assert "<b>w0</b><small>exhausted · ran 2/2 iterations</small>" in text
    # the legend explains the outcomes only cycles have
    assert '<span class="o o-sync-failed" aria-hidden="true">S</span> sync-failed' in text
    # tables and header name both units
    assert '<h2 id="h-iterations">Iterations and cycles</h2>' in text
    assert '<a href="#iterations">Iterations and cycles</a>' in text
    assert ">2 of 2 iterations<" in text and ">2 of 4 cycles<" in text
    assert "<b>2 of 2</b> iterations recorded" in text and "<b>2 of 4</b> cycles recorded" in text
    assert "<b>1</b> failed (error, rejected, merge-failed, sync-failed or stuck)" in text
    assert "4 cycles of up to 3 attempts" in text and ">2 iterations<" in text
    assert '<a href="#cy-w1-1">w1 c1</a>' in text and '<a href="#it-w0-1">w0 i1</a>' in text
    assert page.facts["written by"] == "pytest-oompa 0.9.0"
    assert page.facts["config"] == "/p/oompa.json"
    assert "Some files could not be used" not in text


def test_a_cut_off_mixed_run_counts_cycle_errors_and_names_units(runs: Path) -> None:
    run_dir = mixed_run(runs, finished=False, pid=dead_pid())
    run = load_run(run_dir)
    assert run.status()[0] == "incomplete"
    # the state file counts w0's iterations as cycles; the label names them as iterations
    assert run.worker_status("w0") == "exited mid-iteration 3"
    assert run.worker_status("w1") == "stopped: error after cycle 2"
    text = render_report(run_dir)
    page = Page(text)
    w1 = next(v for k, v in page.rows.items() if k == "cy-w1-1")
    assert "3 attempts" in w1
    # the workers table of a cut-off run: w1's errors come from its outcomes (sync-failed)
    workers = text.split('id="workers"')[1].split("</section>")[0]
    w1_cells = workers.split('<th scope="row">w1</th>')[1].split("</tr>")[0]
    assert "<td>stopped: error after cycle 2" in w1_cells
    numbers = [c.split("<")[0] for c in w1_cells.split('<td class="n">')[1:]]
    # ran, completed, merges, claims, rejections, errors, recycled, review rounds
    assert numbers == ["2 of 4 cycles", "1", "1", "≥3", "0", "1", "2", "2"]
    assert "the iteration and cycle files" in text
    assert "a cycle that was running reads as it was after its last attempt" in text
    # the listing counts each worker's units once, and sync-failed as an error
    (info,) = list_runs(runs)
    assert (info.iterations, info.cycles, info.merges, info.errors) == (2, 2, 2, 1)


def test_an_upstream_run_says_who_wrote_it_and_which_config(runs: Path) -> None:
    run_dir = upstream_run(runs)
    run = load_run(run_dir)
    assert run.problems == [] and run.run is None
    assert [it.label for it in run.iterations] == ["w0 c1", "w0 c2", "w0 c3"]
    text = render_report(run_dir)
    page = Page(text)
    assert page.facts["written by"] == "oompa 0.7.3"
    assert page.facts["config"] == "oompa.json"  # started.json's, there is no run.json
    assert "From started.json: the run has no run.json." in text
    assert "3 cycles of up to 7 attempts" in text
    assert '<h2 id="h-iterations">Cycles</h2>' in text
    # no calls records: the cells say so, not "0 attempts"
    assert "attempt" not in page.rows["cy-w0-1"]
    for outcome in ("stuck", "needs-followup", "interrupted"):
        assert f'<span class="o o-{outcome}">{outcome}</span>' in text
    assert "<b>2</b> failed" not in text and "<b>1</b> failed" in text  # stuck only
    # a started.json that names no config file: the header says it is unknown
    other = upstream_run(runs, "up-073-noconf", config_file="")
    assert Page(render_report(other)).facts["config"] == "unknown (not recorded)"


def test_a_run_of_ours_in_0_7_0_mode_is_not_shown_twice(runs: Path) -> None:
    """Each of our 0.7.0-mode iterations is also a cycle file: the report, the listing and
    ``show`` count it once, as an iteration."""
    run_dir = mixed_run(runs)
    for path in (run_dir / "cycles").glob("w1-*.json"):
        path.unlink()
    for path in (run_dir / "reviews").glob("w1-*.json"):
        path.unlink()
    run = load_run(run_dir)
    assert [it.label for it in run.iterations] == ["w0 i1", "w0 i2"]
    assert run.orphan_reviews == []
    (info,) = list_runs(runs)
    assert (info.iterations, info.cycles) == (2, 0)


# --------------------------------------------------------------------------- show


def test_show_names_iterations_and_cycles(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mixed_run(runs)
    assert main_show(["--runs-dir", str(runs), SID]) == 0
    out = capsys.readouterr().out
    assert "written by: pytest-oompa" in out and "config: /p/oompa.json" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "iteration/cycle" in lines and "attempts" in lines["iteration/cycle"]
    assert lines["w0-i1"].split()[1:3] == ["claimed", "9.0"]
    assert lines["w1-c1"].split()[1:] == ["merged", "24.0", "s", "t2", "3", "2"]
    assert lines["w1-c2"].split()[1:7] == ["sync-failed", "15.0", "s", "t3,", "t4", "1"]
    assert "CONFLICT (content): app.py" in lines["w1-c2"]
    assert "w0-c1" not in lines  # w0's cycle files repeat its iterations


def test_show_a_cut_off_mixed_run(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mixed_run(runs, finished=False, pid=dead_pid())
    assert main_show([str(runs / SID)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "exited mid-iteration 3" in rows["w0"] and "2 of 2 iterations" in rows["w0"]
    assert "stopped: error after cycle 2" in rows["w1"] and "2 of 4 cycles" in rows["w1"]
    assert rows["w1"].split()[-2:] == ["1", "1"]  # merges, errors (sync-failed)


def test_show_an_upstream_run(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    upstream_run(runs)
    assert main_show(["--runs-dir", str(runs), "up-073"]) == 0
    out = capsys.readouterr().out
    assert "written by: oompa 0.7.3" in out and "config: oompa.json" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["cycle"].split() == [
        *("cycle", "outcome", "duration", "tasks", "attempts", "review", "rounds", "error")
    ]
    assert lines["w0-c1"].split()[1] == "stuck" and lines["w0-c1"].split()[5] == "-"
    assert "w0-c3" in lines and "interrupted" in lines["w0-c3"]
