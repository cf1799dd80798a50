"""Git, as the engine uses it: real ``git`` subprocesses, no shell, a few narrow functions.

Three facts shape this module:
- ``git worktree add/remove`` on one repo can fail spuriously when run concurrently
  (``failed to read .git/worktrees/.../commondir``); oompa loses iterations to it. Every
  worktree and branch operation here holds one repo-wide lock (threads *and* processes) and
  retries the known transient failures.
- The merge into ``main`` is serialized across every worker and every swarm process on the
  repo (the same kind of lock), and a merge that fails is aborted and reported, never counted.
- Diffs are taken against the merge base (``main...HEAD``): ``main`` moves while a worker runs,
  and a two-dot diff would show other workers' merged changes as this worker's.
- ``main`` moves only by the engine: every move it makes (a merge, a task-queue commit) is
  written down under the merge lock in ``.git/oompa-main``, the ledger every process of every
  swarm on the repo shares, so a move that is not in it is an agent's (``guard.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.core.locks import SharedLock

MAIN = "main"
LEDGER = "oompa-main"  # in the git dir: where the engine last left main
_TRANSIENT = re.compile(
    r"commondir|index\.lock|could not lock|cannot lock ref|Unable to create .*\.lock|"
    r"unable to create directory|File exists",
    re.IGNORECASE,
)
_BASE_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
# Used only when the repo has no identity of its own (a fresh CI machine): framework commits
# (auto-commit of a worktree, merge commits) must never fail for want of a name.
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "oompa",
    "GIT_AUTHOR_EMAIL": "oompa@localhost",
    "GIT_COMMITTER_NAME": "oompa",
    "GIT_COMMITTER_EMAIL": "oompa@localhost",
}


class GitError(Exception):
    def __init__(self, args: list[str], cwd: Path, returncode: int, stderr: str) -> None:
        self.git_args = args
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"git {' '.join(args)} (in {cwd}) failed ({returncode}): {self.stderr}")


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    name: str  # w0-i3


class Repo:
    """The project repository: the root working tree on ``main`` plus iteration worktrees."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._env = {**os.environ, **_BASE_ENV}
        self.calls = 0  # git spawns, for benchmarks and tests
        self._git_dir: Path | None = None
        self._is_repo = False
        self._worktree_lock: SharedLock | None = None
        self._merge_lock: SharedLock | None = None

    # -- plumbing ------------------------------------------------------------------------------

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        where = cwd or self.root
        proc = self.run(*args, cwd=where)
        if check and proc.returncode != 0:
            raise GitError(list(args), where, proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """git, its exit status and both outputs (a conflict is told on stdout)."""
        self.calls += 1
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.root,
            env=self._env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
        )

    @property
    def git_dir(self) -> Path:
        if self._git_dir is None:
            out = self.git("rev-parse", "--absolute-git-dir").strip()
            self._git_dir = Path(out)
        return self._git_dir

    def _lock(self, name: str) -> SharedLock:
        return SharedLock(self.git_dir / f"oompa-{name}.lock")

    @property
    def worktree_lock(self) -> SharedLock:
        if self._worktree_lock is None:
            self._worktree_lock = self._lock("worktree")
        return self._worktree_lock

    @property
    def merge_lock(self) -> SharedLock:
        if self._merge_lock is None:
            self._merge_lock = self._lock("merge")
        return self._merge_lock

    def use_fallback_identity_if_needed(self) -> bool:
        """Give framework commits an identity when git has none configured; True if it did."""
        if self.git("config", "user.email", check=False).strip():
            return False
        self._env.update(FALLBACK_IDENTITY)
        return True

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    # -- state ---------------------------------------------------------------------------------

    def is_repo(self) -> bool:
        """Whether the root is the top of a git repository. A yes is remembered: preflight
        asks more than once, and a repository does not stop being one during a run."""
        if self._is_repo:
            return True
        try:
            top = self.git("rev-parse", "--show-toplevel").strip()
        except (GitError, OSError):
            return False
        self._is_repo = Path(top).resolve() == self.root
        return self._is_repo

    def has_branch(self, branch: str) -> bool:
        return bool(
            self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        )

    def current_branch(self) -> str:
        return self.git("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()

    def head(self, ref: str = "HEAD", cwd: Path | None = None) -> str:
        return self.git("rev-parse", ref, cwd=cwd).strip()

    def branch_head(self, branch: str) -> str:
        """A branch's commit, read from its loose ref file (no spawn inside the merge lock);
        ``git rev-parse`` when the ref is packed."""
        try:
            sha = (self.git_dir / "refs" / "heads" / branch).read_text(encoding="ascii").strip()
        except OSError:
            sha = ""
        return sha if len(sha) == 40 else self.head(branch)

    def refs(self) -> dict[str, str]:
        """``refs/heads/*`` -> commit, read from the ref files (no spawn: the guard reads them
        around every call); ``git for-each-ref`` for a repository whose refs are not files."""
        git_dir = self.git_dir
        if (git_dir / "reftable").exists():
            out = self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
            return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        found: dict[str, str] = {}
        try:
            packed = (git_dir / "packed-refs").read_text(encoding="ascii", errors="replace")
        except OSError:
            packed = ""
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name.startswith("refs/heads/") and len(sha) == 40:
                found[name] = sha
        heads = git_dir / "refs" / "heads"
        for folder, _dirs, files in os.walk(heads):
            for file in files:
                if file.endswith(".lock"):
                    continue
                path = Path(folder, file)
                try:
                    sha = path.read_text(encoding="ascii", errors="replace").strip()
                except OSError:
                    continue  # deleted between the listing and the read
                if len(sha) == 40:
                    found["refs/heads/" + path.relative_to(heads).as_posix()] = sha
        return found

    def is_ancestor(self, older: str, newer: str) -> bool:
        self.calls += 1
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", older, newer],
            cwd=self.root,
            env=self._env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        return proc.returncode == 0

    def root_head(self) -> str:
        """What the root's HEAD file says (``ref: refs/heads/main`` when all is well)."""
        try:
            return (self.git_dir / "HEAD").read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return ""

    def record_main(self, sha: str | None = None) -> str:
        """Write the ledger: main is at ``sha`` (default: where it is) by the engine's doing.
        The caller holds ``merge_lock``, or nothing else runs on the repo yet."""
        sha = sha or self.branch_head(MAIN)
        tmp = self.git_dir / f"{LEDGER}.tmp{os.getpid()}"
        tmp.write_text(sha + "\n", encoding="ascii")
        os.replace(tmp, self.git_dir / LEDGER)
        return sha

    def engine_main(self) -> str | None:
        """Where the engine last left main (the ledger); None when no swarm wrote it."""
        try:
            sha = (self.git_dir / LEDGER).read_text(encoding="ascii").strip()
        except OSError:
            return None
        return sha if len(sha) == 40 else None

    def status_entries(
        self, cwd: Path | None = None, *pathspec: str, untracked: str = "all"
    ) -> list[tuple[str, str]]:
        """``git status`` as (XY, path) pairs, renames split into a deletion and an addition."""
        out = self.git(
            "status",
            "--porcelain",
            "-z",
            "--no-renames",
            f"--untracked-files={untracked}",
            "--ignore-submodules=all",
            "--",
            *(pathspec or (".",)),
            cwd=cwd,
        )
        return [(entry[:2], entry[3:]) for entry in out.split("\0") if len(entry) > 3]

    def dirty_paths(self, cwd: Path | None = None, *paths: str) -> list[str]:
        out = self.git("status", "--porcelain", "--untracked-files=all", "--", *paths, cwd=cwd)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def exclude(self, *patterns: str) -> None:
        """Add patterns to .git/info/exclude (once each): ignored locally, nothing committed."""
        path = self.git_dir / "info" / "exclude"
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        missing = [p for p in patterns if p not in existing]
        if missing:
            with path.open("a", encoding="utf-8") as fh:
                if existing and existing[-1] != "":
                    fh.write("\n")
                fh.write("# pytest-oompa\n" + "".join(f"{p}\n" for p in missing))

    def commit_paths(self, message: str, *paths: str) -> bool:
        """Commit the changes under ``paths`` in the root tree to main, if there are any;
        under the merge lock, so no merge runs in between. True if it committed."""
        with self.merge_lock:
            if not self.dirty_paths(None, *paths):
                return False
            self.git("add", "-A", "--", *paths)
            self.git("commit", "-q", "--no-verify", "-m", message, "--", *paths)
            self.record_main()
            return True

    # -- worktrees -----------------------------------------------------------------------------

    def _with_retries(self, *args: str, attempts: int = 6) -> str:
        """Run a worktree/branch command under the repo lock, retrying transient failures."""
        delay = 0.02
        for attempt in range(attempts):
            try:
                with self.worktree_lock:
                    return self.git(*args)
            except GitError as exc:
                if attempt == attempts - 1 or not _TRANSIENT.search(exc.stderr):
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def add_worktree(self, worker_id: str, iteration: int, unit: str = "i") -> Worktree:
        """A fresh worktree on a new branch from main: ``.w0-i3`` (``unit`` "c": ``.w0-c3``,
        a cycle's)."""
        wt = self.worktree_named(f"{worker_id}-{unit}{iteration}")
        try:
            self._with_retries("worktree", "add", "-q", "-b", wt.branch, str(wt.path), MAIN)
        except GitError as exc:
            if "already exists" not in exc.stderr:
                raise
            # A stale worktree or branch from a killed run: remove it, then try once more.
            self.remove_worktree(wt)
            self._with_retries("worktree", "add", "-q", "-b", wt.branch, str(wt.path), MAIN)
        return wt

    def drop_stale_locks(self) -> list[str]:
        """Remove the lock files a killed git left (``index.lock``, ``ORIG_HEAD.lock`` ... of
        the root and of each worktree, ref locks); not the engine's own ``oompa-*.lock`` files,
        which are flock()ed, not created to lock. Only for a repository whose processes are
        known dead: a resume, after the dead run's orphans were killed."""
        found = list(self.git_dir.glob("*.lock"))  # index, HEAD, ORIG_HEAD, packed-refs ...
        found += list((self.git_dir / "worktrees").glob("*/*.lock"))
        found += list((self.git_dir / "refs").rglob("*.lock"))
        gone = []
        for path in found:
            if path.is_file() and not path.name.startswith("oompa-"):
                path.unlink(missing_ok=True)
                gone.append(str(path.relative_to(self.git_dir)))
        return gone

    def undo_cut_merge(self, heads: list[str]) -> list[str]:
        """Put the root working tree back on main after a merge into main was cut (the engine
        killed mid-``git merge``): a merge in progress is aborted, and files that differ from
        main only where those branch ``heads`` change them are restored. Anything else stays
        (the preflight then refuses, naming it). Returns the paths restored."""
        if (self.git_dir / "MERGE_HEAD").exists():
            self.git("merge", "--abort", check=False)
        # (tasks/ is the queue's: a killed run leaves it moved, and it is dealt with apart)
        dirty = [p for p in self.dirty_paths() if not p.startswith("tasks/")]
        if not dirty:
            return []
        touched: set[str] = set()
        for head in heads:
            out = self.git("diff", "--name-only", f"{MAIN}...{head}", check=False)
            touched.update(line for line in out.splitlines() if line)
        if not set(dirty) <= touched:
            return []
        self.git("reset", "-q", MAIN, "--", *dirty)  # the index back to main's entries
        on_main = set(self.git("ls-tree", "-r", "--name-only", MAIN, "--", *dirty).splitlines())
        if on_main:
            self.git("checkout", MAIN, "--", *sorted(on_main))
        for path in set(dirty) - on_main:
            (self.root / path).unlink(missing_ok=True)
        return dirty

    def worktree_named(self, name: str) -> Worktree:
        """The engine's worktree ``name`` (``w0-i3``): ``<root>/.w0-i3`` on ``oompa/w0-i3``."""
        return Worktree(self.root / f".{name}", f"oompa/{name}", name)

    def reopen_worktree(self, name: str) -> Worktree | None:
        """The worktree ``name`` (``w0-i3``) an earlier process of the run left: reused when it
        is still a worktree on its branch, recreated from the branch when only that is left,
        else None."""
        wt = self.worktree_named(name)
        if not self.has_branch(wt.branch):
            return None
        if wt.path.is_dir():
            branch = self.git("branch", "--show-current", cwd=wt.path, check=False).strip()
            if branch == wt.branch:
                return wt
            self.remove_worktree(wt)  # something else sits there: start it again from the branch
            if not self.has_branch(wt.branch):
                return None
        self._with_retries("worktree", "prune")
        self._with_retries("worktree", "add", "-q", str(wt.path), wt.branch)
        return wt

    def remove_worktree(self, wt: Worktree) -> None:
        """Remove the worktree and its branch; tolerant of either being gone already."""
        with self.worktree_lock:
            if wt.path.exists():
                self.git("worktree", "remove", "--force", "--force", str(wt.path), check=False)
            if wt.path.exists():  # not a registered worktree (half-made): plain delete
                shutil.rmtree(wt.path, ignore_errors=True)
                self.git("worktree", "prune", check=False)
        # Outside the lock: update-ref does not read .git/worktrees (branch -D does, to refuse
        # deleting a checked-out branch; this one is checked out nowhere any more).
        self.git("update-ref", "-d", f"refs/heads/{wt.branch}", check=False)

    # -- work in a worktree ----------------------------------------------------------------------

    def commit_all(self, wt: Worktree, message: str) -> bool:
        """Commit whatever is uncommitted in the worktree; False if there was nothing."""
        if not self.git("status", "--porcelain", cwd=wt.path).strip():
            return False
        self.git("add", "-A", cwd=wt.path)
        self.git("commit", "-q", "--no-verify", "-m", message, cwd=wt.path)
        return True

    def changed_files(self, wt: Worktree) -> list[str]:
        out = self.git("diff", "--name-only", f"{MAIN}...HEAD", cwd=wt.path)
        return [line for line in out.splitlines() if line]

    def commits_ahead(self, wt: Worktree) -> int:
        return int(self.git("rev-list", "--count", f"{MAIN}..HEAD", cwd=wt.path).strip() or 0)

    def diff_text(self, wt: Worktree) -> str:
        return self.git("diff", f"{MAIN}...HEAD", cwd=wt.path)

    # -- sync: main into the worktree's branch (outside the merge lock) --------------------------

    def sync_with_main(self, wt: Worktree) -> str | None:
        """Merge main into the worktree's branch; None when that went cleanly (or there was
        nothing to merge), else git's message, with the merge aborted: the worktree is left as
        it was, for the agent to resolve in its own way."""
        message = f"oompa: sync {wt.name} with main"
        proc = self.run("merge", "--no-edit", "-m", message, MAIN, cwd=wt.path)
        if proc.returncode == 0:
            return None
        if self._merging(wt):
            self.git("merge", "--abort", cwd=wt.path, check=False)
        return (proc.stdout + proc.stderr).strip() or f"git merge {MAIN} failed"

    def divergence(self, wt: Worktree) -> tuple[str, str, str]:
        """(the branch's commits not on main, main's commits not on the branch, the diff stat
        between them): what the agent is shown to resolve a conflict."""
        mine = self.git("log", "--oneline", "-n", "50", f"{MAIN}..HEAD", cwd=wt.path, check=False)
        theirs = self.git("log", "--oneline", "-n", "50", f"HEAD..{MAIN}", cwd=wt.path, check=False)
        stat = self.git("diff", "--stat", f"HEAD...{MAIN}", cwd=wt.path, check=False)
        return mine, theirs, stat

    def settle_merge(self, wt: Worktree) -> None:
        """After an agent's attempt at a conflict: a merge it left in progress is committed
        when every conflict is resolved (staged or not), else aborted, so that the next
        ``sync_with_main`` starts from a clean worktree."""
        if not self._merging(wt):
            return
        if self.git("diff", "--name-only", "--diff-filter=U", cwd=wt.path, check=False).strip():
            self.git("merge", "--abort", cwd=wt.path, check=False)
            return
        self.git("add", "-A", cwd=wt.path)
        self.git("commit", "-q", "--no-verify", "--no-edit", cwd=wt.path)

    def _merging(self, wt: Worktree) -> bool:
        git_dir = self.git("rev-parse", "--absolute-git-dir", cwd=wt.path, check=False).strip()
        return bool(git_dir) and (Path(git_dir) / "MERGE_HEAD").exists()

    # -- merge ---------------------------------------------------------------------------------

    def merge(self, wt: Worktree, message: str) -> str:
        """Merge the worktree's branch into main (caller holds ``merge_lock``); return the new
        main commit, written in the ledger. On failure the merge is aborted, main and the root
        tree are left as they were, and GitError carries git's own message."""
        try:
            self.git("merge", "--no-edit", "-m", message, wt.branch)
        except GitError:
            if (self.git_dir / "MERGE_HEAD").exists():
                self.git("merge", "--abort", check=False)
            raise
        return self.record_main()
