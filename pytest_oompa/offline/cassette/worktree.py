"""What a call did to its working directory, captured as patches, and doing it again.

Recording takes a ``snapshot`` of the call's working tree before it (HEAD, and the tree of
everything in it, untracked files included, through a throwaway index) and ``capture``s after
it the new commits, each as a patch with its message and identities, and the change of the
working tree as one patch. Replay ``apply_changes`` them to a fresh repository: the same
commits (same messages, identities and dates) and the same files. Plain git processes, no
package imports: the fakes run this during replay.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitFailed(Exception):
    pass


_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


def git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    check: bool = True,
) -> str:
    full = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    full.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"})
    full.update(env or {})
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=full,
        input=None if stdin is None else stdin.encode("utf-8", "surrogateescape"),
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        check=False,
    )
    out = proc.stdout.decode("utf-8", "surrogateescape")
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise GitFailed(f"git {' '.join(args[:3])} failed in {cwd}: {err or out.strip()}")
    return out


@dataclass(frozen=True)
class Snapshot:
    """A working directory's state: its HEAD commit and the tree of everything in it
    (committed or not, untracked included, ignored files excluded)."""

    top: Path
    head: str | None
    tree: str


@contextlib.contextmanager
def _temp_index(top: Path, seed: str | None = None) -> Iterator[dict[str, str]]:
    """GIT_INDEX_FILE pointing to a throwaway index: a copy of the real one (keeping its stat
    cache, so ``add -A`` is fast), or ``seed``'s tree, or empty."""
    with tempfile.TemporaryDirectory(prefix="oompa-cassette-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if seed == "copy":
            real = top / git(top, "rev-parse", "--git-path", "index").strip()
            if real.is_file():
                shutil.copyfile(real, env["GIT_INDEX_FILE"])
        elif seed:
            git(top, "read-tree", seed, env=env)
        yield env


def snapshot(cwd: Path) -> Snapshot | None:
    """None when ``cwd`` is not in a git working tree."""
    try:
        top = Path(git(cwd, "rev-parse", "--show-toplevel").strip())
    except (GitFailed, OSError):
        return None
    head = git(top, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
    with _temp_index(top, "copy") as env:
        git(top, "add", "-A", env=env)
        tree = git(top, "write-tree", env=env).strip()
    return Snapshot(top, head, tree)


def _diff(top: Path, a: str, b: str) -> str:
    return git(
        top,
        "diff",
        "--binary",
        "--full-index",
        "--no-renames",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        a,
        b,
    )


_IDENT = re.compile(r"^(author|committer) (.*) <(.*)> (\d+ [+-]\d{4})$", re.M)


def _commit(top: Path, parent: str | None, sha: str) -> dict[str, Any]:
    raw = git(top, "cat-file", "commit", sha)
    headers, _, message = raw.partition("\n\n")
    who = {m[0]: {"name": m[1], "email": m[2], "date": m[3]} for m in _IDENT.findall(headers)}
    return {
        "message": message,
        "author": who.get("author"),
        "committer": who.get("committer"),
        "patch": _diff(top, parent or EMPTY_TREE, sha),
    }


def capture(before: Snapshot) -> dict[str, Any] | None:
    """What happened in ``before``'s working tree since: the new commits (each as a patch
    against its parent, with message and identities; ``drop`` commits of the old HEAD were
    undone first, for an amend or a reset) and the working tree's change as one patch. None
    when nothing changed."""
    after = snapshot(before.top)
    if after is None or (after.head == before.head and after.tree == before.tree):
        return None
    top = before.top
    commits: list[dict[str, Any]] = []
    drop = 0
    if after.head is not None and after.head != before.head:
        base = before.head
        if base is not None:
            ancestor = subprocess.run(
                ["git", "merge-base", "--is-ancestor", base, after.head],
                cwd=top,
                capture_output=True,
                check=False,
            )
            if ancestor.returncode != 0:  # history rewritten: undo to the fork point first
                fork = git(top, "merge-base", base, after.head, check=False).strip() or None
                span = f"{fork}..{base}" if fork else base
                drop = int(git(top, "rev-list", "--count", "--first-parent", span).strip())
                base = fork
        span = f"{base}..{after.head}" if base else after.head
        chain = git(top, "rev-list", "--reverse", "--first-parent", span).split()
        parent = base
        for sha in chain:
            commits.append(_commit(top, parent, sha))
            parent = sha
    return {
        "head-before": before.head,
        "head-after": after.head,
        "drop": drop,
        "commits": commits,
        "patch": _diff(top, before.tree, after.tree),
    }


def apply_changes(cwd: Path, changes: Mapping[str, Any]) -> None:
    """Do again what a recorded call did: undo ``drop`` commits, make its commits (same
    patches, messages, identities and dates) on HEAD, change the working tree by its patch and
    leave the index at the new HEAD. Raises GitFailed when a patch does not apply."""
    top = Path(git(cwd, "rev-parse", "--show-toplevel").strip())
    head = git(top, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
    base = head
    drop = int(changes.get("drop") or 0)
    if drop and head:
        base = git(top, "rev-parse", "-q", "--verify", f"HEAD~{drop}", check=False).strip()
        base = base or None
    commits = changes.get("commits") or []
    for commit in commits:
        with _temp_index(top, base) as env:
            if not base:
                git(top, "read-tree", "--empty", env=env)
            if commit.get("patch"):
                apply = ("apply", "--cached", "--binary", "--whitespace=nowarn", "-")
                git(top, *apply, env=env, stdin=commit["patch"])
            tree = git(top, "write-tree", env=env).strip()
        ident: dict[str, str] = {}
        for role, prefix in (("author", "GIT_AUTHOR"), ("committer", "GIT_COMMITTER")):
            who = commit.get(role) or {}
            for key in ("name", "email", "date"):
                if who.get(key):
                    ident[f"{prefix}_{key.upper()}"] = who[key]
        parents = ["-p", base] if base else []
        base = git(
            top,
            "-c",
            "commit.gpgsign=false",
            "commit-tree",
            tree,
            *parents,
            "-F",
            "-",
            env=ident,
            stdin=commit.get("message") or "",
        ).strip()
    if base and base != head:
        git(top, "update-ref", "-m", "oompa replay", "HEAD", base, *([head] if head else []))
    if changes.get("patch"):
        git(top, "apply", "--binary", "--whitespace=nowarn", "-", stdin=changes["patch"])
    if commits or drop:
        git(top, "reset", "-q")


def repo_root(path: Path | str) -> str | None:
    """The project root a path belongs to: the folder of the main repository's ``.git`` (a
    worktree resolves to the repository it belongs to). Pure Python: no git process."""
    p = os.path.realpath(path)
    while True:
        dot = os.path.join(p, ".git")
        if os.path.isdir(dot):
            return p
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as f:
                    gitdir = f.read().strip().removeprefix("gitdir:").strip()
                gitdir = os.path.realpath(os.path.join(p, gitdir))
                common = os.path.join(gitdir, "commondir")
                if os.path.isfile(common):
                    with open(common, encoding="utf-8") as f:
                        gitdir = os.path.realpath(os.path.join(gitdir, f.read().strip()))
                return os.path.dirname(gitdir)
            except OSError:
                return None
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
