"""Recording: ``CassetteRecorder``, the ``CallObserver`` that writes a run's cassette.

Before each harness call it snapshots the call's working directory; after it, it records the
call (who, what ran, what came back, what it did to the files, all redacted) and rewrites the
cassette atomically. Several processes may record one run (pytest-xdist spreads its workers):
each merges into the same file under one ``SharedLock``, whose file lives in the project's git
folder (where the repository's other locks are) and never in the user's cassette folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .format import FORMAT, SUFFIX, VERSION, utc_now, validate, write_file
from .matching import RULES, call_key, call_slot, infer_role, prompt_tag
from .redact import Redactor
from .worktree import Snapshot, capture, git, repo_root, snapshot

if TYPE_CHECKING:
    from pytest_oompa.core.config import AgentSpec
    from pytest_oompa.core.locks import SharedLock
    from pytest_oompa.core.results import CallRecord
    from pytest_oompa.harnesses.registry import HarnessRegistry
    from pytest_oompa.harnesses.spec import HarnessCommand


VERSION_TIMEOUT = 10.0
#: The file the recorders of a run lock to rewrite its cassette, in the project's git folder.
LOCK_NAME = "oompa-cassette.lock"


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
        self._file_lock: SharedLock | None = None

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

        Several processes may record one run (pytest-xdist spreads its workers): under the
        lock they share (``lock_path``), the calls already in the file that this recorder does
        not have (other keys) are kept, so the file ends up with every process's calls."""
        path = self.path
        if path is None:
            return None
        with self._shared_lock():
            data = self.document()
            sample = {**data, "calls": [check] if check is not None else data["calls"]}
            validate(sample, where=str(path))
            write_file(path, _merge(data, path))
        return path

    @property
    def lock_path(self) -> Path:
        """The lock file of ``write``: ``oompa-cassette.lock`` in the project's git folder, next
        to the repository's own locks. Every process recording the run has the same project,
        so they all serialize on it, and the user never sees it: the cassette folder is theirs.
        Without a project (nothing recorded yet, or not in a git repository) only this
        recorder's threads write: a scratch folder of this process's then."""
        return self._shared_lock().path

    def _shared_lock(self) -> SharedLock:
        with self._lock:
            if self._file_lock is None:
                from pytest_oompa.core.locks import SharedLock

                self._file_lock = SharedLock(self._lock_folder() / LOCK_NAME)
            return self._file_lock

    def _lock_folder(self) -> Path:
        if self.repo_root:
            with contextlib.suppress(OSError):
                found = git(Path(self.repo_root), "rev-parse", "--absolute-git-dir", check=False)
                if found.strip():
                    return Path(found.strip())
        from pytest_oompa.core.paths import scratch_dir

        return scratch_dir("oompa-cassette")

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
        main = git(root, "rev-parse", "-q", "--verify", "main^{commit}", check=False).strip()
        tree = git(root, "rev-parse", "-q", "--verify", "main^{tree}", check=False).strip()
        return main or None, tree or None
