"""The simulated agent's work: what a turn does to the worktree, the task queue and git.

A scenario step (or the built-in agent, when no step applies) says what to write, delete,
commit, which task to move or create and what to reply; ``perform`` does it through a ``Turn``,
which refuses every side effect when the CLI was started without its auto-approve flag, as a
real agent would be refused its tools. The reply text carries the signals the engine reads
(``CLAIM(...)``, ``COMPLETE_AND_READY_FOR_MERGE``, ``__DONE__``, ``VERDICT: ...``, and oompa
0.7.3's ``NEEDS_FOLLOWUP: reason``, which opens the reply as upstream asks of an agent).
The sync role (asked to make its branch mergeable again) merges main and resolves every
conflict by keeping both sides, unless its step says ``"resolve": false``.
"""

from __future__ import annotations

import os
import time

from .invocation import Run, find_git
from .scenario import VERDICTS

GIT_IDENTITY = ("-c", "user.name=fake-agent", "-c", "user.email=fake@agent.invalid")
MAIN = "main"  # the branch a sync call merges; the engine's sync prompt names it


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

    def act(self, tool: str, **fields: object) -> dict:
        """Note a tool call for the CLI's event stream; the caller fills in how it went."""
        action = {"tool": tool, "output": "", "code": 0, "denied": False, **fields}
        self.run.actions.append(action)
        return action

    def shown(self, command: str, what: str) -> dict | None:
        """A git or file operation the fake does itself, shown as the shell call an agent would
        make for it; None when it is not allowed (the call shows as refused)."""
        action = self.act("shell", command=command)
        if not self.allowed(what):
            action.update(denied=True, code=1, output=self.notes[-1])
            return None
        return action

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
        p = self.path(rel)
        action = self.act("write", path=p, content=content, append=append)
        if not self.allowed(f"write {rel}"):
            action.update(denied=True, code=1, output=self.notes[-1])
            return
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "a" if append else "w", encoding="utf-8") as f:
            f.write(content)
        if append:  # a write tool's input is the whole file
            with open(p, encoding="utf-8", errors="replace") as f:
                action["content"] = f.read(64 << 10)
        self.written.append(rel)

    def delete(self, rel: str) -> None:
        import shlex

        if self.shown(f"rm -rf -- {shlex.quote(rel)}", f"delete {rel}") is None:
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
        action = self.shown(command, f"shell {command}")
        if action is None:
            return
        import subprocess
        import tempfile

        # Output to a file, not a pipe: a background child holding a pipe would keep the
        # turn open. The output is what the shell tool's result shows.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=self.run.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            out.seek(0)
            action.update(output=out.read(64 << 10).decode("utf-8", "replace"))
        action["code"] = proc.returncode
        self.ran.append(command)
        if proc.returncode != 0:
            self.notes.append(f"fake: shell {command!r}: exit code {proc.returncode}")

    def git(self, *args: str, text: bool = True):
        import subprocess

        return subprocess.run(
            ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false", *args],
            cwd=self.run.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=text,
        )

    def commit(self, message: str) -> None:
        import shlex

        action = self.shown(f"git add -A && git commit -q -m {shlex.quote(message)}", "git commit")
        if action is None:
            return
        before = len(self.notes)
        self.do_commit(message)
        if len(self.notes) > before:
            action.update(code=1, output="\n".join(self.notes[before:]))

    def do_commit(self, message: str) -> None:
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

    def merge_main(self) -> str:
        """``git merge main --no-edit``; on a conflict, keep both sides of every unmerged file
        (``union``), ``git add`` them and commit the merge. Returns the reply's sentence.
        Whatever fails, no merge is left in progress."""
        if self.shown(f"git merge {MAIN} --no-edit", f"git merge {MAIN}") is None:
            return f"I was not allowed to run git merge {MAIN}."
        if find_git(self.run.workdir) is None:
            self.notes.append("fake: git merge skipped: not a git repository")
            return "This is not a git repository: nothing to merge."
        before = self.git("rev-parse", "HEAD").stdout.strip()
        merge = self.git("merge", MAIN, "--no-edit")
        if merge.returncode == 0:
            if self.git("rev-parse", "HEAD").stdout.strip() == before:
                return f"{MAIN} was already merged into this branch: nothing to do."
            self.commits.append(self.git("log", "-1", "--format=%s").stdout.strip())
            return f"Merged {MAIN} into this branch: no conflicts."
        unmerged = self.unmerged()
        if not unmerged:  # refused before merging: a dirty tree, an unknown branch, ...
            return self.give_up(f"git merge {MAIN} failed: {merge.stderr.strip()}")
        for path, stages in sorted(unmerged.items()):
            self.keep_both(path, stages)
        if self.unmerged():
            return self.give_up("some conflicts could not be resolved")
        commit = self.git("commit", "-q", "--no-edit")
        if commit.returncode != 0:
            return self.give_up(f"git commit failed: {(commit.stdout + commit.stderr).strip()}")
        self.commits.append(self.git("log", "-1", "--format=%s").stdout.strip())
        self.written.extend(sorted(unmerged))
        files = ", ".join(sorted(unmerged))
        return (
            f"Merged {MAIN} into this branch; resolved conflicts in {files} by keeping both sides."
        )

    def unmerged(self) -> dict[str, dict[int, str]]:
        """Unmerged path -> {stage: blob} (1 the base, 2 ours, 3 theirs) from the index."""
        out = self.git("ls-files", "-u", "-z").stdout
        paths: dict[str, dict[int, str]] = {}
        for entry in filter(None, out.split("\0")):
            info, path = entry.split("\t", 1)
            _mode, blob, stage = info.split()
            paths.setdefault(path, {})[int(stage)] = blob
        return paths

    def keep_both(self, path: str, stages: dict[int, str]) -> None:
        """Resolve one unmerged path: both sides' lines when both have it, else the side that
        has it (a file deleted on one side and changed on the other is kept)."""
        if 2 in stages and 3 in stages:
            merged = self.union(stages.get(1), stages[2], stages[3])
            if merged is None:  # a binary file has no lines to keep: ours wins
                self.git("checkout", "--ours", "--", path)
            else:
                with open(self.path(path), "wb") as f:
                    f.write(merged)
            self.git("add", "--", path)
        elif 2 in stages or 3 in stages:
            self.git("checkout", "--ours" if 2 in stages else "--theirs", "--", path)
            self.git("add", "--", path)
        else:  # deleted on both sides (a rename on each): nobody has it
            self.git("rm", "-q", "--cached", "--ignore-unmatch", "--", path)

    def union(self, base: str | None, ours: str, theirs: str) -> bytes | None:
        """The three-way merge of two blobs that keeps both sides of each conflicting hunk,
        ours first, without markers (``git merge-file --union``); None when git cannot merge
        them (a binary file)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="oompa-fake-merge-") as tmp:
            names = []
            for name, blob in (("ours", ours), ("base", base), ("theirs", theirs)):
                data = self.git("cat-file", "blob", blob, text=False).stdout if blob else b""
                names.append(os.path.join(tmp, name))
                with open(names[-1], "wb") as f:
                    f.write(data)
            merged = self.git("merge-file", "-p", "--union", *names, text=False)
        # merge-file exits with the number of conflicts left (none with --union), 255 on error
        return merged.stdout if merged.returncode == 0 else None

    def give_up(self, why: str) -> str:
        """End a failed sync with the worktree as it was: abort a merge left in progress."""
        self.notes.append(f"fake: {why}")
        if self.git("rev-parse", "-q", "--verify", "MERGE_HEAD").returncode == 0:
            self.git("merge", "--abort")
        return f"I could not merge {MAIN}: {why}."

    def move_task(self, spec: dict) -> None:
        tid, to = str(spec.get("id", "")), str(spec.get("to", "current"))
        import shlex

        shown = f"mv tasks/*/{shlex.quote(tid + '.json')} tasks/{shlex.quote(to)}/"
        if self.shown(shown, f"move task {tid}") is None:
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


def sync_reply(turn: Turn, resolve: bool) -> str:
    """The sync role: make the branch mergeable into main again, or (``resolve: false``) say
    it could not, touching nothing."""
    if not resolve:
        return f"I could not resolve the conflicts with {MAIN}; the branch is unchanged."
    return turn.merge_main()


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
    if role == "sync":
        return sync_reply(turn, True)
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
    resolve = step.get("resolve")
    if resolve is None and step.get("builtin") and run.role == "sync":
        resolve = True  # the built-in sync agent resolves unless told not to
    if resolve is not None:
        parts.append(sync_reply(turn, bool(resolve)))
    elif step.get("builtin"):
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
