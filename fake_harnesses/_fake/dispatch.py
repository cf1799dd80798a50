"""``main``: one fake invocation from argv to exit code.

The wrappers call ``_fake.main(name)``; this sets up the signal handlers that log a kill,
hands the invocation to the CLI's module (``clis/{name}.py``, its ``handle``), and turns how
it ended into the exit code: the CLI's own refusals with their codes, a bad scenario or
cassette (``BAD_SCENARIO``), a bug in the fake (``INTERNAL_ERROR``, never the CLI's own exit
1). Every invocation ends with exactly one invocation-log record.
"""

from __future__ import annotations

import os
import sys

from . import log
from .clis import CLIS
from .errors import BAD_SCENARIO, INTERNAL_ERROR, BadCassette, BadScenario, Refuse
from .invocation import Run
from .output import emit


def cli_module(name: str):  # -> the CLI's module
    """The module of CLI ``name`` (``clis.CLIS``), imported now: only the CLI that runs loads."""
    import importlib

    return importlib.import_module(f"{__package__}.clis.{CLIS[name]}")


def main(harness: str) -> None:
    import signal

    run = Run(harness, sys.argv[1:])

    def on_signal(signum: int, _frame: object) -> None:
        log.write(run, -signum, killed=signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        code = cli_module(harness).handle(run)
    except Refuse as r:
        emit(r.stdout, r.stderr)
        run.extra["refused"] = ((r.stderr or r.stdout).strip().splitlines() or [""])[0]
        code = r.code
    except BadScenario as e:
        emit("", f"oompa fake {harness}: bad scenario: {e}\n")
        run.extra["refused"] = f"bad scenario: {e}"
        code = BAD_SCENARIO
    except BadCassette as e:
        emit("", f"oompa fake {harness}: bad cassette: {e}\n")
        run.extra["refused"] = f"bad cassette: {e}"
        code = BAD_SCENARIO
    except Exception as e:  # a bug in the fake must not pass for the CLI's own exit 1
        import traceback

        emit("", f"oompa fake {harness}: internal error\n" + traceback.format_exc())
        run.extra["internal_error"] = repr(e)
        code = INTERNAL_ERROR
    log.write(run, code)
    sys.exit(code)
