"""gemini (Google's Gemini CLI, ``@google/gemini-cli``): its harness entry, the parser of its
``-o json`` result object, and its fake-API recipe.
"""

from __future__ import annotations

import json
from types import MappingProxyType

from pytest_oompa.harnesses.output import ParsedOutput, as_dict, as_int, single_object
from pytest_oompa.harnesses.spec import HarnessSpec, RealPackage, Recipe, SessionStrategy


def parse_gemini_json(stdout: str) -> ParsedOutput:
    obj = single_object(stdout)
    if obj is None or ("response" not in obj and "session_id" not in obj):
        return ParsedOutput(text=stdout, error="expected one JSON object from gemini -o json")
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
    output_args=("-o", "json"),
    model_args=("-m", "{model}"),
    new_session_args=("--session-id", "{session}"),
    resume_args=("--resume", "{session}"),
    # `-p "-x"` breaks on a leading dash; the = form never does.
    prompt_args=("--prompt={prompt}",),
    session=SessionStrategy.CHOSEN_UUID,
    parser=parse_gemini_json,
    env_pass=("GEMINI_*", "GOOGLE_*"),
    # In its json modes gemini exits with the HTTP status mod 256: 429, 500, 502, 503, 504.
    transient_exit_codes=frozenset({173, 244, 246, 247, 248}),
    stdin_note="read with a 500 ms timeout",
    exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 42}),
    default_model="gemini-2.5-pro",
    real=RealPackage("@google/gemini-cli", "0.61.0"),
    recipe=RECIPE,
)
