"""``oompa-run.json`` as the report's and reader's tests need it: a valid document with the
fields a test cares about given, the rest fixed."""

from __future__ import annotations

from typing import Any


def oompa_run(swarm_id: str, status: str, started_at: str, **fields: Any) -> dict[str, Any]:
    """The run's metadata; ``fields`` override by their names with ``_`` for ``-``
    (``finished_at="..."``, ``tool_version="0.9.0"``)."""
    meta: dict[str, Any] = {
        "swarm-id": swarm_id,
        "status": status,
        "started-at": started_at,
        "finished-at": None,
        "exit-status": None,
        "tool-version": "0.1.0",
        "python-version": "3.11.9",
        "pytest-version": None,
        "harness-versions": {},
        "config-file": "/p/oompa.json",
        "config": {},
        "prompts": {},
        "repo": "/p",
        "main-before": None,
        "main-after": None,
        "pid": 1,
        "host": "h",
    }
    meta.update({k.replace("_", "-"): v for k, v in fields.items()})
    return meta
