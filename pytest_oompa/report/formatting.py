"""The report's small value formatters: instants, durations, offsets, counts, costs, clipped text.

Pure functions from a value to the text the page shows, kept apart so that the model (which
words its status with a duration) and every section of the page word a value the same way. A
value that is unknown is shown as ``—`` (or ``unknown`` for an instant), never as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from pytest_oompa.runs.reader import plural

__all__ = [
    "clip",
    "fmt_cost",
    "fmt_int",
    "fmt_ms",
    "fmt_offset",
    "fmt_tick",
    "fmt_ts",
    "plural",
    "sum_known",
]


def fmt_ts(ts: datetime | None) -> str:
    """An instant in UTC to the second."""
    if ts is None:
        return "unknown"
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_ms(ms: float | None) -> str:
    """850 ms, 12.3 s, 4 min 05 s, 1 h 02 min."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{int(ms)} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_offset(seconds: float) -> str:
    """Seconds as ``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def fmt_tick(seconds: float, step: float) -> str:
    """An axis label: ``1.5 s`` below one-second steps, ``40 s`` under two minutes, else m:ss."""
    if step < 1:
        return f"{seconds:.1f} s"
    if step < 60 and seconds < 120:
        return f"{seconds:.0f} s"
    return fmt_offset(seconds)


def fmt_int(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def fmt_cost(c: float | None) -> str:
    if c is None:
        return "—"
    return f"${c:,.4f}" if c < 1 else f"${c:,.2f}"


def clip(text: str, limit: int, where: str = "") -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out (and where they are)."""
    if len(text) <= limit:
        return text
    more = f", see {where}" if where else ""
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters{more})"


def sum_known(values: Iterable[float | int | None]) -> Any:
    """The sum of the known values, or None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
