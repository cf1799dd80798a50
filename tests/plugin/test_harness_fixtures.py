"""The harness-author fixtures: the scenario builder, fake_harness, real_harness, the seeded
oompa_repo, and fake_harness shared with oompa_swarm."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_oompa.core.paths import fake_bin_dir
from pytest_oompa.harnesses.spec import SessionMode
from pytest_oompa.offline.fake_scenario import DONE, MERGE, Scenario, ScenarioError, claim, verdict

# ---------------------------------------------------------------------------------------------
# The scenario builder
# ---------------------------------------------------------------------------------------------


def test_the_builder_makes_the_fakes_json():
    s = Scenario()
    s.worker("w0").on_call(1).claims("t1")
    s.worker("w0").on_call(2).writes("src/a.py", "A = 1\n").commits().says(MERGE)
    s.reviewer("w0").verdicts("needs-changes", "approved")
    s.for_worker("w1").worker().always().crashes("SIGKILL")
    s.reviewer().on_call(1).says("- add a test").verdict("needs-changes").then().verdict("approved")
    s.for_harness("gemini").worker().always().exits(1, stderr="quota exceeded")
    s.probe().always().says("ok")
    assert s.to_dict() == {
        "workers": {
            "w0": {
                "worker": [
                    {"claim": "t1"},
                    {"write": {"src/a.py": "A = 1\n"}, "commit": True, "say": MERGE},
                    "default",
                ],
                "reviewer": [{"verdict": "needs-changes"}, {"verdict": "approved"}, "default"],
            },
            "w1": {"worker": {"crash": "SIGKILL"}},
        },
        "default": {
            "reviewer": [
                {"say": "- add a test", "verdict": "needs-changes"},
                {"verdict": "approved"},
                "default",
            ],
            "probe": {"say": "ok"},
        },
        "harnesses": {"gemini": {"worker": {"stderr": "quota exceeded", "exit": 1}}},
    }
    assert json.loads(s.to_json()) == s.validate()


def test_gaps_fall_back_and_repeat_last_repeats():
    s = Scenario()
    s.worker("w0").on_call(3).says("third").done()
    s.fix("w0").says("fixed once", "fixed twice").repeat_last()
    s.worker("w1").steps({"say": "one"}, None, {"say": "three"})
    assert s.to_dict()["workers"] == {
        "w0": {
            "worker": ["default", "default", {"say": "third", "done": True}, "default"],
            "fix": [{"say": "fixed once"}, {"say": "fixed twice"}],
        },
        "w1": {"worker": [{"say": "one"}, "default", {"say": "three"}, "default"]},
    }


def test_every_step_field_has_a_method_and_the_fakes_accept_them_all():
    step = Scenario().worker("w0").on_call(1)
    (
        step.says("hi {worker}")
        .claims()
        .merges()
        .done()
        .builtin()
        .writes("a.txt", "a")
        .deletes("b.txt")
        .commits("msg")
        .moves_task("t1")
        .moves_task("t2", to="complete", from_="current")
        .creates_tasks("t3", {"id": "t4", "summary": "four"})
        .stderr("err")
        .signals_on_stderr()
        .delays(0.1)
        .huge_output(10)
        .comment("every field")
    )
    data = step.to_dict()
    assert data["claim"] == "auto" and data["move_task"][1] == {
        "id": "t2",
        "to": "complete",
        "from": "current",
    }
    assert data["create_tasks"] == [{"id": "t3"}, {"id": "t4", "summary": "four"}]
    Scenario().reviewer().always().hangs()  # valid on its own
    Scenario().worker().always().malformed_output().exits(3)


def test_signal_helpers():
    assert claim("a", "b") == "CLAIM(a, b)"
    assert verdict("needs-changes") == "VERDICT: NEEDS_CHANGES"
    assert (MERGE, DONE) == ("COMPLETE_AND_READY_FOR_MERGE", "__DONE__")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s: s.reviewer().on_call(1).verdict("lgtm"), "unknown verdict 'lgtm'"),
        (lambda s: s.worker().on_call(0), "the call number starts at 1"),
        (lambda s: s.for_worker("w0").role("tester"), "unknown role 'tester'"),
        (lambda s: s.for_harness("aider"), "harnesses.aider: no fake for it"),
        (lambda s: Scenario({"default": {"worker": {"sey": "x"}}}), "unknown step field"),
        (lambda s: Scenario({"workers": []}), "workers: expected an object"),
    ],
)
def test_the_builder_refuses_what_the_fakes_would(build, message):
    with pytest.raises(ScenarioError, match=message):
        build(Scenario())


def test_a_scenario_file_loads_and_can_be_added_to(tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"default": {"worker": {"say": "hello"}}}))
    s = Scenario.load(path)
    s.reviewer("w0").verdicts("rejected")
    assert s.to_dict() == {
        "default": {"worker": {"say": "hello"}},
        "workers": {"w0": {"reviewer": [{"verdict": "rejected"}, "default"]}},
    }
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        Scenario.load(path)


# ---------------------------------------------------------------------------------------------
# fake_harness
# ---------------------------------------------------------------------------------------------


def test_fake_harness_puts_the_fakes_first_on_path(fake_harness):
    for name in ("claude", "codex", "opencode", "gemini"):
        assert Path(shutil.which(name) or "").parent == fake_bin_dir()
    assert os.environ["OOMPA_FAKE_LOG"] == str(fake_harness.log_path)
    assert os.environ["OOMPA_FAKE_STATE"] == str(fake_harness.state_dir)
    assert json.loads(Path(os.environ["OOMPA_FAKE_SCENARIO"]).read_text()) == {}


def test_run_calls_a_fake_directly_and_the_log_is_typed(fake_harness, tmp_path):
    fake_harness.scenario.worker("w0").always().says("hello from {harness} call {call}")
    proc = fake_harness.run(
        "gemini",
        "--yolo",
        "--skip-trust",
        "-o",
        "json",
        "-m",
        "gemini-2.5-pro",
        "--prompt=[oompa:s1:w0] do it",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["response"] == "hello from gemini call 1"
    inv = fake_harness.last
    assert inv.harness == "gemini" and inv.argv[0] == "gemini" and inv.argv[-1].endswith("do it")
    assert (inv.cwd, inv.stdin, inv.exit_code) == (tmp_path, None, 0)
    assert (inv.role, inv.worker, inv.call, inv.resumed) == ("worker", "w0", 1, False)
    assert inv.session_id and inv.env["OOMPA_FAKE_LOG"] == str(fake_harness.log_path)
    assert inv["stdin_state"] == "eof" and inv.ok


def test_run_refusals_are_logged_with_their_exit_code(fake_harness):
    proc = fake_harness.run("codex", "exec", "--nope", "--", "x")
    assert proc.returncode == 2 and "unexpected argument '--nope'" in proc.stderr
    (inv,) = fake_harness.invocations
    assert inv.exit_code == 2 and inv.role is None and inv.refused
    assert fake_harness.calls == []


def test_call_uses_the_registry_argv_and_keeps_the_session(fake_harness):
    fake_harness.scenario.worker("w0").says("first", "second {turn}")
    first = fake_harness.call("codex")
    assert first.exit_code == 0 and first.text == "first" and first.session_id
    assert first.command.argv[1:3] == ("exec", "--dangerously-bypass-approvals-and-sandbox")
    second = fake_harness.call("codex", session=first.session_id)
    assert second.text == "second 2" and second.session_id == first.session_id
    assert second.invocation is not None and second.invocation.resumed
    stored = fake_harness.session("codex", first.session_id)
    assert stored is not None and [t["reply"] for t in stored["turns"]] == ["first", "second 2"]


def test_call_reads_signals_and_verdicts(fake_harness):
    fake_harness.scenario.worker("w0").on_call(1).claims("t1", "t2").merges()
    fake_harness.scenario.reviewer("w0").verdicts("needs-changes")
    work = fake_harness.call("claude")
    assert work.signals.claims == ("t1", "t2") and work.signals.merge
    review = fake_harness.call("opencode", role="reviewer", session=SessionMode.none())
    assert review.verdict == "needs-changes" and review.invocation.role == "reviewer"


def test_use_scenario_takes_data_a_file_or_none(fake_harness, tmp_path):
    fake_harness.use_scenario({"default": {"probe": {"say": "pong"}}})
    assert fake_harness.call("claude", role="probe").text == "pong"
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"default": {"probe": {"say": "from a file"}}}))
    fake_harness.scenario = path
    assert fake_harness.call("claude", role="probe").text == "from a file"
    fake_harness.scenario = None
    assert fake_harness.call("claude", role="probe").text == "ok"
    with pytest.raises(ScenarioError):
        fake_harness.use_scenario({"default": {"probe": {"exit": "one"}}})


def test_a_swarm_shares_the_fake_harness_scenario_and_log(oompa_repo, oompa_swarm, fake_harness):
    oompa_repo.seed(tasks=["t1", "t2"])
    fake_harness.scenario.reviewer("w0").verdicts("needs-changes", "approved")
    run = oompa_swarm(
        {
            "probe": False,
            "workers": [{"model": "claude:opus", "iterations": 2}],
            "reviewer": {"model": "codex:o3"},
        }
    )
    assert run.outcomes("w0") == ["merged", "merged"]
    w0 = run.workers["w0"]
    assert (w0.merges, w0.errors, w0.rejections, w0.completed) == (2, 0, 0, 2)
    assert w0.claims == 2 and w0.recycled == 0
    assert w0.metrics.review_rounds_total == 3
    roles = [c.role for c in fake_harness.calls]
    assert roles == ["worker", "reviewer", "fix", "reviewer", "worker", "reviewer"]
    assert run.fake_log_path == fake_harness.log_path
    assert [c["role"] for c in run.fake_calls] == roles
    # A scenario given to the swarm becomes the fake_harness scenario.
    again = oompa_swarm(
        {"probe": False, "workers": [{"model": "gemini:pro", "iterations": 1}]},
        scenario={"workers": {"w0": {"worker": {"say": "nothing to do", "done": True}}}},
    )
    assert again.outcomes("w0") == ["done"]
    assert fake_harness.scenario.to_dict()["workers"]["w0"]["worker"]["done"] is True


# ---------------------------------------------------------------------------------------------
# oompa_repo: templates and seeded tasks
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def template(tmp_path):
    folder = tmp_path / "template"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text("print('hi')\n")
    (folder / "prompts").mkdir()
    (folder / "prompts" / "executor.md").write_text("Do the task.\n")
    return folder


def test_the_marker_seeds_the_repo(pytester):
    pytester.makepyfile(
        test_seeded=textwrap.dedent(
            """
            import pytest

            @pytest.mark.oompa_repo(
                template="tpl", tasks=["t1", {"id": "t2", "difficulty": "hard"}],
                files={"notes.md": "n"},
            )
            def test_seeded(oompa_repo):
                assert oompa_repo.tasks("pending") == ["t1", "t2"]
                assert set(oompa_repo.files()) >= {
                    "tpl.txt", "sub/a.py", "notes.md", "tasks/pending/t2.json"
                }
                assert oompa_repo.status() == [] and oompa_repo.branches() == ["main"]
                assert ".git" not in oompa_repo.git("log", "--format=%s", "-1")

            def test_plain(oompa_repo):
                assert oompa_repo.files() == ["README.md"]
            """
        )
    )
    (pytester.path / "tpl" / "sub").mkdir(parents=True)
    (pytester.path / "tpl" / "tpl.txt").write_text("t")
    (pytester.path / "tpl" / "sub" / "a.py").write_text("a = 1\n")
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)


def test_the_factory_makes_more_seeded_repos(oompa_repo_factory, template):
    a = oompa_repo_factory(template=template, tasks=["t1"])
    b = oompa_repo_factory(name="other")
    assert a.path != b.path and b.path.name == "other"
    assert "src/app.py" in a.files() and a.tasks("pending") == ["t1"]
    assert b.files() == ["README.md"]
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        oompa_repo_factory(template=template / "missing")


# ---------------------------------------------------------------------------------------------
# real_harness
# ---------------------------------------------------------------------------------------------


def fake_real_cli(folder: Path, name: str) -> Path:
    """A "real" CLI that is a fake in disguise (real_clis.find never returns a fake): a shell
    script starting the bundled fake, so these tests need no real CLI installed."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\nexec "{fake_bin_dir() / name}" "$@"\n')
    script.chmod(0o755)
    return script


REAL_TESTS = """
import pytest

def test_any(real_harness):
    assert real_harness.version == "2.1.197"
    proc = real_harness.run("--version")
    assert proc.returncode == 0 and "Claude Code" in proc.stdout
    assert real_harness.env()["HOME"] == str(real_harness.home)

@pytest.mark.parametrize("real_harness", ["claude"], indirect=True)
def test_claude(real_harness):
    assert real_harness.name == "claude" and real_harness.path.name == "claude"
    assert real_harness.spec.exit_codes["bad-flag"] == 1

@pytest.mark.parametrize("real_harness", ["gemini"], indirect=True)
def test_gemini(real_harness):
    raise AssertionError("never runs: gemini is not selected")
"""


def test_real_harness_skips_naming_the_option_without_it(pytester):
    pytester.makepyfile(test_real=REAL_TESTS)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*no real harness selected: run with --oompa-real-harness=NAME?,NAME?*",
            "*the real 'claude' CLI is not selected: run with --oompa-real-harness=claude*",
            "*the real 'gemini' CLI is not selected*",
        ]
    )


def test_real_harness_finds_the_cli_and_its_version(pytester, tmp_path):
    bin_dir = tmp_path / "clis"
    fake_real_cli(bin_dir, "claude")
    pytester.makepyfile(test_real=REAL_TESTS)
    result = pytester.runpytest(
        "--oompa-real-harness=claude", f"--oompa-real-harness-dir={bin_dir}", "-v", "-rs"
    )
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*test_any?claude? PASSED*", "*gemini' CLI is not selected*"])


def test_real_harness_skips_with_the_reason_when_not_installed(pytester):
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES

        def pytest_oompa_register_harnesses(registry):
            claude = next(s for s in BUILTIN_HARNESSES if s.name == "claude")
            registry.register(
                dataclasses.replace(claude, name="aider", binary="oompa-no-such-cli")
            )
        """
    )
    pytester.makepyfile(test_real="def test_it(real_harness):\n    pass\n")
    result = pytester.runpytest("--oompa-real-harness=aider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the real 'oompa-no-such-cli' CLI is not installed*"])


def test_the_registry_fixture_applies_the_register_hook(pytester):
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES

        def pytest_oompa_register_harnesses(registry):
            gemini = next(s for s in BUILTIN_HARNESSES if s.name == "gemini")
            registry.register(dataclasses.replace(gemini, name="gemini-nightly"))
        """
    )
    pytester.makepyfile(
        test_reg="def test_it(oompa_harness_registry):\n"
        "    assert 'gemini-nightly' in oompa_harness_registry.names()\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)
