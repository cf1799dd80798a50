"""The swarm report (``pytest_oompa.report``): hand-made run folders for escaping, cut-off
runs, corrupt and missing files and every outcome; then a real fake-harness swarm rendered in
headless Chromium, with a screenshot kept as a test artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.run_meta import oompa_run

from pytest_oompa import GitRepo
from pytest_oompa.core.config import resolve
from pytest_oompa.engine.swarm import Swarm, SwarmListener, SwarmOptions
from pytest_oompa.report import OUTCOMES, main, render_report, write_report
from pytest_oompa.report import page as report
from pytest_oompa.report.model import CYCLE_ONLY_OUTCOMES
from pytest_oompa.runs.artifacts import ArtifactStore

T0 = datetime(2025, 1, 31, 12, 0, 0, tzinfo=timezone.utc)
#: the outcomes an iteration file can hold (the others end cycles only)
ITERATION_OUTCOMES = [o for o in OUTCOMES if o not in CYCLE_ONLY_OUTCOMES]
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"


def iso(seconds: float) -> str:
    ts = T0 + timedelta(seconds=seconds)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- reading the page


class Dom(HTMLParser):
    """Just enough of the page: every element's attributes, the bars with their text, the
    table rows by id, and the text of <script> elements."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.bars: list[dict[str, str]] = []
        self.rows: dict[str, dict[str, str]] = {}
        self.scripts: list[str] = []
        self._bar: dict[str, str] | None = None
        self._row: dict[str, str] | None = None
        self._script: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag == "a" and "bar" in a.get("class", "").split():
            self._bar = {**a, "text": ""}
        if tag == "tr" and a.get("id"):
            self._row = {**a, "text": ""}
        if tag == "script":
            self._script = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._bar is not None:
            self.bars.append(self._bar)
            self._bar = None
        if tag == "tr" and self._row is not None:
            self.rows[self._row["id"]] = self._row
            self._row = None
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        for holder in (self._bar, self._row):
            if holder is not None:
                holder["text"] += data
        if self._script is not None:
            self._script.append(data)

    def root(self) -> dict[str, str]:
        return next(a for t, a in self.elements if t == "html")

    def by_id(self, id_: str) -> dict[str, str] | None:
        return next((a for _, a in self.elements if a.get("id") == id_), None)


# --------------------------------------------------------------------------- hand-made runs


class RunFolder:
    """A run folder written through the artifact store, so every file is a valid artifact."""

    def __init__(
        self,
        tmp_path: Path,
        workers: dict[str, int],
        swarm_id: str = "20250131T120000Z-abc123",
        *,
        config_file: str = "/p/oompa.json",
        reviewer: bool = True,
        planner: bool = False,
    ) -> None:
        self.store = ArtifactStore(tmp_path / "runs", swarm_id)
        self.dir = self.store.run_dir
        self.workers = workers
        self.metrics: dict[str, dict[str, int]] = {}
        self.outcomes: dict[str, list[str]] = {w: [] for w in workers}
        self.store.write_run(
            {
                "swarm-id": swarm_id,
                "started-at": iso(0),
                "config-file": config_file,
                "workers": [
                    {
                        "id": w,
                        "harness": "claude",
                        "model": "opus",
                        "reasoning": None,
                        "iterations": n,
                        "can-plan": True,
                        "prompts": ["prompts/worker.md"],
                    }
                    for w, n in workers.items()
                ],
                "planner": {
                    "harness": "codex",
                    "model": "o3",
                    "prompts": ["prompts/planner.md"],
                    "max-pending": 5,
                }
                if planner
                else None,
                "reviewer": {"harness": "claude", "model": "sonnet", "prompts": []}
                if reviewer
                else None,
            }
        )

    def iteration(
        self,
        worker: str,
        outcome: str,
        end: float,
        duration: float,
        *,
        task: str | None = None,
        recycled: tuple[str, ...] = (),
        snippet: str | None = None,
        reviews: tuple[tuple[str, str | None], ...] = (),
    ) -> int:
        n = len(self.outcomes[worker]) + 1
        self.outcomes[worker].append(outcome)
        m = self.metrics.setdefault(
            worker,
            {"merges": 0, "rejections": 0, "errors": 0, "recycled": 0, "review-rounds-total": 0},
        )
        m["merges"] += outcome == "merged"
        m["rejections"] += outcome == "rejected"
        m["errors"] += outcome == "error"
        m["recycled"] += len(recycled)
        m["review-rounds-total"] += len(reviews)
        for r, (verdict, output) in enumerate(reviews, 1):
            self.store.write_review(
                {
                    "worker-id": worker,
                    "iteration": n,
                    "round": r,
                    "verdict": verdict,
                    "timestamp": iso(end - duration + duration * r / (len(reviews) + 1)),
                    "output": output,
                    "diff-files": ["src/a.py"],
                }
            )
        self.store.write_iteration(
            {
                "worker-id": worker,
                "iteration": n,
                "outcome": outcome,
                "timestamp": iso(end),
                "duration-ms": int(duration * 1000),
                "task-id": task,
                "recycled-tasks": list(recycled),
                "error-snippet": snippet,
                "review-rounds": len(reviews),
                "metrics": dict(m),
            }
        )
        self.store.update_live_summary(
            worker, {**m, "iteration": n, "status": outcome, "updated-at": iso(end)}
        )
        return n

    def summary(self, statuses: dict[str, str] | None = None, finished: float = 100) -> None:
        workers = []
        for w, n in self.workers.items():
            m = self.metrics.get(w, {})
            workers.append(
                {
                    "id": w,
                    "harness": "claude",
                    "model": "opus",
                    "status": (statuses or {}).get(w, "exhausted"),
                    "completed": m.get("merges", 0),
                    "iterations": n,
                    "merges": m.get("merges", 0),
                    "claims": m.get("merges", 0),
                    "rejections": m.get("rejections", 0),
                    "errors": m.get("errors", 0),
                    "recycled": m.get("recycled", 0),
                    "review-rounds-total": m.get("review-rounds-total", 0),
                }
            )
        counts: dict[str, int] = {}
        for w in workers:
            counts[w["status"]] = counts.get(w["status"], 0) + 1
        self.store.write_summary(
            {
                "swarm-id": self.store.swarm_id,
                "finished-at": iso(finished),
                "total-workers": len(workers),
                "total-completed": sum(w["completed"] for w in workers),
                "total-iterations": sum(w["iterations"] for w in workers),
                "status-counts": counts,
                "workers": workers,
            }
        )

    def write_json(self, rel: str, data: Any) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def render(self, **kwargs: Any) -> tuple[str, Dom]:
        text = render_report(self.dir, **kwargs)
        return text, Dom(text)


def every_outcome_run(tmp_path: Path) -> RunFolder:
    run = RunFolder(tmp_path, {"w0": 4, "w1": 4})
    t = 0.0
    for i, outcome in enumerate(ITERATION_OUTCOMES):
        worker = "w0" if i < 4 else "w1"
        if i == 4:
            t = 0.0
        reviews: tuple[tuple[str, str | None], ...] = ()
        if outcome == "merged":
            reviews = (("needs-changes", "- add a test"), ("approved", "fine"))
        if outcome == "rejected":
            reviews = (("rejected", "no"),)
        run.iteration(
            worker,
            outcome,
            end=t + 10,
            duration=9,
            task="t1" if outcome in ("claimed", "merged") else None,
            snippet="claude failed: exit code 1" if outcome == "error" else None,
            recycled=("t2",) if outcome in ("error", "rejected") else (),
            reviews=reviews,
        )
        t += 10
    return run


# --------------------------------------------------------------------------- unit tests


def test_every_outcome_is_a_labelled_bar_and_a_table_row(tmp_path):
    run = every_outcome_run(tmp_path)
    run.summary()
    text, dom = run.render()
    assert [b["data-outcome"] for b in dom.bars] == ITERATION_OUTCOMES
    for bar in dom.bars:
        outcome = bar["data-outcome"]
        letter = OUTCOMES[outcome][0]
        # the outcome in words (and its letter for narrow bars), not colour alone
        assert bar["text"] == outcome + letter
        assert f"o-{outcome}" in bar["class"].split()
        assert outcome in bar["aria-label"] and outcome in bar["title"]
        row = dom.rows[bar["href"][1:]]  # each bar links to its row of the iterations table
        assert row["data-outcome"] == outcome and outcome in row["text"]
    # positions: w0's first bar starts 1 s after the start and spans 9 s of a 100 s run
    first = dom.bars[0]
    assert "left:1.000%;width:9.000%" in first["style"]
    merged = next(b for b in dom.bars if b["data-outcome"] == "merged")
    assert "2 review round(s): needs-changes, approved" in merged["aria-label"]
    assert text.count('class="rv v-needs-changes"') == 1
    assert text.count('class="rv v-approved"') == 1
    # legend: every outcome an iteration can have, with its letter and its name (a cycle's
    # own outcomes only where there are cycles)
    for outcome, (letter, _) in OUTCOMES.items():
        entry = f'<span class="o o-{outcome}" aria-hidden="true">{letter}</span> {outcome}'
        assert (entry in text) == (outcome in ITERATION_OUTCOMES), outcome
    status = dom.by_id("h-timeline")
    assert status is not None


def test_header_workers_table_and_task_flow(tmp_path):
    run = RunFolder(tmp_path, {"w0": 3, "w1": 2})
    run.iteration("w0", "claimed", 5, 4, task="t1")
    run.iteration("w0", "merged", 12, 6, task="t1", reviews=(("approved", "ok"),))
    run.iteration("w1", "error", 8, 7, task="t2", recycled=("t2",), snippet="boom")
    run.iteration(
        "w1", "rejected", 20, 10, task="t3", recycled=("t3",), reviews=(("rejected", "x"),)
    )
    run.summary({"w0": "done"}, finished=30)
    text, dom = run.render()
    assert "<title>oompa swarm 20250131T120000Z-abc123 · finished</title>" in text
    assert "/p/oompa.json" in text
    assert "2025-01-31 12:00:00 UTC" in text and "2025-01-31 12:00:30 UTC" in text
    assert "30.0 s" in text  # duration
    assert ">2 of 3 iterations<" in text  # w0 ran 2 of its 3 iterations
    assert "<dt>written by</dt><dd>oompa 0.7.0&#x27;s format" in text  # run.json alone
    # task flow: who claimed, completed and recycled which task
    assert (
        '<th scope="row">t1</th><td><a href="#it-w0-1">w0 i1</a></td><td><a href="#it-w0-2">'
        in text
    )
    assert "3 task(s) seen: 1 completed, 2 recycled" in text
    assert "no <code>calls/</code> records" in text
    assert "Incomplete run." not in text and "Some files could not be used" not in text
    assert dom.root()["data-js"] == "off"  # until the script runs


def test_hostile_artifact_text_is_escaped(tmp_path):
    run = RunFolder(tmp_path, {"w0": 2}, config_file=f"/p/{HOSTILE}.json")
    run.iteration("w0", "error", 5, 4, task=HOSTILE, recycled=(HOSTILE,), snippet=HOSTILE)
    run.iteration("w0", "rejected", 9, 3, reviews=(("rejected", f"{HOSTILE}\n</pre></td>"),))
    run.summary()
    text, dom = run.render()
    assert "<script>alert" not in text and "<img" not in text and "</pre></td>\n" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in text
    assert [t for t, _ in dom.elements].count("script") == 1  # ours, nothing else
    assert not any(k.startswith("on") for _, a in dom.elements for k in a)
    assert dom.scripts == [report.JS]
    # and the policy only lets that one script run
    csp = next(a["content"] for t, a in dom.elements if a.get("http-equiv"))
    assert f"script-src '{report._script_hash()}'" in csp and "default-src 'none'" in csp


def test_a_cut_off_run_renders_from_the_live_summary(tmp_path):
    run = RunFolder(tmp_path, {"w0": 3, "w1": 3})
    run.iteration("w0", "merged", 5, 4, task="t1")
    run.iteration("w1", "claimed", 6, 5, task="t2")
    # cut off: no summary.json; a review of w1's second iteration, which never finished
    run.store.write_review(
        {
            "worker-id": "w1",
            "iteration": 2,
            "round": 1,
            "verdict": "needs-changes",
            "timestamp": iso(9),
            "output": "more",
            "diff-files": [],
        }
    )
    live = json.loads((run.dir / "live-summary.json").read_text("utf-8"))
    run.write_json("live-summary.json", {**live, "updated-at": iso(6)})
    text, dom = run.render()
    assert "<title>oompa swarm 20250131T120000Z-abc123 · incomplete</title>" in text
    assert "Incomplete run." in text and "live-summary.json" in text
    assert "reviews/w1-i2-r1.json" in text
    assert "ran at least" in text and "6.0 s" in text
    assert [b["data-outcome"] for b in dom.bars] == ["merged", "claimed"]
    assert "last: claimed" in text and "(cut off)" in text
    # with neither summary nor live summary, the iteration files still carry it
    (run.dir / "live-summary.json").unlink()
    text, dom = run.render()
    assert "Incomplete run." in text and "the iteration files" in text
    assert len(dom.bars) == 2


def test_corrupt_files_are_reported_not_fatal(tmp_path):
    run = RunFolder(tmp_path, {"w0": 3})
    run.iteration("w0", "merged", 5, 4)
    run.iteration("w0", "working", 9, 3)
    run.summary()
    (run.dir / "iterations" / "w0-i2.json").write_text('{"worker-id": "w0", "iter', "utf-8")
    (run.dir / "iterations" / "w0-i3.json").write_text(
        json.dumps({"worker-id": "w0", "iteration": 3, "outcome": "exploded"}), "utf-8"
    )
    (run.dir / "iterations" / "notes.json").write_text("{}", "utf-8")
    (run.dir / "summary.json").write_bytes(b"\xff\xfe not utf-8")
    run.write_json("calls/w0-i1.json", ["not", "an", "object"])
    text, dom = run.render()
    assert "Some files could not be used" in text
    assert "<code>iterations/w0-i2.json</code>: iteration artifact is not valid JSON" in text
    assert (
        "<code>iterations/w0-i3.json</code>: iteration artifact is invalid at $.timestamp" in text
    )
    assert "<code>iterations/notes.json</code>: not an iteration file name" in text
    assert "<code>summary.json</code>: summary artifact is not valid JSON" in text
    assert "<code>calls/w0-i1.json</code>" in text
    assert str(run.dir) not in text.split("Some files could not be used")[1].split("</div>")[0]
    assert [b["data-outcome"] for b in dom.bars] == ["merged"]
    # an unreadable run.json: still a report, from the iterations
    (run.dir / "run.json").write_text("[]", "utf-8")
    text, dom = run.render()
    assert "<code>run.json</code>: run artifact is invalid" in text
    assert len(dom.bars) == 1 and "No readable run.json." in text


def test_missing_optional_files(tmp_path):
    run = RunFolder(tmp_path, {"w0": 2}, reviewer=False)
    run.iteration("w0", "merged", 5, 4)
    run.summary()
    shutil.rmtree(run.dir / "reviews", ignore_errors=True)
    text, dom = run.render()
    assert "Some files could not be used" not in text
    assert "No reviewer" in text and "No planner configured." in text
    assert "no <code>calls/</code> records" in text
    assert "No iteration claimed, completed or recycled a task." in text
    assert len(dom.bars) == 1
    # only run.json: nothing to draw, but a page
    empty = RunFolder(tmp_path / "other", {"w0": 1})
    text, dom = empty.render()
    assert "nothing to draw" in text and dom.bars == []


def test_run_tracking_files_add_status_range_tokens_and_links(tmp_path):
    run = RunFolder(tmp_path, {"w0": 2}, planner=True)
    n = run.iteration("w0", "error", 5, 4, snippet="codex failed: exit code 1")
    run.summary(finished=10)
    sid = run.store.swarm_id
    run.write_json(
        "oompa-run.json",
        {
            "swarm-id": sid,
            "status": "failed",
            "started-at": iso(0),
            "finished-at": iso(11),
            "exit-status": 1,
            "tool-version": "0.1.0",
            "python-version": "3.11.9",
            "pytest-version": "8.3.3",
            "harness-versions": {"claude": "2.1.197"},
            "config-file": "/p/oompa.json",
            "config": {"workers": [{"model": "claude:opus"}], "note": HOSTILE},
            "prompts": {"prompts/worker.md": f"Work. {HOSTILE}"},
            "repo": "/p",
            "main-before": "a" * 40,
            "main-after": "b" * 40,
            "pid": 1,
            "host": "h",
            "errors": [f"worker w0 failed: {HOSTILE}"],
        },
    )

    def call(role: str, stem: str, **kw: Any) -> dict[str, Any]:
        return {
            "name": stem,
            "role": role,
            "harness": "claude",
            "model": "opus",
            "argv": ["claude", "-p"],
            "cwd": "/p",
            "exit-code": kw.get("exit", 0),
            "duration-ms": 1500,
            "session-id": None,
            "input-tokens": kw.get("tin"),
            "output-tokens": kw.get("tout"),
            "cost-usd": kw.get("cost"),
            "failure": kw.get("failure"),
            "log": kw.get("log", f"commands/{stem}.ndjson"),
            "error": kw.get("error"),
        }

    run.write_json(
        f"calls/w0-i{n}.json",
        {
            "swarm-id": sid,
            "worker-id": "w0",
            "iteration": n,
            "calls": [
                call(
                    "worker",
                    "w0-i1-worker-1",
                    exit=1,
                    tin=1200,
                    tout=300,
                    cost=0.0125,
                    failure="exit code 1",
                    error="errors/w0-i1-worker-1.json",
                ),
                call("reviewer", "w0-i1-reviewer-1", tin=10, tout=5, log="../../etc/passwd"),
            ],
        },
    )
    run.write_json(
        "calls/planner.json",
        {
            "swarm-id": sid,
            "worker-id": "planner",
            "iteration": None,
            "calls": [call("planner", "planner-1", tin=50, tout=20, cost=0.5)],
        },
    )
    run.write_json("commands/w0-i1-worker-1.ndjson", {})
    run.write_json(
        "errors/w0-i1-worker-1.json",
        {
            "swarm-id": sid,
            "name": "w0-i1-worker-1",
            "timestamp": iso(5),
            "role": "worker",
            "harness": "claude",
            "argv": ["claude", "-p"],
            "cwd": "/p",
            "exit-code": 1,
            "duration-ms": 1500,
            "failure": "exit code 1",
            "stderr-tail": f"quota exceeded {HOSTILE}",
            "stdout-tail": "",
            "log": "commands/w0-i1-worker-1.ndjson",
        },
    )
    text, dom = run.render()
    # the one problem: a link out of the run folder, refused
    problems = text.split("Some files could not be used")[1].split("</div>")[0]
    assert problems.count("<li>") == 1
    assert "ignored a link outside commands/ and errors/: &#x27;../../etc/passwd&#x27;" in problems
    assert "<title>oompa swarm 20250131T120000Z-abc123 · failed</title>" in text
    assert "exit status 1" in text
    assert 'title="' + "a" * 40 + ".." + "b" * 40 + '">aaaaaaaaaa..bbbbbbbbbb</code>' in text
    assert "claude 2.1.197" in text and "Python 3.11.9" in text
    assert "worker stderr:</div><pre>quota exceeded &lt;script&gt;" in text  # errors/ artifact
    assert "The run reported errors" in text and "worker w0 failed: &lt;script&gt;" in text
    hrefs = [a["href"] for t, a in dom.elements if t == "a" and "href" in a]
    assert "commands/w0-i1-worker-1.ndjson" in hrefs and "errors/w0-i1-worker-1.json" in hrefs
    assert "calls/w0-i1.json" in hrefs and "iterations/w0-i1.json" in hrefs
    # a link the calls file names but the folder lacks is shown, struck through, not linked
    assert '<span class="missing" title="not in this run folder">log</span>' in text
    assert not any(h.startswith(("/", "..", "http", "javascript")) for h in hrefs)
    # tokens and cost: per worker, the planner, and the total
    assert "1,210 / 305" in text  # the iteration's tokens in / out
    assert "$0.5125" in text  # total cost
    assert "planner 1" in text and "reviewer 1, worker 1" in text
    assert dom.by_id("planner") is not None and "The planner&#x27;s call" in text
    assert any(b["data-outcome"] == "planner" for b in dom.bars)
    assert "The config file as it was at the start" in text and "Prompt <code>" in text
    assert "<script>alert" not in text


def test_heartbeat_decides_running_or_cut_off(tmp_path):
    run = RunFolder(tmp_path, {"w0": 2})
    run.iteration("w0", "working", 5, 4)
    sid = run.store.swarm_id
    meta = oompa_run(sid, "running", iso(0))
    run.write_json("oompa-run.json", meta)
    beat = {
        "swarm-id": sid,
        "pid": 1,
        "host": "h",
        "updated-at": iso(6),
        "interval-s": 5,
        "state": "running",
    }
    run.write_json("heartbeat.json", beat)
    text, _ = run.render(now=T0 + timedelta(seconds=10))
    assert "· running</title>" in text and "heartbeat 4.0 s ago" in text
    text, _ = run.render(now=T0 + timedelta(seconds=600))
    assert "· incomplete</title>" in text and "heartbeat stale" in text
    run.write_json("heartbeat.json", {**beat, "state": "stopped"})
    text, _ = run.render(now=T0 + timedelta(seconds=10))
    assert "· incomplete</title>" in text and "stopped without a final status" in text


def test_eight_workers_by_ten_iterations_stay_small(tmp_path):
    workers = {f"w{i}": 10 for i in range(8)}
    run = RunFolder(tmp_path, workers)
    cycle = ["claimed", "merged", "working", "merged", "error", "merged", "rejected", "merged"]
    for w in workers:
        t = 0.0
        for k in range(10):
            outcome = cycle[(k + int(w[1:])) % len(cycle)]
            reviews: tuple[tuple[str, str | None], ...] = ()
            if outcome == "merged":
                reviews = (("needs-changes", "- a test please\n" * 5), ("approved", "LGTM"))
            elif outcome == "rejected":
                reviews = (("rejected", "no: " + "x" * 300),)
            t += 30
            run.iteration(
                w,
                outcome,
                end=t,
                duration=25,
                task=f"t{k}",
                recycled=(f"t{k}",) if outcome in ("error", "rejected") else (),
                snippet="codex failed: exit code 1\n" + "stderr " * 25
                if outcome == "error"
                else None,
                reviews=reviews,
            )
    run.summary(finished=310)
    path = write_report(run.dir)
    size = path.stat().st_size
    dom = Dom(path.read_text("utf-8"))
    assert len(dom.bars) == 80
    assert size < 300_000, size
    print(f"8 workers x 10 iterations: report.html is {size:,} bytes")


def test_command_line(tmp_path, monkeypatch, capsys):
    run = RunFolder(tmp_path, {"w0": 1})
    run.iteration("w0", "merged", 5, 4)
    run.summary()
    sid = run.store.swarm_id
    runs = tmp_path / "runs"
    assert main([sid, "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(runs / sid / "report.html") and Path(out).is_file()
    Path(out).unlink()
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("OOMPA_RUNS_DIR", str(runs))  # wins over RUNS_DIR
    assert main([sid]) == 0 and Path(capsys.readouterr().out.strip()).is_file()
    assert main([str(run.dir)]) == 0  # a path
    monkeypatch.delenv("OOMPA_RUNS_DIR")
    assert main([sid]) == 2
    assert "no such run folder" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # ./runs
    monkeypatch.delenv("RUNS_DIR")
    assert main([sid]) == 0
    assert main(["../x"]) == 2 and main([str(tmp_path)]) == 2
    assert "not a swarm run folder" in capsys.readouterr().err
    # through the package's command dispatcher, in a fresh interpreter
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_oompa", "report", sid, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(runs / sid / "report.html")


def test_the_module_does_not_import_pytest():
    code = "import sys, pytest_oompa.report; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------- a real swarm


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = find_chromium()


def chromium(tmp_path: Path, name: str, *args: str) -> subprocess.Popen[str]:
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / f'chromium-{name}'}",
        *args,
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class StopWhenOnlyTheHangerIsLeft(SwarmListener):
    """Stops the swarm (as Ctrl-C would) once every other worker has finished and ``hanger``
    is stuck in its last iteration: that worker is interrupted, its hanging call killed."""

    def __init__(self, hanger: str, others: int, hang_after: int) -> None:
        self.hanger, self.others, self.hang_after = hanger, others, hang_after
        self.swarm: Swarm | None = None
        self.finished: set[str] = set()
        self.hanging = False
        self.lock = threading.Lock()

    def iteration_finished(self, result: Any) -> None:
        if result.worker_id == self.hanger and result.iteration == self.hang_after:
            with self.lock:
                self.hanging = True
            self._maybe_stop()

    def worker_finished(self, report: Any) -> None:
        with self.lock:
            self.finished.add(report.worker_id)
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        with self.lock:
            ready = self.hanging and len(self.finished - {self.hanger}) == self.others
        if ready and self.swarm is not None:
            threading.Timer(0.3, self.swarm.stop).start()


def run_showcase_swarm(tmp_path: Path) -> Path:
    """A real swarm with the fake harnesses: merges, a claim, errors (one worker stopped by
    three in a row), a rejection, a review in two rounds, a worker that says it is done, an
    executor with nothing to merge, and a worker interrupted while its agent hangs."""
    repo = GitRepo(tmp_path / "project")
    for k in range(1, 13):
        repo.add_task(f"t{k}", summary=f"task {k}")
    repo.commit("seed tasks")
    slow = {"builtin": True, "delay": 0.25}
    scenario = {
        "default": {"worker": slow, "planner": {"builtin": True, "delay": 0.2}},
        "workers": {
            "w0": {"worker": {"exit": 2, "stderr": "segfault in tool", "delay": 0.15}},
            "w1": {
                "worker": [
                    {"claim": "auto", "delay": 0.15},
                    slow,
                    {"exit": 1, "stderr": "429 <b>rate limited</b>", "delay": 0.1},
                    slow,
                ]
            },
            "w2": {
                "worker": slow,
                "reviewer": [{"say": "no tests", "verdict": "rejected"}, "default"],
            },
            "w3": {"worker": [slow, {"say": "All done.", "done": True, "delay": 0.1}]},
            "w4": {"worker": [{"say": "still thinking", "delay": 0.3}, slow, {"hang": True}]},
            "w5": {"worker": [{"merge": True, "delay": 0.1}, {"done": True, "delay": 0.1}]},
            "w6": {
                "worker": [slow, {"builtin": True, "delay": 0.4}, slow],
                "reviewer": [
                    {
                        "say": "- add a test\n- <script>alert('x')</script>",
                        "verdict": "needs-changes",
                    },
                    {"verdict": "approved"},
                    "default",
                ],
            },
        },
    }
    folder = tmp_path / "swarm"
    folder.mkdir()
    (folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
    (folder / "worker.md").write_text("Take a task and do it.", encoding="utf-8")
    data = {
        "probe": False,
        "executor_wait": 0,
        "fake_harnesses": {"scenario": "scenario.json"},
        "planner": {"model": "claude:opus", "max_pending": 14},
        "reviewer": {"model": "claude:sonnet"},
        "workers": [
            {"model": "opencode:fake/fake-model", "iterations": 4},
            {"model": "codex:gpt-5.3-codex:medium", "iterations": 4},
            {"model": "gemini:gemini-2.5-pro", "iterations": 3},
            {"model": "opencode:fake/fake-model", "iterations": 4},
            {"model": "claude:opus", "iterations": 4},
            {"model": "codex:o3", "iterations": 2, "can_plan": False},
            {"model": "claude:opus", "iterations": 3, "prompt": "worker.md"},
        ],
    }
    config_path = folder / "oompa.json"
    config_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    config = resolve(data, config_path, ("claude", "codex", "opencode", "gemini"))
    listener = StopWhenOnlyTheHangerIsLeft("w4", others=6, hang_after=2)
    swarm = Swarm(
        config,
        SwarmOptions(
            runs_dir=tmp_path / "runs",
            repo_root=repo.path,
            env={"OOMPA_FAKE_STATE": str(folder / "fake-state")},
        ),
        listener,
    )
    listener.swarm = swarm
    swarm.prepare()
    swarm.start()
    assert swarm.wait(timeout=60), "the swarm did not end"
    finalize = getattr(swarm, "finalize", None)  # run tracking: oompa-run.json's final status
    if finalize is not None:
        finalize()
    assert swarm.result.interrupted
    return swarm.run_dir


EXPECTED = {
    "w0": ["error", "error", "error"],
    "w1": ["claimed", "merged", "error", "merged"],
    "w2": ["rejected", "merged", "merged"],
    "w3": ["merged", "done"],
    "w4": ["working", "merged"],
    "w5": ["no-changes", "executor-done"],
    "w6": ["merged", "merged", "merged"],
}


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)",
)
def test_real_swarm_report_in_headless_chromium(tmp_path):
    run_dir = run_showcase_swarm(tmp_path)
    path = write_report(run_dir)
    url = path.as_uri()
    shot = tmp_path / "report-screenshot.png"
    dump = chromium(tmp_path, "dom", "--dump-dom", url)
    snap = chromium(
        tmp_path,
        "shot",
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        "--hide-scrollbars",
        f"{url}#pop-it-w6-1",  # its popover open: two review rounds
    )
    dom_text, dump_err = dump.communicate(timeout=60)
    _, snap_err = snap.communicate(timeout=60)
    assert dump.returncode == 0, dump_err[-2000:]
    assert snap.returncode == 0, snap_err[-2000:]

    dom = Dom(dom_text)
    assert dom.root().get("data-js") == "ready"  # the script ran under the page's own CSP
    by_key = {
        (b["data-worker"], int(b["data-iteration"])): b for b in dom.bars if "data-worker" in b
    }
    found = {
        w: [by_key[(w, n)]["data-outcome"] for n in range(1, 10) if (w, n) in by_key]
        for w in EXPECTED
    }
    assert found == EXPECTED
    iteration_files = sorted(p.name for p in (run_dir / "iterations").glob("*.json"))
    assert len(by_key) == len(iteration_files) == sum(map(len, EXPECTED.values()))
    for (w, n), bar in by_key.items():
        assert bar["text"].startswith(bar["data-outcome"])  # labelled, not colour alone
        assert f"o-{bar['data-outcome']}" in bar["class"].split()
        assert bar["href"] == f"#it-{w}-{n}" and f"it-{w}-{n}" in dom.rows
        assert "title" not in bar and bar["data-title"]  # the script took over the tooltips
    # w6's first iteration: two review rounds, marked on its bar
    assert "2 review round(s): needs-changes, approved" in by_key[("w6", 1)]["aria-label"]
    assert dom_text.count('data-round="') == sum(1 for _ in (run_dir / "reviews").glob("*.json"))
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in dom_text.replace("&#x27;", "'")
    assert "429 &lt;b&gt;rate limited&lt;/b&gt;" in dom_text
    # the interrupted worker ran 2 of its 4 iterations; the early stoppers are there too
    for worker, label in (("w4", "idle: interrupted"), ("w3", "done"), ("w0", "error")):
        ran = len(EXPECTED[worker])
        assert f"<b>{worker}</b><small>{label} · ran {ran}/4 iterations</small>" in dom_text
        assert f"{4 - ran} not reached" in dom_text
    assert shot.stat().st_size > 20_000
    if os.environ.get("OOMPA_REPORT_SCREENSHOT"):  # refresh docs/report-screenshot.png
        shutil.copy(shot, os.environ["OOMPA_REPORT_SCREENSHOT"])


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_outcome_colours_keep_their_labels_readable():
    """WCAG AA (4.5:1) for the bar and badge labels: white text, dark on the pale ones."""
    import re

    colours = dict(re.findall(r"--([a-z-]+):(#[0-9a-f]{6})", report.CSS))
    dark = ("no-changes", "interrupted", "needs-followup")
    for outcome in OUTCOMES:
        assert (f".o-{outcome}{{" in report.CSS) or (f".o-{outcome}," in report.CSS), outcome
        text = "#1f2328" if outcome in dark else "#ffffff"
        assert contrast(colours[outcome], text) >= 4.5, outcome
    assert contrast(colours["muted"], "#ffffff") >= 4.5
