"""Helpers of the ``oompa`` command's tests: the command run the way users run it, in its own
process (on real repos and on runs made by real swarms with the bundled fake harnesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# No preflight probe, no executor wait: the swarms here only have to leave runs behind.
FAST = {"probe": False, "executor_wait": 0}


def oompa(
    *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``oompa("list", "--runs-dir", d)``: the command in a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_oompa.cli", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit status 2 and one line on stderr, no traceback; the line."""
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]
