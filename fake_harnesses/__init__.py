"""Fake harness CLIs (``claude``, ``codex``, ``opencode``, ``gemini``) bundled with pytest-oompa.

The executables live in this folder; put it first on ``PATH``. They are standard-library Python
(``#!/usr/bin/env python3``); a pyenv shim costs ~150 ms per start, so put a real interpreter's
folder on ``PATH`` too (``fake_path()`` does both). Behaviour, state and the invocation log are
described in ``README.md``; the code is the ``_fake`` package next to this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._fake.clis import CLIS

FAKE_HARNESS_DIR = Path(__file__).resolve().parent
HARNESSES = tuple(CLIS)  # the CLIs the fakes emulate: _fake/clis/ has one module each

ENV_STATE = "OOMPA_FAKE_STATE"
ENV_SCENARIO = "OOMPA_FAKE_SCENARIO"
ENV_LOG = "OOMPA_FAKE_LOG"


def fake_path(path: str | None = None) -> str:
    """``PATH`` with the fakes first, then the running interpreter's folder, then ``path``."""
    rest = os.environ.get("PATH", "") if path is None else path
    head = [str(FAKE_HARNESS_DIR), os.path.dirname(sys.executable)]
    return os.pathsep.join([*head, *(p for p in rest.split(os.pathsep) if p and p not in head)])


def read_log(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """The invocation log as a list of records (one per fake invocation, in append order)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
