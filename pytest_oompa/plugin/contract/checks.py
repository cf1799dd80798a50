"""The harness contract suite: what any harness must do for the engine to drive it.

Collected by ``--oompa-contract=NAME[,…]``; each check runs once per target (a harness against
its fake, or against the real CLI) and its id names the registry fact it verifies, e.g.
``test_resume_keeps_the_session[claude-fake: resume_args ('--resume', '{session}')]``.
Commands are built and run exactly as the engine builds and runs them (``build_command``, the
``pytest_oompa_harness_command`` hook, ``HarnessCaller``: its environment, a closed stdin,
the registry's parser).

Against a real CLI, the checks that need a model skip unless the ``oompa_model_api`` fixture
provides one; the others (version, a wrong flag, an unknown session) run offline in a
throwaway HOME.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pytest_oompa.core.config import AgentSpec
from pytest_oompa.engine import prompts
from pytest_oompa.engine.calls import CallOutcome, HarnessCaller
from pytest_oompa.engine.markers import DONE_SIGNAL, MERGE_SIGNAL, parse_signals, parse_verdict
from pytest_oompa.engine.processes import ProcessSupervisor, ProcResult
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import (
    HarnessCommand,
    HarnessSpec,
    SessionMode,
    SessionStrategy,
    build_command,
)
from pytest_oompa.plugin.contract.plugin import MARKER, TARGETS_KEY, Target
from pytest_oompa.plugin.fake_harness import FakeHarness, Invocation
from pytest_oompa.plugin.real_harness import (
    NEEDS_MODEL,
    ModelAPI,
    ModelReply,
    RealHarness,
    real_harness_for,
)
from pytest_oompa.plugin.registry import registry_for

pytestmark = getattr(pytest.mark, MARKER)

FAKE_TIMEOUT = 60.0
REAL_TIMEOUT = 180.0
BAD_FLAG = "--oompa-contract-no-such-flag"
TASK = "contract-task"
Check = TypeVar("Check", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------
# Facts: what each check verifies, rendered from the registry entry
# ---------------------------------------------------------------------------------------------


def template(spec: HarnessSpec, session: str) -> str:
    """The argv the registry builds, with {placeholders} for what varies per call."""
    mode = {
        "new": SessionMode.new(),
        "resume": SessionMode.resume("{session}"),
        "none": SessionMode.none(),
    }[session]
    command = build_command(
        spec, prompt="{prompt}", model="{model}", cwd=Path("{cwd}"), session=mode
    )
    argv = list(command.argv)
    if command.session_id and command.session_id != "{session}":
        argv = [a.replace(command.session_id, "{session}") for a in argv]
    return " ".join(argv)


def fact(render: Callable[..., str]) -> Callable[[Check], Check]:
    """Attach the registry fact a check verifies (rendered per harness for its id)."""

    def attach(check: Check) -> Check:
        check.fact = render  # type: ignore[attr-defined]
        return check

    return attach


@dataclass(frozen=True)
class Signal:
    name: str
    role: str  # the role whose reply carries it
    text: str  # what the agent prints
    expect: str  # what the engine must read, for the check's id

    def understood(self, reply: str) -> bool:
        found = parse_signals(reply)
        if self.name == "claim":
            return found.claims == (TASK,)
        if self.name == "merge":
            return found.merge
        if self.name == "done":
            return found.done
        return parse_verdict(reply) == self.name.removeprefix("verdict-")


SIGNALS = (
    Signal("claim", "worker", f"CLAIM({TASK})", f"parse_signals reads claims ({TASK!r},)"),
    Signal("merge", "worker", MERGE_SIGNAL, "parse_signals reads merge"),
    Signal("done", "worker", DONE_SIGNAL, "parse_signals reads done"),
    Signal("verdict-approved", "reviewer", "VERDICT: APPROVED", "parse_verdict: 'approved'"),
    Signal(
        "verdict-needs-changes",
        "reviewer",
        "VERDICT: NEEDS_CHANGES",
        "parse_verdict: 'needs-changes'",
    ),
    Signal("verdict-rejected", "reviewer", "VERDICT: REJECTED", "parse_verdict: 'rejected'"),
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract" not in metafunc.fixturenames:
        return
    found: list[Target] = metafunc.config.stash.get(TARGETS_KEY, [])
    targets: list[Target | None] = list(found)
    registry = registry_for(metafunc.config)
    render = getattr(metafunc.function, "fact", lambda spec: "")
    if not targets:
        targets = [None]
    if "signal" in metafunc.fixturenames:
        values = [(t, s) for t in targets for s in SIGNALS]
        ids = [
            f"{t}: {s.text} in the reply, {s.expect}" if t else f"no-harness-{s.name}"
            for t, s in values
        ]
        metafunc.parametrize(("contract", "signal"), values, ids=ids, indirect=["contract"])
        return
    ids = [f"{t}: {render(registry.get(t.harness))}" if t else "no-harness" for t in targets]
    metafunc.parametrize("contract", targets, ids=ids, indirect=True)


# ---------------------------------------------------------------------------------------------
# The target under test: how its calls run
# ---------------------------------------------------------------------------------------------


@dataclass
class Contract:
    """One harness against its fake or its real CLI, for one check."""

    target: Target
    spec: HarnessSpec
    registry: HarnessRegistry
    root: Path
    caller: HarnessCaller
    fake: FakeHarness | None = None
    real: RealHarness | None = None
    model_api: ModelAPI | None = None
    _projects: int = 0
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.target.harness

    @property
    def where(self) -> str:
        """What ran, for messages: ``claude (fake /tmp/…/claude)``."""
        binary = self.caller.binary(self.name) or self.spec.binary
        version = f" {self.real.version}" if self.real else ""
        return f"{self.name} ({self.target.kind}{version} {binary})"

    def needs_model(self) -> None:
        if self.real is not None and self.model_api is None:
            pytest.skip(NEEDS_MODEL)

    def project(self) -> Path:
        """A fresh folder holding a git repository, where a worker's worktree would be."""
        self._projects += 1
        path = self.root / f"project-{self._projects}"
        path.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
        return path

    def swarm_id(self, worker: str = "w0") -> str:
        """The swarm id in this check's prompt tags (unique, so a model API can match it)."""
        return self._tokens.setdefault(worker, f"contract-{secrets.token_hex(4)}")

    def prompt(self, role: str, worker: str = "w0", *, resume: bool = False) -> str:
        """The engine's own prompt for the role (a resumed worker gets the short one)."""
        swarm = self.swarm_id(worker)
        if role == "probe":
            return prompts.PROBE_PROMPT
        if role == "reviewer":
            return prompts.review(swarm, worker, "+ a contract check change", "", [])
        if resume:
            return prompts.resume(swarm, worker, "(no tasks)")
        return prompts.fresh(swarm, worker, "(no tasks)", "Do the contract check.")

    def script(self, role: str, replies: list[ModelReply], worker: str = "w0") -> None:
        """What the agent does in its next calls of ``role``: the fake's scenario, or the
        model API's script for a real CLI."""
        if self.fake is not None:
            scenario = self.fake.scenario
            calls = scenario.probe() if role == "probe" else scenario.for_worker(worker).role(role)
            for i, reply in enumerate(replies, 1):
                step = calls.on_call(i).says(reply.text)
                for path, content in reply.writes.items():
                    step.writes(path, content)
            return
        assert self.model_api is not None
        match = "[_HIDE_TEST_]" if role == "probe" else prompts.tag(self.swarm_id(worker), worker)
        self.model_api.script(match.strip(), replies)

    def call(
        self,
        role: str,
        session: SessionMode,
        cwd: Path,
        *,
        worker: str = "w0",
        prompt: str | None = None,
    ) -> CallOutcome:
        return self.caller.call(
            AgentSpec(self.name, self.target.model),
            role=role,
            prompt=prompt if prompt is not None else self.prompt(role, worker),
            cwd=cwd,
            session=session,
            timeout=REAL_TIMEOUT if self.real else FAKE_TIMEOUT,
        )

    def raw(self, argv: list[str], cwd: Path, env: Mapping[str, str]) -> ProcResult:
        """Run an argv as the engine would (environment, closed stdin, process group)."""
        return self.caller.supervisor.run(
            argv,
            cwd=cwd,
            env={**self.caller.env_for(self.name), "PWD": str(cwd), **env},
            timeout=REAL_TIMEOUT if self.real else FAKE_TIMEOUT,
        )

    def command(self, session: SessionMode, cwd: Path, prompt: str) -> HarnessCommand:
        """The registry's command for a call, after the pytest_oompa_harness_command hook."""
        command = build_command(
            self.spec,
            prompt=prompt,
            model=self.target.model,
            cwd=cwd,
            session=session,
            binary=self.caller.binary(self.name) or self.spec.binary,
        )
        return self.caller.adjust(command, "worker") if self.caller.adjust else command

    def invocations(self) -> list[Invocation]:
        return self.fake.invocations if self.fake is not None else []


@pytest.fixture
def contract(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    oompa_model_api: ModelAPI | None,
) -> Iterator[Contract]:
    target: Target | None = request.param
    if target is None:
        pytest.skip("no harness selected: run with --oompa-contract=NAME[,NAME]")
    config = request.config
    registry = registry_for(config)
    spec = registry.get(target.harness)
    hook = config.hook

    def adjust(command: HarnessCommand, role: str) -> HarnessCommand:
        adjusted: HarnessCommand | None = hook.pytest_oompa_harness_command(
            command=command, role=role
        )
        return adjusted or command

    fake = real = None
    extra: dict[str, str] = {}
    if target.kind == "real":
        real = real_harness_for(config, target.harness, tmp_path / "home", registry)
        source = real.env()
        if oompa_model_api is not None:
            extra.update(oompa_model_api.environment(target.harness, real.home))
    else:
        fake = FakeHarness(tmp_path / "fake", monkeypatch, registry)
        source = dict(os.environ)
        extra.update(fake.env)
    caller = HarnessCaller(registry, ProcessSupervisor(), source, adjust=adjust, extra_env=extra)
    if caller.binary(target.harness) is None:
        where = "the real CLI's folder and PATH" if real else "the bundled fakes and PATH"
        pytest.skip(f"{target.harness}: no {spec.binary!r} in {where}")
    yield Contract(
        target,
        spec,
        registry,
        tmp_path,
        caller,
        fake=fake,
        real=real,
        model_api=oompa_model_api if real else None,
    )


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _tail(text: str, lines: int = 8) -> str:
    shown = text.strip().splitlines()[-lines:]
    return "\n".join(f"      {line}" for line in shown) or "      (empty)"


def _argv(argv: tuple[str, ...] | list[str]) -> str:
    return " ".join(
        a if len(a) <= 80 and "\n" not in a else f"<{len(a)} chars: {a[:40]!r}…>" for a in argv
    )


def explain(outcome: CallOutcome) -> str:
    proc = outcome.proc
    return (
        f"    argv: {_argv(outcome.record.argv)}\n"
        f"    cwd: {outcome.record.cwd}\n"
        f"    exit code: {proc.exit_code}\n"
        f"    stderr:\n{_tail(proc.stderr)}\n"
        f"    stdout:\n{_tail(proc.stdout)}"
    )


def explain_proc(proc: ProcResult) -> str:
    return (
        f"    argv: {_argv(proc.argv)}\n"
        f"    exit code: {proc.exit_code}\n"
        f"    stderr:\n{_tail(proc.stderr)}\n"
        f"    stdout:\n{_tail(proc.stdout)}"
    )


def accepted(c: Contract, outcome: CallOutcome, what: str) -> None:
    if outcome.failure:
        pytest.fail(
            f"{c.where} did not accept the registry's argv for {what}: {outcome.failure}\n"
            + explain(outcome),
            pytrace=False,
        )


def fresh_call(c: Contract, cwd: Path, replies: list[ModelReply]) -> CallOutcome:
    c.script("worker", replies)
    outcome = c.call("worker", SessionMode.new(), cwd)
    accepted(c, outcome, "a new session")
    return outcome


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


@fact(lambda spec: f"version_args {spec.version_args!r} prints a version")
def test_version(contract: Contract) -> None:
    """The version command answers (preflight and run tracking record it)."""
    c = contract
    binary = c.caller.binary(c.name) or c.spec.binary
    proc = c.raw([binary, *c.spec.version_args], c.root, {})
    if proc.exit_code != 0 or not any(ch.isdigit() for ch in proc.stdout):
        pytest.fail(
            f"{c.where}: {binary} {' '.join(c.spec.version_args)} printed no version\n"
            + explain_proc(proc),
            pytrace=False,
        )


@fact(lambda spec: f"new session: {template(spec, 'new')}")
def test_fresh_call_is_accepted(contract: Contract) -> None:
    """A worker's first call: the registry's argv for a new session is accepted."""
    c = contract
    c.needs_model()
    fresh_call(c, c.project(), [ModelReply("contract: fresh call")])


@fact(lambda spec: f"parser {spec.parser_name!r} reads the reply text and the session id")
def test_output_is_parsed(contract: Contract) -> None:
    """The structured output gives the engine the reply text and the session id."""
    c = contract
    c.needs_model()
    outcome = fresh_call(c, c.project(), [ModelReply("contract reply: parsed")])
    parsed = outcome.parsed
    problems = []
    if parsed.error:
        problems.append(parsed.error)
    if "contract reply: parsed" not in parsed.text:
        problems.append(f"reply text {parsed.text[:200]!r} lacks 'contract reply: parsed'")
    if not parsed.session_id:
        problems.append("no session id in the output")
    chosen = outcome.record.session_id if c.spec.session is SessionStrategy.CHOSEN_UUID else None
    if chosen and parsed.session_id and parsed.session_id != chosen:
        problems.append(
            f"the output's session id {parsed.session_id} is not the chosen {chosen} "
            f"(new_session_args {c.spec.new_session_args!r})"
        )
    if problems:
        pytest.fail(
            f"{c.where}: parser {c.spec.parser_name!r}: "
            + "; ".join(problems)
            + "\n"
            + explain(outcome),
            pytrace=False,
        )


def _resume(c: Contract) -> tuple[CallOutcome, CallOutcome]:
    cwd = c.project()
    first = fresh_call(c, cwd, [ModelReply("turn one"), ModelReply("turn two")])
    session_id = first.session_id
    if not session_id:
        pytest.fail(
            f"{c.where}: the first call left no session id to resume "
            f"(session strategy {c.spec.session.value!r})\n" + explain(first),
            pytrace=False,
        )
    if not c.spec.resume_args:
        pytest.fail(f"{c.where}: resume_args is empty: the registry cannot resume", pytrace=False)
    second = c.call(
        "worker", SessionMode.resume(session_id), cwd, prompt=c.prompt("worker", resume=True)
    )
    accepted(c, second, f"a resume (resume_args {c.spec.resume_args!r})")
    return first, second


@fact(lambda spec: f"resume: {template(spec, 'resume')}")
def test_resume_is_accepted(contract: Contract) -> None:
    """A worker's later call: the registry's argv for a resume is accepted."""
    contract.needs_model()
    _resume(contract)


@fact(lambda spec: f"resume_args {spec.resume_args!r}")
def test_resume_keeps_the_session(contract: Contract) -> None:
    """The second call resumes the first call's session (the same conversation)."""
    c = contract
    c.needs_model()
    first, second = _resume(c)
    session_id = first.session_id
    problems = []
    if second.parsed.session_id and second.parsed.session_id != session_id:
        problems.append(
            f"the resumed call reports session {second.parsed.session_id}, not {session_id}"
        )
    if "turn two" not in second.parsed.text:
        problems.append(f"the resumed call answered {second.parsed.text[:120]!r}, not turn 2")
    if c.fake is not None:
        calls = [i for i in c.invocations() if i.role == "worker"]
        last = calls[-1] if calls else None
        if last is None or not last.resumed or last.session_id != session_id:
            seen = f"resumed={last.resumed}, session {last.session_id}" if last else "no call"
            problems.append(f"the fake's log shows {seen}, not a resume of {session_id}")
        stored = c.fake.session(last.harness, str(session_id)) if last else None
        turns = len(stored["turns"]) if stored else 0
        if turns != 2:
            problems.append(f"the fake's session {session_id} holds {turns} turn(s), not 2")
    if problems:
        pytest.fail(
            f"{c.where}: resume_args {c.spec.resume_args!r} did not keep the session: "
            + "; ".join(problems)
            + "\n"
            + explain(second),
            pytrace=False,
        )


@fact(lambda spec: f"one-shot (reviewer): {template(spec, 'none')}")
def test_one_shot_reviewer_call(contract: Contract) -> None:
    """A review is a one-shot call (no session); its verdict is read from the reply."""
    c = contract
    c.needs_model()
    c.script("reviewer", [ModelReply("Looks fine.\nVERDICT: APPROVED")])
    outcome = c.call("reviewer", SessionMode.none(), c.project())
    accepted(c, outcome, "a one-shot (reviewer) call")
    if parse_verdict(outcome.parsed.text) != "approved":
        pytest.fail(
            f"{c.where}: the reviewer's VERDICT: APPROVED was read as "
            f"{parse_verdict(outcome.parsed.text)!r}\n" + explain(outcome),
            pytrace=False,
        )


@fact(lambda spec: f"probe: {template(spec, 'none')} with '{prompts.PROBE_PROMPT}'")
def test_probe(contract: Contract) -> None:
    """The preflight probe (one-shot, ``[_HIDE_TEST_] say ok``) is answered."""
    c = contract
    c.needs_model()
    c.script("probe", [ModelReply("ok")])
    outcome = c.call("probe", SessionMode.none(), c.project(), prompt=prompts.PROBE_PROMPT)
    accepted(c, outcome, "the preflight probe")
    if not outcome.parsed.text.strip():
        pytest.fail(f"{c.where}: the probe's reply is empty\n" + explain(outcome), pytrace=False)


def _cwd_fact(spec: HarnessSpec) -> str:
    if spec.cwd_args:
        return f"cwd_args {spec.cwd_args!r} and the process cwd: the agent works in {{cwd}}"
    return "the process cwd: the agent works in {cwd}"


@fact(_cwd_fact)
def test_working_directory(contract: Contract) -> None:
    """The agent works in the folder the engine gives it (its worktree), nowhere else."""
    c = contract
    c.needs_model()
    cwd = c.project()
    other = c.project()
    name = f"contract-{secrets.token_hex(3)}.txt"
    fresh_call(c, cwd, [ModelReply("wrote it", writes={name: "here\n"})])
    found = sorted(str(p) for p in c.root.rglob(name))
    if found != [str(cwd / name)]:
        pytest.fail(
            f"{c.where}: the agent should have written {name} in {cwd} only; found: "
            f"{found or 'nothing'} (another folder: {other})",
            pytrace=False,
        )
    if c.fake is not None:
        last = c.invocations()[-1]
        if last.cwd.resolve() != cwd.resolve():
            pytest.fail(f"{c.where}: the fake ran in {last.cwd}, not {cwd}", pytrace=False)


def test_signal_is_understood(contract: Contract, signal: Signal) -> None:
    """Each signal the agent prints reaches the engine through the parser and is read."""
    c = contract
    c.needs_model()
    c.script(signal.role, [ModelReply(f"Contract reply.\n{signal.text}")])
    session = SessionMode.new() if signal.role == "worker" else SessionMode.none()
    outcome = c.call(signal.role, session, c.project())
    accepted(c, outcome, f"a {signal.role} call")
    if not signal.understood(outcome.parsed.text):
        found = parse_signals(outcome.parsed.text)
        pytest.fail(
            f"{c.where}: {signal.text} printed, but {signal.expect} failed: parser "
            f"{c.spec.parser_name!r} gave text {outcome.parsed.text[:200]!r} "
            f"(claims {found.claims}, "
            f"merge {found.merge}, done {found.done}, verdict "
            f"{parse_verdict(outcome.parsed.text)!r})\n" + explain(outcome),
            pytrace=False,
        )


def _exit_code_fact(kind: str, what: str) -> Callable[[HarnessSpec], str]:
    def render(spec: HarnessSpec) -> str:
        code = spec.exit_codes.get(kind)
        if code is None:
            return f"exit_codes has no {kind!r}: {what} fails (any nonzero exit)"
        return f"exit_codes[{kind!r}] = {code}: {what} fails with it"

    return render


def _expect_exit(c: Contract, kind: str, proc: ProcResult, what: str) -> None:
    documented = c.spec.exit_codes.get(kind)
    ok = proc.exit_code == documented if documented is not None else bool(proc.exit_code)
    if not ok:
        expected = f"exit {documented}" if documented is not None else "a nonzero exit"
        fix = (
            "the call succeeded: the CLI did not see it as an error"
            if proc.exit_code == 0
            else f"fix HarnessSpec.exit_codes[{kind!r}] or the argv"
        )
        pytest.fail(
            f"{c.where}: {what}: expected {expected} (exit_codes[{kind!r}]), got exit "
            f"{proc.exit_code}; {fix}\n" + explain_proc(proc),
            pytrace=False,
        )


@fact(_exit_code_fact("bad-flag", "an unknown flag"))
def test_wrong_flag_fails_with_the_documented_exit_code(contract: Contract) -> None:
    """The registry's argv with one unknown flag is refused with the documented exit code."""
    c = contract
    cwd = c.project()
    command = c.command(SessionMode.new(), cwd, c.prompt("worker"))
    argv = list(command.argv)
    at = 1 + len(c.spec.subcommand)  # right after the binary and its subcommand
    argv[at:at] = [BAD_FLAG]
    proc = c.raw(argv, cwd, command.env)
    _expect_exit(c, "bad-flag", proc, f"an unknown flag ({BAD_FLAG})")


@fact(_exit_code_fact("unknown-session", "resuming an unknown session"))
def test_unknown_session_fails_with_the_documented_exit_code(contract: Contract) -> None:
    """The registry's resume argv for a session that does not exist fails with the documented
    exit code (and does not quietly start a new conversation)."""
    c = contract
    cwd = c.project()
    unknown = str(uuid.uuid4())
    command = c.command(SessionMode.resume(unknown), cwd, c.prompt("worker"))
    proc = c.raw(list(command.argv), cwd, command.env)
    _expect_exit(c, "unknown-session", proc, f"resuming the unknown session {unknown}")
