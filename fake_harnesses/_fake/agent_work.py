"""The simulated agent's work: what a turn does to the worktree, the task queue and git.

A scenario step (or the built-in agent, when no step applies) says what to write, delete,
commit, which task to move or create and what to reply; ``perform`` does it through a ``Turn``,
which refuses every side effect when the CLI was started without its auto-approve flag, as a
real agent would be refused its tools. The reply text carries the signals the engine reads
(``CLAIM(...)``, ``COMPLETE_AND_READY_FOR_MERGE``, ``__DONE__``, ``VERDICT: ...``, and oompa
0.7.3's ``NEEDS_FOLLOWUP: reason``, which opens the reply as upstream asks of an agent).
"""

from __future__ import annotations

import os
import time

from .invocation import Run, find_git
from .scenario import VERDICTS

GIT_IDENTITY = ("-c", "user.name=fake-agent", "-c", "user.email=fake@agent.invalid")


def tasks_dir(run: Run) -> str:
    """Workers see the shared queue at ../tasks (worktrees sit in the project root)."""
    if run.role != "planner":
        up = os.path.join(os.path.dirname(run.workdir), "tasks")
        if os.path.isdir(up):
            return up
    return os.path.join(run.workdir, "tasks")


def pending_ids(run: Run) -> list[str]:
    d = os.path.join(tasks_dir(run), "pending")
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    ids = []
    for n in names:
        tid = n[:-5]
        valid = tid not in ("", ".", "..") and all(c.isalnum() or c in "._-" for c in tid)
        if n.endswith(".json") and valid:
            ids.append(tid)
    return ids


class Turn:
    """Side effects of one agent turn, gated by the CLI's auto-approve mode."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.notes: list[str] = []
        self.denied: list[str] = []
        self.commits: list[str] = []
        self.written: list[str] = []
        self.ran: list[str] = []

    def allowed(self, what: str) -> bool:
        if self.run.auto:
            return True
        self.denied.append(what)
        self.notes.append(
            f"fake {self.run.harness}: permission denied for {what} (no auto-approve flag)"
        )
        return False

    def path(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.run.workdir, rel))

    def write(self, rel: str, content: str, append: bool = False) -> None:
        if not self.allowed(f"write {rel}"):
            return
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "a" if append else "w", encoding="utf-8") as f:
            f.write(content)
        self.written.append(rel)

    def delete(self, rel: str) -> None:
        if not self.allowed(f"delete {rel}"):
            return
        p = self.path(rel)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                import shutil

                shutil.rmtree(p)
            else:
                os.unlink(p)
        except FileNotFoundError:
            self.notes.append(f"fake: delete {rel}: no such file")

    def shell(self, command: str) -> None:
        """Run a command with ``/bin/sh -c`` in the working directory, as an agent's shell tool
        does: it inherits the fake's environment and process group, and whatever it leaves
        running in the background (``sleep 600 &``, a ``setsid`` daemon) outlives the turn."""
        if not self.allowed(f"shell {command}"):
            return
        import subprocess

        # Output to /dev/null: a background child holding a pipe would keep the turn open.
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.run.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ran.append(command)
        if proc.returncode != 0:
            self.notes.append(f"fake: shell {command!r}: exit code {proc.returncode}")

    def git(self, *args: str):
        import subprocess

        return subprocess.run(
            ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false", *args],
            cwd=self.run.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )

    def commit(self, message: str) -> None:
        if not self.allowed("git commit"):
            return
        if find_git(self.run.workdir) is None:
            self.notes.append("fake: git commit skipped: not a git repository")
            return
        add = self.git("add", "-A")
        if add.returncode != 0:
            self.notes.append(f"fake: git add failed: {add.stderr.strip()}")
            return
        c = self.git("commit", "-q", "-m", message)
        if c.returncode != 0:
            self.notes.append(f"fake: git commit failed: {(c.stdout + c.stderr).strip()}")
        else:
            self.commits.append(message)

    def move_task(self, spec: dict) -> None:
        tid, to = str(spec.get("id", "")), str(spec.get("to", "current"))
        if not self.allowed(f"move task {tid}"):
            return
        base = tasks_dir(self.run)
        froms = [spec["from"]] if spec.get("from") else ["pending", "current", "complete"]
        for fr in froms:
            src = os.path.join(base, fr, tid + ".json")
            if os.path.exists(src) and fr != to:
                os.makedirs(os.path.join(base, to), exist_ok=True)
                os.rename(src, os.path.join(base, to, tid + ".json"))
                return
        self.notes.append(f"fake: move_task: {tid} not found")

    def create_tasks(self, tasks: list) -> list[str]:
        import json

        ids = []
        for n, t in enumerate(tasks, 1):
            task = dict(t) if isinstance(t, dict) else {"summary": str(t)}
            task.setdefault("id", f"task-{self.run.call}-{n}")
            for k, v in (("summary", task["id"]), ("description", ""), ("difficulty", "easy")):
                task.setdefault(k, v)
            task.setdefault("files", [])
            task.setdefault("acceptance", [])
            rel = os.path.join("tasks", "pending", f"{task['id']}.json")
            self.write(rel, json.dumps(task, indent=2) + "\n")
            ids.append(task["id"])
        return ids


def work_file(run: Run, suffix: str = "") -> str:
    return os.path.join("oompa-work", os.path.basename(run.workdir.rstrip("/")) + suffix + ".txt")


def builtin_reply(run: Run, turn: Turn) -> str:
    """The productive agent used when no scenario step applies."""
    import zlib

    role, who = run.role, run.worker or "-"
    if role == "probe":
        return "ok"
    if role == "reviewer":
        return "VERDICT: APPROVED"
    if role == "fix":
        turn.write(work_file(run, "-fix"), f"{who} fix call {run.call} via {run.harness}\n", True)
        turn.commit(f"{who}: fix")
        return "fixed"
    if role == "planner":
        import re

        m = re.search(r"Maximum\s+(-?\d+)\s+new\s+tasks?", run.prompt or "")
        n = max(0, min(int(m.group(1)), 2)) if m else 1
        base = os.path.join(run.workdir, "tasks")
        taken = set()
        for sub in ("pending", "current", "complete"):
            if os.path.isdir(os.path.join(base, sub)):
                taken.update(os.listdir(os.path.join(base, sub)))
        made, k = [], 1
        while len(made) < n:
            if f"task-{k}.json" not in taken:
                made.append(
                    {
                        "id": f"task-{k}",
                        "summary": f"Fake task {k}",
                        "description": f"Created by the fake {run.harness} planner.",
                        "difficulty": "easy",
                        "files": [],
                        "acceptance": [],
                    }
                )
            k += 1
        ids = turn.create_tasks(made)
        return f"Created {len(ids)} task(s): {', '.join(ids) or '-'}\n__DONE__"
    ids = pending_ids(run)
    task = ids[zlib.crc32(who.encode()) % len(ids)] if ids else None
    turn.write(
        work_file(run), f"{who} call {run.call} task {task or '-'} via {run.harness}\n", True
    )
    turn.commit(f"{who}: work")
    lines = [f"Worked on {task}." if task else "Worked."]
    if task:
        lines.append(f"CLAIM({task})")
    lines.append("COMPLETE_AND_READY_FOR_MERGE")
    return "\n".join(lines)


def template(text: str, run: Run) -> str:
    turns = len(run.session["turns"]) if run.session else 0
    for k, v in (
        ("worker", run.worker or ""),
        ("swarm", run.swarm or ""),
        ("role", run.role or ""),
        ("call", str(run.call)),
        ("harness", run.harness),
        ("session_id", run.session_id or ""),
        ("turn", str(turns)),
    ):
        text = text.replace("{" + k + "}", v)
    return text


def perform(run: Run, step: dict | None, turn: Turn) -> str:
    step = step if step is not None else {"builtin": True}
    if step.get("delay"):
        time.sleep(float(step["delay"]))
    parts = []
    followup = step.get("needs_followup", False)
    if followup is not False:
        reason = "" if followup is True else template(str(followup), run).strip()
        parts.append("NEEDS_FOLLOWUP" + (f": {reason}" if reason else ""))
    if step.get("say"):
        parts.append(template(str(step["say"]), run))
    if step.get("builtin"):
        parts.append(builtin_reply(run, turn))
    moves = step.get("move_task")
    for mv in moves if isinstance(moves, list) else [moves] if moves else []:
        turn.move_task(mv)
    if step.get("create_tasks"):
        turn.create_tasks(step["create_tasks"])
    for rel, content in (step.get("write") or {}).items():
        turn.write(rel, "" if content is None else str(content))
    for rel in step.get("delete") or []:
        turn.delete(rel)
    commands = step.get("shell")
    for command in [commands] if isinstance(commands, str) else commands or []:
        turn.shell(str(command))
    if step.get("commit"):
        msg = step["commit"] if isinstance(step["commit"], str) else None
        turn.commit(msg or f"{run.worker or '-'}: {run.role} call {run.call}")
    claim = step.get("claim")
    if claim:
        if claim == "auto":
            ids = pending_ids(run)[:1]
        else:
            ids = [claim] if isinstance(claim, str) else [str(c) for c in claim]
        if ids:
            parts.append(f"CLAIM({', '.join(ids)})")
    if step.get("merge"):
        parts.append("COMPLETE_AND_READY_FOR_MERGE")
    if step.get("done"):
        parts.append("__DONE__")
    if step.get("verdict"):
        parts.append("VERDICT: " + VERDICTS[step["verdict"]])
    return "\n".join(p for p in parts if p)
