"""``oompa list``, ``oompa view [ID]`` and ``oompa report [ID|PATH]`` on runs of real swarms."""

from __future__ import annotations

import json
import re

from oompa_cli import FAST, assert_usage_error, oompa

CONFIG = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1, "count": 2}]}


def test_list_and_view_the_newest_run_by_default(oompa_repo, oompa_swarm, tmp_path):
    runs = tmp_path / "runs"
    first = oompa_swarm(CONFIG, runs_dir=runs)
    second = oompa_swarm(
        {**CONFIG, "workers": [{"model": "codex:o3", "iterations": 1}]}, runs_dir=runs
    )
    ids = [first.result.swarm_id, second.result.swarm_id]

    listed = oompa("list", "--runs-dir", runs)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["id", "status"]
    assert [line.split()[0] for line in lines[1:]] == ids[::-1]  # newest first
    as_json = json.loads(oompa("list", "--runs-dir", runs, "--json").stdout)
    assert [r["id"] for r in as_json] == ids[::-1]

    newest = oompa("view", "--runs-dir", runs)
    assert newest.returncode == 0, newest.stderr
    assert newest.stdout.startswith(f"swarm {ids[1]}: ")
    assert "codex:o3" in newest.stdout and "w0-i1" in newest.stdout

    by_id = oompa("view", ids[0], env={"OOMPA_RUNS_DIR": str(runs)})  # the env's runs folder
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.startswith(f"swarm {ids[0]}: ")
    assert "w1-i1" in by_id.stdout
    by_path = oompa("view", first.run_dir, "--json")
    assert json.loads(by_path.stdout)["run"]["id"] == ids[0]


def test_list_says_when_there_are_no_runs(tmp_path):
    proc = oompa("list", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "no runs in runs"


def test_view_reports_a_corrupt_file_without_a_traceback(oompa_swarm):
    run = oompa_swarm(CONFIG)
    (run.run_dir / "iterations" / "w0-i1.json").write_text("{broken")
    proc = oompa("view", "--runs-dir", run.run_dir.parent)
    assert proc.returncode == 1
    assert "corrupt:" in proc.stderr and "Traceback" not in proc.stderr


def test_report_writes_the_newest_runs_page_or_the_one_named(oompa_swarm, tmp_path):
    runs = tmp_path / "runs"
    first = oompa_swarm(CONFIG, runs_dir=runs)
    second = oompa_swarm(CONFIG, runs_dir=runs)
    for page in runs.glob("*/report.html"):
        page.unlink()
    newest = oompa("report", "--runs-dir", runs)
    assert newest.returncode == 0, newest.stderr
    assert newest.stdout.strip() == str(second.run_dir / "report.html")
    assert (second.run_dir / "report.html").read_text().lstrip().lower().startswith("<!doctype")
    assert not (first.run_dir / "report.html").exists()
    named = oompa("report", first.result.swarm_id, "--runs-dir", runs)
    assert named.returncode == 0 and (first.run_dir / "report.html").exists()
    by_path = oompa("report", first.run_dir)
    assert by_path.returncode == 0 and by_path.stdout.strip() == str(first.run_dir / "report.html")


def test_view_watch_forwards_to_show_watch(oompa_swarm):
    run = oompa_swarm(CONFIG)
    runs = run.run_dir.parent
    # an ended run: one view, under show --watch's line with the time, and the watch ends
    watched = oompa("view", "--runs-dir", runs, "--watch", "--interval", "0.1")
    assert (watched.returncode, watched.stderr) == (0, "")
    stamp, *rest = watched.stdout.splitlines()
    assert re.fullmatch(r"--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ ---", stamp)
    assert rest[0].startswith(f"swarm {run.result.swarm_id}: completed")
    assert "\n".join(rest) == oompa("view", "--runs-dir", runs).stdout.rstrip("\n")
    refused = assert_usage_error(oompa("view", "--runs-dir", runs, "--watch", "--json"))
    assert refused.startswith("oompa view: error: --watch draws for people")
    assert "--interval goes with --watch" in assert_usage_error(
        oompa("view", "--runs-dir", runs, "--interval", "1")
    )
