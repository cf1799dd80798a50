"""The scenario (``OOMPA_FAKE_SCENARIO``): validating it, and picking the step of a call.

A call is known by its role (inferred from the prompt, as the engine writes prompts), its
worker (the prompt's ``[oompa:swarm:worker]`` tag) and its call index per (worker, role); its
step comes from ``workers[worker][role]``, then ``harnesses[harness][role]``, then
``default[role]``, else the built-in agent (``agent_work.builtin_reply``). The format is the
README's "Scenario". ``pytest_oompa.offline.fake_scenario`` loads this module privately for
``validate_scenario``, so that a scenario built in Python is checked by the fakes' own rules.
"""

from __future__ import annotations

import os

from .clis import CLIS
from .errors import BadScenario
from .invocation import Run, safe_name, state_dir

ROLES = ("worker", "reviewer", "fix", "planner", "probe", "sync")
# The sentence that opens the engine's sync-before-merge prompt, right after the tag
# (``pytest_oompa.engine.prompts.SYNC_MARKER``; the fakes cannot import it).
SYNC_MARKER = "Your branch cannot merge into main."
STEP_FIELDS = frozenset(
    {
        "say",
        "claim",
        "write",
        "delete",
        "shell",
        "commit",
        "merge",
        "done",
        "needs_followup",
        "verdict",
        "exit",
        "stderr",
        "signals_on_stderr",
        "delay",
        "hang",
        "crash",
        "output",
        "move_task",
        "create_tasks",
        "builtin",
        "resolve",
        "comment",
    }
)
VERDICTS = {"approved": "APPROVED", "needs-changes": "NEEDS_CHANGES", "rejected": "REJECTED"}


def infer_role(run: Run) -> None:
    import re

    prompt = run.prompt or ""
    # A tag at the start of a line; opencode quotes a one-word-with-spaces message: `"[oompa:`.
    m = re.search(r'^"?\[oompa:(.*):([^:\]\s]+)\] ', prompt, re.M)
    if m:
        run.swarm, run.worker = m.group(1), m.group(2)
    if "[_HIDE_TEST_]" in prompt:
        run.role = "probe"
    elif run.worker == "planner":
        run.role = "planner"
    elif prompt.startswith(SYNC_MARKER, m.end() if m else int(prompt.startswith('"'))):
        # Only right after the tag, where the sync prompt has it: a review quotes a diff and a
        # fix quotes feedback, either of which may hold the sentence. Checked before the fix
        # and verdict tests: the sync prompt quotes commit subjects, which may hold either.
        run.role = "sync"
    elif "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED" in prompt:
        run.role = "reviewer"  # the required-verdict block that ends every review prompt
    elif "Fix these issues." in prompt:
        run.role = "fix"  # checked before the loose verdict test: fix prompts quote feedback
    elif "VERDICT: NEEDS_CHANGES" in prompt:
        run.role = "reviewer"
    else:
        run.role = "worker"


def next_call(run: Run) -> int:
    """Per (worker, role) call counter; flock makes concurrent updates safe."""
    import fcntl

    d = os.path.join(state_dir(), "calls")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{safe_name(run.worker or '_')}__{run.role}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 64).strip()
        n = (int(raw) if raw.isdigit() else 0) + 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(n).encode())
    finally:
        os.close(fd)
    return n


def load_scenario() -> dict | None:
    import json

    src = os.environ.get("OOMPA_FAKE_SCENARIO")
    if not src:
        return None
    if src.lstrip().startswith("{"):
        text, where = src, "OOMPA_FAKE_SCENARIO (inline JSON)"
    else:
        where = src
        try:
            with open(src, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise BadScenario(f"cannot read {src}: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadScenario(f"{where} is not valid JSON: {e}") from None
    validate_scenario(data, where)
    return data


def validate_scenario(data: object, where: str) -> None:
    def bad(path: str, msg: str) -> BadScenario:
        return BadScenario(f"{where}: {path}: {msg}")

    def check_roles(entry: object, path: str) -> None:
        if not isinstance(entry, dict):
            raise bad(path, "expected an object of role -> step(s)")
        for role, steps in entry.items():
            if role not in ROLES:
                raise bad(f"{path}.{role}", f"unknown role (expected one of {', '.join(ROLES)})")
            items = steps if isinstance(steps, list) else [steps]
            for i, step in enumerate(items):
                where = f"{path}.{role}" + (f"[{i}]" if isinstance(steps, list) else "")
                check_step(step, where, role)

    def check_step(step: object, path: str, role: str) -> None:
        if step is None or step == "default":
            return
        if not isinstance(step, dict):
            raise bad(path, 'a step is an object, null or "default"')
        unknown = set(step) - STEP_FIELDS
        if unknown:
            raise bad(path, f"unknown step field(s) {sorted(unknown)}")
        if "verdict" in step and step["verdict"] not in VERDICTS:
            raise bad(path + ".verdict", f"expected one of {sorted(VERDICTS)}")
        out = step.get("output")
        if out is not None and out != "malformed" and not str(out).startswith("huge:"):
            raise bad(path + ".output", 'expected "malformed" or "huge:<bytes>"')
        types = {
            "say": str,
            "stderr": str,
            "write": dict,
            "delete": list,
            "shell": (str, list),
            "create_tasks": list,
            "move_task": (dict, list),
            "claim": (str, list),
            "commit": (bool, str),
            "needs_followup": (bool, str),
            "delay": (int, float),
            "exit": int,
            "resolve": bool,
        }
        for field, kind in types.items():
            if field in step and not isinstance(step[field], kind):
                raise bad(f"{path}.{field}", f"wrong type {type(step[field]).__name__}")
        if "resolve" in step and role != "sync":
            raise bad(path + ".resolve", "only a sync step resolves a merge conflict")
        if step.get("crash"):
            import signal

            name = str(step["crash"]).upper()
            if not isinstance(
                getattr(signal, name if name.startswith("SIG") else "SIG" + name, None), int
            ):
                raise bad(path + ".crash", "expected a signal name such as SIGKILL")

    if not isinstance(data, dict):
        raise bad("$", "expected an object")
    for key in data:
        if key not in ("default", "workers", "harnesses", "comment") and key[:1] not in "_$":
            raise bad(key, "unknown top-level key (expected default, workers, harnesses)")
    if "default" in data:
        check_roles(data["default"], "default")
    for group in ("workers", "harnesses"):
        g = data.get(group, {})
        if not isinstance(g, dict):
            raise bad(group, "expected an object")
        for name, entry in g.items():
            if group == "harnesses" and name not in CLIS:
                raise bad(f"{group}.{name}", "unknown harness")
            check_roles(entry, f"{group}.{name}")


_FALLBACK = object()


def pick(entry: object, call: int) -> object:
    if entry is None or entry == "default":
        return _FALLBACK
    if isinstance(entry, list):
        if not entry:
            return _FALLBACK
        if call <= len(entry):
            item = entry[call - 1]
        elif entry[-1] == "default":
            return _FALLBACK
        else:
            item = entry[-1]
        return _FALLBACK if item is None or item == "default" else item
    return entry


def select_step(run: Run, scn: dict | None) -> tuple[dict | None, str]:
    """workers[worker][role] -> harnesses[harness][role] -> default[role] -> built-in."""
    if scn:
        chain = []
        if run.worker:
            chain.append((f"workers.{run.worker}", scn.get("workers", {}).get(run.worker)))
        chain.append((f"harnesses.{run.harness}", scn.get("harnesses", {}).get(run.harness)))
        chain.append(("default", scn.get("default")))
        for where, entry in chain:
            if entry and run.role in entry:
                step = pick(entry[run.role], run.call or 1)
                if step is not _FALLBACK:
                    return step, f"{where}.{run.role}"  # type: ignore[return-value]
    return None, "builtin"
