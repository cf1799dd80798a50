"""``oompa cleanup [--repo DIR] [--dry-run]``: remove the worktrees and branches a crash left.

The engine names each iteration's worktree ``<repo>/.w{N}-i{M}`` on the branch ``oompa/w{N}-i{M}``
(``.w{N}-c{M}`` and ``oompa/w{N}-c{M}`` for 0.7.3's cycles) and removes both when the iteration
ends; a run killed with ``kill -9`` leaves them. Only names of exactly that shape are touched,
found through git itself (``git worktree list --porcelain``, the branches under ``oompa/``), so
a user's own worktrees and branches are never candidates. Removal holds the engine's worktree
lock, and is refused while a run of the repository is live (its heartbeat is fresh, the reader's
rule): its worktrees are in use, not left over.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.cli.command import Command, UsageError
from pytest_oompa.engine.git import GitError, Repo
from pytest_oompa.runs.reader import (
    STALE_SECONDS,
    RunFolder,
    RunInfo,
    default_runs_dir,
    list_runs,
)

__all__ = ["CLEANUP", "Leftovers", "find_leftovers", "live_runs"]

# w0-i3 (an iteration) or w0-c3 (a 0.7.3 cycle): the engine's worktree and branch names.
ENGINE_NAME = re.compile(r"w\d+-[ic]\d+")
BRANCH_PREFIX = "oompa/"


@dataclass(frozen=True)
class Leftovers:
    worktrees: tuple[Path, ...]
    branches: tuple[str, ...]


def _worktree_paths(repo: Repo) -> list[Path]:
    out = repo.git("worktree", "list", "--porcelain")
    return [
        Path(line[len("worktree ") :]) for line in out.splitlines() if line.startswith("worktree ")
    ]


def find_leftovers(repo: Repo) -> Leftovers:
    """The engine's worktrees (registered with git, in the repo's root folder) and branches."""
    worktrees = tuple(
        path
        for path in _worktree_paths(repo)
        if path.parent.resolve() == repo.root
        and path.name.startswith(".")
        and ENGINE_NAME.fullmatch(path.name[1:])
    )
    refs = repo.git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}")
    branches = tuple(
        name
        for name in refs.splitlines()
        if name.startswith(BRANCH_PREFIX) and ENGINE_NAME.fullmatch(name[len(BRANCH_PREFIX) :])
    )
    return Leftovers(worktrees, branches)


def _belongs_to(folder: RunFolder, repo_root: Path) -> bool:
    """The run worked on this repo: its metadata says so, or (a run without our metadata) it
    is in the repo's own runs folder."""
    meta = folder.read("oompa-run.json")
    if isinstance(meta, dict) and isinstance(meta.get("repo"), str):
        return Path(meta["repo"]).resolve() == repo_root
    return folder.runs_dir.resolve() == repo_root / "runs"


def live_runs(repo_root: Path, runs_dirs: list[Path]) -> list[RunInfo]:
    """The runs of this repo that are live by the reader's rule (fresh heartbeat)."""
    live: list[RunInfo] = []
    for runs_dir in dict.fromkeys(d.resolve() for d in runs_dirs):
        for info in list_runs(runs_dir, STALE_SECONDS):
            if info.status == "running" and _belongs_to(RunFolder(runs_dir, info.id), repo_root):
                live.append(info)
    return live


def _open_repo(folder: Path) -> Repo:
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    try:
        top = Repo(folder).git("rev-parse", "--show-toplevel").strip()
    except (GitError, OSError):
        raise UsageError(f"{folder}: not a git repository") from None
    return Repo(Path(top))


def _remove(repo: Repo, leftovers: Leftovers) -> list[str]:
    """Remove them (worktrees first: git keeps a checked-out branch); the failures."""
    failures: list[str] = []
    with repo.worktree_lock:
        for path in leftovers.worktrees:
            try:
                # Twice --force, as the engine does: a locked worktree goes too.
                repo.git("worktree", "remove", "--force", "--force", str(path))
                print(f"removed worktree {path}")
            except GitError as exc:
                failures.append(f"worktree {path}: {exc.stderr}")
        for branch in leftovers.branches:
            try:
                repo.git("branch", "-D", branch)
                print(f"removed branch {branch}")
            except GitError as exc:
                failures.append(f"branch {branch}: {exc.stderr}")
    return failures


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the repository to clean up (default: the one of the current folder)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be removed, remove nothing"
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to look for a live run of the repo (default: env OOMPA_RUNS_DIR, else "
        "RUNS_DIR, else ./runs, and <repo>/runs)",
    )


def run_cleanup(args: argparse.Namespace) -> int:
    repo = _open_repo(args.repo)
    runs_dirs = [args.runs_dir] if args.runs_dir else [default_runs_dir(), repo.root / "runs"]
    live = live_runs(repo.root, runs_dirs)
    if live:
        for info in live:
            age = f"{info.heartbeat_age_s:.0f} s" if info.heartbeat_age_s is not None else "-"
            print(
                f"oompa cleanup: run {info.id} of {repo.root} is live (heartbeat {age} ago): "
                f"its worktrees are in use; stop it first (a dead run's heartbeat goes stale "
                f"after {STALE_SECONDS:g} s)",
                file=sys.stderr,
            )
        return 1
    leftovers = find_leftovers(repo)
    if not leftovers.worktrees and not leftovers.branches:
        print(f"nothing to clean up in {repo.root}")
        return 0
    if args.dry_run:
        for path in leftovers.worktrees:
            print(f"would remove worktree {path}")
        for branch in leftovers.branches:
            print(f"would remove branch {branch}")
        return 0
    failures = _remove(repo, leftovers)
    for failure in failures:
        print(f"oompa cleanup: could not remove {failure}", file=sys.stderr)
    return 1 if failures else 0


CLEANUP = Command(
    name="cleanup",
    summary="remove the worktrees and branches a crashed run left behind",
    description="Remove the iteration worktrees (.wN-iM, .wN-cM) and their branches "
    "(oompa/wN-iM, oompa/wN-cM) that a killed or crashed run left in the repository, and "
    "print each one removed. Nothing else is touched. Refused (exit status 1) while a run "
    "of the repository is live; exit status 1 too when something could not be removed.",
    configure=_configure,
    run=run_cleanup,
)
