"""A worktree's whole state carried between two repositories as a git bundle.

A node of a cluster has no access to the coordinator's disk: before an agent call the
coordinator sends the worktree as it is (its branch, what is not committed yet, a merge in
progress, and main for the agent to merge), and after the call the node sends it back the
same way. Both sides keep the commits the other is known to have, so every bundle after the
first holds only what is new.

What is not committed travels as a commit of its own (``tree``): the working tree with every
untracked file added, on top of ``head``, made with a private index so the worktree's own
index is not touched. The receiver checks that commit out and moves its branch back to
``head``, which leaves the same files changed and untracked. Ignored files do not travel
(an agent's ``node_modules`` stays on its node).

Receiving stores the objects without writing any ref, so it never touches refs other
worktrees use; the temporary refs a bundle needs to name its commits live
under ``refs/oompa-transfer/`` of the sender for the moment it is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REFS = "refs/oompa-transfer"
# A fixed identity for the working-tree commits: they are transport, never merged or shown.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "oompa",
    "GIT_AUTHOR_EMAIL": "oompa@localhost",
    "GIT_COMMITTER_NAME": "oompa",
    "GIT_COMMITTER_EMAIL": "oompa@localhost",
}
_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


class TransferError(Exception):
    """A git step of a transfer failed; says which and git's own words."""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_ENV, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",
    )
    if proc.returncode != 0:
        raise TransferError(
            f"git {' '.join(args)} in {cwd}: {(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout


@dataclass(frozen=True)
class TreeState:
    """One worktree, as commits: ``head`` is its branch's commit, ``tree`` what its files
    are (``head`` itself when nothing is uncommitted), ``merge_head`` a merge in progress."""

    branch: str
    head: str
    tree: str
    main: str
    merge_head: str | None = None

    @property
    def commits(self) -> set[str]:
        return {c for c in (self.head, self.tree, self.main, self.merge_head) if c}


def _git_dir(worktree: Path) -> Path:
    return Path(git(worktree, "rev-parse", "--absolute-git-dir").strip())


def capture(worktree: Path, main: str = "main") -> TreeState:
    """The worktree's state; commits what is uncommitted as a loose commit (no ref moves)."""
    # One rev-parse for what five would ask: git dir, HEAD, its tree, main, the branch.
    out = git(
        worktree, "rev-parse", "--absolute-git-dir", "HEAD", "HEAD^{tree}", main,
        "--symbolic-full-name", "HEAD",
    )  # fmt: skip
    git_dir, head, head_tree, main_sha, ref = out.split()
    if not ref.startswith("refs/heads/"):
        raise TransferError(f"{worktree} is not on a branch (HEAD is {head})")
    with tempfile.TemporaryDirectory(prefix="oompa-index-") as tmp:
        # A copy of the worktree's own index: its stat data spares `add -A` hashing every
        # file again; the worktree's index itself is not touched.
        index = Path(tmp) / "index"
        env = {"GIT_INDEX_FILE": str(index)}
        if (Path(git_dir) / "index").is_file():
            shutil.copyfile(Path(git_dir) / "index", index)
        else:
            git(worktree, "read-tree", "HEAD", env=env)
        git(worktree, "add", "-A", env=env)
        files = git(worktree, "write-tree", env=env).strip()
    tree = head
    if files != head_tree:
        tree = git(
            worktree, "commit-tree", files, "-p", head, "-m", "oompa: working tree", env=_IDENTITY
        ).strip()
    merging = Path(git_dir) / "MERGE_HEAD"
    merge_head = merging.read_text().split()[0] if merging.is_file() else None
    return TreeState(ref.removeprefix("refs/heads/"), head, tree, main_sha, merge_head)


def pack(repo: Path, state: TreeState, known: Iterable[str], name: str) -> bytes | None:
    """A bundle of the state's commits less what the other side has (``known``); None when it
    has everything. ``name`` keeps concurrent packs of one repository apart."""
    prefix = f"{REFS}/{name}"
    refs = {"head": state.head, "tree": state.tree, "main": state.main}
    if state.merge_head:
        refs["merge"] = state.merge_head
    updates = "".join(f"update {prefix}/{k} {sha}\n" for k, sha in refs.items())
    git(repo, "update-ref", "--stdin", stdin=updates)
    try:
        with tempfile.TemporaryDirectory(prefix="oompa-bundle-") as tmp:
            out = Path(tmp) / "state.bundle"
            revs = [f"{prefix}/{k}" for k in refs] + [f"^{sha}" for sha in sorted(set(known))]
            proc = subprocess.run(
                ["git", "bundle", "create", "-q", str(out), "--stdin"],
                cwd=repo,
                env={**os.environ, **_ENV},
                input="\n".join(revs) + "\n",
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                if "empty bundle" in proc.stderr:
                    return None
                raise TransferError(f"git bundle create in {repo}: {proc.stderr.strip()}")
            return out.read_bytes()
    finally:
        deletes = "".join(f"delete {prefix}/{k}\n" for k in refs)
        git(repo, "update-ref", "--stdin", stdin=deletes)


def unpack(repo: Path, bundle: bytes | None) -> None:
    """Store a bundle's objects in ``repo`` (no ref is written).

    The pack after the bundle's header goes to ``git index-pack`` directly: ``git bundle
    unbundle`` first walks every ref of the repository, each worktree's HEAD included, and
    fails ("bad object worktrees/.../HEAD") while another worker's ``git worktree add`` is
    half done, which on the coordinator happens all the time. ``--fix-thin`` completes the
    pack from the commits the bundle requires, which must be here (a missing one fails)."""
    if bundle is None:
        return
    end = bundle.find(b"\n\n")
    if not bundle.startswith(b"# v") or end < 0:
        raise TransferError("not a git bundle")
    proc = subprocess.run(
        ["git", "index-pack", "--stdin", "--fix-thin"],
        cwd=repo,
        env={**os.environ, **_ENV},
        input=bundle[end + 2 :],
        capture_output=True,
    )
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip()
        raise TransferError(f"git index-pack in {repo}: {why}")


def restore(worktree: Path, state: TreeState) -> None:
    """Make the worktree what ``state`` says (its objects already here): the files of
    ``state.tree``, the branch at ``state.head``, the merge in progress or none. Untracked
    files it did not have are removed; ignored ones stay."""
    if git(worktree, "branch", "--show-current").strip() != state.branch:
        git(worktree, "checkout", "-q", "-f", "-B", state.branch, state.head)
    git(worktree, "reset", "-q", "--hard", state.tree)
    git(worktree, "clean", "-q", "-f", "-d")
    if state.tree != state.head:
        git(worktree, "reset", "-q", state.head)
    merging = _git_dir(worktree) / "MERGE_HEAD"
    if state.merge_head:
        merging.write_text(state.merge_head + "\n")
        msg = merging.with_name("MERGE_MSG")
        if not msg.exists():
            msg.write_text("Merge branch 'main'\n")
    else:
        merging.unlink(missing_ok=True)
        merging.with_name("MERGE_MSG").unlink(missing_ok=True)
