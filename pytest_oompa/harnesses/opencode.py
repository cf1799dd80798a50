"""opencode (``opencode-ai``): its harness entry, the reader of its ``run --format json``
NDJSON events (the parser and the transcript), and its fake-API recipe.

The events (checked against opencode 1.18.33), each with a ``part``: ``step_start``, ``text``,
``reasoning``, ``tool_use`` (``part.tool`` and ``part.state``: status, input, output or error,
title), ``step_finish`` (tokens, cost) and ``error``.
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
    as_num,
    as_str,
    json_lines,
    one_line,
    pretty,
)
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy


def parse_opencode_ndjson(stdout: str) -> ParsedOutput:
    texts: list[str] = []
    session_id = None
    tokens_in = tokens_out = None
    cost = None
    seen = bad = 0
    is_error = False
    for event in json_lines(stdout):
        if event is None:
            bad += 1
            continue
        seen += 1
        part = as_dict(event.get("part"))
        sid = event.get("sessionID") or part.get("sessionID")
        if session_id is None and isinstance(sid, str):
            session_id = sid
        kind = event.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "step_finish":
            tokens = as_dict(part.get("tokens"))
            tokens_in = (tokens_in or 0) + (as_int(tokens.get("input")) or 0)
            tokens_out = (tokens_out or 0) + (as_int(tokens.get("output")) or 0)
            if as_num(part.get("cost")) is not None:
                cost = (cost or 0.0) + (as_num(part.get("cost")) or 0.0)
        elif kind == "error":
            is_error = True
    if seen == 0 or bad:
        return ParsedOutput(
            text=stdout, session_id=session_id, error="expected opencode --format json NDJSON"
        )
    return ParsedOutput(
        text="".join(texts),
        session_id=session_id,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost,
        is_error=is_error,
    )


PATH_KEYS = ("filePath", "path", "pattern", "url", "query")


def tool_summary(name: str, tool_input: dict[str, Any], title: str) -> str:
    """ "write src/app.py", "bash: git commit -m x"."""
    if as_str(tool_input.get("command")):
        return f"{name}: {one_line(tool_input['command'])}"
    for key in PATH_KEYS:
        if as_str(tool_input.get(key)):
            return f"{name} {one_line(tool_input[key])}"
    return f"{name} {one_line(title)}".strip()


def transcript_opencode(stdout: str) -> list[Entry]:
    entries: list[Entry] = []
    for event in json_lines(stdout):
        if event is None:
            continue
        kind = event.get("type")
        part = as_dict(event.get("part"))
        if kind == "text" and as_str(part.get("text")).strip():
            entries.append(Entry("message", part["text"]))
        elif kind == "tool_use":
            name = as_str(part.get("tool")) or "tool"
            state = as_dict(part.get("state"))
            tool_input = as_dict(state.get("input"))
            summary = tool_summary(name, tool_input, as_str(state.get("title")))
            entries.append(Entry("tool", summary, name, pretty(state.get("input"))))
            if state.get("status") == "error":
                entries.append(Entry("result", as_str(state.get("error")) or "error", name))
            elif "output" in state:
                entries.append(Entry("result", as_str(state.get("output")), name))
        elif kind == "error":
            error = as_dict(event.get("error"))
            message = as_str(as_dict(error.get("data")).get("message"))
            entries.append(Entry("error", message or as_str(error.get("name")) or "error"))
    return entries


_OPENCODE_CONFIG = {
    "$schema": "https://opencode.ai/config.json",
    "provider": {
        "fake": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "oompa fake",
            "options": {"baseURL": "{base_url}/v1", "apiKey": "x"},
            "models": {"fake-model": {"name": "fake model"}},
        }
    },
    "model": "fake/fake-model",
    "small_model": "fake/fake-model",
    "autoupdate": False,
    "share": "disabled",
}

RECIPE = Recipe(
    env=MappingProxyType(
        {
            "OPENCODE_CONFIG_CONTENT": json.dumps(_OPENCODE_CONFIG),
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            # opencode installs @opencode-ai/plugin into its config dir in the
            # background with its built-in npm client: offline, it just logs a warning.
            "npm_config_offline": "true",
        }
    ),
    api="chat",
    notes="OpenAI Chat Completions (SSE) at /v1/chat/completions; a title call first",
)

SPEC = HarnessSpec(
    name="opencode",
    binary="opencode",
    subcommand=("run",),
    auto_approve=("--auto",),
    output_args=("--format", "json"),
    model_args=("-m", "{model}"),
    resume_args=("-s", "{session}"),
    # Checked against the real opencode 1.18.33: a message that starts with '-' is read
    # as an option unless '--' comes first.
    prompt_args=("--", "{prompt}"),
    session=SessionStrategy.REPORTED,
    parser=parse_opencode_ndjson,
    transcript=transcript_opencode,
    # opencode talks to many providers; each reads its own key.
    env_pass=(
        "OPENCODE_*",
        "OPENROUTER_*",
        "ANTHROPIC_*",
        "OPENAI_*",
        "GROQ_*",
        "GOOGLE_*",
        "GEMINI_*",
        "MISTRAL_*",
        "DEEPSEEK_*",
        "XAI_*",
    ),
    stdin_note="must be closed, or it blocks forever",
    exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 1}),
    default_model="fake/fake-model",
    real=RealPackage("opencode-ai", "1.18.33"),
    recipe=RECIPE,
)
