"""Run tracking beside the contract artifacts: ``oompa-run.json`` (metadata, versions,
snapshots, final status), ``heartbeat.json`` (refreshed while the swarm runs) and, when the
run ends, its entry in ``runs/index.json`` and a line in ``runs/metrics.jsonl``.

Status vocabulary (seed 002): ``running`` while it runs; then ``completed`` (pytest exit 0),
``interrupted`` (SIGINT/SIGTERM: pytest exit 2), ``failed`` (any other non-zero exit). A run
driven without pytest derives it: interrupted if stopped, failed on an engine error, a failed
preflight or a failed iteration, completed otherwise.

``stopped.json`` (oompa 0.7.3's, see :func:`stop_reason`) has only three words for the same end:
``interrupted`` exactly when the status is, ``error`` when the run was cut short by something
other than a signal (an engine failure, a failed preflight, the swarm timeout, a spend limit,
``-x``), ``completed`` when every worker reached its own end, even if the run failed on its
results (a rejected iteration, the gate): those are told by the index and summary.json.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_oompa import __version__
from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import SwarmConfig
from pytest_oompa.core.gate import Check
from pytest_oompa.runs.artifacts import utc_now_iso, validate_artifact
from pytest_oompa.runs.index import append_metrics, update_index
from pytest_oompa.runs.resume import write_token

HEARTBEAT_SECONDS = 5.0
INTERRUPTED_EXIT = 2  # pytest's ExitCode.INTERRUPTED (SIGINT, and SIGTERM through our handler)
INTERNAL_EXITS = (3, 4)  # pytest's INTERNAL_ERROR and USAGE_ERROR


def status_for_exit(exit_status: int) -> str:
    if exit_status == 0:
        return "completed"
    return "interrupted" if exit_status == INTERRUPTED_EXIT else "failed"


def _pytest_version() -> str | None:
    try:
        return importlib.metadata.version("pytest")
    except importlib.metadata.PackageNotFoundError:
        return None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return max(0.0, (_instant(end) - _instant(start)).total_seconds())


def stop_reason(
    status: str, exit_status: int | None, causes: Sequence[str]
) -> tuple[str, str | None]:
    """``stopped.json``'s (reason, error) for a run that ended with ``status`` (see the module
    docstring); ``causes`` are what cut the run short, if anything did."""
    if status == "interrupted":
        return "interrupted", None
    if status == "completed":
        return "completed", None
    if causes:
        return "error", "; ".join(causes)
    if exit_status in INTERNAL_EXITS:  # pytest itself failed (a plugin, a usage error)
        return "error", f"pytest ended with exit status {exit_status}"
    return "completed", None


@dataclass
class Counts:
    workers: int = 0
    iterations: int = 0
    merges: int = 0
    errors: int = 0
    rejections: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RunTracker:
    runs_dir: Path
    swarm_id: str
    config: SwarmConfig
    repo_root: Path
    heartbeat_interval: float = HEARTBEAT_SECONDS
    meta: dict[str, Any] = field(default_factory=dict)
    _beat: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    resumed: bool = False  # a resumed run: its metrics line replaces the earlier attempt's

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.swarm_id

    @property
    def started(self) -> bool:
        return bool(self.meta)

    @property
    def beating(self) -> bool:
        """The heartbeat thread is alive (until finish())."""
        return self._thread is not None and self._thread.is_alive()

    def _write(self, name: str, kind: str, data: dict[str, Any]) -> None:
        path = self.run_dir / name
        validate_artifact(kind, data, where=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, dumps_json(data))

    def _index_entry(self) -> dict[str, Any]:
        m = self.meta
        return {
            "id": self.swarm_id,
            "config-file": m["config-file"],
            "repo": m["repo"],
            "started-at": m["started-at"],
            "finished-at": m["finished-at"],
            "status": m["status"],
            "exit-status": m["exit-status"],
            "counts": m.get("counts", Counts().as_dict()),
            **({"resumes": len(m["resumes"])} if m.get("resumes") else {}),
        }

    def start(self, started_at: str, main_before: str | None) -> None:
        prompts: dict[str, str] = {}
        for agent in self.config.agents():
            for path in agent.prompt_files:
                prompts.setdefault(str(path), path.read_text(encoding="utf-8"))
        self.meta = {
            "swarm-id": self.swarm_id,
            "status": "running",
            "started-at": started_at,
            "finished-at": None,
            "exit-status": None,
            "tool-version": __version__,
            "python-version": platform.python_version(),
            "pytest-version": _pytest_version(),
            "harness-versions": {},
            "config-file": str(self.config.path),
            "config": self.config.raw,
            "prompts": prompts,
            "repo": str(self.repo_root),
            "main-before": main_before,
            "main-after": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.meta["resume-token-sha256"] = write_token(self.run_dir)
        self._begin()

    def resume(self, meta: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        """Track a resumed run: its earlier metadata, running again in this process, with one
        more ``resumes`` event; the index keeps one entry for the run."""
        self.resumed = True
        self.meta = {
            k: v for k, v in meta.items() if k not in ("counts", "errors", "gate", "finished-at")
        }
        self.meta.update(
            {
                "status": "running",
                "finished-at": None,
                "exit-status": None,
                "main-after": None,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "resumes": [*meta.get("resumes", []), dict(event)],
            }
        )
        self._begin()

    def _begin(self) -> None:
        self._write("oompa-run.json", "oompa-run", self.meta)
        update_index(self.runs_dir, self._index_entry())
        self._heartbeat("running")
        self._thread = threading.Thread(target=self._beat_loop, name="oompa-heartbeat", daemon=True)
        self._thread.start()

    def record_versions(self, versions: Mapping[str, str | None]) -> None:
        with self._lock:
            self.meta["harness-versions"] = dict(versions)
            self._write("oompa-run.json", "oompa-run", self.meta)

    def _heartbeat(self, state: str) -> None:
        self._write(
            "heartbeat.json",
            "heartbeat",
            {
                "swarm-id": self.swarm_id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "updated-at": utc_now_iso(),
                "interval-s": self.heartbeat_interval,
                "state": state,
            },
        )

    def _beat_loop(self) -> None:
        while not self._beat.wait(self.heartbeat_interval):
            # A full disk must not kill the swarm; the next beat may work.
            with contextlib.suppress(OSError):
                self._heartbeat("running")

    def finish(
        self,
        *,
        status: str,
        exit_status: int | None,
        main_after: str | None,
        counts: Counts,
        errors: list[str],
        gate: list[Check] | None = None,
    ) -> bool:
        """Final metadata, heartbeat, index entry and metrics line; once per run. True when
        this call recorded the end (not before the start, nor a second time)."""
        with self._lock:
            if self._finished or not self.started:
                return False
            self._finished = True
        self._beat.set()
        if self._thread is not None:
            self._thread.join()
        finished_at = utc_now_iso()
        self.meta.update(
            {
                "status": status,
                "finished-at": finished_at,
                "exit-status": exit_status,
                "main-after": main_after,
                "counts": counts.as_dict(),
                "errors": errors,
            }
        )
        if gate:
            self.meta["gate"] = {
                "passed": all(c.ok for c in gate),
                "checks": [
                    {"name": c.name, "ok": c.ok, "measured": c.measured, "threshold": c.threshold}
                    for c in gate
                ],
            }
        self._write("oompa-run.json", "oompa-run", self.meta)
        self._heartbeat("stopped")
        update_index(self.runs_dir, self._index_entry())
        append_metrics(
            self.runs_dir,
            replace=self.resumed,
            line={
                "swarm-id": self.swarm_id,
                "finished-at": finished_at,
                "status": status,
                "exit-status": exit_status,
                "duration-s": round(seconds_between(self.meta["started-at"], finished_at), 3),
                **counts.as_dict(),
            },
        )
        return True
