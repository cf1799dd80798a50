"""Replay, the fakes' side: one recorded call played back per fake process.

``replay`` is what a fake harness runs for a call when ``OOMPA_FAKE_CASSETTE`` is set: find the
recorded call by (worker, role, call index), check strictly that this call is the same once
normalized (``matching``), apply the recorded file changes (``worktree``) and hand back the
recorded output, its session ids, swarm id and paths mapped to this run's. The fakes of one
replay share a ``ReplayState`` in their state folder (call counters, session-id bindings, the
keys replayed), under an ``fcntl`` lock: this runs in the fake process (``python -IS``, loaded
by path), where nothing but the standard library is importable.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .matching import (
    RULES,
    ReplayMismatch,
    Side,
    call_key,
    call_slot,
    diff_views,
    infer_role,
    path_variants,
    prompt_tag,
    view,
)
from .redact import Redactor
from .worktree import GitFailed, apply_changes, repo_root


class ReplayState:
    """Shared by the fake processes of one replay (under their state folder, flock-protected):
    the call counter per (slot, role), the session ids bound so far (live -> recorded), and
    the keys replayed."""

    def __init__(self, state_dir: Path | str) -> None:
        self.folder = Path(state_dir) / "replay"
        self.file = self.folder / "state.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = json.loads(self.file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            data.setdefault("counters", {})
            data.setdefault("ids", {})
            data.setdefault("used", [])
            data.setdefault("begun", [])
            data.setdefault("handed", {})
            data.setdefault("expected", None)
            yield data
            tmp = self.file.with_name(f".state.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.file)
        finally:
            os.close(fd)

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"counters": {}, "ids": {}, "used": [], "expected": None}
        return data


@dataclass
class Replayed:
    """The recorded call to play back, its output already mapped to this run."""

    key: str
    call: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def exit_code(self) -> int | None:
        code = self.call.get("exit-code")
        return int(code) if code is not None else None

    @property
    def failure(self) -> str:
        return str(self.call.get("failure") or "")


def replay(
    cassette: Mapping[str, Any],
    *,
    harness: str,
    argv: Sequence[str],
    cwd: str,
    prompt: str,
    model: str | None,
    session_id: str | None,
    state_dir: Path | str,
) -> Replayed:
    """Find this call's recording, check it strictly, apply its file changes and return its
    output. Raises ReplayMismatch (no such call, a different call, changes that do not apply)."""
    swarm, worker = prompt_tag(prompt)
    slot = call_slot(worker, harness, model)
    role = infer_role(prompt, worker)
    state = ReplayState(state_dir)
    with state.locked() as data:
        counter = f"{slot}/{role}"
        index = data["counters"][counter] = int(data["counters"].get(counter, 0)) + 1
        key = call_key(slot, role, index)
        data["used"].append(key)
        bound: dict[str, str] = dict(data["ids"])  # live id -> recorded id
    calls = {c["key"]: c for c in cassette["calls"]}
    where = cassette.get("_path", "the cassette")
    recorded = calls.get(key)
    if recorded is None:
        mine = sorted((k for k in calls if k.startswith(f"{slot}/{role}/")), key=_key_order)
        has = ", ".join(mine) if mine else "none"
        raise ReplayMismatch(
            key,
            f"oompa replay: {where} has no call {key} (recorded for {slot}/{role}: {has})",
        )
    rules = list(cassette.get("normalize") or RULES)
    rec_sid = recorded.get("session-id")
    ids = dict(bound)
    if session_id and rec_sid and session_id not in ids and rec_sid not in ids.values():
        ids[session_id] = rec_sid  # this call's new session is the recording's
    live_root = repo_root(cwd) or cwd
    recorded_side = Side(cassette.get("repo"), cassette.get("swarm-id"))
    live_side = Side(live_root, swarm, ids)
    redactor = Redactor(os.environ)
    live_call = {
        "worker": worker,
        "cwd": cwd,
        "argv": [redactor.text(a) for a in argv],
    }
    want, got = view(recorded, recorded_side, rules), view(live_call, live_side, rules)
    if want != got:
        raise ReplayMismatch(
            key,
            f"oompa replay: call {key} does not match {where} (normalized: {', '.join(rules)})",
            diff_views(want, got, key),
        )
    if session_id and rec_sid:
        ids[session_id] = rec_sid
    with state.locked() as data:
        data["ids"].update(ids)
    changes = recorded.get("changes")
    if changes:
        try:
            apply_changes(Path(cwd), changes)
        except (GitFailed, OSError) as exc:
            raise ReplayMismatch(
                key, f"oompa replay: the recorded file changes of {key} do not apply here: {exc}"
            ) from None
    to_live = {rec: live for live, rec in ids.items() if rec != live}
    if recorded_side.swarm and swarm and recorded_side.swarm != swarm:
        to_live[recorded_side.swarm] = swarm
    for path in path_variants(recorded_side.repo):
        if path != live_root:
            to_live[path] = live_root

    def mapped(text: str) -> str:
        for old in sorted(to_live, key=len, reverse=True):
            text = text.replace(old, to_live[old])
        return text

    return Replayed(
        key,
        dict(recorded),
        mapped(recorded.get("stdout") or ""),
        mapped(recorded.get("stderr") or ""),
    )


def _key_order(key: str) -> tuple[str, int]:
    head, _, n = key.rpartition("/")
    return head, int(n) if n.isdigit() else 0
