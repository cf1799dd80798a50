"""Record and replay of harness calls: cassettes.

A *cassette* is one JSON file per swarm run (``{swarm-id}.cassette.json``, shape in
``schemas/cassette.schema.json``, described in ``docs/cassettes.md``) holding every harness call
of the run: who made it (worker, role, call index), what ran (argv, prompt, working directory,
an environment subset), what came back (stdout, stderr, exit code) and what the call did to the
files of its working directory (its commits as patches with their messages and identities, and
the change of the working tree as one patch). Secrets are redacted before anything is written.

- ``CassetteRecorder`` is a ``CallObserver`` (``SwarmOptions.call_observer``): it snapshots the
  working directory before a call, and after it records the call and rewrites the cassette.
- ``replay`` is what the fake harnesses run for each call when ``OOMPA_FAKE_CASSETTE`` is set:
  find the recorded call by (worker, role, call index), check strictly that this call is the
  same once what legitimately varies between runs is normalized, apply the recorded file
  changes and hand back the recorded output (session ids, swarm id and paths mapped to this
  run's); a call that differs raises ``ReplayMismatch`` with a unified diff.
- ``comparable_artifacts`` reads a run folder with everything that varies between a run and
  its replay (timestamps, durations, swarm id, paths, commit and session ids) normalized.

This module never imports pytest, and imports nothing but the standard library at module level:
the fake harnesses run isolated (``python -IS``) and load this file by path for replay. The
engine-side parts import the rest of the package lazily.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_oompa.core.config import AgentSpec
    from pytest_oompa.core.results import CallRecord
    from pytest_oompa.harnesses.registry import HarnessRegistry
    from pytest_oompa.harnesses.spec import HarnessCommand

FORMAT = "oompa-cassette"
VERSION = 1
SUFFIX = ".cassette.json"
ENV_CASSETTE = "OOMPA_FAKE_CASSETTE"
#: Exit code of a fake harness whose call does not match the cassette (the fakes' own codes:
#: 64 not emulated, 70 internal error, 97 bad scenario or cassette).
REPLAY_MISMATCH = 96
#: What is normalized before a live call is compared with its recording (docs/cassettes.md).
RULES = ("swarm-id", "paths", "session-ids", "timestamps", "task-status")
REDACTED = "<redacted>"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
VERSION_TIMEOUT = 10.0


class CassetteError(Exception):
    """A cassette that cannot be used: missing, ambiguous, unreadable or of another format."""


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


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------

#: An environment variable whose name contains one of these holds a secret.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_B = r"(?<![A-Za-z0-9_])"  # not in the middle of a word
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(_B + r"sk-[A-Za-z0-9][A-Za-z0-9_\-]{10,}"), REDACTED),  # OpenAI, Anthropic
    (re.compile(_B + r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{16,}"), REDACTED),  # GitHub
    (re.compile(_B + r"github_pat_[A-Za-z0-9_]{16,}"), REDACTED),
    (re.compile(_B + r"AIza[0-9A-Za-z_\-]{20,}"), REDACTED),  # Google
    (re.compile(_B + r"xox[abposr]-[A-Za-z0-9\-]{10,}"), REDACTED),  # Slack
    (re.compile(_B + r"AKIA[0-9A-Z]{16}(?![A-Za-z0-9])"), REDACTED),  # AWS access key id
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE), r"\1" + REDACTED),
)
_MIN_SECRET_VALUE = 8  # shorter values of secret variables ("1", "true") are not searched for


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Removes secrets from text: anything that looks like a key or a bearer token, and the
    literal values of the given environment's secret variables wherever they appear."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        values = {
            v
            for k, v in (env or {}).items()
            if is_secret_name(k) and len(v) >= _MIN_SECRET_VALUE and not v.startswith(("/", "~"))
        }
        self.values = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern, replacement in SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: REDACTED if is_secret_name(k) else self.text(v) for k, v in env.items()}

    def patch(self, patch: str) -> str:
        """A git patch redacted line by line, but its binary hunks (base85 data, whose
        checksum a redaction would break; a key never shows in it as text)."""
        out: list[str] = []
        binary = False
        for line in patch.split("\n"):
            if line.startswith("diff --git "):
                binary = False  # a binary section lasts until the next file
            elif line == "GIT binary patch":
                binary = True
            out.append(line if binary else self.text(line))
        return "\n".join(out)

    def changes(self, changes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if changes is None:
            return None
        commits = [
            {
                **c,
                "message": self.text(c.get("message") or ""),
                "author": self.deep(c.get("author")),
                "committer": self.deep(c.get("committer")),
                "patch": self.patch(c.get("patch") or ""),
            }
            for c in changes.get("commits") or []
        ]
        return {**changes, "commits": commits, "patch": self.patch(changes.get("patch") or "")}

    def deep(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists) redacted; keys are kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


# --------------------------------------------------------------------------------------------
# Git: what a call did to its working directory, and doing it again
# --------------------------------------------------------------------------------------------


class GitFailed(Exception):
    pass


_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


def _git(
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
            real = top / _git(top, "rev-parse", "--git-path", "index").strip()
            if real.is_file():
                shutil.copyfile(real, env["GIT_INDEX_FILE"])
        elif seed:
            _git(top, "read-tree", seed, env=env)
        yield env


def snapshot(cwd: Path) -> Snapshot | None:
    """None when ``cwd`` is not in a git working tree."""
    try:
        top = Path(_git(cwd, "rev-parse", "--show-toplevel").strip())
    except (GitFailed, OSError):
        return None
    head = _git(top, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
    with _temp_index(top, "copy") as env:
        _git(top, "add", "-A", env=env)
        tree = _git(top, "write-tree", env=env).strip()
    return Snapshot(top, head, tree)


def _diff(top: Path, a: str, b: str) -> str:
    return _git(
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
    raw = _git(top, "cat-file", "commit", sha)
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
                fork = _git(top, "merge-base", base, after.head, check=False).strip() or None
                span = f"{fork}..{base}" if fork else base
                drop = int(_git(top, "rev-list", "--count", "--first-parent", span).strip())
                base = fork
        span = f"{base}..{after.head}" if base else after.head
        chain = _git(top, "rev-list", "--reverse", "--first-parent", span).split()
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
    top = Path(_git(cwd, "rev-parse", "--show-toplevel").strip())
    head = _git(top, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).strip() or None
    base = head
    drop = int(changes.get("drop") or 0)
    if drop and head:
        base = _git(top, "rev-parse", "-q", "--verify", f"HEAD~{drop}", check=False).strip()
        base = base or None
    commits = changes.get("commits") or []
    for commit in commits:
        with _temp_index(top, base) as env:
            if not base:
                _git(top, "read-tree", "--empty", env=env)
            if commit.get("patch"):
                apply = ("apply", "--cached", "--binary", "--whitespace=nowarn", "-")
                _git(top, *apply, env=env, stdin=commit["patch"])
            tree = _git(top, "write-tree", env=env).strip()
        ident: dict[str, str] = {}
        for role, prefix in (("author", "GIT_AUTHOR"), ("committer", "GIT_COMMITTER")):
            who = commit.get(role) or {}
            for key in ("name", "email", "date"):
                if who.get(key):
                    ident[f"{prefix}_{key.upper()}"] = who[key]
        parents = ["-p", base] if base else []
        base = _git(
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
        _git(top, "update-ref", "-m", "oompa replay", "HEAD", base, *([head] if head else []))
    if changes.get("patch"):
        _git(top, "apply", "--binary", "--whitespace=nowarn", "-", stdin=changes["patch"])
    if commits or drop:
        _git(top, "reset", "-q")


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


# --------------------------------------------------------------------------------------------
# Normalization and matching
# --------------------------------------------------------------------------------------------

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#: A session id as the CLIs print and take them: a UUID (claude, gemini, codex), ses_… (opencode).
SESSION_ID = re.compile(rf"{_UUID}|ses_[0-9A-Za-z]{{26}}")
TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?"
)
TASK_STATUS = re.compile(
    r"(## Task status\n)Pending: \d+, In Progress: \d+, Complete: \d+\nPending tasks: [^\n]*"
)
TASK_STATUS_MASK = r"\1Pending: <n>, In Progress: <n>, Complete: <n>\nPending tasks: <ids>"
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
    if "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED" in prompt:
        return "reviewer"
    if "Fix these issues." in prompt:
        return "fix"
    if "VERDICT: NEEDS_CHANGES" in prompt:
        return "reviewer"
    return "worker"


def call_key(slot: str, role: str, index: int) -> str:
    return f"{slot}/{role}/{index}"


def _path_variants(path: str | None) -> list[str]:
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
            for path in _path_variants(self.repo):
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


# --------------------------------------------------------------------------------------------
# Cassette files
# --------------------------------------------------------------------------------------------


def resolve_cassette(path: Path | str) -> Path:
    """A cassette file, or a folder holding exactly one ``*.cassette.json``."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob(f"*{SUFFIX}"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            names = "".join(f"\n  {f.name}" for f in found)
            raise CassetteError(f"{p}: {what} cassettes (*{SUFFIX}); name one file{names}")
        return found[0]
    if not p.is_file():
        raise CassetteError(f"{p}: no such cassette")
    return p


def load(path: Path | str) -> dict[str, Any]:
    """Read a cassette (standard library only: the fakes use this). Checks the format and
    version and indexes the calls by key; ``validate`` checks the full schema."""
    p = resolve_cassette(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CassetteError(f"{p}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CassetteError(f"{p}: not an {FORMAT} file")
    if data.get("version") != VERSION:
        raise CassetteError(
            f"{p}: cassette version {data.get('version')!r}; this pytest-oompa reads {VERSION}"
        )
    calls = data.get("calls")
    if not isinstance(calls, list) or not all(isinstance(c, dict) and "key" in c for c in calls):
        raise CassetteError(f"{p}: 'calls' must be a list of calls with a 'key'")
    data["_path"] = str(p)
    return data


def validate(data: Mapping[str, Any], where: str = "cassette") -> None:
    """Check ``data`` against ``schemas/cassette.schema.json``; raises CassetteError."""
    problems = sorted(
        _validator().iter_errors({k: v for k, v in data.items() if not k.startswith("_")}),
        key=lambda e: list(e.absolute_path),
    )
    if problems:
        first = problems[0]
        at = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CassetteError(f"{where}: {at}: {first.message}{more}")


_VALIDATOR: Any = None


def _validator() -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft7Validator

        from pytest_oompa.runs.artifacts import schemas_dir

        schema = json.loads((schemas_dir() / "cassette.schema.json").read_text(encoding="utf-8"))
        _VALIDATOR = Draft7Validator(schema)
    return _VALIDATOR


def _write(path: Path, data: Mapping[str, Any]) -> None:
    # ensure_ascii: a patch of a non-UTF-8 file carries surrogate escapes, kept as \udcXX.
    text = json.dumps(data, indent=2, ensure_ascii=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _merge(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """``data`` plus what another process of the same run already wrote to ``path``."""
    try:
        other = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return data
    if not isinstance(other, dict) or other.get("swarm-id") != data["swarm-id"]:
        return data
    mine = {c["key"] for c in data["calls"]}
    calls = data["calls"] + [c for c in other.get("calls") or [] if c.get("key") not in mine]
    calls.sort(key=lambda c: (c.get("started-at") or "", c.get("seq") or 0))
    merged = dict(data)
    for key in ("repo", "main-before", "main-tree-before"):
        merged[key] = data.get(key) or other.get(key)
    merged["recorded-at"] = min(data["recorded-at"], other.get("recorded-at") or "~")
    versions = dict(other.get("harness-versions") or {})
    versions.update({k: v for k, v in data["harness-versions"].items() if v or k not in versions})
    merged["harness-versions"] = dict(sorted(versions.items()))
    merged["calls"] = calls
    return merged


def utc_now(precise: bool = False) -> str:
    """Now in UTC, to the millisecond (``precise``: the microsecond, to order calls)."""
    now = time.time()
    fraction = f"{int(now % 1 * 1e6):06d}" if precise else f"{int(now % 1 * 1000):03d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{fraction}Z"


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass
class _Started:
    seq: int
    key: str
    worker: str | None
    role: str
    index: int
    name: str
    agent: AgentSpec
    argv: tuple[str, ...]
    prompt: str
    cwd: Path
    env: dict[str, str]
    before: Snapshot | None
    started_at: str = ""
    problem: str | None = None


class CassetteRecorder:
    """A ``CallObserver`` that writes ``{directory}/{swarm-id}.cassette.json``, rewritten
    (atomically) after every call. Thread-safe. Never fails a call: a capture that went wrong
    is kept in the call's ``capture-error`` and in ``problems``.

    ``env`` is the environment harness variables are picked from (default: this process's),
    ``extra_env`` and ``env_pass`` the swarm's always-given variables and pass-through patterns,
    as ``HarnessCaller`` uses them: the cassette keeps, per call, the variables the harness got
    beyond the base allowlist (its CLI's own, the configured ones), redacted.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        swarm_id: str | None = None,
        repo_root: Path | str | None = None,
        registry: HarnessRegistry | None = None,
        env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        env_pass: Sequence[str] = (),
        rules: Sequence[str] = RULES,
        record_versions: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.swarm_id = swarm_id
        self.repo_root = str(Path(repo_root).resolve()) if repo_root else None
        self.registry = registry
        self.env = dict(os.environ if env is None else env)
        self.extra_env = dict(extra_env or {})
        self.env_pass = tuple(env_pass)
        self.rules = list(rules)
        self.record_versions = record_versions
        self.redactor = Redactor({**self.env, **self.extra_env})
        self.problems: list[str] = []
        self.recorded_at = utc_now()
        self._calls: list[dict[str, Any]] = []
        self._counters: dict[tuple[str, str], int] = {}
        self._versions: dict[str, str | None] = {}
        self._main: tuple[str | None, str | None] | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        """The cassette file (None until the swarm id is known)."""
        return self.directory / f"{self.swarm_id}{SUFFIX}" if self.swarm_id else None

    @property
    def calls(self) -> list[dict[str, Any]]:
        """This recorder's calls, in the order they started."""
        with self._lock:
            return sorted(self._calls, key=lambda c: c["seq"])

    # -- CallObserver --------------------------------------------------------------------------

    def before(
        self,
        *,
        name: str,
        role: str,
        agent: AgentSpec,
        command: HarnessCommand,
        prompt: str,
        cwd: Path,
    ) -> object:
        swarm, worker = prompt_tag(prompt)
        slot = call_slot(worker, agent.harness, agent.model)
        as_seen = infer_role(prompt, worker)  # what replay can tell; normally ``role``
        with self._lock:
            self._seq += 1
            seq = self._seq
            count = (slot, as_seen)
            n = self._counters[count] = self._counters.get(count, 0) + 1
            if self.swarm_id is None and swarm:
                self.swarm_id = swarm
            if self.repo_root is None:
                self.repo_root = repo_root(cwd)
            first_of_harness = agent.harness not in self._versions
            if first_of_harness:
                self._versions[agent.harness] = None
        started = _Started(
            seq=seq,
            key=call_key(slot, as_seen, n),
            worker=worker,
            role=role,
            index=n,
            name=name,
            agent=agent,
            argv=tuple(command.argv),
            prompt=prompt,
            cwd=Path(cwd),
            env={},
            before=None,
            started_at=utc_now(precise=True),
        )
        try:
            started.env = self._env_subset(agent.harness, command)
            if self._main is None:
                self._main = self._main_commit()
                self._exclude_directory()
            if first_of_harness and self.record_versions:
                version = self._version(agent.harness, command)
                with self._lock:
                    self._versions[agent.harness] = version
            started.before = snapshot(started.cwd)
        except Exception as exc:  # recording must never cost the call
            started.problem = f"before the call: {type(exc).__name__}: {exc}"
        return started

    def after(self, token: object, *, record: CallRecord, stdout: str, stderr: str) -> None:
        if not isinstance(token, _Started):
            return
        s = token
        changes = None
        problem = s.problem
        if s.before is not None and problem is None:
            try:
                changes = capture(s.before)
            except Exception as exc:
                problem = f"after the call: {type(exc).__name__}: {exc}"
        call: dict[str, Any] = {
            "key": s.key,
            "seq": s.seq,
            "started-at": s.started_at,
            "name": s.name,
            "worker": s.worker,
            "role": s.role,
            "index": s.index,
            "harness": s.agent.harness,
            "model": s.agent.model,
            "reasoning": s.agent.reasoning,
            "argv": list(s.argv),
            "cwd": str(s.cwd),
            "prompt": s.prompt,
            "env": self.redactor.env(s.env),
            "session-id": record.session_id,
            "exit-code": record.exit_code,
            "failure": record.failure,
            "ended-at": utc_now(precise=True),
            "duration-ms": record.duration_ms,
            "reply": record.reply,
            "stdout": stdout,
            "stderr": stderr,
            "changes": changes,
            "capture-error": problem,
        }
        call = {k: v if k in ("env", "changes") else self.redactor.deep(v) for k, v in call.items()}
        call["changes"] = self.redactor.changes(changes)
        with self._lock:
            self._calls.append(call)
            if problem:
                self.problems.append(f"{s.key}: {problem}")
        try:
            self.write(check=call)
        except Exception as exc:
            with self._lock:
                self.problems.append(f"writing the cassette: {type(exc).__name__}: {exc}")

    # -- the file ------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        from pytest_oompa import __version__

        main, tree = self._main or (None, None)
        with self._lock:
            versions = dict(sorted(self._versions.items()))
        return {
            "format": FORMAT,
            "version": VERSION,
            "swarm-id": self.swarm_id,
            "recorded-at": self.recorded_at,
            "tool-version": __version__,
            "repo": self.repo_root,
            "main-before": main,
            "main-tree-before": tree,
            "harness-versions": versions,
            "normalize": list(self.rules),
        }

    def document(self) -> dict[str, Any]:
        return {**self.header(), "calls": self.calls}

    def write(self, check: Mapping[str, Any] | None = None) -> Path | None:
        """Rewrite the cassette (validated: the header and ``check``, the newest call).

        Several processes may record one run (pytest-xdist spreads its workers): under a
        file lock, the calls already in the file that this recorder does not have (other
        keys) are kept, so the file ends up with every process's calls."""
        path = self.path
        if path is None:
            return None
        with self._write_lock, _file_lock(path.with_name(f".{path.name}.lock")):
            data = self.document()
            sample = {**data, "calls": [check] if check is not None else data["calls"]}
            validate(sample, where=str(path))
            _write(path, _merge(data, path))
        return path

    # -- helpers -------------------------------------------------------------------------------

    def _registry(self) -> HarnessRegistry:
        if self.registry is None:
            from pytest_oompa.harnesses.registry import HarnessRegistry

            self.registry = HarnessRegistry()
        return self.registry

    def _env_subset(self, harness: str, command: HarnessCommand) -> dict[str, str]:
        """The variables the harness got beyond the base allowlist (PATH, HOME, locale, …)."""
        from pytest_oompa.harnesses.registry import env_matches

        patterns = (*self._registry().get(harness).env_pass, *self.env_pass)
        env = {k: v for k, v in self.env.items() if env_matches(k, patterns)}
        env.update(self.extra_env)
        env.update(command.env)
        return dict(sorted(env.items()))

    def _version(self, harness: str, command: HarnessCommand) -> str | None:
        spec = self._registry().get(harness)
        if os.path.basename(command.argv[0]) != spec.binary:
            return None  # a wrapper (pytest_oompa_harness_command) would answer for itself
        try:
            proc = subprocess.run(
                [command.argv[0], *spec.version_args],
                env={**self.env, **self.extra_env, **command.env},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=VERSION_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = proc.stdout.strip().splitlines()
        return self.redactor.text(lines[0][:200]) if proc.returncode == 0 and lines else None

    def _exclude_directory(self) -> None:
        """A cassette folder inside the project is kept out of its tree (and of the root's
        snapshots) like the runs folder: in .git/info/exclude."""
        if not self.repo_root:
            return
        root, folder = Path(self.repo_root), self.directory.resolve()
        if folder != root and folder.is_relative_to(root):
            from pytest_oompa.engine.git import Repo

            Repo(root).exclude(f"/{folder.relative_to(root).as_posix()}/")

    def _main_commit(self) -> tuple[str | None, str | None]:
        if not self.repo_root:
            return None, None
        root = Path(self.repo_root)
        main = _git(root, "rev-parse", "-q", "--verify", "main^{commit}", check=False).strip()
        tree = _git(root, "rev-parse", "-q", "--verify", "main^{tree}", check=False).strip()
        return main or None, tree or None


# --------------------------------------------------------------------------------------------
# Replaying (run by the fake harnesses, one call per process)
# --------------------------------------------------------------------------------------------


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
    for path in _path_variants(recorded_side.repo):
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


#: How long a reply waits for the replies recorded as coming before it (ReplayOrder).
ORDER_TIMEOUT = 10.0
#: ... and how long after the engine got them: it acts on a reply (claims) right after.
ORDER_SETTLE = 0.03


class ReplayOrder:
    """A ``CallObserver`` for a replay (``--oompa-replay`` installs it): the engine gets the
    calls' replies in the order it got them when recorded.

    The fakes answer at once, so left alone the calls of workers running side by side would
    end in any order, and what the engine decides from that order (which of two workers
    claiming one task gets it, which merge comes first) could go the other way. ``after``
    (which runs before the engine acts on a reply) waits until every call recorded as ending
    before this one has been handed to the engine, ORDER_SETTLE ago: the calls this replay has
    begun, and the worker calls it is going to make (``expect``: the selected workers and
    iterations; all when not said). Bounded by ``timeout``, so a replay that diverged never
    hangs on it. Thread-safe; processes of one replay share ``state_dir`` (pytest-xdist)."""

    def __init__(
        self, cassette: Mapping[str, Any], state_dir: Path | str, timeout: float = ORDER_TIMEOUT
    ) -> None:
        self.calls = {c["key"]: c for c in cassette["calls"]}
        self.state = ReplayState(state_dir)
        self.timeout = timeout
        self._counters: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def before(
        self,
        *,
        name: str,
        role: str,
        agent: AgentSpec,
        command: HarnessCommand,
        prompt: str,
        cwd: Path,
    ) -> object:
        _, worker = prompt_tag(prompt)
        count = (call_slot(worker, agent.harness, agent.model), infer_role(prompt, worker))
        with self._lock:
            n = self._counters[count] = self._counters.get(count, 0) + 1
        key = call_key(*count, n)
        with self.state.locked() as data:
            data["begun"].append(key)
        return key

    def after(self, token: object, *, record: CallRecord, stdout: str, stderr: str) -> None:
        if not isinstance(token, str):
            return
        self.wait(token)
        with self.state.locked() as data:
            data["handed"][token] = time.time()

    def wait(self, key: str) -> None:
        end = (self.calls.get(key) or {}).get("ended-at")
        if not end:
            return
        earlier = {k: c for k, c in self.calls.items() if c.get("ended-at") and c["ended-at"] < end}
        deadline = time.monotonic() + self.timeout
        while earlier and time.monotonic() < deadline:
            data = self.state.read()
            handed: dict[str, float] = data.get("handed") or {}
            begun = set(data.get("begun") or [])
            expected = data.get("expected")
            waiting = [
                k
                for k, c in earlier.items()
                if (k in begun or _will_run(c, expected))
                and (k not in handed or time.time() - handed[k] < ORDER_SETTLE)
            ]
            if not waiting:
                return
            time.sleep(0.005)


_ITERATION = re.compile(r"-i(\d+)-")


def _will_run(call: Mapping[str, Any], expected: Mapping[str, int] | None) -> bool:
    """Whether this replay is going to make ``call``: a worker's call, of a selected worker
    and iteration. (Probes and the planner come before every worker: done, or not made.)"""
    worker = call.get("worker")
    if not worker or worker == "planner" or call.get("role") == "probe":
        return False
    if expected is None:
        return True
    m = _ITERATION.search(str(call.get("name") or ""))
    return worker in expected and (m is None or int(m.group(1)) <= int(expected[worker]))


def expect(state_dir: Path | str, limits: Mapping[str, int] | None) -> None:
    """Tell a replay which workers will run, up to which iteration (None: all)."""
    with ReplayState(state_dir).locked() as data:
        data["expected"] = None if limits is None else dict(limits)


def _key_order(key: str) -> tuple[str, int]:
    head, _, n = key.rpartition("/")
    return head, int(n) if n.isdigit() else 0


def unreplayed(cassette: Mapping[str, Any], state_dir: Path | str) -> list[str]:
    """The recorded calls no fake asked for (in recording order)."""
    used = set(ReplayState(state_dir).read().get("used", []))
    return [c["key"] for c in cassette["calls"] if c["key"] not in used]


def replayed(state_dir: Path | str) -> list[str]:
    return list(ReplayState(state_dir).read().get("used", []))


# --------------------------------------------------------------------------------------------
# Comparing runs
# --------------------------------------------------------------------------------------------

_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_UUID_RE = re.compile(_UUID)
_SES = re.compile(r"\bses_[0-9A-Za-z]{26}\b")
#: Fields that measure time or the process, not what the run did.
VOLATILE_KEYS = frozenset({"duration-ms", "pid", "t", "updated-at", "interval-s"})
#: Files of a run folder that say how the run went, not what it did.
VOLATILE_FILES = frozenset({"heartbeat.json", "report.html", "live-summary.json"})


def comparable_artifacts(
    run_dir: Path | str, paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Every artifact of a run folder, validated on read, with what varies between a run and
    its replay normalized: timestamps, durations and pids dropped or masked, the swarm id,
    the given ``paths`` (path -> placeholder), commit hashes and session ids masked, the
    queue counts of a prompt's task status masked (workers that start at once see the queue
    in whatever order they were scheduled), command logs reduced to their start, their whole
    stdout and stderr, and their exit. Two runs whose results are equal did the same thing."""
    from pytest_oompa.runs.files import read_any

    run = Path(run_dir)
    swaps = {run.name: "<swarm>"}
    for where, label in (paths or {}).items():
        for variant in _path_variants(str(where)):
            swaps[variant] = label
    order = sorted(swaps, key=len, reverse=True)

    def text(s: str) -> str:
        for old in order:
            s = s.replace(old, swaps[old])
        s = TIMESTAMP.sub("<timestamp>", s)
        s = TASK_STATUS.sub(TASK_STATUS_MASK, s)
        s = _SHA.sub("<sha>", s)
        s = _UUID_RE.sub("<uuid>", s)
        return _SES.sub("<session>", s)

    def norm(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {text(k): norm(v, k) for k, v in value.items() if k not in VOLATILE_KEYS}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            if key == "argv" and items and isinstance(items[0], str):
                items[0] = os.path.basename(items[0])
            return items
        return text(value) if isinstance(value, str) else value

    out: dict[str, Any] = {}
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run).as_posix()
        if path.name in VOLATILE_FILES or path.name.startswith("."):
            continue
        data = read_any(run.parent, path)
        if rel.startswith("commands/"):
            data = _command_log(data)
        if rel == "calls/preflight.json":  # probes run at once: listed as they finish
            data = {**data, "calls": sorted(data["calls"], key=lambda c: c["name"])}
        out[rel] = norm(data)
    return out


def _command_log(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A command log without its chunking: how pipes split the output is not the run's."""
    streams: dict[str, str] = {"stdout": "", "stderr": ""}
    other = []
    for e in events:
        if e.get("event") == "output":
            stream = str(e.get("stream"))
            streams[stream] = streams.get(stream, "") + str(e.get("data", ""))
        else:
            other.append(e)
    return {"events": other, **streams}
