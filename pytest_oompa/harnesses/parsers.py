"""Parsers for the CLIs' structured output: text, session id, tokens and cost.

Tolerant by design (newer CLI versions add event types and fields): unknown events are skipped,
missing figures stay None. Output that is not the promised format at all is reported through
``ParsedOutput.error`` so the engine can fail the call instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParsedOutput:
    text: str
    session_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    is_error: bool = False
    error: str | None = None  # the output is not in the format the harness promised


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _json_lines(stdout: str) -> Iterator[dict[str, Any] | None]:
    """Yield each non-blank line as a JSON object, or None for a line that is not one."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            yield None
            continue
        yield obj if isinstance(obj, dict) else None


def _single_object(stdout: str) -> dict[str, Any] | None:
    # The object is normally the whole output; some versions print log lines before it.
    stripped = stdout.strip()
    for candidate in (stripped, stripped[stripped.rfind("\n{") + 1 :] if "\n{" in stripped else ""):
        if not candidate:
            continue
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def parse_text(stdout: str) -> ParsedOutput:
    return ParsedOutput(text=stdout)


def parse_claude_json(stdout: str) -> ParsedOutput:
    obj = _single_object(stdout)
    if obj is None or ("result" not in obj and "session_id" not in obj):
        return ParsedOutput(text=stdout, error="expected one JSON result object from claude")
    usage = _obj(obj.get("usage"))
    return ParsedOutput(
        text=str(obj.get("result") or ""),
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cost_usd=_num(obj.get("total_cost_usd")),
        is_error=obj.get("is_error") is True,
    )


def parse_codex_jsonl(stdout: str) -> ParsedOutput:
    texts: list[str] = []
    session_id = None
    tokens_in = tokens_out = None
    seen = bad = 0
    errors: list[str] = []
    for event in _json_lines(stdout):
        if event is None:
            bad += 1
            continue
        seen += 1
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            session_id = event["thread_id"]
        elif kind == "item.completed":
            item = _obj(event.get("item"))
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                texts.append(item["text"])
        elif kind == "turn.completed":
            usage = _obj(event.get("usage"))
            tokens_in = (tokens_in or 0) + (_int(usage.get("input_tokens")) or 0)
            tokens_out = (tokens_out or 0) + (_int(usage.get("output_tokens")) or 0)
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


def parse_opencode_ndjson(stdout: str) -> ParsedOutput:
    texts: list[str] = []
    session_id = None
    tokens_in = tokens_out = None
    cost = None
    seen = bad = 0
    is_error = False
    for event in _json_lines(stdout):
        if event is None:
            bad += 1
            continue
        seen += 1
        part = _obj(event.get("part"))
        sid = event.get("sessionID") or part.get("sessionID")
        if session_id is None and isinstance(sid, str):
            session_id = sid
        kind = event.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "step_finish":
            tokens = _obj(part.get("tokens"))
            tokens_in = (tokens_in or 0) + (_int(tokens.get("input")) or 0)
            tokens_out = (tokens_out or 0) + (_int(tokens.get("output")) or 0)
            if _num(part.get("cost")) is not None:
                cost = (cost or 0.0) + (_num(part.get("cost")) or 0.0)
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


def parse_gemini_json(stdout: str) -> ParsedOutput:
    obj = _single_object(stdout)
    if obj is None or ("response" not in obj and "session_id" not in obj):
        return ParsedOutput(text=stdout, error="expected one JSON object from gemini -o json")
    tokens_in = tokens_out = None
    api_errors = 0
    stats = _obj(obj.get("stats"))
    models = _obj(stats.get("models"))
    for model_stats in models.values():
        # gemini exits 0 after an error mid-stream, with the partial text as its response;
        # only the per-model API error count says so (checked against gemini-cli 0.61.0).
        api_errors += _int(_obj(_obj(model_stats).get("api")).get("totalErrors")) or 0
        tok = _obj(_obj(model_stats).get("tokens"))
        if tok:
            tokens_in = (tokens_in or 0) + (_int(tok.get("prompt")) or _int(tok.get("input")) or 0)
            tokens_out = (tokens_out or 0) + (
                _int(tok.get("candidates")) or _int(tok.get("output")) or 0
            )
    return ParsedOutput(
        text=str(obj.get("response") or ""),
        session_id=obj.get("session_id") if isinstance(obj.get("session_id"), str) else None,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        is_error=("error" in obj and obj["error"] is not None) or api_errors > 0,
    )


PARSERS: dict[str, Callable[[str], ParsedOutput]] = {
    "text": parse_text,
    "claude-json": parse_claude_json,
    "codex-jsonl": parse_codex_jsonl,
    "opencode-ndjson": parse_opencode_ndjson,
    "gemini-json": parse_gemini_json,
}
