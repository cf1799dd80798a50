"""The bundled fake harness CLIs (fake_harnesses/): argv contracts, sessions, scenarios, log.

Every test runs the real executables in subprocesses, in tmp_path git repositories laid out the
way a swarm lays them out (``root/tasks/pending/*.json`` plus a ``git worktree`` ``root/.w0-i1``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[2] / "fake_harnesses"
HARNESSES = ("claude", "codex", "opencode", "gemini")
MODELS = {
    "claude": "opus",
    "codex": "gpt-5-codex",
    "opencode": "fake/fake-model",
    "gemini": "gemini-2.5-pro",
}
REVIEW_PROMPT = (
    "[oompa:s1:w0] Review the changes in this worktree.\n\nDiff:\n```\n+x\n```\n"
    "\nYour verdict MUST be on its own line, exactly one of:\n"
    "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED\n"
)
FIX_PROMPT = (
    "[oompa:s1:w0] The reviewer found issues:\nVERDICT: NEEDS_CHANGES\n- bad\n\n"
    "Fix these issues. Do not add anything the reviewer did not ask for."
)
PROBE_PROMPT = "[_HIDE_TEST_] say ok"


# ------------------------------------------------------------------------------------------
# argv the orchestrator builds (SPEC-harnesses.md), and parsing of what the fakes print
# ------------------------------------------------------------------------------------------


def fresh(h: str, prompt: str, cwd: Path, sid: str | None = None) -> list[str]:
    m = MODELS[h]
    if h == "claude":
        session = ["--session-id", sid] if sid else []
        return [
            "claude",
            "-p",
            "--dangerously-skip-permissions",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            m,
            *session,
            "--",
            prompt,
        ]
    if h == "codex":
        return [*codex_head(cwd), "--", prompt]
    if h == "opencode":
        return ["opencode", "run", "--format", "json", "--auto", "-m", m, prompt]
    session = ["--session-id", sid] if sid else []
    return [
        "gemini",
        "--yolo",
        "--skip-trust",
        "-m",
        m,
        "-o",
        "stream-json",
        *session,
        f"--prompt={prompt}",
    ]


def codex_head(cwd: Path) -> list[str]:
    return [
        "codex",
        "exec",
        "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check",
        "-C",
        str(cwd),
        "--json",
        "-m",
        MODELS["codex"],
        "-c",
        'model_reasoning_effort="high"',
    ]


def resume(h: str, prompt: str, sid: str, cwd: Path) -> list[str]:
    m = MODELS[h]
    if h == "claude":
        return [
            "claude",
            "-p",
            "--dangerously-skip-permissions",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            m,
            "--resume",
            sid,
            "--",
            prompt,
        ]
    if h == "codex":
        return [*codex_head(cwd), "resume", sid, prompt]
    if h == "opencode":
        return ["opencode", "run", "--format", "json", "--auto", "-m", m, "-s", sid, prompt]
    return [
        "gemini",
        "--yolo",
        "--skip-trust",
        "-m",
        m,
        "-o",
        "stream-json",
        "--resume",
        sid,
        f"--prompt={prompt}",
    ]


def new_sid(h: str) -> str | None:
    return str(uuid.uuid4()) if h in ("claude", "gemini") else None


def strip_filler(out: str) -> str:
    return "\n".join(ln for ln in out.splitlines() if not re.fullmatch(r"x+", ln))


def parse(h: str, out: str) -> tuple[str, str | None]:
    """(reply text, session id) from the structured output of the argv above (the registry's
    formats: claude and gemini stream-json, codex and opencode their JSON events)."""
    out = strip_filler(out)
    events = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    if h == "claude":
        (result,) = [e for e in events if e["type"] == "result"]
        return result["result"], result["session_id"]
    if h == "gemini":
        (init,) = [e for e in events if e["type"] == "init"]
        texts = [e["content"] for e in events if e["type"] == "message" and e["role"] != "user"]
        return "".join(texts), init["session_id"]
    if h == "codex":
        sid = next(e["thread_id"] for e in events if e["type"] == "thread.started")
        texts = [
            e["item"]["text"]
            for e in events
            if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"
        ]
        return "".join(texts), sid
    assert all("sessionID" in e for e in events)
    texts = [e["part"]["text"] for e in events if e["type"] == "text"]
    return "".join(texts), events[0]["sessionID"]


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stdlib_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `python3` is this interpreter without site-packages (`-S`).

    The fakes must be standard-library only, and `site` (here an editable-install finder) is
    most of each fake's start-up; a pyenv shim as `python3` would cost ~150 ms a call.
    """
    d = tmp_path_factory.mktemp("stdlib-python")
    exe = d / "python3"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    exe.chmod(0o755)
    return d


class Fakes:
    def __init__(self, tmp: Path, python_dir: Path) -> None:
        self.state = tmp / "state"
        self.log_path = tmp / "log" / "calls.jsonl"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OOMPA_") and k not in ("GEMINI_CLI_TRUST_WORKSPACE", "IS_SANDBOX")
        }
        env["PATH"] = os.pathsep.join([str(FAKES), str(python_dir), env["PATH"]])
        env.update(
            OOMPA_FAKE_STATE=str(self.state),
            OOMPA_FAKE_LOG=str(self.log_path),
            IS_SANDBOX="1",
            # No global or system git identity: the fakes' commits must not need one.
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
        )
        self.env = env

    def environ(self, scenario: object = None, env: dict | None = None) -> dict[str, str]:
        e = dict(self.env)
        if scenario is not None:
            e["OOMPA_FAKE_SCENARIO"] = (
                str(scenario) if isinstance(scenario, Path) else json.dumps(scenario)
            )
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def run(
        self,
        argv: list[str],
        cwd: Path,
        *,
        scenario: object = None,
        env: dict | None = None,
        input: str | None = None,
        timeout: float = 20,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=self.environ(scenario, env),
            stdin=subprocess.DEVNULL if input is None else None,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_all(
        self, cases: list[list[str]], cwd: Path, env: dict | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run independent invocations at once (each is mostly interpreter start-up)."""
        procs = [
            self.popen(argv, cwd, stdin=subprocess.DEVNULL, env=self.environ(None, env))
            for argv in cases
        ]
        done = []
        for argv, p in zip(cases, procs, strict=True):
            out, err = p.communicate(timeout=30)
            done.append(subprocess.CompletedProcess(argv, p.returncode, out, err))
        return done

    def popen(self, argv: list[str], cwd: Path, **kw: object) -> subprocess.Popen[str]:
        scenario = kw.pop("scenario", None)
        env = kw.pop("env", None) or self.environ(scenario)
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,  # type: ignore[arg-type]
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kw,  # type: ignore[call-overload]
        )

    def log(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(ln) for ln in self.log_path.read_text().splitlines()]

    def session(self, h: str, sid: str) -> dict:
        return json.loads((self.state / h / "sessions" / f"{sid}.json").read_text())


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def fk(tmp_path: Path, stdlib_python: Path) -> Fakes:
    return Fakes(tmp_path, stdlib_python)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """root (branch main, tasks/pending/x.json) with the worktree root/.w0-i1."""
    root = tmp_path / "proj"
    for sub in ("pending", "current", "complete"):
        (root / "tasks" / sub).mkdir(parents=True)
    task = {"id": "x", "summary": "s", "description": "d", "difficulty": "easy"}
    (root / "tasks" / "pending" / "x.json").write_text(json.dumps(task))
    (root / "README.md").write_text("project\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    git(root, "worktree", "add", "-q", "-b", "oompa/w0-i1", ".w0-i1")
    return root


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    d = tmp_path / "plain"
    d.mkdir()
    return d


# ------------------------------------------------------------------------------------------
# argv contracts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", HARNESSES)
def test_fresh_resume_and_one_shot(fk: Fakes, project: Path, h: str) -> None:
    wt = project / ".w0-i1"
    sid = new_sid(h)
    r = fk.run(fresh(h, "[oompa:s1:w0] start", wt, sid), wt)
    assert r.returncode == 0, r.stderr
    text, got = parse(h, r.stdout)
    assert "COMPLETE_AND_READY_FOR_MERGE" in text
    if sid:
        assert got == sid
    elif h == "codex":
        assert got is not None and uuid.UUID(got)
    else:
        assert got is not None and re.fullmatch(r"ses_[A-Za-z0-9]{26}", got)
    assert got is not None

    r = fk.run(resume(h, "[oompa:s1:w0] continue", got, wt), wt)
    assert r.returncode == 0, r.stderr
    assert parse(h, r.stdout)[1] == got

    r = fk.run(fresh(h, REVIEW_PROMPT, wt), wt)  # one-shot: no session flags
    assert r.returncode == 0, r.stderr
    text, other = parse(h, r.stdout)
    assert text == "VERDICT: APPROVED" and other != got

    turns = fk.session(h, got)["turns"]
    assert [t["prompt"].strip('"') for t in turns] == [
        "[oompa:s1:w0] start",
        "[oompa:s1:w0] continue",
    ]
    assert all(t["reply"] for t in turns)
    log = fk.log()
    assert [(e["role"], e["call"], e["resumed"]) for e in log] == [
        ("worker", 1, False),
        ("worker", 2, True),
        ("reviewer", 1, False),
    ]
    assert {e["worker"] for e in log} == {"w0"} and {e["swarm"] for e in log} == {"s1"}
    assert [e["session_id"] for e in log[:2]] == [got, got]


UNKNOWN_FLAG = {
    "claude": (["claude", "-p", "--bogus", "--", "hi"], 1, "error: unknown option '--bogus'"),
    "codex": (["codex", "exec", "--bogus", "--", "hi"], 2, "error: unexpected argument '--bogus'"),
    "opencode": (["opencode", "run", "--bogus", "hi"], 1, "opencode run [message..]"),
    "gemini": (["gemini", "--skip-trust", "--bogus", "--prompt=hi"], 1, "Unknown argument: bogus"),
}


@pytest.mark.parametrize("h", HARNESSES)
def test_unknown_flag_is_refused(fk: Fakes, plain: Path, h: str) -> None:
    argv, code, message = UNKNOWN_FLAG[h]
    r = fk.run(argv, plain)
    assert r.returncode == code
    assert r.stderr.startswith(message)
    if h == "codex":
        assert "Usage: codex exec [OPTIONS] [PROMPT]" in r.stderr
    (entry,) = fk.log()
    assert entry["exit_code"] == code and entry["role"] is None and entry["call"] is None
    assert entry["refused"]


def test_gemini_reports_kebab_and_camel_unknowns(fk: Fakes, plain: Path) -> None:
    r = fk.run(["gemini", "--skip-trust", "--no-such-flag", "-p", "x"], plain)
    assert r.returncode == 1
    assert r.stderr.startswith("Unknown arguments: no-such-flag, noSuchFlag")


MISSING_PROMPT = {
    "claude": (1, "Error: Input must be provided either through stdin or as a prompt argument"),
    "codex": (1, "Reading prompt from stdin...\nNo prompt provided via stdin."),
    "opencode": (1, "Error: You must provide a message or a command"),
    "gemini": (42, "No input provided via stdin."),
}


@pytest.mark.parametrize("h", HARNESSES)
def test_missing_prompt_is_refused(fk: Fakes, plain: Path, h: str) -> None:
    argv = fresh(h, "PROMPT", plain, new_sid(h))
    argv = [a for a in argv if "PROMPT" not in a]
    if h == "claude":
        argv.remove("--")
    if h == "codex":
        argv.remove("--")
    code, message = MISSING_PROMPT[h]
    r = fk.run(argv, plain)
    assert (r.returncode, r.stderr.startswith(message)) == (code, True), r.stderr


UNKNOWN_SESSION = {
    "claude": (1, "No conversation found with session ID: {sid}"),
    "codex": (1, "Error: no rollout found for thread id {sid}"),
    "opencode": (1, "Error: Session not found"),
    "gemini": (42, 'Error resuming session: Invalid session identifier "{sid}"'),
}


@pytest.mark.parametrize("h", HARNESSES)
def test_unknown_session_is_refused(fk: Fakes, plain: Path, h: str) -> None:
    sid = "ses_" + "a" * 26 if h == "opencode" else str(uuid.uuid4())
    r = fk.run(resume(h, "[oompa:s1:w0] continue", sid, plain), plain)
    code, message = UNKNOWN_SESSION[h]
    assert r.returncode == code
    assert r.stderr.startswith(message.format(sid=sid)), r.stderr
    assert fk.log()[0]["session_id"] == sid


# The wrong way to pass a prompt that starts with "-" is refused; the orchestrator's way works.
DASH_PROMPT = {
    "claude": (["claude", "-p", "--dangerously-skip-permissions", "-x"], 1, "unknown option '-x'"),
    "codex": (["codex", "exec", "--skip-git-repo-check", "-x"], 2, "unexpected argument '-x'"),
    "opencode": (["opencode", "run", "--auto", "-x"], 1, "opencode run [message..]"),
    "gemini": (["gemini", "--skip-trust", "-p", "-x"], 1, "Not enough arguments following: p"),
}


@pytest.mark.parametrize("h", HARNESSES)
def test_prompt_with_a_leading_dash(fk: Fakes, plain: Path, h: str) -> None:
    argv, code, message = DASH_PROMPT[h]
    r = fk.run(argv, plain)
    assert r.returncode == code and message in r.stderr
    if h != "opencode":  # opencode's message is positional-only; `--` would be the way
        r = fk.run(fresh(h, "-x", plain, new_sid(h)), plain)
        assert r.returncode == 0, r.stderr
        assert fk.log()[-1]["argv"][-1].endswith("-x")


NO_AUTO_APPROVE = {
    "claude": "--dangerously-skip-permissions",
    "codex": "--dangerously-bypass-approvals-and-sandbox",
    "opencode": "--auto",
    "gemini": "--yolo",
}


@pytest.mark.parametrize("h", HARNESSES)
def test_without_auto_approve_the_agent_cannot_write(fk: Fakes, project: Path, h: str) -> None:
    wt = project / ".w0-i1"
    argv = fresh(h, "[oompa:s1:w0] work", wt, new_sid(h))
    argv.remove(NO_AUTO_APPROVE[h])
    head = git(wt, "rev-parse", "HEAD")
    r = fk.run(argv, wt)
    assert r.returncode == 0 and "permission denied" in r.stderr
    assert git(wt, "rev-parse", "HEAD") == head and not (wt / "oompa-work").exists()
    entry = fk.log()[0]
    assert entry["auto_approve"] is False and entry["denied"]


# ------------------------------------------------------------------------------------------
# claude
# ------------------------------------------------------------------------------------------


def test_claude_refusals(fk: Fakes, plain: Path) -> None:
    sid = str(uuid.uuid4())
    base = ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "json"]
    cases = [
        (
            [*base, "--session-id", sid, "--resume", sid, "--", "hi"],
            "Error: --session-id can only be used with --continue or --resume if --fork-session",
        ),
        ([*base, "--session-id", "not-a-uuid", "--", "hi"], "Error: Invalid session ID."),
        (
            ["claude", "-p", "--output-format", "stream-json", "--", "hi"],
            "Error: When using --print, --output-format=stream-json requires --verbose",
        ),
        (
            ["claude", "-p", "--output-format", "xml", "--", "hi"],
            "error: option '--output-format <format>' argument 'xml' is invalid.",
        ),
        (["claude", "-p", "--model"], "error: option '--model <model>' argument missing"),
        # --allowedTools is variadic: without `--` it swallows the prompt, as in the real CLI.
        (
            ["claude", "-p", "--allowedTools", "Bash", "[oompa:s1:w0] hi"],
            "Error: Input must be provided",
        ),
        (["claude", "-p", "--resume", "nope", "--", "hi"], "Error: --resume requires a valid"),
        (["claude", "-p", "a", "b"], "error: too many arguments."),
    ]
    for (argv, message), r in zip(cases, fk.run_all([c[0] for c in cases], plain), strict=True):
        assert (r.returncode, r.stderr.startswith(message)) == (1, True), (argv, r.stderr)

    ok = fk.run([*base, "--session-id", sid, "--", "[oompa:s1:w0] hi"], plain)
    assert ok.returncode == 0
    again = fk.run([*base, "--session-id", sid, "--", "[oompa:s1:w0] hi"], plain)
    assert again.returncode == 1
    assert again.stderr == f"Error: Session ID {sid} is already in use.\n"
    # Transcripts are project-scoped: the same id is not found from another directory.
    elsewhere = plain / "sub"
    elsewhere.mkdir()
    r = fk.run([*base, "--resume", sid, "--", "hi"], elsewhere)
    assert r.returncode == 1 and r.stderr.startswith("No conversation found with session ID")


def test_claude_root_guard(fk: Fakes, plain: Path) -> None:
    argv = ["claude", "-p", "--dangerously-skip-permissions", "--", "[oompa:s1:w0] hi"]
    r = fk.run(argv, plain, env={"OOMPA_FAKE_EUID": "0", "IS_SANDBOX": None})
    assert r.returncode == 1
    assert r.stderr.startswith("--dangerously-skip-permissions cannot be used with root/sudo")
    assert fk.run(argv, plain, env={"OOMPA_FAKE_EUID": "0"}).returncode == 0  # IS_SANDBOX=1
    r = fk.run(argv, plain, env={"OOMPA_FAKE_EUID": "1000", "IS_SANDBOX": None})
    assert r.returncode == 0


def test_claude_output_formats_and_stdin(fk: Fakes, plain: Path) -> None:
    head = ["claude", "-p", "--dangerously-skip-permissions"]
    r = fk.run([*head, "--", PROBE_PROMPT], plain)
    assert r.stdout == "ok\n"
    r = fk.run([*head, "--output-format", "stream-json", "--verbose", "--", PROBE_PROMPT], plain)
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [e["type"] for e in events] == ["system", "assistant", "result"]
    assert events[1]["message"]["content"][0]["text"] == "ok"
    assert events[2]["result"] == "ok" and events[0]["session_id"] == events[2]["session_id"]
    # Piped stdin is read (claude waits up to 3 s for it) and joins the prompt.
    r = fk.run([*head, "--", PROBE_PROMPT], plain, input="more context")
    assert r.returncode == 0
    assert fk.log()[-1]["stdin"] == "more context" and fk.log()[-1]["stdin_state"] == "data"
    assert fk.log()[0]["stdin"] is None and fk.log()[0]["stdin_state"] == "eof"


def test_claude_fork_and_continue(fk: Fakes, plain: Path) -> None:
    base = ["claude", "-p", "--dangerously-skip-permissions", "--output-format", "json"]
    sid, fork = str(uuid.uuid4()), str(uuid.uuid4())
    assert fk.run([*base, "--session-id", sid, "--", "[oompa:s1:w0] a"], plain).returncode == 0
    r = fk.run([*base, "--resume", sid, "--fork-session", "--session-id", fork, "--", "b"], plain)
    assert r.returncode == 0 and parse("claude", r.stdout)[1] == fork
    assert len(fk.session("claude", fork)["turns"]) == 2
    assert len(fk.session("claude", sid)["turns"]) == 1
    r = fk.run([*base, "-c", "--", "c"], plain)
    assert parse("claude", r.stdout)[1] == fork  # the newest conversation in this directory


# ------------------------------------------------------------------------------------------
# codex
# ------------------------------------------------------------------------------------------


def test_codex_contract(fk: Fakes, project: Path, plain: Path) -> None:
    wt = project / ".w0-i1"
    r = fk.run(fresh("codex", "[oompa:s1:w0] a", wt), wt)
    tid = parse("codex", r.stdout)[1]
    assert tid is not None
    # Options such as -C belong before `resume`; after it clap refuses them.
    bad = ["codex", "exec", "--skip-git-repo-check", "resume", "-C", str(wt), tid, "b"]
    r = fk.run(bad, wt)
    assert r.returncode == 2 and r.stderr.startswith("error: unexpected argument '-C' found")
    assert "Usage: codex exec resume [OPTIONS] [SESSION_ID] [PROMPT]" in r.stderr
    # Global flags are fine after `resume`.
    ok = ["codex", "exec", "-C", str(wt), "resume", "--json", "--skip-git-repo-check", tid, "b"]
    r = fk.run(ok, wt)
    assert r.returncode == 0 and parse("codex", r.stdout)[1] == tid
    cases = [
        (["codex", "exec", "-m", "a", "-m", "b", "--", "p"], 2, "cannot be used multiple times"),
        (["codex", "exec", "-s", "everything", "--", "p"], 2, "error: invalid value 'everything'"),
        (["codex", "exec", "--json=yes", "--", "p"], 2, "error: unexpected value 'yes'"),
        (["codex", "exec", "-m"], 2, "error: a value is required for '--model <MODEL>'"),
        (["codex", "exec", "--", "a", "b"], 2, "error: unexpected argument 'b' found"),
        (["codex", "exec", "--full-auto", "--yolo", "--", "p"], 2, "cannot be used with"),
        (["codex", "--json", "exec", "--", "p"], 2, "error: unexpected argument '--json'"),
        (["codex", "exec", "-c", "noequals", "--", "p"], 1, "Error parsing -c overrides"),
        (["codex", "exec", "--", "p"], 1, "Not inside a trusted directory"),  # plain: no git
        (["codex", "exec", "-C", "missing", "--skip-git-repo-check", "--", "p"], 1, "Error:"),
        (["codex", "exec", "review"], 64, "fake codex"),
    ]
    for (argv, code, message), r in zip(
        cases, fk.run_all([c[0] for c in cases], plain), strict=True
    ):
        assert (r.returncode, message in r.stderr) == (code, True), (argv, r.stderr)
    # Inside a git repository the trust check passes without --skip-git-repo-check.
    r = fk.run(["codex", "exec", "--yolo", "--", PROBE_PROMPT], project)
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert "session id: " in r.stderr  # plain mode: progress on stderr, the message on stdout


def test_codex_resume_last(fk: Fakes, plain: Path) -> None:
    head = ["codex", "exec", "--skip-git-repo-check", "--json"]
    first = parse("codex", fk.run([*head, "--", PROBE_PROMPT], plain).stdout)[1]
    r = fk.run([*head, "resume", "--last", PROBE_PROMPT], plain)
    assert r.returncode == 0 and parse("codex", r.stdout)[1] == first
    assert fk.log()[-1]["resumed"] is True


# ------------------------------------------------------------------------------------------
# opencode
# ------------------------------------------------------------------------------------------


def test_opencode_contract(fk: Fakes, project: Path, plain: Path) -> None:
    cases = [
        (["opencode", "run", "-m", "opus", "hi"], 1, "Error: Model not found: opus/"),
        (["opencode", "run", "--fork", "hi"], 1, "Error: --fork requires --continue or --session"),
        (["opencode", "run", "--format", "xml", "hi"], 1, "opencode run [message..]"),
        (["opencode", "run", "--dir", "nowhere", "hi"], 1, "Failed to change directory"),
        (["opencode", "hi"], 64, "fake opencode"),
    ]
    for (argv, code, message), r in zip(
        cases, fk.run_all([c[0] for c in cases], plain), strict=True
    ):
        assert (r.returncode, message in r.stderr) == (code, True), (argv, r.stderr)
    r = fk.run(["opencode", "run", "--auto", PROBE_PROMPT], plain)  # default format: text
    assert r.returncode == 0 and r.stdout == "ok\n"
    # A session belongs to its git project: worktrees share it, other folders do not see it.
    sid = parse("opencode", fk.run(fresh("opencode", PROBE_PROMPT, project), project).stdout)[1]
    assert sid is not None
    wt = project / ".w0-i1"
    assert fk.run(resume("opencode", PROBE_PROMPT, sid, wt), wt).returncode == 0
    r = fk.run(resume("opencode", PROBE_PROMPT, sid, plain), plain)
    assert r.returncode == 1 and r.stderr == "Error: Session not found\n"
    r = fk.run(["opencode", "run", "--format", "json", "-c", PROBE_PROMPT], project)
    assert parse("opencode", r.stdout)[1] == sid


# ------------------------------------------------------------------------------------------
# gemini
# ------------------------------------------------------------------------------------------


def test_gemini_contract(fk: Fakes, plain: Path) -> None:
    sid = str(uuid.uuid4())
    argv = ["gemini", "--yolo", "-m", "g", "-o", "json", "--session-id", sid, "--prompt=x"]
    r = fk.run(argv, plain)  # no --skip-trust, no GEMINI_CLI_TRUST_WORKSPACE=true
    assert r.returncode == 55 and "not running in a trusted directory" in r.stderr
    trusted = {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert fk.run(argv, plain, env=trusted).returncode == 0
    r = fk.run(argv, plain, env=trusted)
    assert r.returncode == 42 and f'Session ID "{sid}" already exists' in r.stderr
    cases = [
        (
            ["gemini", "--skip-trust", "--session-id", sid, "--resume", sid, "-p", "x"],
            "The flags --resume, --session-id, and --session-file are mutually exclusive.",
        ),
        (["gemini", "--skip-trust", "-p", "x", "y"], "Cannot use both a positional prompt"),
        (["gemini", "--skip-trust", "--session-id", "a/b", "-p", "x"], 'Invalid session ID "a/b"'),
        (["gemini", "--skip-trust", "-o", "yaml", "-p", "x"], "Invalid values:"),
        (["gemini", "--skip-trust", "-y", "--approval-mode", "yolo", "-p", "x"], "Cannot use both"),
    ]
    for (bad, message), r in zip(cases, fk.run_all([c[0] for c in cases], plain), strict=True):
        assert (r.returncode, r.stderr.startswith(message)) == (1, True), (bad, r.stderr)
        assert "Usage: gemini [options]" in r.stderr
    # stream-json, and resuming the newest session of this project with `--resume latest`.
    head = ["gemini", "--yolo", "--skip-trust", "-m", "g", "-o", "stream-json"]
    r = fk.run([*head, "--resume", "latest", f"--prompt={PROBE_PROMPT}"], plain)
    events = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [e["type"] for e in events] == ["init", "message", "message", "result"]
    assert events[0]["session_id"] == sid and events[2]["content"] == "ok"
    assert fk.log()[-1]["resumed"] is True


# ------------------------------------------------------------------------------------------
# stdin policies
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", ["codex", "opencode"])
def test_open_stdin_pipe_blocks_until_closed(fk: Fakes, plain: Path, h: str) -> None:
    p = fk.popen(fresh(h, PROBE_PROMPT, plain), plain, stdin=subprocess.PIPE)
    time.sleep(0.4)
    assert p.poll() is None, "an open stdin pipe must block, as the real CLI does"
    out, _ = p.communicate("piped text", timeout=10)
    assert p.returncode == 0 and "ok" in parse(h, out)[0]
    entry = fk.log()[0]
    assert entry["stdin"] == "piped text" and entry["stdin_state"] == "data"
    session = fk.session(h, entry["session_id"])
    assert "piped text" in session["turns"][0]["prompt"]


def test_claude_waits_for_data_on_an_open_pipe(fk: Fakes, plain: Path) -> None:
    p = fk.popen(fresh("claude", PROBE_PROMPT, plain), plain, stdin=subprocess.PIPE)
    time.sleep(0.6)
    assert p.poll() is None, "claude waits (up to 3 s) for data on an open stdin pipe"
    out, _ = p.communicate("late data", timeout=10)
    assert p.returncode == 0 and parse("claude", out)[0] == "ok"
    assert fk.log()[0]["stdin"] == "late data"


def test_gemini_waits_half_a_second_for_stdin(fk: Fakes, plain: Path) -> None:
    t0 = time.monotonic()
    p = fk.popen(fresh("gemini", PROBE_PROMPT, plain), plain, stdin=subprocess.PIPE)
    assert p.wait(timeout=10) == 0
    assert p.stdin is not None
    p.stdin.close()
    assert 0.45 <= time.monotonic() - t0 < 5
    assert p.stdout is not None and parse("gemini", p.stdout.read())[0] == "ok"
    assert fk.log()[0]["stdin_state"] == "timeout" and fk.log()[0]["stdin"] is None


# ------------------------------------------------------------------------------------------
# Default (no scenario) behaviour
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", HARNESSES)
def test_default_worker_claims_writes_and_commits(fk: Fakes, project: Path, h: str) -> None:
    wt = project / ".w0-i1"
    main_head = git(project, "rev-parse", "main")
    r = fk.run(fresh(h, "[oompa:s1:w0] do the work", wt, new_sid(h)), wt)
    assert r.returncode == 0, r.stderr
    text = parse(h, r.stdout)[0]
    assert "CLAIM(x)" in text and text.endswith("COMPLETE_AND_READY_FOR_MERGE")
    assert git(wt, "log", "-1", "--format=%s %an").strip() == "w0: work fake-agent"
    assert "w0 call 1 task x" in (wt / "oompa-work" / ".w0-i1.txt").read_text()
    assert git(wt, "status", "--porcelain") == ""
    assert git(project, "rev-parse", "main") == main_head
    assert fk.log()[0]["commits"] == ["w0: work"]


def test_default_roles(fk: Fakes, project: Path) -> None:
    wt = project / ".w0-i1"
    r = fk.run(fresh("codex", REVIEW_PROMPT, wt), wt)
    assert parse("codex", r.stdout)[0] == "VERDICT: APPROVED"
    r = fk.run(fresh("opencode", PROBE_PROMPT, wt), wt)
    assert parse("opencode", r.stdout)[0] == "ok"
    r = fk.run(fresh("gemini", FIX_PROMPT, wt, new_sid("gemini")), wt)
    assert parse("gemini", r.stdout)[0] == "fixed"
    assert git(wt, "log", "-1", "--format=%s").strip() == "w0: fix"
    assert (wt / "oompa-work" / ".w0-i1-fix.txt").exists()
    # The planner runs in the project root and fills the allowed slots, two at most.
    plan = "[oompa:s1:planner] Plan.\nCreate tasks in tasks/pending/.\nMaximum 5 new tasks.\n"
    r = fk.run(fresh("claude", plan, project, new_sid("claude")), project)
    assert parse("claude", r.stdout)[0].endswith("__DONE__")
    made = sorted(p.name for p in (project / "tasks" / "pending").iterdir())
    assert made == ["task-1.json", "task-2.json", "x.json"]
    task = json.loads((project / "tasks" / "pending" / "task-1.json").read_text())
    assert set(task) == {"id", "summary", "description", "difficulty", "files", "acceptance"}
    r = fk.run(fresh("claude", plan.replace("5", "1"), project), project)
    assert (project / "tasks" / "pending" / "task-3.json").exists()
    assert [e["role"] for e in fk.log()] == ["reviewer", "probe", "fix", "planner", "planner"]
    assert [e["call"] for e in fk.log()] == [1, 1, 1, 1, 2]


# ------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", HARNESSES)
def test_scenario_say_exit_stderr(fk: Fakes, plain: Path, h: str) -> None:
    scn = {"default": {"worker": {"say": "hi {worker} #{call}", "exit": 3, "stderr": "boom"}}}
    r = fk.run(fresh(h, "[oompa:s1:w7] go", plain, new_sid(h)), plain, scenario=scn)
    assert r.returncode == 3 and "boom" in r.stderr
    assert parse(h, r.stdout)[0] == "hi w7 #1"
    assert fk.log()[0]["exit_code"] == 3 and fk.log()[0]["step"] == "default.worker"


def test_scenario_call_indexed_lists_and_fallbacks(fk: Fakes, plain: Path) -> None:
    scn = {
        "workers": {
            "w0": {"worker": [{"say": "one"}, {"say": "two"}]},
            "w1": {"worker": [{"say": "first"}, "default"]},
            "w2": {"worker": [{"say": "a"}, None, {"say": "c"}, "default"]},
            "w3": {"reviewer": {"verdict": "approved", "say": "fine"}},
        },
        "harnesses": {"codex": {"reviewer": {"verdict": "needs-changes", "say": "- fix it"}}},
        "default": {"reviewer": {"verdict": "rejected"}, "worker": {"say": "from default"}},
    }

    def say(h: str, prompt: str) -> str:
        r = fk.run(fresh(h, prompt, plain, new_sid(h)), plain, scenario=scn)
        assert r.returncode == 0, r.stderr
        return parse(h, r.stdout)[0]

    assert [say("claude", "[oompa:s:w0] go") for _ in range(3)] == ["one", "two", "two"]
    # "default" falls back to the next level of the lookup chain (here default.worker).
    assert [say("claude", "[oompa:s:w1] go") for _ in range(3)] == ["first", *["from default"] * 2]
    got = [say("gemini", "[oompa:s:w2] go") for _ in range(5)]
    assert got == ["a", "from default", "c", "from default", "from default"]
    # workers[w][role] -> harnesses[h][role] -> default[role] -> built-in.
    assert say("claude", REVIEW_PROMPT.replace("w0", "w3")) == "fine\nVERDICT: APPROVED"
    assert say("codex", REVIEW_PROMPT) == "- fix it\nVERDICT: NEEDS_CHANGES"
    assert say("claude", REVIEW_PROMPT) == "VERDICT: REJECTED"
    assert say("claude", PROBE_PROMPT) == "ok"  # nothing for probes: built-in
    steps = [e["step"] for e in fk.log()[-4:]]
    assert steps == [
        "workers.w3.reviewer",
        "harnesses.codex.reviewer",
        "default.reviewer",
        "builtin",
    ]


def test_scenario_from_a_file_and_bad_scenarios(fk: Fakes, plain: Path, tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"default": {"probe": {"say": "from file"}}}))
    r = fk.run(fresh("claude", PROBE_PROMPT, plain), plain, scenario=path)
    assert parse("claude", r.stdout)[0] == "from file"
    bad = [
        {"default": {"worker": {"sya": "typo"}}},
        {"default": {"coder": {}}},
        {"defaults": {}},
        {"default": {"reviewer": {"verdict": "ok"}}},
        {"default": {"worker": {"crash": "SIGNOPE"}}},
        {"default": {"worker": {"write": ["a.txt"]}}},
        tmp_path / "missing.json",
    ]
    procs = [
        fk.popen(
            fresh("claude", PROBE_PROMPT, plain), plain, scenario=scn, stdin=subprocess.DEVNULL
        )
        for scn in bad
    ]
    for scn, p in zip(bad, procs, strict=True):
        _, err = p.communicate(timeout=30)
        assert p.returncode == 97 and "bad scenario" in err, (scn, err)
    assert all(e["exit_code"] == 97 for e in fk.log()[1:])


def test_scenario_delay_and_signals_on_stderr(fk: Fakes, plain: Path) -> None:
    scn = {"default": {"worker": {"delay": 0.3, "say": "hidden", "merge": True}}}
    scn["default"]["worker"]["signals_on_stderr"] = True
    t0 = time.monotonic()
    r = fk.run(fresh("opencode", "[oompa:s:w0] go", plain), plain, scenario=scn)
    assert time.monotonic() - t0 >= 0.3
    assert parse("opencode", r.stdout)[0] == ""
    assert "hidden\nCOMPLETE_AND_READY_FOR_MERGE" in r.stderr


@pytest.mark.parametrize(("h", "sig"), [("claude", "SIGKILL"), ("codex", "SIGSEGV")])
def test_scenario_crash(fk: Fakes, plain: Path, h: str, sig: str) -> None:
    scn = {"default": {"worker": {"crash": sig, "stderr": "dying"}}}
    r = fk.run(fresh(h, "[oompa:s:w0] go", plain, new_sid(h)), plain, scenario=scn)
    signum = getattr(signal, sig)
    assert r.returncode == -signum and "dying" in r.stderr
    entry = fk.log()[0]
    assert entry["exit_code"] == -signum and entry["crash"] == sig


def test_scenario_hang_is_killed_by_a_timeout(fk: Fakes, plain: Path) -> None:
    scn = {"default": {"worker": {"hang": True}}}
    with pytest.raises(subprocess.TimeoutExpired):
        fk.run(
            fresh("gemini", "[oompa:s:w0] go", plain, new_sid("gemini")),
            plain,
            scenario=scn,
            timeout=0.6,
        )
    (entry,) = fk.log()
    assert entry["exit_code"] is None and entry["hang"] is True
    # And it dies on SIGTERM.
    p = fk.popen(
        fresh("codex", "[oompa:s:w0] go", plain), plain, scenario=scn, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while len(fk.log()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.terminate()
    assert p.wait(timeout=5) == -signal.SIGTERM


@pytest.mark.parametrize("h", HARNESSES)
def test_scenario_huge_and_malformed_output(fk: Fakes, plain: Path, h: str) -> None:
    huge = {"default": {"worker": {"say": "tail", "output": "huge:300000"}}}
    r = fk.run(fresh(h, "[oompa:s:w0] go", plain, new_sid(h)), plain, scenario=huge)
    assert r.returncode == 0 and len(r.stdout) > 300000
    assert parse(h, r.stdout)[0] == "tail"  # the real output still follows the filler
    bad = {"default": {"worker": {"say": "tail", "output": "malformed"}}}
    r = fk.run(fresh(h, "[oompa:s:w1] go", plain, new_sid(h)), plain, scenario=bad)
    assert r.returncode == 0 and r.stdout
    with pytest.raises(ValueError):
        parse(h, r.stdout)


def test_scenario_files_tasks_and_git(fk: Fakes, project: Path) -> None:
    wt = project / ".w0-i1"
    scn = {
        "workers": {
            "w0": {
                "worker": [
                    {
                        "write": {"src/a.py": "A = 1\n", "notes.txt": "n"},
                        "commit": "add a",
                        "move_task": {"id": "x", "to": "current"},
                        "claim": ["x", "y"],
                    },
                    {"delete": ["notes.txt"], "commit": True, "merge": True, "done": True},
                    {"builtin": True, "say": "again", "stderr": "note"},
                ]
            },
            "planner": {"planner": {"create_tasks": [{"id": "t9", "summary": "s"}], "done": True}},
        }
    }

    def go(h: str, prompt: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        r = fk.run(fresh(h, prompt, cwd, new_sid(h)), cwd, scenario=scn)
        assert r.returncode == 0, r.stderr
        return r

    r = go("claude", "[oompa:s:w0] go", wt)
    assert parse("claude", r.stdout)[0] == "CLAIM(x, y)"
    assert git(wt, "log", "-1", "--format=%s").strip() == "add a"
    assert (project / "tasks" / "current" / "x.json").exists()
    r = go("codex", "[oompa:s:w0] continue", wt)
    assert parse("codex", r.stdout)[0] == "COMPLETE_AND_READY_FOR_MERGE\n__DONE__"
    assert not (wt / "notes.txt").exists() and (wt / "src" / "a.py").exists()
    assert git(wt, "log", "-1", "--format=%s").strip() == "w0: worker call 2"
    r = go("opencode", "[oompa:s:w0] more", wt)
    text = parse("opencode", r.stdout)[0]
    assert text.startswith("again\n") and text.endswith("COMPLETE_AND_READY_FOR_MERGE")
    assert "note" in r.stderr and git(wt, "log", "-1", "--format=%s").strip() == "w0: work"
    r = go("gemini", "[oompa:s:planner] plan. Maximum 3 new tasks.", project)
    assert parse("gemini", r.stdout)[0] == "__DONE__"
    task = json.loads((project / "tasks" / "pending" / "t9.json").read_text())
    assert task["id"] == "t9" and task["difficulty"] == "easy" and task["acceptance"] == []


# ------------------------------------------------------------------------------------------
# The invocation log, and concurrency
# ------------------------------------------------------------------------------------------


def test_log_records_argv_cwd_and_selected_env(fk: Fakes, plain: Path) -> None:
    env = {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "ANTHROPIC_API_KEY": "sk-secret",
        "MY_TOKEN": "t",
        "OOMPA_RUN": "r1",
        "UNRELATED": "u",
    }
    sid = str(uuid.uuid4())
    argv = fresh("claude", PROBE_PROMPT, plain, sid)
    r = fk.run(argv, plain, env=env)
    assert r.returncode == 0
    (entry,) = fk.log()
    assert entry["argv"] == argv and entry["cwd"] == str(plain) and entry["harness"] == "claude"
    assert entry["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert (
        entry["env"]["ANTHROPIC_API_KEY"] == "<redacted>"
        and entry["env"]["MY_TOKEN"] == "<redacted>"
    )
    assert entry["env"]["OOMPA_RUN"] == "r1" and entry["env"]["IS_SANDBOX"] == "1"
    assert "UNRELATED" not in entry["env"]
    assert entry["session_id"] == sid and entry["resumed"] is False
    assert entry["exit_code"] == 0 and entry["role"] == "probe" and entry["call"] == 1
    assert isinstance(entry["ts"], float) and 0 <= entry["duration_ms"] < 10000
    assert entry["stdin"] is None


def test_concurrent_invocations(fk: Fakes, tmp_path: Path) -> None:
    procs = []
    for n in range(8):
        h = HARNESSES[n % 4]
        d = tmp_path / f"d{n}"
        d.mkdir()
        argv = fresh(h, f"[oompa:s:w{n}] go", d, new_sid(h))
        procs.append(fk.popen(argv, d, stdin=subprocess.DEVNULL))
    # Eight more at once for one (worker, role): the call counter must hand out 1..8.
    for _ in range(8):
        procs.append(
            fk.popen(fresh("codex", PROBE_PROMPT, tmp_path), tmp_path, stdin=subprocess.DEVNULL)
        )
    for p in procs:
        p.communicate(timeout=30)
        assert p.returncode == 0
    log = fk.log()
    assert len(log) == 16
    workers = sorted(e["worker"] for e in log if e["role"] == "worker")
    assert workers == [f"w{n}" for n in range(8)]
    assert sorted(e["call"] for e in log if e["role"] == "probe") == list(range(1, 9))
    sessions = [p for h in HARNESSES for p in (fk.state / h / "sessions").glob("*.json")]
    assert len(sessions) == 16
    assert {json.loads(p.read_text())["id"] for p in sessions} == {e["session_id"] for e in log}


def test_a_shell_step_runs_in_the_working_directory_and_leaves_background_work(
    tmp_path: Path,
) -> None:
    """The agent's shell tool: what it starts in the background outlives the fake's turn."""
    marker = tmp_path / "bg.pid"
    scenario = {
        "default": {"worker": {"shell": ["echo $$ > here.txt", f"sleep 30 & echo $! > {marker}"]}}
    }
    env = {
        **os.environ,
        "OOMPA_FAKE_SCENARIO": json.dumps(scenario),
        "OOMPA_FAKE_STATE": str(tmp_path / "state"),
        "OOMPA_FAKE_LOG": str(tmp_path / "log.jsonl"),
        "IS_SANDBOX": "1",  # (claude's bypass flag as root)
    }
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(FAKES / "claude"),
            "-p",
            "--dangerously-skip-permissions",
            "--output-format",
            "json",
            "--model",
            "opus",
            "--",
            "[oompa:s:w0] work",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 10  # the background sleep did not hold the turn
    assert (work / "here.txt").is_file()
    pid = int(marker.read_text())
    try:
        os.kill(pid, 0)  # still running after the fake exited
    finally:
        os.kill(pid, signal.SIGKILL)
    (record,) = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert record["ran"] == scenario["default"]["worker"]["shell"]


# ------------------------------------------------------------------------------------------
# NEEDS_FOLLOWUP (oompa 0.7.3)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", HARNESSES)
def test_a_needs_followup_step_opens_the_reply(fk: Fakes, plain: Path, h: str) -> None:
    from pytest_oompa.engine.markers import parse_signals

    step = {"needs_followup": "{worker} needs the db schema", "say": "tried twice", "claim": "t1"}
    scn = {"default": {"worker": step}}
    r = fk.run(fresh(h, "[oompa:s1:w4] go", plain, new_sid(h)), plain, scenario=scn)
    assert r.returncode == 0, r.stderr
    reply = parse(h, r.stdout)[0]
    assert reply == "NEEDS_FOLLOWUP: w4 needs the db schema\ntried twice\nCLAIM(t1)"
    signals = parse_signals(reply)
    assert signals.needs_followup and signals.claims == ("t1",)
    assert signals.followup_reason.startswith("w4 needs the db schema")


def test_needs_followup_without_a_reason_and_the_follow_up_prompt(fk: Fakes, plain: Path) -> None:
    """``true``: the bare signal. The follow-up prompt the engine sends next is a worker
    call for the fakes (neither a review nor a fix), the worker's second."""
    from pytest_oompa.engine import prompts

    scn = {
        "workers": {"w0": {"worker": [{"needs_followup": True}, {"say": "done", "merge": True}]}}
    }
    r = fk.run(fresh("claude", "[oompa:s1:w0] go", plain), plain, scenario=scn)
    assert parse("claude", r.stdout)[0] == "NEEDS_FOLLOWUP"
    follow_up = prompts.needs_followup("s1", "w0", ["t1"], "", "Pending: 0")
    r = fk.run(fresh("claude", follow_up, plain), plain, scenario=scn)
    assert parse("claude", r.stdout)[0] == "done\nCOMPLETE_AND_READY_FOR_MERGE"
    assert [(e["role"], e["step"]) for e in fk.log()] == [("worker", "workers.w0.worker")] * 2


def test_a_needs_followup_of_the_wrong_type_is_a_bad_scenario(fk: Fakes, plain: Path) -> None:
    from pytest_oompa.offline.fake_scenario import ScenarioError, validate

    scn = {"default": {"worker": {"needs_followup": 3}}}
    r = fk.run(fresh("claude", "[oompa:s1:w0] go", plain), plain, scenario=scn)
    assert r.returncode == 97 and "needs_followup: wrong type int" in r.stderr
    with pytest.raises(ScenarioError, match="needs_followup"):
        validate(scn)


def test_the_scenario_builder_writes_needs_followup() -> None:
    from pytest_oompa.offline.fake_scenario import NEEDS_FOLLOWUP, Scenario, needs_followup

    s = Scenario()
    s.worker("w0").on_call(1).needs_followup("too big").claims("t1")
    s.worker("w0").on_call(2).needs_followup()
    assert s.validate()["workers"]["w0"]["worker"][:2] == [
        {"needs_followup": "too big", "claim": "t1"},
        {"needs_followup": True},
    ]
    assert needs_followup("why") == f"{NEEDS_FOLLOWUP}: why" == "NEEDS_FOLLOWUP: why"
    assert needs_followup() == "NEEDS_FOLLOWUP"
