"""claude (Anthropic's Claude Code, ``@anthropic-ai/claude-code``): its harness entry, the parser of
its ``--output-format json`` result object, and its fake-API recipe.
"""

from __future__ import annotations

from types import MappingProxyType

from pytest_oompa.harnesses.output import ParsedOutput, as_dict, as_int, as_num, single_object
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy


def parse_claude_json(stdout: str) -> ParsedOutput:
    obj = single_object(stdout)
    if obj is None or ("result" not in obj and "session_id" not in obj):
        return ParsedOutput(text=stdout, error="expected one JSON result object from claude")
    usage = as_dict(obj.get("usage"))
    return ParsedOutput(
        text=str(obj.get("result") or ""),
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cost_usd=as_num(obj.get("total_cost_usd")),
        is_error=obj.get("is_error") is True,
    )


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
    output_args=("--output-format", "json"),
    model_args=("--model", "{model}"),
    new_session_args=("--session-id", "{session}"),
    # --resume alone: combined with --session-id, claude exits 1.
    resume_args=("--resume", "{session}"),
    prompt_args=("--", "{prompt}"),
    session=SessionStrategy.CHOSEN_UUID,
    parser=parse_claude_json,
    env=MappingProxyType({"IS_SANDBOX": "1"}),
    env_pass=("ANTHROPIC_*", "CLAUDE_*", "DISABLE_*", "CLAUDE_CODE_*"),
    stdin_note="may carry the prompt; an open pipe costs a 3 s wait",
    exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 1}),
    default_model="sonnet",
    real=RealPackage("@anthropic-ai/claude-code", "2.1.197"),
    recipe=RECIPE,
)
