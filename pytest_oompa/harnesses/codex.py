"""codex (OpenAI's Codex CLI, ``@openai/codex``): its harness entry, the parser of its
``exec --json`` JSONL events, and its fake-API recipe.
"""

from __future__ import annotations

import json
from types import MappingProxyType

from pytest_oompa.harnesses.output import ParsedOutput, as_dict, as_int, json_lines
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
    env_pass=("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*"),
    stdin_note="must be closed, or it blocks forever",
    exit_codes=MappingProxyType({"bad-flag": 2, "unknown-session": 1}),
    default_model="gpt-5-codex",
    real=RealPackage("@openai/codex", "0.169.0"),
    recipe=RECIPE,
)
