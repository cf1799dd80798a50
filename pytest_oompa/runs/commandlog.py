"""Streaming per-call logs: ``commands/{name}.ndjson``, one JSON event per line, flushed as
the harness prints so a dashboard can tail it.

Events: ``start`` (argv, cwd, role, harness), ``output`` (stream, text), ``truncated`` (how many
bytes were dropped) and ``exit`` (exit code, duration, failure). A runaway output is capped: the
first half of the budget is written as it comes, the last half is held back in a ring and
written at the end, so the log keeps both the beginning and the tail.
"""

from __future__ import annotations

import codecs
import json
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any

from pytest_oompa.runs.artifacts import utc_now_iso, validate_artifact

LOG_CAP_BYTES = 10 << 20


class CommandLog:
    def __init__(self, path: Path, cap_bytes: int = LOG_CAP_BYTES) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._head_budget = cap_bytes // 2
        self._tail_budget = cap_bytes - self._head_budget
        self._written = 0
        self._tail: deque[str] = deque()
        self._tail_size = 0
        self._dropped = 0
        self._decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }

    def _line(self, event: dict[str, Any], check: bool = True) -> str:
        event = {"t": utc_now_iso(), **event}
        if check:  # start/truncated/exit; output events are one fixed shape on the hot path
            validate_artifact("command-event", event, where=str(self.path))
        return json.dumps(event, ensure_ascii=False) + "\n"

    def _write(self, line: str) -> None:
        self._file.write(line)
        self._file.flush()

    def start(self, **fields: Any) -> None:
        with self._lock:
            self._write(self._line({"event": "start", **fields}))

    def output(self, stream: str, data: bytes) -> None:
        text = self._decoders[stream].decode(data)
        if not text:
            return
        line = self._line({"event": "output", "stream": stream, "data": text}, check=False)
        size = len(line.encode("utf-8"))
        with self._lock:
            if self._written + size <= self._head_budget and not self._tail:
                self._written += size
                self._write(line)
                return
            self._tail.append(line)
            self._tail_size += size
            while self._tail_size > self._tail_budget and len(self._tail) > 1:
                dropped = self._tail.popleft()
                self._tail_size -= len(dropped.encode("utf-8"))
                self._dropped += len(json.loads(dropped)["data"].encode("utf-8"))

    def close(self, **fields: Any) -> None:
        """Write the held-back tail and the ``exit`` event, then close the file."""
        with self._lock:
            if self._dropped:
                self._write(self._line({"event": "truncated", "omitted-bytes": self._dropped}))
            for line in self._tail:
                self._write(line)
            self._tail.clear()
            self._write(self._line({"event": "exit", **fields}))
            self._file.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
