"""How a fake invocation ends early: the exit codes of our own and the exceptions behind them.

Every CLI module raises these; ``dispatch.main`` turns them into the printed message, the log
record and the exit code. Kept apart so that the parsers, the scenario and the replay code can
raise them without importing the dispatcher.
"""

from __future__ import annotations

# Exit codes of our own (never produced by the real CLIs for the argv the orchestrator sends).
NOT_EMULATED = (
    64  # a valid real mode the fakes do not emulate (interactive TUI, `exec review`, ...)
)
BAD_SCENARIO = 97  # OOMPA_FAKE_SCENARIO (or OOMPA_FAKE_CASSETTE) is missing or malformed
REPLAY_MISMATCH = 96  # replay: this call is not the recorded one (pytest_oompa.offline.cassette)
INTERNAL_ERROR = 70  # a bug in the fake itself (EX_SOFTWARE)


class Refuse(Exception):
    """The CLI refuses the invocation before any model turn: print, log, exit with ``code``."""

    def __init__(self, code: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


class BadScenario(Exception):
    pass


class BadCassette(Exception):
    pass
