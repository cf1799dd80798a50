"""The one lock helper: held by one thread of one process at a time.

``filelock`` gives the cross-process part (an flock on a file the caller chooses); the
threading lock in front of it keeps the threads of this process from queueing on one file
descriptor (``FileLock(thread_local=False)`` is shared by the threads, and would otherwise
count a second thread's acquire as a re-entry). The merge lock, the worktree lock, the
shared task queue, the live summary and the cassette recorder all use this one class.

Where the lock file lives is the caller's choice, and never a user's folder: inside ``.git``
for the repository's locks, inside the run folder (or this process's scratch folder) for the
rest.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from filelock import FileLock


class SharedLock:
    """A lock across the threads of this process and across processes, on one file.

    Not re-entrant: a thread that holds it and asks again waits forever, as with
    ``threading.Lock``.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(str(path), thread_local=False)

    def __enter__(self) -> SharedLock:
        self._thread_lock.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file_lock.acquire()
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._file_lock.release()
        finally:
            self._thread_lock.release()
