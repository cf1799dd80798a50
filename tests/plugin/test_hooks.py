"""Each hookspec of pytest_oompa/hooks.py, implemented in a conftest.py and seen working
through a real pytest run (pytester): the plugin (--oompa-swarm) and the oompa_swarm fixture."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from support.contract import assert_run_valid

from pytest_oompa import GitRepo, read_invocations
from pytest_oompa.core.paths import fake_bin_dir

FAST = {"probe": False, "executor_wait": 0}

# Entries registered from a conftest.py, without editing the package; their binaries are the
# fake claude under other names. `aider` is a new harness; `claude` replaced by an entry that
# runs a wrapper `my-claude` (a fork, a wrapper script) is a replacement.
REGISTER_AIDER = """
import dataclasses
from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES

def pytest_oompa_register_harnesses(registry):
    claude = next(s for s in BUILTIN_HARNESSES if s.name == "claude")
    registry.register(dataclasses.replace(claude, name="aider", binary="aider"))
"""
REPLACE_CLAUDE = """
import dataclasses

def pytest_oompa_register_harnesses(registry):
    registry.register(dataclasses.replace(registry.get("claude"), binary="my-claude"))
"""


def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    folder = tmp_path / f"{name}-bin"
    folder.mkdir()
    (folder / name).symlink_to(fake_bin_dir() / "claude")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder / name


@pytest.fixture
def aider_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(tmp_path, monkeypatch, "aider")


@pytest.fixture
def my_claude_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(tmp_path, monkeypatch, "my-claude")


@pytest.fixture
def fake_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "fake-calls.jsonl"
    monkeypatch.setenv("OOMPA_FAKE_LOG", str(log))
    return log


def swarm_project(
    pytester: pytest.Pytester, conftest: str, config: dict, scenario: dict | None = None
) -> GitRepo:
    """The pytester folder as a git repo with a conftest.py and oompa.json, committed."""
    pytester.makeconftest(conftest)
    repo = GitRepo(pytester.path)
    repo.add_swarm_config(config, scenario, tasks=("t1", "t2"))
    return repo


def only_run(pytester: pytest.Pytester) -> Path:
    (run_dir,) = [p for p in (pytester.path / "runs").iterdir() if p.is_dir()]
    return run_dir


def test_register_harnesses_replaces_an_entry_a_swarm_runs(pytester, my_claude_on_path, fake_log):
    swarm_project(
        pytester,
        REPLACE_CLAUDE,
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 2}]},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    result.assert_outcomes(passed=2)
    run_dir = only_run(pytester)
    assert_run_valid(run_dir)
    logs = sorted((run_dir / "commands").glob("w0-i*-worker*.ndjson"))
    assert len(logs) == 2
    for log in logs:
        started = json.loads(log.read_text().splitlines()[0])
        assert started["argv"][0] == str(my_claude_on_path)
    calls = [c for c in read_invocations(fake_log) if c.role]
    assert [(c.role, c.resumed) for c in calls] == [("worker", False), ("worker", False)]


def test_register_harnesses_adds_a_harness_a_swarm_runs(pytester, aider_on_path, fake_log):
    swarm_project(
        pytester,
        REGISTER_AIDER,
        {**FAST, "workers": [{"model": "aider:opus", "iterations": 2}]},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["w0*aider:opus*exhausted*2*2*"])
    run_dir = only_run(pytester)
    assert_run_valid(run_dir)
    assert json.loads((run_dir / "run.json").read_text())["workers"][0]["harness"] == "aider"
    (log, _) = sorted((run_dir / "commands").glob("w0-i*-worker*.ndjson"))
    assert json.loads(log.read_text().splitlines()[0])["argv"][0] == str(aider_on_path)
    calls = [c for c in read_invocations(fake_log) if c.role]
    assert [c.role for c in calls] == ["worker", "worker"]
    assert calls[1].resumed is False and calls[0].argv[1:3] == (
        "-p",
        "--dangerously-skip-permissions",
    )


def test_register_harnesses_applies_to_the_oompa_swarm_fixture(pytester, my_claude_on_path):
    pytester.makeconftest(REPLACE_CLAUDE)
    pytester.makepyfile(
        test_mine=f"""
        def test_my_claude_merges(oompa_repo, oompa_swarm, fake_harness):
            oompa_repo.seed(tasks=["t1"])
            config = {{"probe": False, "workers": [{{"model": "claude:x"}}]}}
            run = oompa_swarm(config, limits={{"w0": 1}})
            assert run.outcomes("w0") == ["merged"] and run.workers["w0"].merges == 1
            assert run.iterations[("w0", 1)].calls[0].argv[0] == {str(my_claude_on_path)!r}
            (call,) = fake_harness.calls
            assert call.role == "worker" and call.model == "x"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_new_harness_runs_in_the_oompa_swarm_fixture(pytester, aider_on_path):
    pytester.makeconftest(REGISTER_AIDER)
    pytester.makepyfile(
        test_aider="""
        def test_aider_merges(oompa_repo, oompa_swarm, fake_harness):
            oompa_repo.seed(tasks=["t1"])
            run = oompa_swarm({"probe": False, "workers": [{"model": "aider:x", "iterations": 1}]})
            assert run.outcomes("w0") == ["merged"] and run.workers["w0"].harness == "aider"
            assert run.workers["w0"].merges == 1
            (call,) = fake_harness.calls
            assert call.role == "worker" and call.model == "x"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_iteration_finished_sees_every_result_in_the_main_thread(pytester):
    swarm_project(
        pytester,
        """
        import json, threading

        def pytest_oompa_iteration_finished(result):
            line = {
                "worker": result.worker_id,
                "iteration": result.iteration,
                "outcome": result.outcome.value,
                "tasks": list(result.task_ids),
                "main_thread": threading.current_thread() is threading.main_thread(),
            }
            with open("../iterations.jsonl", "a") as f:
                f.write(json.dumps(line) + "\\n")
        """,
        {**FAST, "workers": [{"model": "codex:o3", "iterations": 2, "count": 2}]},
        {"workers": {"w1": {"worker": [{"say": "stuck"}, {"exit": 1}]}}},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    result.assert_outcomes(passed=3, failed=1)
    lines = (pytester.path.parent / "iterations.jsonl").read_text().splitlines()
    seen = [json.loads(line) for line in lines]
    assert all(s["main_thread"] for s in seen)
    by_key = {(s["worker"], s["iteration"]): s["outcome"] for s in seen}
    assert by_key == {
        ("w0", 1): "merged",
        ("w0", 2): "merged",
        ("w1", 1): "working",
        ("w1", 2): "error",
    }


def test_swarm_finished_is_called_once_after_summary_json(pytester):
    swarm_project(
        pytester,
        """
        import json

        def pytest_oompa_swarm_finished(result):
            summary = result.run_dir / "summary.json"
            line = {
                "swarm": result.swarm_id,
                "iterations": len(result.iterations),
                "merges": sum(w.merges for w in result.workers.values()),
                "summary_written": summary.exists(),
                "interrupted": result.interrupted,
                "main": [result.main_before, result.main_after],
            }
            with open("../finished.jsonl", "a") as f:
                f.write(json.dumps(line) + "\\n")
        """,
        {**FAST, "workers": [{"model": "opencode:fake/m", "iterations": 1, "count": 2}]},
    )
    pytester.runpytest("--oompa-swarm=oompa.json").assert_outcomes(passed=2)
    (line,) = [
        json.loads(x) for x in (pytester.path.parent / "finished.jsonl").read_text().splitlines()
    ]
    assert line["swarm"] == only_run(pytester).name
    assert (line["iterations"], line["merges"], line["summary_written"]) == (2, 2, True)
    assert line["interrupted"] is False and line["main"][0] != line["main"][1]


HARNESS_COMMAND = """
import dataclasses

def pytest_oompa_harness_command(command, role):
    argv = list(command.argv)
    if role == "worker" and command.harness == "claude":
        # a different model for the workers, and an extra variable
        argv[argv.index("--model") + 1] = "haiku"
        env = {**command.env, "OOMPA_MARK": "adjusted"}
        return dataclasses.replace(command, argv=tuple(argv), env=env)
    return None
"""


def test_harness_command_adjusts_argv_and_env_before_the_call(pytester, fake_log):
    swarm_project(
        pytester,
        HARNESS_COMMAND,
        {
            **FAST,
            "workers": [{"model": "claude:opus", "iterations": 1}],
            "reviewer": {"model": "claude:sonnet"},
        },
    )
    pytester.runpytest("--oompa-swarm=oompa.json").assert_outcomes(passed=1)
    calls = {c.role: c for c in read_invocations(fake_log) if c.role}
    assert (calls["worker"].model, calls["worker"].env.get("OOMPA_MARK")) == ("haiku", "adjusted")
    assert (calls["reviewer"].model, calls["reviewer"].env.get("OOMPA_MARK")) == ("sonnet", None)


def test_harness_command_applies_to_the_oompa_swarm_fixture(pytester):
    pytester.makeconftest(HARNESS_COMMAND)
    pytester.makepyfile(
        test_adjusted="""
        def test_it(oompa_swarm, fake_harness):
            oompa_swarm({"probe": False, "workers": [{"model": "claude:opus", "iterations": 1}]})
            (call,) = fake_harness.calls
            assert call.model == "haiku" and call.env["OOMPA_MARK"] == "adjusted"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_swarm_options_adjusts_the_swarm_this_session_runs(pytester, fake_log):
    swarm_project(
        pytester,
        textwrap.dedent(
            """
            import json

            class Observer:
                def __init__(self):
                    self.seen = []
                def before(self, *, name, role, agent, command, prompt, cwd):
                    return (name, role)
                def after(self, token, *, record, stdout, stderr):
                    self.seen.append([*token, record.exit_code])
                    with open("../observed.json", "w") as f:
                        json.dump(self.seen, f)

            def pytest_oompa_swarm_options(config, swarm_config, options):
                assert [w.id for w in swarm_config.workers] == ["w0"]
                assert config.getoption("oompa_swarm") == "oompa.json"
                options.env = {**(options.env or {}), "OOMPA_MARK": "from-options"}
                options.call_observer = Observer()
            """
        ),
        {**FAST, "workers": [{"model": "gemini:pro", "iterations": 1}]},
    )
    pytester.runpytest("--oompa-swarm=oompa.json").assert_outcomes(passed=1)
    (call,) = [c for c in read_invocations(fake_log) if c.role]
    assert call.env["OOMPA_MARK"] == "from-options"
    observed = json.loads((pytester.path.parent / "observed.json").read_text())
    assert [(name.split("-")[:3], role, code) for name, role, code in observed] == [
        (["w0", "i1", "worker"], "worker", 0)
    ]


# A harness that prints its own output format ("session: ID" then the reply), with the parser
# for it in the same conftest.py: here the fake claude behind a converter script.
REGISTER_LINEBOT = """
from pytest_oompa import HarnessSpec, ParsedOutput, SessionStrategy

def parse_lines(stdout):
    head, _, text = stdout.partition("\\n")
    if not head.startswith("session: "):
        return ParsedOutput(text=stdout, error="expected 'session: ID' first")
    return ParsedOutput(text=text, session_id=head.removeprefix("session: "))

def pytest_oompa_register_harnesses(registry):
    registry.register(
        HarnessSpec(
            name="linebot",
            binary="linebot",
            headless=("-p",),
            auto_approve=("--dangerously-skip-permissions",),
            env={"IS_SANDBOX": "1"},
            output_args=("--output-format", "json"),
            resume_args=("--resume", "{session}"),
            prompt_args=("--", "{prompt}"),
            # The CLI picks the session id and reports it: only the parser can read it.
            session=SessionStrategy.REPORTED,
            parser=parse_lines,
        )
    )
"""


@pytest.fixture
def linebot_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "linebot-bin"
    folder.mkdir()
    script = folder / "linebot"
    convert = "import json,sys; d=json.load(sys.stdin); print('session:', d['session_id']); " + (
        "print(d['result'])"
    )
    script.write_text(
        f'#!/bin/sh\nout=$("{fake_bin_dir() / "claude"}" "$@"); code=$?\n'
        f'printf "%s" "$out" | "{sys.executable}" -c "{convert}"\nexit $code\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return script


def test_a_registered_harness_brings_its_own_parser(pytester, linebot_on_path, fake_log):
    swarm_project(
        pytester,
        REGISTER_LINEBOT,
        {**FAST, "workers": [{"model": "linebot:opus", "iterations": 2}]},
    )
    result = pytester.runpytest("--oompa-swarm=oompa.json")
    # With any built-in parser the converted output is not what it expects: every call errors.
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["w0*linebot:opus*exhausted*2*2*"])
    run_dir = only_run(pytester)
    assert_run_valid(run_dir)
    for i in (1, 2):
        (call,) = json.loads((run_dir / "calls" / f"w0-i{i}.json").read_text())["calls"]
        printed = (run_dir / call["log"]).read_text()
        assert call["session-id"] and f"session: {call['session-id']}\\n" in printed
