"""What a harness call printed, parsed: ``ParsedOutput`` (the reply, session and figures),
``Entry`` (one step of the call's transcript), and the helpers each CLI's parser and transcript
reader (in its own module of this package) share.

Tolerant by design (newer CLI versions add event types and fields): unknown events are skipped,
missing figures stay None. Output that is not the promised format at all is reported through
``ParsedOutput.error`` so the engine can fail the call instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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


@dataclass(frozen=True)
class Entry:
    """One step of what an agent did in a call, the same for every CLI (the report renders
    these): ``kind`` is "message" (the agent's text), "tool" (a tool call), "result" (a tool's
    result) or "error"."""

    kind: str
    # The message text; for "tool", a one-line summary ("Write src/app.py", "Bash: git status").
    text: str
    tool: str = ""  # the CLI's own tool name, for "tool" and "result"
    input: str = ""  # the tool call's input as pretty JSON text, for "tool"


def pretty(value: Any) -> str:
    """A tool call's input as the transcript shows it: indented JSON."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):  # a circular structure cannot come from json.loads
        return repr(value)


def one_line(text: str, limit: int = 160) -> str:
    """The first line of ``text``, cut to ``limit`` characters, for a tool call's summary."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > limit:
        return first[: limit - 1] + "…"
    return first + " …" if len(lines) > 1 else first


def text_transcript(text: str) -> list[Entry]:
    """The transcript of a CLI that prints only its reply (plain text output)."""
    return [Entry("message", text.strip())] if text.strip() else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def json_lines(stdout: str) -> Iterator[dict[str, Any] | None]:
    """Yield each non-blank line as a JSON object, or None for a line that is not one."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            yield None
            continue
        yield parsed if isinstance(parsed, dict) else None


def single_object(stdout: str) -> dict[str, Any] | None:
    # The object is normally the whole output; some versions print log lines before it.
    stripped = stdout.strip()
    for candidate in (stripped, stripped[stripped.rfind("\n{") + 1 :] if "\n{" in stripped else ""):
        if not candidate:
            continue
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


def parse_text(stdout: str) -> ParsedOutput:
    return ParsedOutput(text=stdout)
