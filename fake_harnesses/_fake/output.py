"""Writing what a fake prints, and the pieces of output every CLI's format shares.

Each CLI module renders its own structured output (``render``); the numbers in it (token
counts and cost, made up from the transcript's length) and the timestamps come from here, so
that the four formats agree on them. Writes survive a reader that went away (a killed
orchestrator): a broken pipe is not the fake's failure.
"""

from __future__ import annotations

import sys
import time

from .invocation import Run


def json_line(obj: dict) -> str:
    """One line of a JSON-lines stream."""
    import json

    return json.dumps(obj, ensure_ascii=False) + "\n"


def token_usage(run: Run, reply: str) -> tuple[int, int, float]:
    """(input tokens, output tokens, cost in USD): grows with the session's history."""
    history = sum(len(t.get("prompt") or "") for t in (run.session or {}).get("turns", []))
    inp, outp = history // 4 + 1, len(reply) // 4 + 1
    return inp, outp, round(inp * 3e-6 + outp * 15e-6, 6)


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def emit_filler(n: int) -> None:
    row = b"x" * 1023 + b"\n"
    out = sys.stdout.buffer
    try:
        while n > 0:
            chunk = row[-n:] if n < len(row) else row
            out.write(chunk)
            n -= len(chunk)
        out.flush()
    except BrokenPipeError:
        pass


def emit(out: str = "", err: str = "") -> None:
    try:
        if err:
            sys.stderr.write(err)
            sys.stderr.flush()
        if out:
            sys.stdout.write(out)
            sys.stdout.flush()
    except BrokenPipeError:
        pass
