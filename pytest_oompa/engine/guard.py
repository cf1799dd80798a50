"""Containment of writes: what an agent's call changed outside its own worktree is caught after
the call, put right (nothing deleted), and pinned on the call that did it.

After every harness call of an iteration (worker, fix, reviewer), ``Guard.end`` looks at:

- the branches, ``refs/heads/*``, read from the ref files (no spawn). ``main`` is compared
  with the ledger ``.git/oompa-main``, where the engine's last merge left it (written under the
  merge lock by every process of every swarm on the repo, so another worker's merge is never
  taken for an agent's); any other branch with what it was when the call started. The engine's
  worktree branches (``oompa/…``) are left out: each is moved by its own worker's agent.
- the root's HEAD: still ``ref: refs/heads/main``.
- the root's working tree: one ``git status`` (untracked folders not expanded), without the
  task queue (``tasks/``: agents are told to use ../tasks, and a task an agent moved there by
  hand is adopted, see tasks.py) and without what git ignores (the worktrees and a runs folder
  inside the repo are in .git/info/exclude; a write git ignores does not dirty the root).

Only when something differs does it take the merge lock (no merge is then half-done in the
root) and look again: a moved ref is kept as ``refs/oompa/quarantine/{swarm}/{call}/{branch}``
and put back; a changed file is moved to ``stray/{call}/`` in the run folder and, where main
has it, restored from main. The iteration becomes an error saying so. A merge first does the
same (``before_merge``, under the merge lock it holds), so a move of main not caught yet never
becomes the base of another worker's merge. The planner is not watched: it works in the root
by design, and its task files are checked and committed by planner.py.

Who did it: several agents run at once (threads here, other processes under xdist), and git
records no writer. What the guard can tell apart:
- when: a file's change time (``st_ctime``, which no agent can set back; a deleted file's
  folder's), a ref's from its ref file. The calls of this process in flight at that moment
  are the suspects: one suspect is certain.
- a ref moved onto commits of a worker's own branch (``git push . HEAD:main``,
  ``git update-ref refs/heads/main HEAD``, ``git -C .. merge oompa/w0-i1``) is that worker's
  whoever else ran.
What it cannot: which of two calls in flight at the same moment wrote a file or committed from
the root. Both are named and both iterations are errors: a breach is not let pass on a guess.
A change made while no call of this process ran (a process that outlived its call, another
process's agent, the user) is put right and noted on the call that found it, not held
against it.

Another worker's worktree: while its own call runs, a worktree's changes cannot be told from
its agent's. While it is idle (waiting for its reviewer, or kept between iterations) its files
change by no one's hand, so ``Guard.begin`` of its next call looks (one ``git status`` there,
only for a worktree used before): a file changed since its last call ended was written by a
call of another worker in flight then. That call's iteration is an error if it is still
running; if it has ended, the victim's iteration notes it. Commits made onto another worker's
branch, and writes into a worktree while its own call runs, are not told apart.

Cost: ``begin`` reads the ref files (~0.2 ms); ``end`` reads them again and runs one
``git status`` of the root, which is nearly all of its ~3-5 ms per call on a small repository
(more on a large one: it is git's status, untracked cache and fsmonitor included); a call in a
worktree used before adds one ``git status`` there; a merge adds the same look as ``end``.
Only a call that did change something pays for the merge lock and the putting right.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_oompa.engine.git import MAIN, Repo, Worktree

ENGINE_BRANCHES = "refs/heads/oompa/"  # worktree branches: each its worker's
MAIN_REF = f"refs/heads/{MAIN}"
ROOT_HEAD = f"ref: {MAIN_REF}"
QUARANTINE = "refs/oompa/quarantine"
# The task queue (agents may move task files themselves), and the worktrees: excluded in
# .git/info/exclude by the swarm already, and never to be moved whatever that file says.
IGNORED = ("tasks", ".w*-i*", ".w*-c*")
PATHSPEC = (".", *(f":(exclude){p}" for p in IGNORED))
# File times come from the kernel's coarse clock, a tick behind time.time_ns(): a call's
# window is widened by this much on each side.
SLACK_NS = 20_000_000


@dataclass
class GuardedCall:
    """One harness call the guard watches: its window, and what it was found to have done."""

    name: str  # w0-i3-worker-1
    worker: str  # w0
    unit: str  # w0-i3: the iteration
    worktree: Worktree
    start_ns: int
    refs: dict[str, str]
    end_ns: int | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ran_at(self, when: int) -> bool:
        end = self.end_ns if self.end_ns is not None else time.time_ns()
        return self.start_ns - SLACK_NS <= when <= end + SLACK_NS


@dataclass(frozen=True)
class Findings:
    """What a call did outside its worktree: errors end its iteration, notes do not."""

    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def breach(self) -> str | None:
        return "; ".join(self.errors) or None


def suspects(calls: Iterable[GuardedCall], when: int | None) -> list[GuardedCall]:
    """The calls in flight at ``when`` (a change time); all of them when it is unknown."""
    calls = list(calls)
    if when is None:
        return calls
    return [c for c in calls if c.ran_at(when)]


def change_time(path: Path) -> int | None:
    """When ``path`` last changed; for a path that is gone, when its nearest folder did."""
    for candidate in (path, *path.parents):
        try:
            return os.lstat(candidate).st_ctime_ns
        except OSError:
            continue
    return None


def who(calls: list[GuardedCall], finder: GuardedCall) -> str:
    """The suspects, as the message names them beside the call it is about."""
    others = [c.name for c in calls if c is not finder]
    return f" (or {', '.join(others)}, running at the same time)" if others else ""


class Guard:
    """Shared by the workers of one swarm; thread-safe."""

    def __init__(self, repo: Repo, swarm_id: str, run_dir: Path) -> None:
        self.repo = repo
        self.swarm_id = swarm_id
        self.stray_dir = run_dir / "stray"
        self._lock = threading.Lock()
        self._active: dict[int, GuardedCall] = {}
        self._ended: deque[GuardedCall] = deque(maxlen=64)  # suspects of idle worktrees' writes
        self._ids = itertools.count()
        self._branches: dict[str, str] | None = None  # the branches as the swarm found them
        self._idle: dict[Path, int] = {}  # worktree -> when its last call ended
        self._mail: dict[str, list[tuple[str, str]]] = {}  # worker -> (unit, error) for later
        self._orphans: list[str] = []  # put right before a merge, no call in flight then
        self.spent_ns = 0  # time spent checking, for benchmarks and tests

    def start(self, *, keep: bool = False) -> None:
        """Before the first call: write the ledger (main is where it is now; ``keep``: unless
        a ledger exists, for a process joining a run another one prepared) and note the other
        branches, which no one may move."""
        with self.repo.merge_lock:
            if not (keep and self.repo.engine_main()):
                self.repo.record_main()
            self._branches = {
                r: s for r, s in self.repo.refs().items() if not r.startswith(ENGINE_BRANCHES)
            }

    # -- around a call -------------------------------------------------------------------------

    def begin(self, name: str, worker: str, worktree: Worktree) -> GuardedCall:
        t0 = time.perf_counter_ns()
        call = GuardedCall(
            name=name,
            worker=worker,
            unit=worktree.name,
            worktree=worktree,
            start_ns=time.time_ns(),
            refs=self.repo.refs(),
        )
        with self._lock:
            idle_since = self._idle.pop(worktree.path, None)
            self._active[next(self._ids)] = call
        try:
            if idle_since is not None:
                self._foreign_writes(call, idle_since)
        finally:
            self.spent_ns += time.perf_counter_ns() - t0
        return call

    def end(self, call: GuardedCall) -> Findings:
        """Check after the call; returns what this call is charged with (and the notes)."""
        t0 = time.perf_counter_ns()
        call.end_ns = time.time_ns()
        try:
            if self._looks_touched(call):
                with self.repo.merge_lock:
                    self._put_right(call)
        finally:
            with self._lock:
                self._active = {k: c for k, c in self._active.items() if c is not call}
                self._ended.append(call)
                self._idle[call.worktree.path] = time.time_ns()
                for unit, error in self._mail.pop(call.worker, []):
                    if unit == call.unit:
                        call.errors.append(error)
                call.notes += self._orphans
                self._orphans.clear()
            self.spent_ns += time.perf_counter_ns() - t0
        return Findings(tuple(call.errors), tuple(call.notes))

    def before_merge(self) -> None:
        """The caller holds the merge lock and is about to merge: an agent's move of main (or
        its files in the root) not caught yet must not become part of the merge's history."""
        t0 = time.perf_counter_ns()
        try:
            if self._looks_touched(None):
                self._put_right(None)
        finally:
            self.spent_ns += time.perf_counter_ns() - t0

    def forget(self, worktree: Worktree) -> None:
        """The worktree is gone: nothing more to watch there."""
        with self._lock:
            self._idle.pop(worktree.path, None)

    # -- looking -------------------------------------------------------------------------------

    def _moved_refs(
        self, call: GuardedCall | None, now: dict[str, str]
    ) -> dict[str, tuple[str, str]]:
        """ref -> (where the engine left it, where it is); "" for absent."""
        before = call.refs if call is not None else now
        known = self._branches if self._branches is not None else before
        expected = {r: s for r, s in known.items() if not r.startswith(ENGINE_BRANCHES)}
        ledger = self.repo.engine_main()
        expected[MAIN_REF] = ledger or before.get(MAIN_REF, "")
        theirs = {r for r in now if not r.startswith(ENGINE_BRANCHES)}
        return {
            ref: (expected.get(ref, ""), now.get(ref, ""))
            for ref in sorted(set(expected) | theirs)
            if expected.get(ref, "") != now.get(ref, "")
        }

    def _looks_touched(self, call: GuardedCall | None) -> bool:
        """The cheap look, without the merge lock: a merge in progress may show here, so a yes
        is only a reason to look again under the lock."""
        repo = self.repo
        if self._moved_refs(call, repo.refs()) or repo.root_head() != ROOT_HEAD:
            return True
        return bool(repo.status_entries(None, *PATHSPEC, untracked="normal"))

    # -- putting right (under the merge lock) --------------------------------------------------

    def _put_right(self, finder: GuardedCall | None) -> None:
        repo = self.repo
        with self._lock:
            active = list(self._active.values())
        head = repo.root_head()
        if head != ROOT_HEAD:
            found = suspects(active, change_time(repo.git_dir / "HEAD"))
            repo.git("symbolic-ref", "HEAD", MAIN_REF)
            shown = head.removeprefix("ref: ").removeprefix("refs/heads/")
            self._charge(found, finder, f"switched the project root from {MAIN} to {shown}")
        for ref, (was, now) in self._moved_refs(finder, repo.refs()).items():
            self._put_ref_back(finder, active, ref, was, now)
        entries = repo.status_entries(None, *PATHSPEC)
        if entries:
            self._move_strays(finder, active, None, [p for _, p in entries])

    def _put_ref_back(
        self, finder: GuardedCall | None, active: list[GuardedCall], ref: str, was: str, now: str
    ) -> None:
        repo = self.repo
        branch = ref.removeprefix("refs/heads/")
        when = change_time(repo.git_dir / ref) if now else None
        found = self._by_ancestry(active, was, now) or suspects(active, when)
        parts = []
        if now:
            kept = f"{QUARANTINE}/{self.swarm_id}/{self._folder(found, finder)}/{branch}"
            repo.git("update-ref", kept, now)
            parts.append(f"quarantined as {kept}")
        if was:
            repo.git("update-ref", ref, was, now or "0" * 40)
            parts.append(f"{branch} put back at {was[:12]}")
        else:
            repo.git("update-ref", "-d", ref, now)
        verb = "moved" if was and now else "created" if now else "deleted"
        self._charge(found, finder, f"{verb} {branch} outside the merge: {', '.join(parts)}")

    def _by_ancestry(self, active: list[GuardedCall], was: str, now: str) -> list[GuardedCall]:
        """The calls whose own branch's new commits the moved ref now holds."""
        if not now:
            return []
        refs = self.repo.refs()
        found = []
        for call in active:
            tip = refs.get(f"refs/heads/{call.worktree.branch}")
            if not tip or tip == was:
                continue
            if self.repo.is_ancestor(tip, now) and not (was and self.repo.is_ancestor(tip, was)):
                found.append(call)
        return found

    def _move_strays(
        self,
        finder: GuardedCall | None,
        calls: list[GuardedCall],
        worktree: Worktree | None,
        paths: list[str],
    ) -> None:
        """Move changed files of the root (or of an idle ``worktree``) into the run folder, one
        folder per suspect, and restore what HEAD has of them."""
        base = worktree.path if worktree is not None else self.repo.root
        groups: dict[tuple[str, ...], tuple[list[GuardedCall], list[str]]] = {}
        for path in paths:
            found = suspects(calls, change_time(base / path))
            if worktree is not None and not found:
                continue  # not told apart from its own agent's work: left where it is
            groups.setdefault(tuple(c.name for c in found), (found, []))[1].append(path)
        for found, group in groups.values():
            folder = self.stray_dir / self._folder(found, finder)
            for path in group:
                source = base / path
                if source.exists() or source.is_symlink():
                    target = folder / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(source, target)
            self._restore(base, group)
            shown = ", ".join(group[:10]) + (
                f", … {len(group) - 10} more" if len(group) > 10 else ""
            )
            moved = f"{shown} (moved to {folder.relative_to(self.stray_dir.parent).as_posix()}/)"
            if worktree is None:
                self._charge(found, finder, f"wrote outside its worktree: {moved}")
                continue
            assert finder is not None  # a worktree is looked at when its own call begins
            finder.notes.append(
                f"another worker's agent wrote into this worktree while it waited: {moved}; "
                f"running then: {', '.join(c.name for c in found)}"
            )
            self._charge(
                found, finder, f"wrote into {worktree.name}, another worker's worktree: {moved}"
            )

    def _restore(self, base: Path, paths: list[str]) -> None:
        """Index and files back to HEAD for ``paths`` (moved away already)."""
        repo = self.repo
        repo.git("reset", "-q", "HEAD", "--", *paths, cwd=base, check=False)
        tracked = repo.git("ls-tree", "-r", "--name-only", "HEAD", "--", *paths, cwd=base)
        names = [line for line in tracked.splitlines() if line]
        if names:
            repo.git("checkout", "HEAD", "--", *names, cwd=base)
        for path in paths:  # folders the move emptied
            folder = (base / path).parent
            while folder != base and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent

    def _foreign_writes(self, call: GuardedCall, idle_since: int) -> None:
        """Files of the call's worktree changed while it was idle: another worker's doing."""
        wt = call.worktree
        entries = self.repo.status_entries(wt.path)
        changed = [p for _, p in entries if (change_time(wt.path / p) or 0) > idle_since + SLACK_NS]
        if not changed:
            return
        with self._lock:
            others = [c for c in (*self._active.values(), *self._ended) if c.worker != call.worker]
        self._move_strays(call, others, wt, changed)

    @staticmethod
    def _folder(found: list[GuardedCall], finder: GuardedCall | None) -> str:
        """Where what was moved is kept: under the (first) suspect's call name."""
        if found:
            return found[0].name
        return finder.name if finder is not None else "before-a-merge"

    def _charge(self, found: list[GuardedCall], finder: GuardedCall | None, text: str) -> None:
        """An error for each call in flight when it happened; when none was, a note for the
        call that found it (or the next call to end): put right, not held against anyone."""
        if not found:
            note = f"{text}; made while no agent call of this swarm ran"
            if finder is not None:
                finder.notes.append(note)
            else:
                with self._lock:
                    self._orphans.append(note)
            return
        for call in found:
            message = text + who(found, call)
            with self._lock:
                if call.end_ns is None or call is finder:
                    call.errors.append(message)
                else:  # its call has ended: its iteration hears of it at its next call, if any
                    self._mail.setdefault(call.worker, []).append((call.unit, message))
