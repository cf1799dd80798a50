"""The real-CLI tier: the real ``claude``, ``codex``, ``opencode`` and ``gemini`` binaries
(installed by ``.ci/install-clis``), driven offline by the loopback fake model API.

- Fidelity of the fakes: the registry's argv (fresh, resume, one-shot) and deliberately wrong argv
  run against the real binary and against the bundled fake; both must accept or refuse alike,
  with the same exit code (and the message SPEC-harnesses.md gives).
- End to end: a swarm with one real worker merges a commit into main, resumes its session in
  the next iteration, and a real reviewer's verdict is parsed.

Each test is skipped, with the reason, when its CLI is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.contract import assert_run_valid, assert_runs_valid

from pytest_oompa import GitRepo
from pytest_oompa.core import paths
from pytest_oompa.harnesses import real_clis
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import SessionMode, build_command
from pytest_oompa.harnesses.transcript import from_command_log
from pytest_oompa.offline.fake_api import FakeModelAPI
from pytest_oompa.plugin.swarm_runner import SwarmRunner

HARNESSES = real_clis.NAMES
REGISTRY = HarnessRegistry()
MODELS = {
    "claude": "claude-sonnet-4-5",
    "codex": "gpt-5-codex",
    "opencode": "fake/fake-model",
    "gemini": "gemini-2.5-pro",
}
CALL_TIMEOUT = 120.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# Read before any test runs: pytester gives its tests a HOME of their own.
INSTALL_DIR = str(real_clis.default_install_dir())


def need(name: str) -> real_clis.RealCLI:
    cli = real_clis.find_cached(name, INSTALL_DIR)
    if not cli.available:
        pytest.skip(cli.skip_reason or f"no real {name}")
    return cli


# ------------------------------------------------------------------------------------------
# Running one argv against the real CLI and against the fake
# ------------------------------------------------------------------------------------------


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return ANSI.sub("", self.stderr + "\n" + self.stdout)


@dataclass
class Side:
    """One of the two implementations of a CLI: the real binary or the bundled fake."""

    kind: str  # "real" | "fake"
    binary: Path
    env: dict[str, str]

    def run(self, argv: list[str], cwd: Path, env: dict[str, str | None] | None = None) -> Ran:
        full = {**self.env, "PWD": str(cwd)}
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        proc = subprocess.run(
            [str(self.binary), *argv[1:]],
            cwd=cwd,
            env=full,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Pair:
    harness: str
    real: Side
    fake: Side
    api: FakeModelAPI
    root: Path
    sides: tuple[Side, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.sides = (self.real, self.fake)

    def folder(self, kind: str, name: str, git: bool = True) -> Path:
        """A folder per side (sessions are scoped by folder or project)."""
        path = self.root / kind / name
        if git:
            GitRepo(path)
        else:
            path.mkdir(parents=True)
        return path


CATCH_ALL = {
    "conversations": [
        {"match": "first prompt", "turns": ["first reply", "second reply", "third reply"]},
        {"match": "[oompa:", "turns": ["one reply", "another reply"]},
        {"turns": ["hello", "hello again"]},
    ]
}


@pytest.fixture
def api() -> Iterator[FakeModelAPI]:
    with FakeModelAPI(CATCH_ALL, max_stall=30) as server:
        yield server


def make_pair(harness: str, api: FakeModelAPI, tmp_path: Path) -> Pair:
    cli = need(harness)
    base = {**os.environ, **api.environment(tmp_path / "home", [harness])}
    base.update(REGISTRY.get(harness).env)
    real_env = {**base, "PATH": real_clis.path_with([cli.bin_dir])}
    fake_env = {
        **base,
        "PATH": real_clis.path_with([paths.fake_bin_dir()]),
        "OOMPA_FAKE_STATE": str(tmp_path / "fake-state"),
        "OOMPA_FAKE_LOG": str(tmp_path / "fake-log.jsonl"),
    }
    return Pair(
        harness,
        Side("real", cli.path, real_env),  # type: ignore[arg-type]
        Side("fake", paths.fake_bin_dir() / harness, fake_env),
        api,
        tmp_path,
    )


def argv_for(
    harness: str, prompt: str, cwd: Path, session: SessionMode, sid: str | None = None
) -> list[str]:
    command = build_command(
        REGISTRY.get(harness), prompt=prompt, model=MODELS[harness], cwd=cwd, session=session
    )
    argv = list(command.argv)
    if sid is not None and command.session_id is not None and session.kind == "new":
        argv[argv.index(command.session_id)] = sid
    return argv


# ------------------------------------------------------------------------------------------
# Finding the CLIs (always runs)
# ------------------------------------------------------------------------------------------


def test_find_gives_a_reason_and_never_returns_a_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(real_clis.DIR_ENV, raising=False)
    cli = real_clis.find("claude", tmp_path / "nowhere", path=str(paths.fake_bin_dir()))
    assert not cli.available and cli.path is None
    assert cli.skip_reason is not None and "not installed" in cli.skip_reason
    assert ".ci/install-clis" in cli.skip_reason
    for name in HARNESSES:
        assert real_clis.is_fake(paths.fake_bin_dir() / name)
        assert real_clis.is_fake(paths.fake_harnesses_dir() / name)


def test_find_reads_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "gemini"
    script.write_text("#!/bin/sh\necho 0.61.0\n")
    script.chmod(0o755)
    cli = real_clis.find("gemini", folder, path="")
    assert cli.available and cli.path == script and cli.version == "0.61.0"
    script.write_text("#!/bin/sh\necho 9.9.9\n")
    pinned = real_clis.find("gemini", folder, path="", require_pinned=True)
    assert not pinned.available and "not the pinned 0.61.0" in (pinned.skip_reason or "")
    script.write_text("#!/bin/sh\necho broken >&2; exit 3\n")
    broken = real_clis.find("gemini", folder, path="")
    assert not broken.available and "exited 3" in (broken.skip_reason or "")


def test_install_script_pins_the_same_versions() -> None:
    script = (Path(__file__).resolve().parents[2] / ".ci" / "install-clis").read_text()
    for package, version in real_clis.PINNED.values():
        assert f'"{package}@{version}"' in script


@pytest.mark.parametrize("harness", HARNESSES)
def test_installed_versions_are_the_pinned_ones(harness: str) -> None:
    cli = need(harness)
    assert cli.version == cli.pinned, (
        f"{cli.path} is {harness} {cli.version}; SPEC-harnesses.md was verified on "
        f"{cli.pinned}: run .ci/install-clis"
    )


# ------------------------------------------------------------------------------------------
# Fidelity: the registry's argv, accepted alike
# ------------------------------------------------------------------------------------------

UNKNOWN_SESSION = {
    "claude": (1, "No conversation found with session ID: {sid}"),
    "codex": (1, "no rollout found for thread id {sid}"),
    "opencode": (1, "Session not found"),
    "gemini": (42, 'Invalid session identifier "{sid}"'),
}


def random_session(harness: str) -> str:
    return "ses_" + "Z" * 26 if harness == "opencode" else str(uuid.uuid4())


@pytest.mark.parametrize("harness", HARNESSES)
def test_registry_argv_fresh_resume_one_shot(
    harness: str, api: FakeModelAPI, tmp_path: Path
) -> None:
    """Fresh, resume and one-shot argv from the registry: both sides accept them, print
    output the registry's parser reads, keep the session across the resume, and refuse a
    resume of an unknown session with the same exit code."""
    pair = make_pair(harness, api, tmp_path)
    spec = REGISTRY.get(harness)
    seen: dict[str, list[int]] = {}
    for side in pair.sides:
        work = pair.folder(side.kind, "work")
        fresh = side.run(
            argv_for(harness, "[oompa:s1:w0] first prompt", work, SessionMode.new()), work
        )
        assert fresh.code == 0, f"{side.kind} {harness} refused a fresh call:\n{fresh.text[-2000:]}"
        first = spec.parse(fresh.stdout)
        assert first.error is None, f"{side.kind}: {first.error}: {fresh.stdout[-500:]}"
        sid = first.session_id
        assert sid, f"{side.kind} {harness} printed no session id"
        resume_argv = argv_for(
            harness, "[oompa:s1:w0] resumed prompt", work, SessionMode.resume(sid)
        )
        resumed = side.run(resume_argv, work)
        assert resumed.code == 0, f"{side.kind} {harness} refused a resume:\n{resumed.text[-2000:]}"
        second = spec.parse(resumed.stdout)
        assert second.error is None and second.session_id in (sid, None)
        one_shot = side.run(argv_for(harness, "review this", work, SessionMode.none()), work)
        assert one_shot.code == 0, (
            f"{side.kind} {harness} refused a one-shot:\n{one_shot.text[-2000:]}"
        )
        third = spec.parse(one_shot.stdout)
        assert third.error is None and third.session_id != sid
        unknown = random_session(harness)
        gone = side.run(
            argv_for(harness, "[oompa:s1:w0] again", work, SessionMode.resume(unknown)), work
        )
        code, message = UNKNOWN_SESSION[harness]
        assert gone.code == code, (
            f"{side.kind}: unknown session exit {gone.code}: {gone.text[-800:]}"
        )
        assert message.format(sid=unknown) in gone.text
        seen[side.kind] = [fresh.code, resumed.code, one_shot.code, gone.code]
        if side.kind == "real":
            assert (first.text, second.text, third.text) == ("first reply", "second reply", "hello")
    assert seen["real"] == seen["fake"]
    # The resumed request carried the first turn: the session really was resumed.
    resumed_request = next(r for r in api.model_requests() if r.reply == "second reply")
    history = resumed_request.history()
    assert ("assistant", "first reply") in history
    assert any(role == "user" and "first prompt" in text for role, text in history)


# ------------------------------------------------------------------------------------------
# Fidelity: wrong argv, refused alike
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A wrong (or tricky) argv, built from the registry's fresh argv."""

    id: str
    harness: str
    mutate: Callable[[list[str], Path], list[str]]
    code: int
    message: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    git: bool = True
    fake_differs: str | None = None  # a known gap in the fake: xfail on the fake side
    registry_finding: str | None = None  # the real CLI refuses the registry's argv


def insert_after_command(argv: list[str], harness: str, *extra: str) -> list[str]:
    at = 1 + len(REGISTRY.get(harness).subcommand)
    return [*argv[:at], *extra, *argv[at:]]


PROMPT = "[oompa:s1:w0] PROMPT"


def drop_prompt(argv: list[str]) -> list[str]:
    out = [a for a in argv if "PROMPT" not in a]
    if out and out[-1] == "--":
        out.pop()
    return out


def before_prompt(argv: list[str], *extra: str) -> list[str]:
    at = len(argv) - (2 if argv[-2] == "--" else 1)
    return [*argv[:at], *extra, *argv[at:]]


CASES = [
    # unknown flags
    Case(
        "unknown-flag",
        "claude",
        lambda a, d: insert_after_command(a, "claude", "--bogus"),
        1,
        "error: unknown option '--bogus'",
    ),
    Case(
        "unknown-flag",
        "codex",
        lambda a, d: insert_after_command(a, "codex", "--bogus"),
        2,
        "error: unexpected argument '--bogus' found",
    ),
    Case(
        "unknown-flag",
        "opencode",
        lambda a, d: insert_after_command(a, "opencode", "--bogus"),
        1,
        "opencode run [message..]",
    ),
    Case(
        "unknown-flag",
        "gemini",
        lambda a, d: insert_after_command(a, "gemini", "--bogus"),
        1,
        "Unknown argument: bogus",
    ),
    Case(
        "unknown-negated-flag",
        "gemini",
        lambda a, d: insert_after_command(a, "gemini", "--no-such-flag"),
        1,
        "Unknown arguments: such-flag, suchFlag",
        fake_differs="yargs reads --no-such-flag as the negation of --such-flag; the fake "
        "reports 'Unknown arguments: no-such-flag, noSuchFlag'",
    ),
    # a missing prompt
    Case(
        "missing-prompt",
        "claude",
        lambda a, d: drop_prompt(a),
        1,
        "Error: Input must be provided either through stdin or as a prompt argument",
    ),
    Case(
        "missing-prompt", "codex", lambda a, d: drop_prompt(a), 1, "No prompt provided via stdin."
    ),
    Case(
        "missing-prompt",
        "opencode",
        lambda a, d: drop_prompt(a),
        1,
        "You must provide a message or a command",
    ),
    Case(
        "missing-prompt", "gemini", lambda a, d: drop_prompt(a), 42, "No input provided via stdin."
    ),
    # session flags
    Case(
        "session-id-with-resume",
        "claude",
        lambda a, d: before_prompt(a, "--resume", a[a.index("--session-id") + 1]),
        1,
        "Error: --session-id can only be used with --continue or --resume if --fork-session "
        "is also specified.",
    ),
    Case(
        "session-id-with-resume",
        "gemini",
        lambda a, d: before_prompt(a, "--resume", a[a.index("--session-id") + 1]),
        1,
        "The flags --resume, --session-id, and --session-file are mutually exclusive.",
    ),
    Case(
        "session-id-not-a-uuid",
        "claude",
        lambda a, d: [
            "not-a-uuid" if i == a.index("--session-id") + 1 else x for i, x in enumerate(a)
        ],
        1,
        "Error: Invalid session ID. Must be a valid UUID.",
    ),
    Case(
        "stream-json-without-verbose",
        "claude",
        lambda a, d: [x for x in a if x != "--verbose"],
        1,
        "Error: When using --print, --output-format=stream-json requires --verbose",
    ),
    Case(
        "two-positionals",
        "claude",
        lambda a, d: [*a, "second"],
        0,
        fake_differs="claude 2.1.197 takes the first positional as the prompt and ignores "
        "the rest (exit 0); the fake exits 1 'error: too many arguments'",
    ),
    # codex specifics
    Case(
        "option-after-resume",
        "codex",
        lambda a, d: [
            *[x for x in a if x not in ("-C", str(d))][:-2],
            "resume",
            "-C",
            str(d),
            str(uuid.uuid4()),
            "hi",
        ],
        2,
        "error: unexpected argument '-C' found",
    ),
    Case(
        "no-git-repo-check-outside-git",
        "codex",
        lambda a, d: [
            x
            for x in a
            if x not in ("--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox")
        ],
        1,
        "Not inside a trusted directory and --skip-git-repo-check was not specified.",
        git=False,
    ),
    # ... which the bypass flag alone waives.
    Case(
        "bypass-outside-git",
        "codex",
        lambda a, d: [x for x in a if x != "--skip-git-repo-check"],
        0,
        git=False,
        fake_differs="codex 0.169.0 skips the git-repo check under "
        "--dangerously-bypass-approvals-and-sandbox; the fake still exits 1 'Not inside a "
        "trusted directory'",
    ),
    Case(
        "bad-config-override",
        "codex",
        lambda a, d: insert_after_command(a, "codex", "-c", "foo"),
        1,
        "Error parsing -c overrides: Invalid override (missing '='): foo",
    ),
    # opencode specifics
    Case(
        "model-without-provider",
        "opencode",
        lambda a, d: [("fake-model" if x == "fake/fake-model" else x) for x in a],
        1,
    ),
    Case(
        "fork-without-session",
        "opencode",
        lambda a, d: insert_after_command(a, "opencode", "--fork"),
        1,
        "--fork requires --continue or --session",
    ),
    # trust and root
    Case(
        "untrusted-folder",
        "gemini",
        lambda a, d: [x for x in a if x != "--skip-trust"],
        55,
        "Gemini CLI is not running in a trusted directory",
        env={"GEMINI_CLI_TRUST_WORKSPACE": None},
    ),
    Case(
        "root-without-is-sandbox",
        "claude",
        lambda a, d: a,
        1,
        "--dangerously-skip-permissions cannot be used with root/sudo privileges",
        env={"IS_SANDBOX": None},
    ),
    # a prompt that starts with "-", through the registry's argv
    Case(
        "leading-dash-prompt",
        "claude",
        lambda a, d: [x.replace(PROMPT, "-x hello") for x in a],
        0,
    ),
    Case(
        "leading-dash-prompt",
        "codex",
        lambda a, d: [x.replace(PROMPT, "-x hello") for x in a],
        0,
    ),
    Case(
        "leading-dash-prompt",
        "gemini",
        lambda a, d: [x.replace(PROMPT, "-x hello") for x in a],
        0,
    ),
    Case(
        "leading-dash-prompt",
        "opencode",
        lambda a, d: [x.replace(PROMPT, "-x hello") for x in a],
        0,
        registry_finding="opencode run takes a message that starts with '-' for an option "
        "(exit 1, usage); `opencode run [flags] -- MESSAGE` works: the registry should put "
        "'--' before the message",
        fake_differs="the fake exits 0 and prints the usage on stdout",
    ),
]


def _case_id(case: Case) -> str:
    return f"{case.harness}-{case.id}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_refused_alike(case: Case, api: FakeModelAPI, tmp_path: Path) -> None:
    if case.id == "root-without-is-sandbox" and os.geteuid() != 0:
        pytest.skip("claude's root guard only shows as root")
    pair = make_pair(case.harness, api, tmp_path)
    results: dict[str, Ran] = {}
    for side in pair.sides:
        work = pair.folder(side.kind, "work", git=case.git)
        base = argv_for(case.harness, PROMPT, work, SessionMode.new())
        results[side.kind] = side.run(case.mutate(base, work), work, case.env)
    real, fake = results["real"], results["fake"]
    if case.registry_finding and real.code != case.code:
        pytest.xfail(f"registry finding: {case.registry_finding}")
    assert real.code == case.code, (
        f"real {case.harness} exited {real.code}, SPEC says {case.code}:\n{real.text[-1500:]}"
    )
    if case.message:
        assert case.message in real.text, real.text[-1500:]
    differs = fake.code != real.code or (case.message is not None and case.message not in fake.text)
    if case.fake_differs and differs:
        pytest.xfail(f"fake differs: {case.fake_differs}")
    assert fake.code == real.code, (
        f"fake exited {fake.code}, real {real.code}:\n{fake.text[-1500:]}"
    )
    if case.message:
        assert case.message in fake.text, fake.text[-1500:]


# ------------------------------------------------------------------------------------------
# API errors: the exit codes the spec gives, with retries off
# ------------------------------------------------------------------------------------------

API_ERROR_EXIT = {"claude": 1, "codex": 1, "opencode": 1, "gemini": 145}  # gemini: 401 % 256


@pytest.mark.parametrize("harness", HARNESSES)
def test_api_error_exit_code(harness: str, tmp_path: Path) -> None:
    scenario = {"conversations": [{"turns": [{"error": {"status": 401, "message": "bad key"}}]}]}
    with FakeModelAPI(scenario) as server:
        pair = make_pair(harness, server, tmp_path)
        work = pair.folder("real", "work")
        ran = pair.real.run(argv_for(harness, "[oompa:s1:w0] hi", work, SessionMode.new()), work)
        errors = [r for r in server.requests if r.kind == "error"]
    assert ran.code == API_ERROR_EXIT[harness], ran.text[-1500:]
    assert len(errors) == 1, "retries must be off: one request, one error"


# ------------------------------------------------------------------------------------------
# End to end: one real worker in a swarm, driven by the fake API
# ------------------------------------------------------------------------------------------


def worker_scenario(harness: str) -> dict[str, Any]:
    return {
        "conversations": [
            {"match": "Review the changes", "turns": ["The change is fine.\nVERDICT: APPROVED"]},
            {
                "match": "How this swarm works",
                "turns": [
                    "I take t1.\nCLAIM(t1)",
                    {
                        "expect": "Claimed: t1",
                        "say": "Writing the file.",
                        "write": {"path": "hello.txt", "content": f"hello from {harness}\n"},
                    },
                    {"shell": "git add hello.txt && git commit -qm 'w0: hello' && echo committed"},
                    {"expect": "committed", "say": "Done.\nCOMPLETE_AND_READY_FOR_MERGE"},
                ],
            },
        ]
    }


@pytest.mark.parametrize("harness", HARNESSES)
def test_swarm_with_one_real_worker(harness: str, tmp_path: Path) -> None:
    cli = need(harness)
    repo = GitRepo(tmp_path / "project")
    repo.add_task("t1")
    repo.commit("seed t1")
    model = f"{harness}:{MODELS[harness]}"
    with FakeModelAPI(worker_scenario(harness), max_stall=30) as server:
        env = real_clis.real_environment([cli], server.url, tmp_path / "home")
        run = SwarmRunner(tmp_path, repo)(
            {"workers": [{"model": model, "iterations": 2}], "reviewer": {"model": model}},
            fake=False,
            env=env,
            call_timeout=CALL_TIMEOUT,
            # opencode works in $PWD, which the engine leaves at pytest's (docs/real-clis.md).
            adjust_command=real_clis.set_pwd,
        )
        requests = server.model_requests()
        unmatched = server.unmatched
    assert not unmatched, [r.note for r in unmatched]
    assert_run_valid(run.run_dir)
    failures = [(r.key, r.error) for r in run.result.iterations if r.error]
    assert run.outcomes("w0") == ["claimed", "merged"], failures or run.result.errors
    assert run.workers["w0"].metrics.merges == 1
    assert "hello.txt" in repo.files("main")
    assert repo.git("show", "main:hello.txt") == f"hello from {harness}\n"
    assert repo.tasks("complete") == ["t1"]
    # The second iteration resumed the first one's session.
    first, second = sorted(run.result.iterations, key=lambda r: r.iteration)
    assert first.calls[0].session_id and first.calls[0].session_id == second.calls[0].session_id
    resumed = next(r for r in requests if r.conversation == "How this swarm works" and r.turn == 1)
    history = resumed.history()
    assert ("assistant", "I take t1.\nCLAIM(t1)") in history
    assert any(role == "user" and "How this swarm works" in text for role, text in history)
    # The reviewer's verdict was parsed.
    (review,) = second.reviews
    assert review.verdict == "approved"
    assert "VERDICT: APPROVED" in review.output
    assert [r.conversation for r in requests if r.conversation == "probe"] == ["probe"]
    assert_worker_transcript(run.run_dir, harness)
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


# The tool calls the fake model API's "write" and "shell" turns make each real CLI do: the CLI's
# own write tool (codex writes with its shell), then its shell tool with the commit.
WRITE_TOOL = {"claude": "Write", "codex": "shell", "opencode": "write", "gemini": "write_file"}
SHELL_TOOL = {"claude": "Bash", "codex": "shell", "opencode": "bash", "gemini": "run_shell_command"}


def assert_worker_transcript(run_dir: Path, harness: str) -> None:
    """The worker's command logs keep the CLI's whole event stream (claude stream-json, gemini
    -o stream-json, codex and opencode JSON events), and ``transcript`` reads from them the tool
    calls the real CLI made: the file it wrote and the shell command that committed it."""
    logs = sorted((run_dir / "commands").glob("*.ndjson"))
    worker = []
    for log in logs:
        start = json.loads(log.read_text().splitlines()[0])
        if start["role"] == "worker":
            worker.append(log)
    assert len(worker) == 2, [p.name for p in logs]
    read = [from_command_log(log) for log in worker]
    assert {name for name, _ in read} == {harness}
    entries = [e for _, found in read for e in found]
    calls = [e for e in entries if e.kind == "tool"]
    assert [c.tool for c in calls] == [WRITE_TOOL[harness], SHELL_TOOL[harness]], calls
    write, commit = calls
    assert "hello.txt" in write.input
    if harness != "codex":  # codex's multi-line printf shows its first line only
        assert write.text.endswith("hello.txt")
    assert "git commit -qm 'w0: hello'" in json.loads(commit.input)["command"]
    result = entries[entries.index(commit) + 1]
    assert (result.kind, result.tool, result.text.strip()) == (
        "result",
        SHELL_TOOL[harness],
        "committed",
    )
    assert entries[-1].kind == "message" and "COMPLETE_AND_READY_FOR_MERGE" in entries[-1].text
    if harness in ("claude", "gemini"):  # the stream, not the one result object of old
        raw = "".join(
            e["data"]
            for line in worker[1].read_text().splitlines()
            if (e := json.loads(line))["event"] == "output" and e["stream"] == "stdout"
        )
        kinds = {json.loads(line)["type"] for line in raw.splitlines() if line.strip()}
        assert {"tool_use", "result"} <= kinds or {"assistant", "user", "result"} <= kinds


# ------------------------------------------------------------------------------------------
# The command line: --oompa-real-harness with --oompa-fake-api, and wire cassettes
# ------------------------------------------------------------------------------------------


def real_project(
    pytester: pytest.Pytester, name: str, harness: str, tasks: tuple[str, ...] = ("t1",)
) -> GitRepo:
    model = f"{harness}:{MODELS[harness]}"
    repo = GitRepo(pytester.path / name)
    repo.add_swarm_config(
        {"workers": [{"model": model, "iterations": 2}], "reviewer": {"model": model}},
        tasks=tasks,
    )
    return repo


def run_swarm(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    repo: GitRepo,
    cli: real_clis.RealCLI,
    *args: str,
) -> pytest.RunResult:
    monkeypatch.chdir(repo.path)
    # pytester's HOME is its own folder: say where the CLI is installed.
    monkeypatch.setenv(real_clis.DIR_ENV, str(cli.bin_dir))
    result = pytester.runpytest(
        "--oompa-swarm=oompa.json",
        f"--oompa-call-timeout={CALL_TIMEOUT}",
        "-p",
        "no:cacheprovider",
        *args,
    )
    if result.ret != pytest.ExitCode.USAGE_ERROR:
        # Every artifact of a run on the real CLIs validates: ours, and oompa's contract.
        runs = repo.path / "runs"
        assert runs.is_dir(), f"no runs folder in {repo.path}"
        assert_runs_valid(runs)
    return result


def assert_merged(repo: GitRepo, harness: str) -> None:
    assert repo.git("show", "main:hello.txt") == f"hello from {harness}\n"
    assert repo.tasks("complete") == ["t1"]


def test_a_swarm_of_real_clis_on_the_fake_api_from_the_command_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = need("claude")
    repo = real_project(pytester, "project", "claude")
    scenario = pytester.path / "scenario.json"
    scenario.write_text(json.dumps(worker_scenario("claude")))
    result = run_swarm(
        pytester,
        monkeypatch,
        repo,
        cli,
        "--oompa-real-harness=claude",
        "--oompa-fake-api",
        f"--oompa-fake-api-scenario={scenario}",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["real CLIs: claude 2.*; model API: fake, scenario *scenario.json"])
    assert_merged(repo, "claude")


@pytest.mark.parametrize("harness", HARNESSES)
def test_a_swarm_recorded_at_the_wire_replays_offline(
    harness: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Record: the real CLI talks to the recording proxy, which forwards to a provider (here a
    fake model API on a scenario). Replay, in a fresh project: no provider at all."""
    cli = need(harness)
    cassette = tmp_path / f"{harness}.wire.json"
    recorded = real_project(pytester, "recorded", harness)
    with FakeModelAPI(worker_scenario(harness), max_stall=30) as provider:
        result = run_swarm(
            pytester,
            monkeypatch,
            recorded,
            cli,
            f"--oompa-real-harness={harness}",
            f"--oompa-wire-record={cassette}",
            f"--oompa-wire-upstream={provider.url}",
        )
        answered = len(provider.model_requests())
        assert not provider.unmatched, [r.note for r in provider.unmatched]
    result.assert_outcomes(passed=2)
    assert_merged(recorded, harness)
    data = json.loads(cassette.read_text())
    assert data["clients"] == {harness: cli.version}
    exchanges = data["exchanges"]
    assert len([e for e in exchanges if e["kind"] == "main"]) == answered
    result.stdout.fnmatch_lines([f"wire cassette: {len(exchanges)} exchange(s) recorded in *"])

    replayed = real_project(pytester, "replayed", harness)
    result = run_swarm(
        pytester,
        monkeypatch,
        replayed,
        cli,
        f"--oompa-real-harness={harness}",
        f"--oompa-wire-replay={cassette}",
    )
    result.assert_outcomes(passed=2)
    n = len(exchanges)
    result.stdout.fnmatch_lines([f"wire replay: {n} of {n} recorded exchange(s) replayed from *"])
    result.stdout.no_fnmatch_line("*unmatched*")
    assert_merged(replayed, harness)


def test_a_replay_that_diverges_fails_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same cassette on a project with another task: the first worker prompt (which lists
    the pending tasks) has no recording, the CLI gets a 400 saying why, the session fails."""
    cli = need("claude")
    cassette = tmp_path / "claude.wire.json"
    with FakeModelAPI(worker_scenario("claude"), max_stall=30) as provider:
        result = run_swarm(
            pytester,
            monkeypatch,
            real_project(pytester, "recorded", "claude"),
            cli,
            "--oompa-real-harness=claude",
            f"--oompa-wire-record={cassette}",
            f"--oompa-wire-upstream={provider.url}",
            "--oompa-no-probe",
        )
    result.assert_outcomes(passed=2)
    other = real_project(pytester, "other", "claude", tasks=("t2",))
    result = run_swarm(
        pytester,
        monkeypatch,
        other,
        cli,
        "--oompa-real-harness=claude",
        f"--oompa-wire-replay={cassette}",
        "--oompa-no-probe",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*model API: unmatched POST /v1/messages*: oompa wire replay: *"])


# ------------------------------------------------------------------------------------------
# The harness contract suite against the four real CLIs
# ------------------------------------------------------------------------------------------


def test_the_contract_suite_passes_against_the_real_clis(pytester: pytest.Pytester) -> None:
    """Every check of ``--oompa-contract`` for each real CLI, its model checks on the loopback
    model API: nothing skipped, nothing failed (about 80 s on two processes, 110 s on one, most
    of it opencode's start-up)."""
    clis = [need(name) for name in HARNESSES]
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    parallel = ["-n", "2"] if importlib.util.find_spec("xdist") else []
    result = pytester.runpytest_subprocess(
        f"--oompa-contract={','.join(HARNESSES)}",
        "--oompa-real-harness=all",
        "--oompa-fake-api",
        f"--oompa-real-harness-dir={clis[0].bin_dir}",
        "-rs",
        *parallel,
        timeout=600,
    )
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    assert outcomes.get("skipped", 0) == 0, result.stdout.str()[-3000:]
    # Each check runs against the fake and against the real CLI, for each of the four.
    assert outcomes["passed"] >= 2 * 4 * 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--oompa-wire-record=c.json", "--oompa-wire-upstream=chat=http://127.0.0.1:9"],
            "--oompa-wire-upstream gives no URL for anthropic, which the selected CLIs speak",
        ),
        (["--oompa-wire-record=c.json"], "needs ANTHROPIC_API_KEY in the environment"),
        (["--oompa-wire-replay=c.json", "-n", "2"], "--oompa-wire-replay runs in one process"),
        (["--oompa-wire-replay=missing.json"], "missing.json: no such wire cassette"),
        (["--oompa-fake-api"], "--oompa-fake-api with --oompa-swarm needs what the model answers"),
    ],
)
def test_refused_before_the_swarm_runs(
    args: list[str], message: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = need("claude")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run_swarm(
        pytester,
        monkeypatch,
        real_project(pytester, "p", "claude"),
        cli,
        "--oompa-real-harness=claude",
        *args,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*oompa: *{message}*"])
