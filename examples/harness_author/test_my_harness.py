"""A harness author's regression tests, written with pytest-oompa's fixtures.

Imagine you maintain a prompt set (``prompts/``) and a harness setup. These tests check that a
swarm driven by your prompts still merges, that a scripted agent's signals are understood, that
your harness keeps its session across a resume, and (opt-in) that the real CLI refuses what it
should. Run them with ``pytest examples/harness_author``; add ``--oompa-real-harness=claude``
to include the real claude CLI, and ``--oompa-contract=claude`` for the harness contract suite.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_oompa import MERGE, claim

HERE = Path(__file__).parent
PROMPTS = {name: (HERE / "prompts" / name).read_text() for name in ("executor.md", "reviewer.md")}
FAST = {"probe": False, "executor_wait": 0}


@pytest.mark.oompa_repo(template="template", tasks=["add-farewell", "add-greeting"])
def test_my_prompt_set_merges_every_task(oompa_repo, oompa_swarm, fake_harness):
    # oompa_repo: the template's files and two pending tasks, committed on main.
    assert {"src/greet.py", "STYLE.md"} <= set(oompa_repo.files())
    # The reviewer asks for changes once, then approves (later reviews fall back: approve).
    fake_harness.scenario.reviewer("w0").verdicts("needs-changes", "approved")
    run = oompa_swarm(
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 2, "prompt": "executor.md"}],
            "reviewer": {"model": "codex:gpt-5-codex", "prompt": "reviewer.md"},
        },
        prompts=PROMPTS,
    )
    assert run.outcomes("w0") == ["merged", "merged"]
    w0 = run.workers["w0"]
    assert (w0.merges, w0.errors, w0.rejections) == (2, 0, 0)
    assert w0.metrics.review_rounds_total == 3
    assert oompa_repo.tasks("complete") == ["add-farewell", "add-greeting"]
    # What the agents were asked: the invocation log, typed.
    worker, reviewer = fake_harness.calls[:2]
    assert worker.harness == "claude" and "follow STYLE.md" in worker.argv[-1]
    assert reviewer.role == "reviewer" and "Review against STYLE.md" in reviewer.argv[-1]
    assert reviewer.session_id and not reviewer.resumed


@pytest.mark.oompa_repo(template="template", tasks=["add-greeting"])
def test_a_scripted_agent_claims_then_merges(oompa_repo, oompa_swarm, fake_harness):
    script = fake_harness.scenario.worker("w0")
    script.on_call(1).says("Looking at the queue.", claim("add-greeting"))
    script.on_call(2).writes("src/greeting.py", "GREETING = 'hi'\n").commits().says(MERGE)
    run = oompa_swarm({**FAST, "workers": [{"model": "gemini:gemini-2.5-pro", "iterations": 2}]})
    assert run.outcomes("w0") == ["claimed", "merged"]
    assert "src/greeting.py" in oompa_repo.files() and oompa_repo.tasks("complete") == [
        "add-greeting"
    ]
    first, second = fake_harness.calls
    assert second.resumed and second.session_id == first.session_id  # same conversation


def test_my_harness_keeps_its_session(fake_harness):
    fake_harness.scenario.worker("w0").says("first answer", "second answer, turn {turn}")
    first = fake_harness.call("opencode")  # the registry's argv for a new session
    second = fake_harness.call("opencode", session=first.session_id)  # ... and for a resume
    assert first.text == "first answer"
    assert second.text == "second answer, turn 2" and second.session_id == first.session_id
    assert second.invocation is not None and second.invocation.resumed


def test_a_wrong_flag_is_refused_like_the_real_cli(fake_harness):
    proc = fake_harness.run("gemini", "--no-such-flag", "--prompt=hi")
    assert proc.returncode == 1 and "Unknown argument" in proc.stderr
    assert fake_harness.last.refused and fake_harness.last.role is None


def test_the_real_cli_answers_its_version(real_harness):
    """Runs once per CLI named by --oompa-real-harness; skipped without it."""
    proc = real_harness.run("--version")
    assert proc.returncode == 0 and real_harness.version in proc.stdout


@pytest.mark.parametrize("real_harness", ["claude"], indirect=True)
def test_real_claude_refuses_an_unknown_session(real_harness):
    """Offline: claude looks the session up before it would call a model."""
    unknown = str(uuid.uuid4())
    proc = real_harness.run("-p", "--output-format", "json", "--resume", unknown, "--", "hi")
    assert proc.returncode == real_harness.spec.exit_codes["unknown-session"]
    assert f"No conversation found with session ID: {unknown}" in proc.stdout + proc.stderr
