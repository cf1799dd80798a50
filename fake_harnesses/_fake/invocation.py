"""One fake invocation: what is known about it (``Run``), its stdin and its session store.

Every CLI module fills a ``Run`` from its argv (prompt, model, format, auto-approve, session),
and the agent turn, the log and the output read it. The session store is the fakes' own
(``$OOMPA_FAKE_STATE/<cli>/sessions``); each CLI decides how sessions are scoped and found,
this module only keeps them. Also the small helpers several CLIs share (ids, atomic writes,
finding the git repository of a folder).
"""

from __future__ import annotations

import os
import time

_T0 = time.monotonic()  # the fake's start, for the durations it reports


def state_dir() -> str:
    s = os.environ.get("OOMPA_FAKE_STATE")
    if s:
        return s
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "oompa-fake")


def atomic_write(path: str, text: str) -> None:
    """Write via a unique temp file and rename, so concurrent fakes never see a torn file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def new_uuid() -> str:
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid(s: str) -> bool:
    parts = s.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(c in "0123456789abcdefABCDEF" for p in parts for c in p)


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in s) or "_"


def find_git(path: str) -> str | None:
    """The git common dir of the repo containing ``path`` (worktrees resolve to the main repo)."""
    p = os.path.realpath(path)
    while True:
        dot = os.path.join(p, ".git")
        if os.path.isdir(dot):
            return dot
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as f:
                    gitdir = f.read().strip().removeprefix("gitdir:").strip()
                gitdir = os.path.realpath(os.path.join(p, gitdir))
                common = os.path.join(gitdir, "commondir")
                if os.path.isfile(common):
                    with open(common, encoding="utf-8") as f:
                        return os.path.realpath(os.path.join(gitdir, f.read().strip()))
                return gitdir
            except OSError:
                return None
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent


class Run:
    """Everything known about this invocation; feeds the log line."""

    def __init__(self, harness: str, argv: list[str]) -> None:
        self.harness = harness
        self.argv = argv
        try:
            self.cwd = os.getcwd()
        except OSError:
            self.cwd = os.environ.get("PWD", "/")
        self.workdir = self.cwd
        self.prompt: str | None = None
        self.stdin_text: str | None = None
        self.stdin_state: str | None = None
        self.session_id: str | None = None
        self.session: dict | None = None
        self.resumed = False
        self.fmt: str | None = None
        self.model: str | None = None
        self.auto = False
        self.role: str | None = None
        self.worker: str | None = None
        self.swarm: str | None = None
        self.call: int | None = None
        self.logged = False
        self.extra: dict = {}
        # What the turn did, in order, as the CLI's tool calls show it (``agent_work.Turn``):
        # {"tool": "write", "path", "content"} or {"tool": "shell", "command"}, with "output",
        # "code" and "denied".
        self.actions: list[dict] = []

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - _T0) * 1000)

    # -- stdin ------------------------------------------------------------------------------
    def read_stdin(self, wait: float | None) -> None:
        """wait=None: read to EOF whenever stdin is not a TTY (codex, opencode: an open pipe
        blocks). wait=N: wait up to N s for data, then read to EOF (claude 3 s, gemini 0.5 s)."""
        try:
            if os.isatty(0):
                self.stdin_state = "tty"
                return
        except OSError:
            self.stdin_state = "closed"
            return
        if wait is not None:
            import select

            try:
                ready, _, _ = select.select([0], [], [], wait)
            except (OSError, ValueError):
                self.stdin_state = "closed"
                return
            if not ready:
                self.stdin_state = "timeout"
                return
        chunks = []
        try:
            while True:
                b = os.read(0, 65536)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            self.stdin_state = "closed"
            return
        data = b"".join(chunks).decode("utf-8", "replace")
        self.stdin_state = "data" if data else "eof"
        self.stdin_text = data or None

    # -- sessions ---------------------------------------------------------------------------
    def session_file(self, sid: str) -> str:
        return os.path.join(state_dir(), self.harness, "sessions", safe_name(sid) + ".json")

    def load_session(self, sid: str) -> dict | None:
        import json

        try:
            with open(self.session_file(sid), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("id") == sid else None

    def all_sessions(self) -> list[dict]:
        import json

        d = os.path.join(state_dir(), self.harness, "sessions")
        out = []
        try:
            names = os.listdir(d)
        except OSError:
            return out
        for n in names:
            if n.endswith(".json"):
                try:
                    with open(os.path.join(d, n), encoding="utf-8") as f:
                        s = json.load(f)
                except (OSError, ValueError):
                    continue
                if isinstance(s, dict) and "id" in s:
                    out.append(s)
        out.sort(key=lambda s: (s.get("created_at", 0), s.get("id", "")))
        return out

    def start_session(self, sid: str, scope: str, fork_of: dict | None = None) -> None:
        now = time.time()
        self.session_id = sid
        self.session = {
            "id": sid,
            "harness": self.harness,
            "scope": scope,
            "cwd": self.workdir,
            "model": self.model,
            "created_at": now,
            "updated_at": now,
            "forked_from": fork_of["id"] if fork_of else None,
            "turns": list(fork_of.get("turns", [])) if fork_of else [],
        }

    def resume_session(self, session: dict) -> None:
        self.session = session
        self.session_id = session["id"]
        self.resumed = True

    def save_session(self) -> None:
        import json

        if self.session is None:
            return
        self.session["updated_at"] = time.time()
        atomic_write(
            self.session_file(self.session["id"]),
            json.dumps(self.session, indent=1, ensure_ascii=False),
        )
