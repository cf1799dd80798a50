"""The swarm's CI summary: the markdown (GITHUB_STEP_SUMMARY, --oompa-summary-md) and the
GitHub ``::error`` annotations, golden for a hand-built result, then from real swarms with the
bundled fakes, with and without pytest-xdist."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.terminal import default_sigint

from pytest_oompa import GitRepo
from pytest_oompa.core.config import DEFAULT_OUTCOMES
from pytest_oompa.core.gate import Check
from pytest_oompa.core.results import (
    CallRecord,
    IterationResult,
    Outcome,
    ReviewRound,
    WorkerMetrics,
    WorkerReport,
    WorkerStatus,
)
from pytest_oompa.engine.spend import Spend
from pytest_oompa.engine.swarm import SwarmResult
from pytest_oompa.plugin.ci_summary import (
    github_annotations,
    markdown,
    verdict,
    workflow_command,
)

ROOT = Path("/ci/project")
SWARM_ID = "20250102-030405-ab12"
RUN = ROOT / "runs" / SWARM_ID
REVIEW_CALL = CallRecord("reviewer", "codex", "o3", (), "", 0, 10)


def item(worker: str, n: int, outcome: Outcome, *, cycle: bool = False, **kw) -> IterationResult:
    label = f"{'c' if cycle else 'i'}{n}"
    folder = "cycles" if cycle else "iterations"
    kw.setdefault("artifact", RUN / folder / f"{worker}-{label}.json")
    return IterationResult(worker, n, outcome, "t0", "t1", 1000, cycle=cycle, **kw)


def worker(wid: str, model: str, status: WorkerStatus, **metrics: int) -> WorkerReport:
    harness, _, name = model.partition(":")
    return WorkerReport(wid, harness, name, status, 2, 2, WorkerMetrics(**metrics))


def swarm_result(**kw) -> SwarmResult:
    return SwarmResult(swarm_id=SWARM_ID, run_dir=RUN, repo_root=ROOT, started_at="t0", **kw)


def failed_run() -> SwarmResult:
    """Three workers (w1 reported first, as threads end), an error with a multi-line reason,
    a rejection (no error: its review says why), a stuck cycle, an interrupted cycle (skipped,
    not failed), a failed gate and spend with calls that reported no cost."""
    rejected = ReviewRound(
        1, "rejected", "\nThis | is *wrong*.\nSecond line", ("x.txt",), REVIEW_CALL
    )
    return swarm_result(
        workers={
            "w1": worker(
                "w1", "codex:o3", WorkerStatus.ERROR, errors=1, rejections=1, claims=2, recycled=2,
                review_rounds_total=1,
            ),
            "w0": worker(
                "w0", "claude:opus", WorkerStatus.EXHAUSTED, merges=2, completed=2, claims=2,
                review_rounds_total=2,
            ),
            "w2": worker("w2", "gemini:pro", WorkerStatus.IDLE, errors=1),
        },
        iterations=[
            item("w0", 1, Outcome.MERGED),
            item("w0", 2, Outcome.MERGED),
            item("w1", 2, Outcome.REJECTED, reviews=[rejected]),
            item("w1", 1, Outcome.ERROR, error="claude failed: exit code 3\n100% <on> fire & gone"),
            item(
                "w2", 1, Outcome.STUCK, cycle=True,
                error="no outcome ended the cycle in 3 attempts (max_resumes)",
            ),
            item("w2", 2, Outcome.INTERRUPTED, cycle=True),
        ],
        gate=[Check("min_merges", False, "2", ">= 3"), Check("max_errors", True, "2", "<= 5")],
        spend={"w0": Spend(0.0472, 12345, 3, 0), "w1": Spend(0.0, 300, 2, 2)},
    )  # fmt: skip


FAILED_MARKDOWN = """\
## oompa swarm `20250102-030405-ab12`: ❌ failed

### Workers

| worker | harness:model | status | completed | merges | claims | rejections | errors | recycled | review rounds |
| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| w0 | claude:opus | exhausted | 2 | 2 | 2 | 0 | 0 | 0 | 2 |
| w1 | codex:o3 | error | 0 | 0 | 2 | 1 | 1 | 2 | 1 |
| w2 | gemini:pro | idle | 0 | 0 | 0 | 0 | 1 | 0 | 0 |

### Gate: FAILED

| check | measured | threshold | result |
| --- | --- | --- | --- |
| `min_merges` | 2 | >= 3 | **FAILED** |
| `max_errors` | 2 | &lt;= 5 | ok |

### Failed iterations and cycles (3)

| item | outcome | reason | artifact |
| --- | --- | --- | --- |
| w1 iteration 1 | error | claude failed: exit code 3 100% &lt;on> fire &amp; gone | `runs/20250102-030405-ab12/iterations/w1-i1.json` |
| w1 iteration 2 | rejected | review round 1: rejected: This \\| is \\*wrong\\*. | `runs/20250102-030405-ab12/iterations/w1-i2.json` |
| w2 cycle 1 | stuck | no outcome ended the cycle in 3 attempts (max\\_resumes) | `runs/20250102-030405-ab12/cycles/w2-c1.json` |

### Totals

- ran: 4 iteration(s), 2 cycle(s); 2 merged, 3 failed
- merges into main: 2
- tokens: 12,645; cost: at least $0.0472 (2 call(s) reported no cost); calls: 5
  - `w0`: $0.0472, 12,345 tokens, 3 call(s)
  - `w1`: $0.00, 300 tokens, 2 call(s) (2 reported no cost)
- artifacts: `runs/20250102-030405-ab12`
"""  # noqa: E501 (a table row is one line)


def test_the_markdown_of_a_failed_run():
    text = markdown(failed_run(), DEFAULT_OUTCOMES, ROOT, worker_order=["w0", "w1", "w2"])
    assert text == FAILED_MARKDOWN


def test_the_annotations_of_a_failed_run():
    assert github_annotations(failed_run(), DEFAULT_OUTCOMES, ROOT) == [
        "::error file=runs/20250102-030405-ab12/iterations/w1-i1.json,"
        "title=oompa w1 iteration 1%3A error::claude failed: exit code 3 100%25 <on> fire & gone",
        "::error file=runs/20250102-030405-ab12/iterations/w1-i2.json,"
        "title=oompa w1 iteration 2%3A rejected::review round 1: rejected: This | is *wrong*.",
        "::error file=runs/20250102-030405-ab12/cycles/w2-c1.json,"
        "title=oompa w2 cycle 1%3A stuck::no outcome ended the cycle in 3 attempts (max_resumes)",
        "::error title=oompa gate failed::min_merges: 2 (threshold >= 3) FAILED",
    ]


def test_the_outcome_mapping_decides_what_failed():
    # rejected=xfail, stuck=pass: only the error is left to report, and the gate
    outcomes = {**DEFAULT_OUTCOMES, "rejected": "xfail", "stuck": "pass"}
    lines = github_annotations(failed_run(), outcomes, ROOT)
    assert [line.split("::")[1] for line in lines] == [
        "error file=runs/20250102-030405-ab12/iterations/w1-i1.json,"
        "title=oompa w1 iteration 1%3A error",
        "error title=oompa gate failed",
    ]
    text = markdown(failed_run(), outcomes, ROOT)
    assert "### Failed iterations (1)" in text
    assert "| w1 iteration 2 |" not in text and "| w2 cycle 1 |" not in text


def test_a_passing_run_has_no_gate_or_failure_sections_and_no_annotations():
    result = swarm_result(
        workers={"w0": worker("w0", "claude:opus", WorkerStatus.DONE, merges=1, completed=1)},
        iterations=[item("w0", 1, Outcome.MERGED)],
    )
    assert markdown(result, DEFAULT_OUTCOMES, ROOT) == (
        "## oompa swarm `20250102-030405-ab12`: ✅ passed\n"
        "\n"
        "### Workers\n"
        "\n"
        "| worker | harness:model | status | completed | merges | claims | rejections | errors"
        " | recycled | review rounds |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| w0 | claude:opus | done | 1 | 1 | 0 | 0 | 0 | 0 | 0 |\n"
        "\n"
        "### Totals\n"
        "\n"
        "- ran: 1 iteration(s); 1 merged, 0 failed\n"
        "- merges into main: 1\n"
        "- tokens: 0; cost: $0.00; calls: 0\n"
        "- artifacts: `runs/20250102-030405-ab12`\n"
    )
    assert github_annotations(result, DEFAULT_OUTCOMES, ROOT) == []


def test_an_interrupted_run_says_so_and_still_lists_what_failed():
    result = failed_run()
    result.interrupted = True
    text = markdown(result, DEFAULT_OUTCOMES, ROOT)
    assert text.startswith(
        "## oompa swarm `20250102-030405-ab12`: ⚠️ interrupted\n"
        "\n"
        "The swarm was interrupted (Ctrl-C or SIGTERM) before it finished: this is what ran "
        "until then.\n"
    )
    assert "### Failed iterations and cycles (3)" in text
    # the session knows before the result does (a Ctrl-C while the swarm was stopping)
    assert "⚠️ interrupted" in markdown(failed_run(), DEFAULT_OUTCOMES, ROOT, interrupted=True)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "failed"),
        ({"gate": [], "iterations": []}, "passed"),
        ({"gate": [], "iterations": [], "timed_out": "swarm timeout after 5 s"}, "failed"),
        ({"gate": [], "iterations": [], "spend_limits_reached": ["swarm: $5 of $5"]}, "failed"),
        ({"errors": ["the swarm coordinator failed"]}, "error"),
        ({"errors": ["x"], "interrupted": True}, "interrupted"),
    ],
)
def test_the_verdict(change, expected):
    result = failed_run()
    for name, value in change.items():
        setattr(result, name, value)
    assert verdict(result, DEFAULT_OUTCOMES) == expected


def test_the_totals_name_timeouts_limits_and_engine_errors_and_the_planner():
    from pytest_oompa.core.results import PlannerResult

    result = failed_run()
    result.timed_out = "swarm timeout after 5 s"
    result.spend_limits_reached = ["swarm: $5.02 of $5.00"]
    result.errors = ["worker w1 | gone:\nits node died"]
    result.planner = PlannerResult(ran=True, tasks_created=2)
    totals = markdown(result, DEFAULT_OUTCOMES, ROOT).split("### Totals\n\n")[1]
    assert totals.splitlines()[2:] == [
        "- planner: created 2 task(s)",
        "- tokens: 12,645; cost: at least $0.0472 (2 call(s) reported no cost); calls: 5",
        "  - `w0`: $0.0472, 12,345 tokens, 3 call(s)",
        "  - `w1`: $0.00, 300 tokens, 2 call(s) (2 reported no cost)",
        "- spend limit reached: swarm: $5.02 of $5.00",
        "- swarm timeout: swarm timeout after 5 s",
        "- engine error: worker w1 \\| gone: its node died",
        "- artifacts: `runs/20250102-030405-ab12`",
    ]


def test_an_artifact_outside_the_rootdir_is_shown_whole_and_gets_no_file_property():
    elsewhere = Path("/var/runs") / SWARM_ID / "iterations" / "w0-i1.json"
    result = swarm_result(
        workers={"w0": worker("w0", "claude:opus", WorkerStatus.ERROR, errors=1)},
        iterations=[
            item("w0", 1, Outcome.ERROR, error="boom", artifact=elsewhere),
            item("w0", 2, Outcome.ERROR, error="unwritten", artifact=None),
        ],
    )
    text = markdown(result, DEFAULT_OUTCOMES, ROOT)
    assert f"| w0 iteration 1 | error | boom | `{elsewhere}` |" in text
    assert "| w0 iteration 2 | error | unwritten | (not written) |" in text
    assert github_annotations(result, DEFAULT_OUTCOMES, ROOT) == [
        "::error title=oompa w0 iteration 1%3A error::boom",
        "::error title=oompa w0 iteration 2%3A error::unwritten",
    ]


def test_workflow_commands_escape_data_and_properties_as_github_does():
    command = workflow_command("error", {"file": "a,b:c.json", "title": "50%\r\n"}, "1%\r\n2: a,b")
    assert command == "::error file=a%2Cb%3Ac.json,title=50%25%0D%0A::1%25%0D%0A2: a,b"
    assert workflow_command("error", {}, "x") == "::error::x"


def test_a_table_cell_stays_one_cell():
    # a worker id and a reason with a pipe, a newline, markup and a backtick
    result = swarm_result(
        workers={"w|0": worker("w|0", "claude:op`us", WorkerStatus.ERROR, errors=1)},
        iterations=[
            item(
                "w|0", 1, Outcome.ERROR, error="a | b\n`c` [d](e) *f*",
                artifact=ROOT / "runs" / "x`y|z.json",
            )
        ],
    )  # fmt: skip
    text = markdown(result, DEFAULT_OUTCOMES, ROOT)
    assert "| w\\|0 | claude:op\\`us | error |" in text
    reason = "a \\| b \\`c\\` \\[d\\](e) \\*f\\*"
    assert f"| w\\|0 iteration 1 | error | {reason} | `` runs/x`y\\|z.json `` |" in text
    # every row of every table has as many cells as its header
    for table in re.findall(r"(?:^\|.*\|$\n?)+", text, re.MULTILINE):
        counts = {len(re.split(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(counts) == 1, table


# -- real swarms ----------------------------------------------------------------------------------

FAST = {"probe": False, "executor_wait": 0}
# w0 merges; w1's change is rejected by the reviewer.
REJECTING = {
    "workers": {
        "w0": {"worker": [{"write": {"a.txt": "a\n"}, "commit": True, "merge": True}]},
        "w1": {
            "worker": [{"write": {"b.txt": "b\n"}, "commit": True, "merge": True}],
            "reviewer": [{"say": "This is wrong.", "verdict": "rejected"}],
        },
    }
}
CONFIG = {
    **FAST,
    "workers": [{"model": "claude:opus", "iterations": 1, "count": 2}],
    "reviewer": {"model": "codex:o3"},
}
# Reports from the process that writes the summaries whether this part was even imported.
CONFTEST = """
import sys

def pytest_terminal_summary(terminalreporter, config):
    loaded = "pytest_oompa.plugin.ci_summary" in sys.modules
    registered = config.pluginmanager.has_plugin("pytest_oompa.plugin.ci_output")
    terminalreporter.write_line(f"ci summary: loaded={loaded} registered={registered}")
"""


def run_swarm(pytester: pytest.Pytester, config: dict, scenario: dict | None, *args: str):
    """The swarm in ``project/`` (pytester's own files stay outside the repository)."""
    project = GitRepo(pytester.path / "project")
    project.add_swarm_config(config, scenario, ("t1", "t2"))
    pytester.makeconftest(CONFTEST)
    return pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-p", "no:cacheprovider", *args
    )


def only_run(root: Path) -> Path:
    (run,) = [p for p in (root / "project" / "runs").iterdir() if p.is_dir()]
    return run


@pytest.fixture
def no_ci_env(monkeypatch):
    """This machine's CI, if any, must not decide what a test's pytest writes."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "-n 2"])
def test_on_github_actions_the_summary_is_appended_once_with_annotations(
    pytester, monkeypatch, no_ci_env, xdist
):
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("## an earlier step\n\nall good")  # no final newline
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    args = ["--oompa-gate=min_merges=2", *(["-n", "2"] if xdist else [])]
    result = run_swarm(pytester, CONFIG, REJECTING, *args)
    result.assert_outcomes(passed=1, failed=2)  # w0::i1; w1::i1 and the gate
    run = only_run(pytester.path)
    artifact = f"project/runs/{run.name}/iterations/w1-i1.json"
    assert (pytester.path / artifact).is_file()

    earlier, ours = step_summary.read_text().split("\n\n## oompa swarm ")
    assert earlier == "## an earlier step\n\nall good"
    assert ours.startswith(f"`{run.name}`: ❌ failed\n")
    assert ours.count("## oompa swarm") == 0  # written once, by one process
    assert "| w0 | claude:opus | exhausted | 1 | 1 |" in ours
    assert "| w1 | claude:opus | exhausted | 0 | 0 |" in ours
    assert "### Gate: FAILED" in ours and "| `min_merges` | 1 | >= 2 | **FAILED** |" in ours
    assert (
        "| w1 iteration 1 | rejected | review round 1: rejected: This is wrong. "
        f"| `{artifact}` |" in ours
    )
    assert f"- artifacts: `project/runs/{run.name}`" in ours

    errors = [line for line in result.outlines if line.startswith("::error")]
    assert errors == [
        f"::error file={artifact},title=oompa w1 iteration 1%3A rejected::"
        "review round 1: rejected: This is wrong.",
        "::error title=oompa gate failed::min_merges: 1 (threshold >= 2) FAILED",
    ]
    # after the session's own summary, whose result it reports
    out = result.stdout.str()
    assert out.index("oompa swarm ") < out.index("::error")
    result.stdout.fnmatch_lines(["ci summary: loaded=True registered=True"])


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "-n 2"])
def test_summary_md_writes_the_same_markdown_anywhere(pytester, no_ci_env, xdist):
    target = pytester.path / "out" / "summary.md"
    target.parent.mkdir()
    target.write_text("an older run's summary\n")
    args = ["--oompa-summary-md=out/summary.md", *(["-n", "2"] if xdist else [])]
    result = run_swarm(pytester, CONFIG, REJECTING, *args)
    result.assert_outcomes(passed=1, failed=1)
    text = target.read_text()
    run = only_run(pytester.path)
    assert text.startswith(f"## oompa swarm `{run.name}`: ❌ failed\n")  # overwritten
    assert text.count("## oompa swarm") == 1
    assert "### Failed iterations (1)" in text and "### Gate" not in text
    assert not any(line.startswith("::error") for line in result.outlines)  # not on GitHub


def test_summary_md_and_step_summary_are_the_same_text(pytester, monkeypatch, no_ci_env):
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))  # not there yet: created
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}
    result = run_swarm(pytester, config, None, "--oompa-summary-md=summary.md")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "summary.md").read_text()
    assert step_summary.read_text() == text
    assert "✅ passed" in text.splitlines()[0]


def test_a_run_that_asks_for_none_of_it_imports_none_of_it(pytester, no_ci_env):
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}
    result = run_swarm(pytester, config, None)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ci summary: loaded=False registered=False"])
    assert not (pytester.path / "summary.md").exists()


def test_an_unwritable_summary_is_said_and_does_not_change_the_exit_status(pytester, no_ci_env):
    (pytester.path / "taken").write_text("a file, not a folder")
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}
    result = run_swarm(pytester, config, None, "--oompa-summary-md=taken/summary.md")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["oompa: could not write the CI summary to */taken/summary.md: *"])


def test_an_interrupted_run_still_writes_a_summary_saying_so(pytester, no_ci_env):
    scenario = {"default": {"worker": {"claim": "auto", "hang": True}}}
    project = GitRepo(pytester.path / "project")
    project.add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]}, scenario, ("t1",)
    )
    step_summary = pytester.path / "step-summary.md"
    env = {
        **os.environ,
        "GITHUB_STEP_SUMMARY": str(step_summary),
        "GITHUB_ACTIONS": "true",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--oompa-swarm=project/oompa.json"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=default_sigint,
    )
    # The worker's worktree exists once the swarm runs and its agent is hanging.
    deadline = time.monotonic() + 60
    while len(project.worktrees()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(project.worktrees()) == 2, "the swarm never started its worker"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    text = step_summary.read_text()
    assert text.splitlines()[0].endswith(": ⚠️ interrupted")
    assert "The swarm was interrupted (Ctrl-C or SIGTERM) before it finished" in text
    assert "| w0 | claude:opus | idle |" in text
    assert b"::error" not in out  # nothing failed: it was stopped
