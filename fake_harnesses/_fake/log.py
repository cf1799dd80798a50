"""The invocation log (``OOMPA_FAKE_LOG``): one JSON line per fake invocation.

Tests read it to see what the orchestrator ran (argv, cwd, stdin, the environment subset) and
what the fake made of it (role, worker, call index, session, exit). The record's fields are the
README's "Invocation log"; the writing is one ``O_APPEND`` write, so that the lines of fakes
running side by side never mix.
"""

from __future__ import annotations

import os
import time

from .invocation import Run


def write(run: Run, exit_code: int | None, **extra: object) -> None:
    """Append one JSON line with a single O_APPEND write, so concurrent fakes never mix.

    Once per invocation: the first call wins (a fake killed while it hangs logs from its
    signal handler, and must not log again on the way out)."""
    if run.logged:
        return
    run.logged = True
    path = os.environ.get("OOMPA_FAKE_LOG")
    if not path:
        return
    import json

    rec = {
        "ts": time.time(),
        "harness": run.harness,
        "argv": [run.harness, *run.argv],
        "cwd": run.cwd,
        "stdin": run.stdin_text,
        "stdin_state": run.stdin_state,
        "env": env_subset(),
        "exit_code": exit_code,
        "role": run.role,
        "worker": run.worker,
        "swarm": run.swarm,
        "call": run.call,
        "session_id": run.session_id,
        "resumed": run.resumed,
        "model": run.model,
        "format": run.fmt,
        "auto_approve": run.auto,
        "pid": os.getpid(),
        "duration_ms": run.elapsed_ms(),
    }
    rec.update(run.extra)
    rec.update(extra)
    data = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def env_subset() -> dict[str, str]:
    out = {}
    for k, v in os.environ.items():
        ku = k.upper()
        secret = "KEY" in ku or "TOKEN" in ku or "SECRET" in ku
        if secret:
            out[k] = "<redacted>"
        elif (
            k.startswith("OOMPA_")
            or k in ("IS_SANDBOX", "GEMINI_CLI_TRUST_WORKSPACE")
            or k.endswith("_BASE_URL")
        ):
            out[k] = v
    return out
