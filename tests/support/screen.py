"""A command run under a pseudo-terminal, its screen read the way a user sees it (pyte emulates
the terminal: what was erased is gone, what moved is where it moved)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyte


@dataclass
class Recording:
    """The screen after every chunk of output: (seconds since start, non-empty rows)."""

    frames: list[tuple[float, list[str]]] = field(default_factory=list)
    status: int | None = None

    @property
    def final(self) -> list[str]:
        return self.frames[-1][1] if self.frames else []

    def first(self, predicate: object) -> float | None:
        """When a row first matched ``predicate`` (a callable on a row), else None."""
        for t, rows in self.frames:
            if any(predicate(row) for row in rows):  # type: ignore[operator]
                return t
        return None


def run_in_pty(
    argv: Sequence[str], cwd: Path, *, cols: int = 120, rows: int = 40, timeout: float = 120
) -> Recording:
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of this size, then the command
        try:
            os.chdir(cwd)
            os.environ.update(COLUMNS=str(cols), LINES=str(rows), TERM="xterm")
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    start = time.monotonic()
    recording = Recording()
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
            shown = [row.rstrip() for row in screen.display if row.strip()]
            recording.frames.append((time.monotonic() - start, shown))
    finally:
        _, status = os.waitpid(pid, 0)
        recording.status = os.waitstatus_to_exitcode(status)
        os.close(fd)
    return recording
