"""The registry builds the argv SPEC-harnesses.md verified against each real CLI."""

import json
import uuid
from pathlib import Path

import pytest

from pytest_oompa.harnesses.output import ParsedOutput, parse_text, text_transcript
from pytest_oompa.harnesses.registry import HarnessRegistry, UnknownHarness
from pytest_oompa.harnesses.spec import HarnessSpec, SessionMode, build_command

REG = HarnessRegistry()
CWD = Path("/work/project/.w0-i1")


def argv(name, session, prompt="[oompa:s:w0] hi", model="m", reasoning=None):
    return build_command(
        REG.get(name), prompt=prompt, model=model, cwd=CWD, session=session, reasoning=reasoning
    )


def test_claude_fresh_chooses_a_uuid_and_resume_uses_it_alone():
    fresh = argv("claude", SessionMode.new(), model="opus")
    sid = fresh.session_id
    assert uuid.UUID(sid)
    assert fresh.argv == (
        "claude",
        "-p",
        "--dangerously-skip-permissions",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "opus",
        "--session-id",
        sid,
        "--",
        "[oompa:s:w0] hi",
    )
    resumed = argv("claude", SessionMode.resume(sid), model="opus")
    assert "--session-id" not in resumed.argv  # claude exits 1 on --session-id with --resume
    assert resumed.argv[-4:] == ("--resume", sid, "--", "[oompa:s:w0] hi")
    assert fresh.env == {"IS_SANDBOX": "1"}


def test_codex_reasoning_cwd_and_resume_form():
    fresh = argv("codex", SessionMode.new(), model="gpt-5", reasoning="high")
    assert fresh.session_id is None  # codex picks the thread id; we read it from --json
    assert fresh.argv == (
        "codex",
        "exec",
        "--dangerously-bypass-approvals-and-sandbox",
        "-C",
        str(CWD),
        "--skip-git-repo-check",
        "--json",
        "-m",
        "gpt-5",
        "-c",
        'model_reasoning_effort="high"',
        "--",
        "[oompa:s:w0] hi",
    )
    resumed = argv("codex", SessionMode.resume("t-1"), model="gpt-5")
    i = resumed.argv.index("resume")
    assert resumed.argv[i:] == ("resume", "t-1", "[oompa:s:w0] hi")
    assert "-C" in resumed.argv[:i]  # flags stay before `resume`


def test_opencode_session_flag():
    assert argv("opencode", SessionMode.new(), model="fake/m").argv == (
        "opencode",
        "run",
        "--auto",
        "--format",
        "json",
        "-m",
        "fake/m",
        "--",
        "[oompa:s:w0] hi",
    )
    assert argv("opencode", SessionMode.resume("ses_x")).argv[-4:] == (
        "-s",
        "ses_x",
        "--",
        "[oompa:s:w0] hi",
    )


def test_gemini_prompt_with_a_leading_dash_travels_in_the_equals_form():
    cmd = argv("gemini", SessionMode.new(), prompt="-x looks like a flag")
    assert cmd.argv[-1] == "--prompt=-x looks like a flag"
    assert "--skip-trust" in cmd.argv and "--session-id" in cmd.argv
    assert argv("gemini", SessionMode.resume(cmd.session_id)).argv[-3:-1] == (
        "--resume",
        cmd.session_id,
    )


@pytest.mark.parametrize("name", ["claude", "codex", "opencode", "gemini"])
def test_one_shot_calls_carry_no_session(name):
    cmd = argv(name, SessionMode.none())
    assert not {"--session-id", "--resume", "resume", "-s"} & set(cmd.argv)


@pytest.mark.parametrize("name", ["claude", "codex", "opencode", "gemini"])
def test_prompts_are_single_argv_elements(name):
    nasty = "[oompa:s:w0] $(rm -rf /); `x` {model} {prompt}\n'\""
    cmd = argv(name, SessionMode.new(), prompt=nasty)
    assert any(a.endswith(nasty) for a in cmd.argv)  # verbatim, braces not re-substituted


def test_registry_lookup_and_registration():
    reg = HarnessRegistry()
    with pytest.raises(UnknownHarness, match="known: claude, codex, gemini, opencode"):
        reg.get("aider")
    reg.register(HarnessSpec(name="aider", binary="aider", parser=parse_text))
    assert "aider" in reg.names()
    with pytest.raises(ValueError, match="parser must be a callable"):
        reg.register(HarnessSpec(name="x", binary="x", parser="yaml"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transcript must be a callable"):
        reg.register(HarnessSpec(name="x", binary="x", transcript="y"))  # type: ignore[arg-type]


def test_a_registered_harness_brings_its_own_parser():
    def parse_yaml(stdout: str) -> ParsedOutput:
        key, _, value = stdout.partition(": ")
        return ParsedOutput(text=value.strip(), session_id=key)

    reg = HarnessRegistry()
    reg.register(HarnessSpec(name="yamlbot", binary="yamlbot", parser=parse_yaml))
    parsed = reg.get("yamlbot").parse("s-1: done CLAIM(a)\n")
    assert (parsed.text, parsed.session_id) == ("done CLAIM(a)", "s-1")
    assert reg.get("yamlbot").parser_name == "yaml"


def test_every_builtin_entry_carries_all_its_facts():
    for spec in HarnessRegistry():
        assert spec.real is not None and spec.real.version.count(".") == 2, spec.name
        assert spec.recipe is not None and spec.recipe.api, spec.name
        assert spec.default_model != "default", spec.name
        assert spec.parser is not parse_text, spec.name
        assert spec.transcript is not text_transcript, spec.name


def test_parsers_read_text_session_and_usage():
    claude = REG.get("claude").parse(
        json.dumps(
            {
                "type": "result",
                "result": "done CLAIM(a)",
                "session_id": "s1",
                "is_error": False,
                "total_cost_usd": 0.25,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            }
        )
    )
    assert (claude.text, claude.session_id, claude.input_tokens, claude.cost_usd) == (
        "done CLAIM(a)",
        "s1",
        10,
        0.25,
    )
    codex = REG.get("codex").parse(
        "\n".join(
            json.dumps(e)
            for e in [
                {"type": "thread.started", "thread_id": "th"},
                {"type": "turn.started"},
                {"type": "item.completed", "item": {"type": "command_execution", "command": "ls"}},
                {"type": "item.completed", "item": {"type": "agent_message", "text": "hello"}},
                {"type": "some.future.event"},
                {"type": "turn.completed", "usage": {"input_tokens": 7, "output_tokens": 3}},
            ]
        )
    )
    assert (codex.text, codex.session_id, codex.output_tokens, codex.error) == (
        "hello",
        "th",
        3,
        None,
    )
    opencode = REG.get("opencode").parse(
        "\n".join(
            json.dumps(e)
            for e in [
                {"type": "step_start", "sessionID": "ses_1", "part": {}},
                {"type": "text", "sessionID": "ses_1", "part": {"type": "text", "text": "hi "}},
                {"type": "text", "sessionID": "ses_1", "part": {"type": "text", "text": "there"}},
                {
                    "type": "step_finish",
                    "sessionID": "ses_1",
                    "part": {"tokens": {"input": 4, "output": 2}, "cost": 0.5},
                },
            ]
        )
    )
    assert (opencode.text, opencode.session_id, opencode.cost_usd) == ("hi there", "ses_1", 0.5)
    gemini = REG.get("gemini").parse(json.dumps({"session_id": "g", "response": "ok", "stats": {}}))
    assert (gemini.text, gemini.session_id, gemini.is_error) == ("ok", "g", False)
    # gemini exits 0 after a mid-stream API error; only stats.models.*.api says so
    partial = REG.get("gemini").parse(
        json.dumps(
            {
                "session_id": "g",
                "response": "par",
                "stats": {"models": {"m": {"api": {"totalErrors": 1}, "tokens": {"prompt": 3}}}},
            }
        )
    )
    assert partial.is_error and partial.input_tokens == 3


@pytest.mark.parametrize("harness", ["claude", "codex", "opencode", "gemini"])
@pytest.mark.parametrize("garbage", ["", "not json at all", '{"type": "thread.started"', "[1, 2]"])
def test_garbage_is_reported_not_guessed(harness, garbage):
    assert REG.get(harness).parse(garbage).error
