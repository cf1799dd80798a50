"""The normalized transcript (``pytest_oompa.harnesses.transcript``) and the stream parsers, on
what the real CLIs print, on what the fakes print for the same work, and on anything at all.

The samples in ``data/`` were captured from the real CLIs (claude 2.1.197, gemini-cli 0.61.0,
codex 0.169.0, opencode 1.18.33, with the registry's argv) driven by the loopback fake model API
on a scenario that writes ``hello.txt``, runs ``git add hello.txt && git commit -qm 'w0: hello'
&& echo committed`` and ends with ``Done.\\nCOMPLETE_AND_READY_FOR_MERGE``; the ``-api-error``
and ``-cut`` samples on a 401 and on a stream the server closed mid-way; ``claude-json.json`` and
``gemini-json.json`` are the older ``--output-format json`` / ``-o json`` of the same scenario.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_oompa import GitRepo
from pytest_oompa.core import paths
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import SessionMode, build_command
from pytest_oompa.harnesses.transcript import Entry, from_command_log, transcript
from pytest_oompa.runs.commandlog import CommandLog

DATA = Path(__file__).parent / "data"
REG = HarnessRegistry()
HARNESSES = ("claude", "codex", "opencode", "gemini")
SAMPLES = {
    "claude": "claude-stream-json.jsonl",
    "codex": "codex-json.jsonl",
    "opencode": "opencode-json.ndjson",
    "gemini": "gemini-stream-json.jsonl",
}
REPLY = "Done.\nCOMPLETE_AND_READY_FOR_MERGE"
COMMIT = "git add hello.txt && git commit -qm 'w0: hello' && echo committed"
# The CLI's own write and shell tools, and the summary of each call in the samples.
WRITE = {"claude": "Write", "opencode": "write", "gemini": "write_file"}
SHELL = {"claude": "Bash", "codex": "shell", "opencode": "bash", "gemini": "run_shell_command"}


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def tools(entries: list[Entry]) -> list[tuple[str, str]]:
    return [(e.kind, e.tool) for e in entries if e.kind in ("tool", "result")]


# ------------------------------------------------------------------------------------------
# The real CLIs' streams
# ------------------------------------------------------------------------------------------


def test_the_registry_asks_claude_and_gemini_for_their_streams() -> None:
    assert REG.get("claude").output_args == ("--output-format", "stream-json", "--verbose")
    assert REG.get("gemini").output_args == ("-o", "stream-json")


@pytest.mark.parametrize("harness", HARNESSES)
def test_the_parsers_read_the_real_streams(harness: str) -> None:
    parsed = REG.get(harness).parse(sample(SAMPLES[harness]))
    assert parsed.error is None and not parsed.is_error
    assert parsed.session_id
    assert parsed.text.endswith(REPLY)
    assert (parsed.input_tokens, parsed.output_tokens) == (300, 60)
    if harness == "claude":
        assert parsed.text == REPLY and parsed.cost_usd == pytest.approx(0.0018)
    if harness == "gemini":  # as -o json gave it: the text after the last tool call
        assert parsed.text == REPLY


@pytest.mark.parametrize("harness", HARNESSES)
def test_the_transcript_of_a_real_stream(harness: str) -> None:
    cwd = f"/tmp/cap/out/tmp-{harness}/work"  # where the sample was captured
    entries = transcript(harness, sample(SAMPLES[harness]), cwd=cwd)
    messages = [e.text for e in entries if e.kind == "message"]
    assert messages[0] == "Writing the file." and messages[-1] == REPLY
    calls = [e for e in entries if e.kind == "tool"]
    shell = calls[-1]
    assert shell.tool == SHELL[harness]
    assert COMMIT in json.loads(shell.input)["command"]
    assert shell.text.startswith(SHELL[harness] + ": ")
    result = entries[entries.index(shell) + 1]
    assert (result.kind, result.tool, result.text.strip()) == (
        "result",
        SHELL[harness],
        "committed",
    )
    if harness in WRITE:  # codex wrote the file with its shell (printf), not apply_patch
        (write,) = [c for c in calls if c.tool == WRITE[harness]]
        assert write.text == f"{WRITE[harness]} hello.txt"  # the cwd is dropped
        written = json.loads(write.input)
        assert written.get("file_path", written.get("filePath")) == f"{cwd}/hello.txt"
        assert written["content"] == "hello\n"


def test_older_formats_still_parse_and_read_as_the_reply() -> None:
    for harness, name in (("claude", "claude-json.json"), ("gemini", "gemini-json.json")):
        parsed = REG.get(harness).parse(sample(name))
        assert (parsed.text, parsed.error, parsed.input_tokens) == (REPLY, None, 300)
        assert transcript(harness, sample(name)) == [Entry("message", REPLY)]


def test_errors_in_the_real_streams() -> None:
    claude = sample("claude-stream-json-api-error.jsonl")
    assert REG.get("claude").parse(claude).is_error
    assert transcript("claude", claude) == [
        Entry("error", "Failed to authenticate. API Error: 401 bad key")
    ]
    gemini = sample("gemini-stream-json-cut.jsonl")
    parsed = REG.get("gemini").parse(gemini)
    assert parsed.is_error and parsed.text == "partial "
    assert transcript("gemini", gemini) == [
        Entry("message", "partial "),
        Entry("error", "[API Error: terminated]"),
    ]


def test_a_stream_without_its_result_is_unparsable() -> None:
    for harness in ("claude", "gemini"):
        lines = sample(SAMPLES[harness]).splitlines()
        cut = "\n".join(line for line in lines if '"type":"result"' not in line.replace(" ", ""))
        assert REG.get(harness).parse(cut).error, harness
        assert any(e.kind == "tool" for e in transcript(harness, cut))


# ------------------------------------------------------------------------------------------
# The fakes print the same streams for the same work
# ------------------------------------------------------------------------------------------

SCENARIO = {
    "default": {
        "worker": {
            "write": {"hello.txt": "hello\n"},
            "shell": "echo committed",
            "commit": "w0: hello",
            "say": REPLY,
        }
    }
}


def run_fake(harness: str, tmp_path: Path) -> tuple[str, Path]:
    work = tmp_path / harness
    GitRepo(work)
    command = build_command(
        REG.get(harness),
        prompt="[oompa:s1:w0] do it",
        model=REG.get(harness).default_model,
        cwd=work,
        session=SessionMode.new(),
        binary=str(paths.fake_bin_dir() / harness),
    )
    env = {
        **os.environ,
        **command.env,
        "PWD": str(work),
        "OOMPA_FAKE_STATE": str(tmp_path / "state"),
        "OOMPA_FAKE_SCENARIO": json.dumps(SCENARIO),
    }
    proc = subprocess.run(
        command.argv,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, work


@pytest.mark.parametrize("harness", HARNESSES)
def test_the_fakes_stream_their_simulated_tool_calls(harness: str, tmp_path: Path) -> None:
    stdout, work = run_fake(harness, tmp_path)
    parsed = REG.get(harness).parse(stdout)
    assert (parsed.text, parsed.error, parsed.is_error) == (REPLY, None, False)
    assert parsed.session_id and parsed.input_tokens is not None
    entries = transcript(harness, stdout, cwd=str(work))
    assert entries[-1] == Entry("message", REPLY)
    calls = [e for e in entries if e.kind == "tool"]
    write, echo, commit = calls
    if harness == "codex":  # apply_patch's file_change
        assert (write.tool, write.text) == ("apply_patch", "apply_patch add hello.txt")
    else:
        assert (write.tool, write.text) == (WRITE[harness], f"{WRITE[harness]} hello.txt")
        assert json.loads(write.input)["content"] == "hello\n"
    assert echo.tool == commit.tool == SHELL[harness]
    assert "git commit -q -m 'w0: hello'" in commit.text
    result = entries[entries.index(echo) + 1]
    assert (result.kind, result.text.strip()) == ("result", "committed")
    assert (work / "hello.txt").read_text() == "hello\n"


@pytest.mark.parametrize("harness", ["claude", "opencode", "gemini"])
def test_a_fake_stream_has_the_real_ones_shape(harness: str, tmp_path: Path) -> None:
    """The same write and shell calls, in the same tool names, with the same kinds of events
    and the same fields on them as the real CLI's."""
    stdout, _ = run_fake(harness, tmp_path)
    real = tools(transcript(harness, sample(SAMPLES[harness])))
    fake = tools(transcript(harness, stdout))
    assert fake[:2] == real[:2] and fake[2:4] == real[2:4] == fake[4:6]

    def shapes(text: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for line in text.splitlines():
            event = json.loads(line)
            found.setdefault(event["type"], set()).update(event)
        return found

    real_shapes, fake_shapes = shapes(sample(SAMPLES[harness])), shapes(stdout)
    assert set(fake_shapes) == set(real_shapes)
    # The events of the turn's work; the first and last ones carry many more facts of the
    # real CLI's (its tools, skills, timings) that the fakes need not make up.
    for kind in set(real_shapes) - {"assistant", "user", "message", "tool_use", "tool_result"}:
        del real_shapes[kind]
    for kind, fields in real_shapes.items():
        # Fields the real CLI adds for its own bookkeeping the fakes need not make up.
        assert fields - fake_shapes[kind] <= {"request_id", "timestamp", "tool_use_result"}, kind


def test_a_denied_tool_call_shows_as_failed(tmp_path: Path) -> None:
    work = tmp_path / "w"
    GitRepo(work)
    env = {
        **os.environ,
        "OOMPA_FAKE_STATE": str(tmp_path / "state"),
        "OOMPA_FAKE_SCENARIO": json.dumps(SCENARIO),
    }
    argv = [str(paths.fake_bin_dir() / "claude"), "-p", "--output-format", "stream-json"]
    argv += ["--verbose", "--", "[oompa:s1:w0] do it"]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
    entries = transcript("claude", proc.stdout)
    (first_result,) = [e for e in entries if e.kind == "result"][:1]
    assert "permission denied for write hello.txt" in first_result.text
    assert not (work / "hello.txt").exists()


# ------------------------------------------------------------------------------------------
# Command logs
# ------------------------------------------------------------------------------------------


def write_log(path: Path, harness: str, stdout: str, cap: int = 10 << 20) -> None:
    log = CommandLog(path, cap_bytes=cap)
    log.start(argv=[harness], cwd="/tmp/cap/out/tmp-claude/work", role="worker", harness=harness)
    data = stdout.encode()
    for at in range(0, len(data), 700):  # the output arrives in pieces, cut anywhere
        log.output("stdout", data[at : at + 700])
    log.output("stderr", b"a warning\n")
    log.close(**{"exit-code": 0, "duration-ms": 5, "failure": None})


def test_from_command_log_reads_the_calls_stream(tmp_path: Path) -> None:
    path = tmp_path / "commands" / "w0-i1-worker.ndjson"
    write_log(path, "claude", sample(SAMPLES["claude"]))
    harness, entries = from_command_log(path)
    assert harness == "claude"
    cwd = "/tmp/cap/out/tmp-claude/work"  # the start event's: dropped from the summaries
    assert entries == transcript("claude", sample(SAMPLES["claude"]), cwd=cwd)
    assert Entry("tool", "Write hello.txt", "Write", entries[1].input) in entries


def test_from_command_log_of_a_cut_log(tmp_path: Path) -> None:
    path = tmp_path / "cut.ndjson"
    write_log(path, "claude", sample(SAMPLES["claude"]), cap=7000)
    harness, entries = from_command_log(path)
    assert harness == "claude"
    # The head and the tail are kept; the lines cut at either side of the gap are skipped.
    assert entries[0] == Entry("message", "Writing the file.")
    assert any(e.kind == "error" and "bytes of output omitted" in e.text for e in entries)
    assert entries[-1] == Entry("message", REPLY)
    assert from_command_log(tmp_path / "missing.ndjson") == ("", [])


# ------------------------------------------------------------------------------------------
# Anything at all: skipped, never raised
# ------------------------------------------------------------------------------------------

EVENT_TYPES = [
    "system", "assistant", "user", "result", "init", "message", "tool_use", "tool_result",
    "error", "thread.started", "item.started", "item.completed", "turn.failed", "text",
    "step_finish",
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "message",
                    "content",
                    "item",
                    "part",
                    "state",
                    "input",
                    "error",
                    "text",
                    "result",
                    "is_error",
                    "status",
                    "tool_name",
                    "parameters",
                    "name",
                    "changes",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
EVENT = st.builds(
    lambda kind, body: json.dumps({**body, "type": kind} if isinstance(body, dict) else body),
    st.sampled_from(EVENT_TYPES),
    JSON,
)


@settings(max_examples=150, deadline=None)
@given(harness=st.sampled_from([*HARNESSES, "unknown"]), text=st.text())
def test_any_text_never_raises(harness: str, text: str) -> None:
    for entry in transcript(harness, text):
        assert isinstance(entry, Entry) and isinstance(entry.text, str)
    if harness != "unknown":
        REG.get(harness).parse(text)


@settings(max_examples=300, deadline=None)
@given(harness=st.sampled_from(HARNESSES), lines=st.lists(EVENT | st.text(max_size=20)))
def test_any_events_never_raise(harness: str, lines: list[str]) -> None:
    stdout = "\n".join(lines)
    entries = transcript(harness, stdout)
    assert all(e.kind in ("message", "tool", "result", "error") for e in entries)
    REG.get(harness).parse(stdout)


@settings(max_examples=100, deadline=None)
@given(content=st.text() | st.lists(JSON).map(lambda v: "\n".join(map(json.dumps, v))))
def test_any_command_log_never_raises(
    content: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("log") / "x.ndjson"
    path.write_text(content, encoding="utf-8")
    harness, entries = from_command_log(path)
    assert isinstance(harness, str) and isinstance(entries, list)
