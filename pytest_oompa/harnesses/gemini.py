"""gemini (Google's Gemini CLI, ``@google/gemini-cli``): its harness entry, the reader of its
``-o stream-json`` events (the parser and the transcript), and its fake-API recipe.

The stream (checked against gemini-cli 0.61.0): ``init`` (session id, model), ``message``
(the user's prompt, then the assistant's text in ``delta`` pieces), ``tool_use`` (name, id,
parameters), ``tool_result`` (id, status, output or error), ``error`` (warnings and errors along
the way) and last ``result`` (status, error, token totals). The parser also reads the one object
of ``-o json`` (a pinned older format, and the cassettes recorded with it).
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
    as_str,
    json_lines,
    one_line,
    pretty,
    single_object,
)
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy

STREAM_EVENTS = frozenset({"init", "message", "tool_use", "tool_result", "error", "result"})


def parse_gemini_json(stdout: str) -> ParsedOutput:
    """The reply, session and tokens from the stream (or from the ``-o json`` object)."""
    events = [e for e in json_lines(stdout) if e is not None and e.get("type") in STREAM_EVENTS]
    if not events:
        return parse_json_object(stdout)
    session_id = None
    # As -o json gives it: the text after the last tool call, else the text before it.
    text, before_tool = "", ""
    result = None
    for event in events:
        kind = event.get("type")
        if kind == "init" and isinstance(event.get("session_id"), str):
            session_id = event["session_id"]
        elif kind == "message" and event.get("role") == "assistant":
            text += as_str(event.get("content"))
        elif kind == "tool_use":
            before_tool, text = text or before_tool, ""
        elif kind == "result":
            result = event
    if result is None:
        return ParsedOutput(
            text=text or before_tool,
            session_id=session_id,
            error="expected gemini -o stream-json events ending in a result",
        )
    stats = as_dict(result.get("stats"))
    tokens_in, tokens_out = as_int(stats.get("input_tokens")), as_int(stats.get("output_tokens"))
    return ParsedOutput(
        text=text or before_tool,
        session_id=session_id,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        # gemini may exit 0 after an API error mid-stream; the result's status says so.
        is_error=result.get("status") != "success" or result.get("error") is not None,
    )


def parse_json_object(stdout: str) -> ParsedOutput:
    obj = single_object(stdout)
    if obj is None or ("response" not in obj and "session_id" not in obj):
        return ParsedOutput(text=stdout, error="expected gemini -o stream-json events")
    tokens_in = tokens_out = None
    api_errors = 0
    stats = as_dict(obj.get("stats"))
    models = as_dict(stats.get("models"))
    for model_stats in models.values():
        # gemini exits 0 after an error mid-stream, with the partial text as its response;
        # only the per-model API error count says so (checked against gemini-cli 0.61.0).
        api_errors += as_int(as_dict(as_dict(model_stats).get("api")).get("totalErrors")) or 0
        tok = as_dict(as_dict(model_stats).get("tokens"))
        if tok:
            tokens_in = (tokens_in or 0) + (
                as_int(tok.get("prompt")) or as_int(tok.get("input")) or 0
            )
            tokens_out = (tokens_out or 0) + (
                as_int(tok.get("candidates")) or as_int(tok.get("output")) or 0
            )
    return ParsedOutput(
        text=str(obj.get("response") or ""),
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        is_error=("error" in obj and obj["error"] is not None) or api_errors > 0,
    )


SHELL_TOOLS = frozenset({"run_shell_command"})
PATH_KEYS = ("file_path", "absolute_path", "path", "dir_path", "pattern", "url", "query")


def tool_summary(name: str, params: dict[str, Any]) -> str:
    """ "write_file src/app.py", "run_shell_command: git commit -m x"."""
    if name in SHELL_TOOLS and as_str(params.get("command")):
        return f"{name}: {one_line(params['command'])}"
    for key in PATH_KEYS:
        if as_str(params.get(key)):
            return f"{name} {one_line(params[key])}"
    return name


def error_text(value: Any) -> str:
    error = as_dict(value)
    return as_str(error.get("message")) or as_str(error.get("type")) or "error"


def transcript_gemini(stdout: str) -> list[Entry]:
    entries: list[Entry] = []
    names: dict[str, str] = {}  # tool id -> tool name, for the results
    streamed = False
    for event in json_lines(stdout):
        kind = event.get("type") if event is not None else None
        if event is None or kind not in STREAM_EVENTS:
            continue
        streamed = True
        if kind == "message" and event.get("role") == "assistant":
            piece = as_str(event.get("content"))
            last = entries[-1] if entries else None
            if last is not None and last.kind == "message":  # the deltas of one message
                entries[-1] = Entry("message", last.text + piece)
            elif piece:
                entries.append(Entry("message", piece))
        elif kind == "tool_use":
            name = as_str(event.get("tool_name")) or "tool"
            names[as_str(event.get("tool_id"))] = name
            params = as_dict(event.get("parameters"))
            entries.append(Entry("tool", tool_summary(name, params), name, pretty(params)))
        elif kind == "tool_result":
            name = names.get(as_str(event.get("tool_id")), "")
            if event.get("status") == "error" or event.get("error") is not None:
                text = error_text(event.get("error"))
            else:
                text = as_str(event.get("output")) or as_str(event.get("status"))
            entries.append(Entry("result", text, name))
        elif kind == "error":
            entries.append(Entry("error", as_str(event.get("message")) or "error"))
        elif kind == "result" and (event.get("status") != "success" or event.get("error")):
            entries.append(Entry("error", error_text(event.get("error"))))
    if not streamed:
        obj = single_object(stdout)
        if obj is not None and "response" in obj:  # -o json: the reply alone
            if as_str(obj.get("response")).strip():
                entries.append(Entry("message", obj["response"]))
            if obj.get("error") is not None:
                entries.append(Entry("error", error_text(obj.get("error"))))
    return [e for e in entries if e.kind != "message" or e.text.strip()]


_GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "general": {
        "enableAutoUpdate": False,
        "enableAutoUpdateNotification": False,
        "maxAttempts": 1,
        "retryFetchErrors": False,
    },
    "telemetry": {"enabled": False},
}

RECIPE = Recipe(
    env=MappingProxyType(
        {
            "GOOGLE_GEMINI_BASE_URL": "{base_url}",
            "GEMINI_API_KEY": "x",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
    ),
    files=MappingProxyType(
        {".gemini/settings.json": json.dumps(_GEMINI_SETTINGS, indent=2) + "\n"}
    ),
    api="gemini",
    notes="Gemini streamGenerateContent (SSE); always pass -m",
)

SPEC = HarnessSpec(
    name="gemini",
    binary="gemini",
    # Without --skip-trust (or GEMINI_CLI_TRUST_WORKSPACE=true) gemini exits 55.
    auto_approve=("--yolo", "--skip-trust"),
    # stream-json keeps every event (tool calls too) in the call's command log.
    output_args=("-o", "stream-json"),
    model_args=("-m", "{model}"),
    new_session_args=("--session-id", "{session}"),
    resume_args=("--resume", "{session}"),
    # `-p "-x"` breaks on a leading dash; the = form never does.
    prompt_args=("--prompt={prompt}",),
    session=SessionStrategy.CHOSEN_UUID,
    parser=parse_gemini_json,
    transcript=transcript_gemini,
    env_pass=("GEMINI_*", "GOOGLE_*"),
    # In its json modes gemini exits with the HTTP status mod 256: 429, 500, 502, 503, 504.
    transient_exit_codes=frozenset({173, 244, 246, 247, 248}),
    stdin_note="read with a 500 ms timeout",
    exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 42}),
    default_model="gemini-2.5-pro",
    real=RealPackage("@google/gemini-cli", "0.61.0"),
    recipe=RECIPE,
)
