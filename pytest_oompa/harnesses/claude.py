"""claude (Anthropic's Claude Code, ``@anthropic-ai/claude-code``): its harness entry, the reader
of its ``--output-format stream-json --verbose`` events (the parser and the transcript), and its
fake-API recipe.

The stream (checked against claude 2.1.197): a ``system``/``init`` event, then ``assistant``
events (each one content block: ``text``, ``tool_use``, ``thinking``) and ``user`` events
carrying the ``tool_result`` blocks, and last one ``result`` event, which is the whole output of
``--output-format json``: so the parser reads both formats (a pinned older format, and the
cassettes recorded with it, keep working).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pytest_oompa.harnesses.output import (
    Entry,
    ParsedOutput,
    as_dict,
    as_int,
    as_list,
    as_num,
    as_str,
    json_lines,
    one_line,
    pretty,
    single_object,
)
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy


def result_event(stdout: str) -> dict[str, Any] | None:
    """The last ``result`` event; the json format's pretty-printed object counts as one."""
    found = None
    for event in json_lines(stdout):
        if event is not None and event.get("type") == "result":
            found = event
    if found is None:
        obj = single_object(stdout)
        if obj is not None and obj.get("type", "result") == "result":
            found = obj
    return found


def parse_claude_json(stdout: str) -> ParsedOutput:
    """The reply, session and figures from the ``result`` event (stream-json or json)."""
    obj = result_event(stdout)
    if obj is None:
        return ParsedOutput(text=stdout, error="expected claude stream-json events with a result")
    usage = as_dict(obj.get("usage"))
    return ParsedOutput(
        text=str(obj.get("result") or ""),
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cost_usd=as_num(obj.get("total_cost_usd")),
        is_error=obj.get("is_error") is True,
    )


def tool_summary(name: str, tool_input: dict[str, Any]) -> str:
    """ "Write src/app.py", "Bash: git commit -m x": the tool and what it acts on."""
    if name == "Bash" and as_str(tool_input.get("command")):
        return f"Bash: {one_line(tool_input['command'])}"
    for key in ("file_path", "notebook_path", "path", "pattern", "url", "query", "description"):
        value = as_str(tool_input.get(key))
        if value:
            return f"{name} {one_line(value)}"
    return name


def result_text(content: Any) -> str:
    """A ``tool_result`` block's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    return "\n".join(as_str(as_dict(b).get("text")) for b in as_list(content)).strip()


def transcript_claude(stdout: str) -> list[Entry]:
    entries: list[Entry] = []
    names: dict[str, str] = {}  # tool_use id -> tool name, for the results
    final = None
    for event in json_lines(stdout):
        if event is None:
            continue
        kind = event.get("type")
        blocks = as_list(as_dict(event.get("message")).get("content"))
        if kind == "assistant":
            for block in map(as_dict, blocks):
                if block.get("type") == "text" and as_str(block.get("text")).strip():
                    entries.append(Entry("message", block["text"]))
                elif block.get("type") == "tool_use":
                    name = as_str(block.get("name")) or "tool"
                    names[as_str(block.get("id"))] = name
                    tool_input = as_dict(block.get("input"))
                    summary = tool_summary(name, tool_input)
                    entries.append(Entry("tool", summary, name, pretty(block.get("input"))))
        elif kind == "user":
            for block in map(as_dict, blocks):
                if block.get("type") == "tool_result":
                    name = names.get(as_str(block.get("tool_use_id")), "")
                    entries.append(Entry("result", result_text(block.get("content")), name))
        elif kind == "result":
            final = event
    if final is None:
        final = result_event(stdout)
    if final is not None:
        text = as_str(final.get("result"))
        if final.get("is_error") is True:
            error = Entry("error", text or as_str(final.get("subtype")) or "error")
            # An API error also comes as a synthetic assistant message with the same text.
            if entries and entries[-1] == Entry("message", error.text):
                entries.pop()
            entries.append(error)
        elif text.strip() and not any(e.kind == "message" for e in entries):
            entries.append(Entry("message", text))  # the json format: the result alone
    return entries


RECIPE = Recipe(
    env=MappingProxyType(
        {
            "ANTHROPIC_BASE_URL": "{base_url}",
            "ANTHROPIC_API_KEY": "x",
            "CLAUDE_CONFIG_DIR": "{home}/.claude",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
            "IS_SANDBOX": "1",
        }
    ),
    api="anthropic",
    notes="Anthropic Messages (SSE) at /v1/messages; also HEAD /",
)

SPEC = HarnessSpec(
    name="claude",
    binary="claude",
    headless=("-p",),
    # As root, --dangerously-skip-permissions exits 1 unless IS_SANDBOX=1 is set.
    auto_approve=("--dangerously-skip-permissions",),
    # stream-json keeps every event (tool calls too) in the call's command log.
    output_args=("--output-format", "stream-json", "--verbose"),
    model_args=("--model", "{model}"),
    new_session_args=("--session-id", "{session}"),
    # --resume alone: combined with --session-id, claude exits 1.
    resume_args=("--resume", "{session}"),
    prompt_args=("--", "{prompt}"),
    session=SessionStrategy.CHOSEN_UUID,
    parser=parse_claude_json,
    transcript=transcript_claude,
    env=MappingProxyType({"IS_SANDBOX": "1"}),
    env_pass=("ANTHROPIC_*", "CLAUDE_*", "DISABLE_*", "CLAUDE_CODE_*"),
    stdin_note="may carry the prompt; an open pipe costs a 3 s wait",
    exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 1}),
    default_model="sonnet",
    real=RealPackage("@anthropic-ai/claude-code", "2.1.197"),
    recipe=RECIPE,
)
