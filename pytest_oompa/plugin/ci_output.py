"""The swarm's CI summary, written when the run ends: appended to ``$GITHUB_STEP_SUMMARY``,
written to ``--oompa-summary-md=PATH``, and, with ``GITHUB_ACTIONS=true``, one ``::error``
annotation per failed iteration or cycle and for a failed gate, in pytest's output.

Registered by ``hooks.py`` only when a swarm runs and one of those is asked for; the text
itself is ``ci_summary.py``'s.

It runs in ``pytest_terminal_summary``, last: the process that prints the terminal summary is
the one holding the whole run (the xdist controller, else the only process), and by then the
session's ``pytest_sessionfinish`` has ended the run, so the result is final and the summary
is written once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.plugin.ci_summary import github_annotations, markdown
from pytest_oompa.plugin.stash import SESSION_KEY

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
ACTIONS_ENV = "GITHUB_ACTIONS"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None or state.distributed == "node":
        return
    result = state.result
    if result is None and state.interrupted and state.swarm is not None:
        result = state.swarm.result  # stopped before the swarm's end was reported: what ran
    if result is None:
        return
    rootdir = config.rootpath
    outcomes = state.swarm_config.outcomes
    text = markdown(
        result,
        outcomes,
        rootdir,
        worker_order=[w.id for w in state.swarm_config.workers],
        interrupted=state.interrupted,
    )
    option = config.getoption("oompa_summary_md")
    if option:
        path = config.invocation_params.dir / option
        _write(terminalreporter, path, text, append=False)
    step_summary = os.environ.get(STEP_SUMMARY_ENV)
    if step_summary:
        _write(terminalreporter, Path(step_summary), text, append=True)
    if os.environ.get(ACTIONS_ENV) == "true":
        for line in github_annotations(result, outcomes, rootdir):
            terminalreporter.write_line(line)


def _write(terminal: pytest.TerminalReporter, path: Path, text: str, append: bool) -> None:
    """Write (or append) the summary; a failure is said, never raised (the run is over)."""
    try:
        if append:
            # Other steps' summaries may be there: ours starts after a blank line.
            with path.open("ab+") as file:
                end = file.seek(0, os.SEEK_END)
                if end:
                    file.seek(end - 1)
                    # (append mode: a write goes to the end wherever the file was read)
                    file.write(b"\n" if file.read(1) == b"\n" else b"\n\n")
                file.write(text.encode("utf-8"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
    except OSError as exc:
        terminal.write_line(f"oompa: could not write the CI summary to {path}: {exc}", yellow=True)
