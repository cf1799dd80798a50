"""What a harness call printed, parsed: ``ParsedOutput``, and the helpers each CLI's parser
(in its own module of this package) shares.

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


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
