"""Replay of a cassette (``OOMPA_FAKE_CASSETTE``): the recorded call instead of a scenario step.

The matching, the normalization and the doing-again of the recorded file changes are
``pytest_oompa/offline/cassette/`` (its ``playback`` module, and the ``format`` module for reading
the file), which the engine side shares. The fakes run as ``python -IS`` (no site-packages, so no
``pytest_oompa`` package to import): those modules are loaded here by path, under a private
package name, and they import nothing but the standard library and each other.
"""

from __future__ import annotations

import os
import sys
import time

from . import log
from .errors import REPLAY_MISMATCH, BadCassette
from .invocation import Run, state_dir
from .output import emit
from .scenario import infer_role

_PACKAGE = "_oompa_cassette"  # the private name the cassette package is loaded under


def cassette_module(name: str):
    """``pytest_oompa/offline/cassette/{name}.py``, loaded by path.

    A source checkout has the package at ``../pytest_oompa/offline/cassette/`` (from
    ``fake_harnesses/``), an installed wheel at ``../offline/cassette/`` (``fake_harnesses/``
    is installed as ``pytest_oompa/fake_harnesses/``). The package's ``__init__`` is not run:
    it re-exports the recording side too, which a fake has no use for; only the modules asked
    for, and the ones they import, are loaded."""
    if _PACKAGE not in sys.modules:
        import importlib.util

        parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
        for folder in (
            os.path.join(parent, "pytest_oompa", "offline", "cassette"),
            os.path.join(parent, "offline", "cassette"),
        ):
            init = os.path.join(folder, "__init__.py")
            if os.path.isfile(init):
                spec = importlib.util.spec_from_file_location(
                    _PACKAGE, init, submodule_search_locations=[folder]
                )
                assert spec is not None
                sys.modules[_PACKAGE] = importlib.util.module_from_spec(spec)
                break
        else:
            raise BadCassette(f"pytest_oompa/offline/cassette/ not found next to {parent}")
    import importlib

    return importlib.import_module(f"{_PACKAGE}.{name}")


def load_cassette() -> dict:
    fmt = cassette_module("format")
    try:
        return fmt.load(os.environ["OOMPA_FAKE_CASSETTE"])
    except fmt.CassetteError as e:
        raise BadCassette(str(e)) from None


def version_line(harness: str, version: str) -> str:
    """``--version``: the recorded CLI's version when replaying a cassette that has it, else
    ``version`` (the fake's own)."""
    if os.environ.get("OOMPA_FAKE_CASSETTE"):
        recorded = (load_cassette().get("harness-versions") or {}).get(harness)
        if recorded:
            return str(recorded)
    return version


def replay_turn(run: Run) -> int:
    """Play back the recorded call instead of a scenario step: same output (session ids, swarm
    id and paths mapped to this run's), same file changes and commits, same exit; a call that
    is not the recorded one exits REPLAY_MISMATCH with a unified diff on stderr."""
    infer_role(run)
    data = load_cassette()
    cas = cassette_module("playback")
    try:
        rep = cas.replay(
            data,
            harness=run.harness,
            argv=[sys.argv[0], *run.argv],
            cwd=run.cwd,
            prompt=run.prompt or "",
            model=run.model,
            session_id=run.session_id,
            state_dir=state_dir(),
        )
    except cas.ReplayMismatch as m:
        run.call = int(m.key.rsplit("/", 1)[-1])
        run.extra.update(step="replay", replay=m.key, mismatch=m.message)
        emit("", m.report())
        return REPLAY_MISMATCH
    run.call = int(rep.key.rsplit("/", 1)[-1])
    reply = rep.call.get("reply")
    code = rep.exit_code
    if run.session is not None:
        turn = {"ts": time.time(), "prompt": run.prompt, "reply": reply, "role": run.role}
        turn.update(call=run.call, exit_code=code)
        run.session["turns"].append(turn)
        run.save_session()
    changes = rep.call.get("changes") or {}
    run.extra.update(
        step="replay",
        replay=rep.key,
        reply=reply,
        commits=[c.get("message", "").strip() for c in changes.get("commits") or []],
    )
    emit(rep.stdout, rep.stderr)
    if code is not None and code >= 0:
        return code
    if code is None:  # the recorded CLI could not even start: nothing to play back
        emit("", f"oompa replay: {rep.key} was recorded as: {rep.failure}\n")
        return 127
    if rep.failure.startswith(("timeout", "stalled", "stopped")):  # killed from outside
        log.write(run, None, hang=True)
        while True:
            time.sleep(3600)
    import signal

    log.write(run, code, crash=signal.Signals(-code).name)
    if -code not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    time.sleep(5)
    os._exit(128 - code)
