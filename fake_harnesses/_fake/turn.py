"""One agent turn: the scenario's step (or the cassette's recorded call) played for a ``Run``.

Every CLI module ends its handling in ``agent_turn``, once its argv was accepted and its
session found or started, passing its own ``render`` for the output format. The turn infers
the role, counts the call, picks the step, performs it, keeps the transcript, and then ends
the way the step says: an exit code, a hang, a crash by a signal, output cut short or padded.
"""

from __future__ import annotations

import os
import time

from . import log
from .agent_work import Turn, perform, template
from .invocation import Run, atomic_write
from .output import emit, emit_filler
from .replay import replay_turn
from .scenario import infer_role, load_scenario, next_call, select_step

TYPE_CHECKING = False  # typing costs ~10 ms a start; the annotations need it only when checked
if TYPE_CHECKING:
    from collections.abc import Callable


def agent_turn(run: Run, render: Callable[[Run, str, int], str]) -> int:
    """Play this call's step; ``render`` is the CLI's output format (reply, exit -> stdout)."""
    if os.environ.get("OOMPA_FAKE_CASSETTE"):
        return replay_turn(run)
    infer_role(run)
    scn = load_scenario()
    run.call = next_call(run)
    step, source = select_step(run, scn)
    run.extra["step"] = source
    turn_rec = {"ts": time.time(), "prompt": run.prompt, "reply": None, "role": run.role}
    turn_rec["call"] = run.call
    assert run.session is not None
    run.session["turns"].append(turn_rec)
    run.save_session()  # the transcript exists from the start, as the real CLIs' do
    turn = Turn(run)
    reply = perform(run, step, turn)
    step = step or {}
    code = int(step.get("exit", 0))
    turn_rec["reply"] = reply
    turn_rec["exit_code"] = code
    run.save_session()
    run.extra.update(
        reply=reply,
        commits=turn.commits,
        written=turn.written,
        ran=turn.ran or None,
        denied=turn.denied or None,
    )
    err = "".join(n + "\n" for n in turn.notes)
    if step.get("stderr"):
        err += template(str(step["stderr"]), run).rstrip("\n") + "\n"
    shown = reply
    if step.get("signals_on_stderr"):
        err += reply + "\n"
        shown = ""
    if step.get("hang"):
        emit("", err)
        log.write(run, None, hang=True)
        while True:
            time.sleep(3600)
    if step.get("crash"):
        import signal

        emit("", err)
        name = str(step["crash"]).upper()
        sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name)
        log.write(run, -int(sig), crash=name)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(5)
        os._exit(128 + int(sig))
    out = render(run, shown, code)
    mode = step.get("output")
    if mode == "malformed":  # cut mid-way, never at a line or object boundary
        out = out[: max(1, len(out) // 2)].rstrip("\n")
        out = out[:-1] if out.endswith(("}", "]")) and len(out) > 1 else out
    if run.extra.get("output_last_message"):
        atomic_write(os.path.join(run.cwd, run.extra["output_last_message"]), reply)
    if isinstance(mode, str) and mode.startswith("huge:"):
        emit_filler(int(mode[5:]))
    emit(out, err)
    return code
