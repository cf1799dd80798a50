"""Starting pytest the way a terminal would, for the tests that send it signals."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child that tests will Ctrl-C: SIGINT's default disposition, as a
    terminal gives it. A script's background job starts with SIGINT ignored, the child would
    inherit that, and Python installs no KeyboardInterrupt handler for an ignored SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
