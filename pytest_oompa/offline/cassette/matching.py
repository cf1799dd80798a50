"""Normalization and matching: is a live call the recorded one?

Both sides of a replay key a call the same way, by (slot, role, call index): the slot is the
worker of the prompt's ``[oompa:swarm:worker]`` tag (or ``@harness:model`` for an untagged
probe) and the role is inferred from the prompt as the fakes infer it. What is compared is the
call's ``view`` (worker, working directory, argv, which holds the prompt) once what varies
between any two runs is normalized (``RULES``: swarm id, paths, session ids, timestamps, the
queue counts of a prompt's task status); a difference is shown as a unified diff.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Exit code of a fake harness whose call does not match the cassette (the fakes' own codes:
#: 64 not emulated, 70 internal error, 97 bad scenario or cassette).
REPLAY_MISMATCH = 96
#: What is normalized before a live call is compared with its recording (docs/cassettes.md).
RULES = ("swarm-id", "paths", "session-ids", "timestamps", "task-status")


class ReplayMismatch(Exception):
    """A live call that is not the recorded one (or has none); ``diff`` says what differed."""

    def __init__(self, key: str, message: str, diff: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.diff = diff

    def report(self) -> str:
        """What a fake prints on stderr: the diff first (report tails keep the end)."""
        return f"{self.message}\n{self.diff}" if self.diff else self.message + "\n"


UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: A session id as the CLIs print and take them: a UUID (claude, gemini, codex), ses_… (opencode).
SESSION_ID = re.compile(rf"{UUID}|ses_[0-9A-Za-z]{{26}}")
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?"
)
TASK_STATUS = re.compile(
    r"(## Task status\n)Pending: \d+, In Progress: \d+, Complete: \d+\nPending tasks: [^\n]*"
)
TASK_STATUS_MASK = r"\1Pending: <n>, In Progress: <n>, Complete: <n>\nPending tasks: <ids>"
#: engine.prompts.SYNC_MARKER, copied: the fakes load this module with the standard library
#: only (tests/offline/test_cassette.py checks the two agree).
SYNC_MARKER = "Your branch cannot merge into main."
#: The tag every engine prompt starts with (prompts.tag); opencode's message may quote it.
TAG = re.compile(r'^"?\[oompa:(.*):([^:\]\s]+)\] ', re.M)


def prompt_tag(prompt: str) -> tuple[str | None, str | None]:
    """(swarm id, worker id) from a prompt's ``[oompa:{swarm}:{worker}]`` tag."""
    m = TAG.search(prompt or "")
    return (m.group(1), m.group(2)) if m else (None, None)


def call_slot(worker: str | None, harness: str, model: str | None) -> str:
    """Whose calls are counted together: a worker (``w0``, ``planner``), or for an untagged
    call (the preflight probes) its ``@harness:model``."""
    return worker or f"@{harness}:{model or ''}"


def infer_role(prompt: str, worker: str | None) -> str:
    """The role as the fake harnesses infer it from a prompt (fake_harnesses/README.md; keep
    the two in step). Calls are keyed by it on both sides, so a prompt that fools the
    inference (a worker prompt saying "Fix these issues.") still finds its recording."""
    if "[_HIDE_TEST_]" in prompt:
        return "probe"
    if worker == "planner":
        return "planner"
    # The sync prompt opens with its sentence right after the tag; it may quote commit subjects
    # holding the other roles' markers, so it is told apart first.
    tag = TAG.search(prompt)
    if prompt.startswith(SYNC_MARKER, tag.end() if tag else 0):
        return "sync"
    if "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED" in prompt:
        return "reviewer"
    if "Fix these issues." in prompt:
        return "fix"
    if "VERDICT: NEEDS_CHANGES" in prompt:
        return "reviewer"
    return "worker"


def call_key(slot: str, role: str, index: int) -> str:
    return f"{slot}/{role}/{index}"


def path_variants(path: str | None) -> list[str]:
    if not path:
        return []
    out = {path.rstrip("/") or "/", os.path.realpath(path)}
    return sorted((p for p in out if len(p) > 1), key=len, reverse=True)


@dataclass
class Side:
    """One side of a comparison: its project root, its swarm id, and (live side) the session
    ids it knows as the recording's ids."""

    repo: str | None
    swarm: str | None
    ids: Mapping[str, str] = field(default_factory=dict)

    def text(self, text: str, rules: Sequence[str]) -> str:
        if "paths" in rules:
            for path in path_variants(self.repo):
                text = text.replace(path, "<repo>")
        if "swarm-id" in rules and self.swarm:
            text = text.replace(self.swarm, "<swarm>")
        if "timestamps" in rules:
            text = TIMESTAMP.sub("<timestamp>", text)
        if "task-status" in rules:
            text = TASK_STATUS.sub(TASK_STATUS_MASK, text)
        return text


def view(call: Mapping[str, Any], side: Side, rules: Sequence[str]) -> dict[str, Any]:
    """What is compared of a call, normalized: worker, working directory, argv (which holds
    the prompt). The role and the call index are the key the call was found by."""
    argv = [str(a) for a in call.get("argv") or []]
    if "paths" in rules and argv:
        argv[0] = os.path.basename(argv[0])
    if "session-ids" in rules:
        argv = [side.ids.get(a, a) if SESSION_ID.fullmatch(a) else a for a in argv]
    return {
        "worker": call.get("worker"),
        "cwd": side.text(str(call.get("cwd") or ""), rules),
        "argv": [side.text(a, rules) for a in argv],
    }


def render(v: Mapping[str, Any]) -> list[str]:
    """A view as lines for a unified diff; a multi-line argv element spans several lines."""
    lines = [f"worker: {v['worker']}", f"cwd: {v['cwd']}"]
    for i, arg in enumerate(v["argv"]):
        first, *rest = str(arg).split("\n")
        lines.append(f"argv[{i}]: {first}")
        lines += [f"    {line}" for line in rest]
    return lines


def diff_views(recorded: Mapping[str, Any], live: Mapping[str, Any], key: str) -> str:
    return "".join(
        line if line.endswith("\n") else line + "\n"
        for line in difflib.unified_diff(
            render(recorded),
            render(live),
            fromfile=f"cassette {key}",
            tofile="this call",
            lineterm="",
        )
    )
