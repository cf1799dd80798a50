"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The new content goes to a uniquely named temporary file in the *same* folder (``.{name}.XXXX.tmp``,
hidden, so globbing ``*.json`` never picks it up), is flushed and fsynced, then moved over the
target with ``os.replace``; the folder itself is then fsynced (best effort) so the rename survives
a crash. On any error (including ``KeyboardInterrupt``) the temporary file is removed and the
previous file is left untouched. Only a ``kill -9`` between ``mkstemp`` and ``os.replace`` can
leave a ``.*.tmp`` file behind; it is never read as an artifact.

This module has no pytest and no project imports.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text", "dumps_json"]

TEMP_SUFFIX = ".tmp"


def is_leftover(name: str) -> bool:
    """A temporary file of an interrupted atomic write (``.{name}.XXXX.tmp``): what a
    ``kill -9`` mid-write leaves; never an artifact, and safe to ignore or remove."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race with other threads)."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii") as status,
    ):
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _fsync_dir(directory: Path) -> None:
    """Best effort: make a rename in ``directory`` durable (not possible on every OS/filesystem)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, newlines written as given) atomically and durably.

    The folder must exist. The new file keeps the mode of the file it replaces, or gets the usual
    ``0o666 & ~umask`` (``mkstemp`` alone would make it owner-only).
    """
    path = Path(path)
    directory = path.parent
    data = text.encode("utf-8")  # encoding errors surface before anything touches the disk
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        try:
            if hasattr(os, "fchmod"):  # not on Windows
                with contextlib.suppress(OSError):  # e.g. filesystems without permissions
                    os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


def dumps_json(data: Any) -> str:
    """The project's JSON text: ``indent=2``, UTF-8 as is, strict (no NaN/Infinity), final newline.

    Raises ``TypeError``/``ValueError`` for values JSON cannot represent.
    """
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: Path | str, data: Any) -> None:
    """Serialize ``data`` (see :func:`dumps_json`) and write it with :func:`atomic_write_text`.

    Serialization happens first, so an unserializable value raises before any file is created
    and the previous file stays as it was.
    """
    atomic_write_text(path, dumps_json(data))
