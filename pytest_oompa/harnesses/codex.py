"""codex (OpenAI's Codex CLI, ``@openai/codex``): its harness entry, the reader of its
``exec --json`` JSONL events (the parser and the transcript), and its fake-API recipe.

The events (checked against codex 0.169.0; codex-rs/exec/src/exec_events.rs): ``thread.started``,
``turn.started``/``completed``/``failed``, ``error``, and ``item.started``/``item.completed``
of items: ``agent_message``, ``reasoning``, ``command_execution`` (its shell), ``file_change``
(apply_patch), ``mcp_tool_call``, ``web_search``, ``todo_list`` and ``error``.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from pytest_oompa.harnesses.output import (
    Entry,
    ParsedOutput,
    as_dict,
    as_int,
    as_list,
    as_str,
    json_lines,
    one_line,
    pretty,
)
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy


def parse_codex_jsonl(stdout: str) -> ParsedOutput:
    texts: list[str] = []
    session_id = None
    tokens_in = tokens_out = None
    seen = bad = 0
    errors: list[str] = []
    for event in json_lines(stdout):
        if event is None:
            bad += 1
            continue
        seen += 1
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            session_id = event["thread_id"]
        elif kind == "item.completed":
            item = as_dict(event.get("item"))
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                texts.append(item["text"])
        elif kind == "turn.completed":
            usage = as_dict(event.get("usage"))
            tokens_in = (tokens_in or 0) + (as_int(usage.get("input_tokens")) or 0)
            tokens_out = (tokens_out or 0) + (as_int(usage.get("output_tokens")) or 0)
        elif kind in ("error", "turn.failed"):
            errors.append(json.dumps(event)[:300])
    if seen == 0 or bad:
        return ParsedOutput(text=stdout, session_id=session_id, error="expected codex --json JSONL")
    return ParsedOutput(
        text="\n".join(texts),
        session_id=session_id,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        is_error=bool(errors),
    )


def item_call(item: dict[str, Any]) -> Entry | None:
    """The tool call an item is, or None for an item that is not one."""
    kind = as_str(item.get("type"))
    if kind == "command_execution":
        command = as_str(item.get("command"))
        return Entry("tool", f"shell: {one_line(command)}", "shell", pretty({"command": command}))
    if kind == "file_change":
        changes = [as_dict(c) for c in as_list(item.get("changes"))]
        shown = ", ".join(f"{as_str(c.get('kind'))} {as_str(c.get('path'))}" for c in changes)
        return Entry("tool", f"apply_patch {one_line(shown)}", "apply_patch", pretty(changes))
    if kind == "mcp_tool_call":
        name = f"{as_str(item.get('server'))}.{as_str(item.get('tool'))}".strip(".") or "mcp"
        return Entry("tool", name, name, pretty(item.get("arguments")))
    if kind == "web_search":
        query = as_str(item.get("query"))
        return Entry(
            "tool", f"web_search {one_line(query)}", "web_search", pretty({"query": query})
        )
    return None


def item_result(item: dict[str, Any], tool: str) -> Entry:
    kind = as_str(item.get("type"))
    if kind == "command_execution":
        output = as_str(item.get("aggregated_output"))
        code = as_int(item.get("exit_code"))
        return Entry("result", output if code in (0, None) else f"{output}\n[exit {code}]", tool)
    if kind == "mcp_tool_call" and item.get("error") is not None:
        return Entry("result", as_str(as_dict(item.get("error")).get("message")) or "error", tool)
    if kind == "mcp_tool_call":
        return Entry("result", pretty(item.get("result")), tool)
    return Entry("result", as_str(item.get("status")), tool)


def transcript_codex(stdout: str) -> list[Entry]:
    entries: list[Entry] = []
    started: dict[str, str] = {}  # item id -> tool name, for the call shown when it started
    for event in json_lines(stdout):
        if event is None:
            continue
        kind = event.get("type")
        item = as_dict(event.get("item"))
        if kind in ("item.started", "item.completed"):
            call = item_call(item)
            item_id = as_str(item.get("id"))
            if call is not None and item_id not in started:
                started[item_id] = call.tool
                entries.append(call)
            if kind == "item.started":
                continue
            if call is not None:
                entries.append(item_result(item, started[item_id]))
            elif item.get("type") == "agent_message" and as_str(item.get("text")).strip():
                entries.append(Entry("message", item["text"]))
            elif item.get("type") == "error":
                entries.append(Entry("error", as_str(item.get("message")) or "error"))
        elif kind == "error":
            entries.append(Entry("error", as_str(event.get("message")) or "error"))
        elif kind == "turn.failed":
            message = as_str(as_dict(event.get("error")).get("message"))
            entries.append(Entry("error", message or "turn failed"))
    return entries


_CODEX_CONFIG = """\
# oompa: codex against the loopback fake model API only
model_provider = "fake"
check_for_update_on_startup = false

[model_providers.fake]
name = "oompa fake"
base_url = "{base_url}/v1"
env_key = "FAKE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 300000

[features]
plugins = false
unbounded_connection_retries = false

[analytics]
enabled = false

[otel]
exporter = "none"
"""

RECIPE = Recipe(
    env=MappingProxyType({"CODEX_HOME": "{home}/.codex", "FAKE_API_KEY": "x"}),
    files=MappingProxyType({".codex/config.toml": _CODEX_CONFIG}),
    api="responses",
    notes="OpenAI Responses (SSE) at /v1/responses; OPENAI_BASE_URL is ignored",
)

SPEC = HarnessSpec(
    name="codex",
    binary="codex",
    subcommand=("exec",),
    auto_approve=("--dangerously-bypass-approvals-and-sandbox",),
    cwd_args=("-C", "{cwd}", "--skip-git-repo-check"),
    output_args=("--json",),
    model_args=("-m", "{model}"),
    reasoning_args=("-c", 'model_reasoning_effort="{reasoning}"'),
    # `codex exec [flags] resume <thread_id> <prompt>`: flags stay before `resume`.
    resume_args=("resume", "{session}"),
    prompt_args=("--", "{prompt}"),
    resume_prompt_args=("{prompt}",),
    session=SessionStrategy.REPORTED,
    parser=parse_codex_jsonl,
    transcript=transcript_codex,
    env_pass=("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*"),
    stdin_note="must be closed, or it blocks forever",
    exit_codes=MappingProxyType({"bad-flag": 2, "unknown-session": 1}),
    default_model="gpt-5-codex",
    real=RealPackage("@openai/codex", "0.169.0"),
    recipe=RECIPE,
)
