"""The harness registry: every fact about an agent CLI, as data, in one place.

One ``HarnessSpec`` per CLI says how to call it headless (binary, subcommand, flags), how the
prompt travels, how sessions are chosen and resumed, which structured output it prints and
which environment it needs. The facts come from SPEC-harnesses.md (checked against claude-code
2.1.197, codex 0.169.0, opencode-ai 1.18.33 and gemini-cli 0.61.0), not from oompa's older argv
table. Adding a harness is adding one entry, here or from a plugin through the
``pytest_oompa_register_harnesses`` hook.

Argv templates are tuples of strings where ``{prompt}``, ``{model}``, ``{cwd}``, ``{session}``
and ``{reasoning}`` are substituted per element; a substituted value is never re-parsed, and
nothing ever passes through a shell.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pytest_oompa.harnesses.parsers import PARSERS, ParsedOutput


class SessionStrategy(str, Enum):
    CHOSEN_UUID = "chosen-uuid"  # we pick a UUID and pass it (claude, gemini)
    REPORTED = "reported"  # the CLI picks one and prints it in its structured output


@dataclass(frozen=True)
class HarnessSpec:
    name: str
    binary: str
    subcommand: tuple[str, ...] = ()
    headless: tuple[str, ...] = ()
    auto_approve: tuple[str, ...] = ()
    cwd_args: tuple[str, ...] = ()
    output_args: tuple[str, ...] = ()
    model_args: tuple[str, ...] = ("--model", "{model}")
    reasoning_args: tuple[str, ...] = ()  # empty: the CLI takes no reasoning level
    new_session_args: tuple[str, ...] = ()  # only for CHOSEN_UUID
    resume_args: tuple[str, ...] = ()
    prompt_args: tuple[str, ...] = ("{prompt}",)
    resume_prompt_args: tuple[str, ...] | None = None  # None: same as prompt_args
    session: SessionStrategy = SessionStrategy.CHOSEN_UUID
    parser: str = "text"
    env: Mapping[str, str] = field(default_factory=dict)
    # What the CLI does with an open stdin; we always pass a closed one (DEVNULL).
    stdin_note: str = ""
    version_args: tuple[str, ...] = ("--version",)
    exit_codes: Mapping[str, int] = field(default_factory=dict)
    # Variables (exact names, or prefixes ending in '*') the CLI reads from the environment:
    # the harness process gets these, BASE_ENV and what the user configures, nothing else.
    env_pass: tuple[str, ...] = ()
    # Exit codes that mean a transient infrastructure failure (retried when retries are on).
    transient_exit_codes: frozenset[int] = frozenset()

    def parse(self, stdout: str) -> ParsedOutput:
        return PARSERS[self.parser](stdout)


@dataclass(frozen=True)
class SessionMode:
    """How a call relates to a conversation: one-shot, a new session, or a resume."""

    kind: Literal["none", "new", "resume"]
    session_id: str | None = None

    @classmethod
    def none(cls) -> SessionMode:
        return cls("none")

    @classmethod
    def new(cls) -> SessionMode:
        return cls("new")

    @classmethod
    def resume(cls, session_id: str) -> SessionMode:
        return cls("resume", session_id)


@dataclass(frozen=True)
class HarnessCommand:
    harness: str
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    session_id: str | None  # known before the call (chosen, or resumed); else read from output


def build_command(
    spec: HarnessSpec,
    *,
    prompt: str,
    model: str,
    cwd: Path,
    session: SessionMode,
    reasoning: str | None = None,
    binary: str | None = None,
) -> HarnessCommand:
    """Assemble the argv for one call; ``binary`` overrides the spec's (an absolute path)."""
    session_id = session.session_id
    if session.kind == "new" and spec.session is SessionStrategy.CHOSEN_UUID:
        session_id = str(uuid.uuid4())
    values = {
        "prompt": prompt,
        "model": model,
        "cwd": str(cwd),
        "session": session_id or "",
        "reasoning": reasoning or "",
    }

    def fill(template: tuple[str, ...]) -> list[str]:
        return [part.format_map(values) for part in template]

    argv = [binary or spec.binary, *spec.subcommand, *spec.headless, *spec.auto_approve]
    argv += fill(spec.cwd_args) + fill(spec.output_args) + fill(spec.model_args)
    if reasoning and spec.reasoning_args:
        argv += fill(spec.reasoning_args)
    prompt_args = spec.prompt_args
    if session.kind == "new" and spec.session is SessionStrategy.CHOSEN_UUID:
        argv += fill(spec.new_session_args)
    elif session.kind == "resume":
        argv += fill(spec.resume_args)
        prompt_args = spec.resume_prompt_args or spec.prompt_args
    argv += fill(prompt_args)
    return HarnessCommand(spec.name, tuple(argv), cwd, dict(spec.env), session_id)


BUILTIN_HARNESSES: tuple[HarnessSpec, ...] = (
    HarnessSpec(
        name="claude",
        binary="claude",
        headless=("-p",),
        # As root, --dangerously-skip-permissions exits 1 unless IS_SANDBOX=1 is set.
        auto_approve=("--dangerously-skip-permissions",),
        output_args=("--output-format", "json"),
        model_args=("--model", "{model}"),
        new_session_args=("--session-id", "{session}"),
        # --resume alone: combined with --session-id, claude exits 1.
        resume_args=("--resume", "{session}"),
        prompt_args=("--", "{prompt}"),
        session=SessionStrategy.CHOSEN_UUID,
        parser="claude-json",
        env=MappingProxyType({"IS_SANDBOX": "1"}),
        env_pass=("ANTHROPIC_*", "CLAUDE_*", "DISABLE_*", "CLAUDE_CODE_*"),
        stdin_note="may carry the prompt; an open pipe costs a 3 s wait",
        exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 1}),
    ),
    HarnessSpec(
        name="codex",
        binary="codex",
        subcommand=("exec",),
        auto_approve=("--dangerously-bypass-approvals-and-sandbox",),
        cwd_args=("-C", "{cwd}", "--skip-git-repo-check"),
        output_args=("--json",),
        model_args=("-m", "{model}"),
        reasoning_args=("-c", 'model_reasoning_effort="{reasoning}"'),
        # `codex exec [flags] resume <thread_id> <prompt>`: flags stay before `resume`.
        resume_args=("resume", "{session}"),
        prompt_args=("--", "{prompt}"),
        resume_prompt_args=("{prompt}",),
        session=SessionStrategy.REPORTED,
        parser="codex-jsonl",
        env_pass=("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*"),
        stdin_note="must be closed, or it blocks forever",
        exit_codes=MappingProxyType({"bad-flag": 2, "unknown-session": 1}),
    ),
    HarnessSpec(
        name="opencode",
        binary="opencode",
        subcommand=("run",),
        auto_approve=("--auto",),
        output_args=("--format", "json"),
        model_args=("-m", "{model}"),
        resume_args=("-s", "{session}"),
        # Checked against the real opencode 1.18.33: a message that starts with '-' is read
        # as an option unless '--' comes first.
        prompt_args=("--", "{prompt}"),
        session=SessionStrategy.REPORTED,
        parser="opencode-ndjson",
        # opencode talks to many providers; each reads its own key.
        env_pass=(
            "OPENCODE_*",
            "OPENROUTER_*",
            "ANTHROPIC_*",
            "OPENAI_*",
            "GROQ_*",
            "GOOGLE_*",
            "GEMINI_*",
            "MISTRAL_*",
            "DEEPSEEK_*",
            "XAI_*",
        ),
        stdin_note="must be closed, or it blocks forever",
        exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 1}),
    ),
    HarnessSpec(
        name="gemini",
        binary="gemini",
        # Without --skip-trust (or GEMINI_CLI_TRUST_WORKSPACE=true) gemini exits 55.
        auto_approve=("--yolo", "--skip-trust"),
        output_args=("-o", "json"),
        model_args=("-m", "{model}"),
        new_session_args=("--session-id", "{session}"),
        resume_args=("--resume", "{session}"),
        # `-p "-x"` breaks on a leading dash; the = form never does.
        prompt_args=("--prompt={prompt}",),
        session=SessionStrategy.CHOSEN_UUID,
        parser="gemini-json",
        env_pass=("GEMINI_*", "GOOGLE_*"),
        # In its json modes gemini exits with the HTTP status mod 256: 429, 500, 502, 503, 504.
        transient_exit_codes=frozenset({173, 244, 246, 247, 248}),
        stdin_note="read with a 500 ms timeout",
        exit_codes=MappingProxyType({"bad-flag": 1, "unknown-session": 42}),
    ),
)


# What any CLI may need from the environment: its user, locale, home and config folders,
# proxies and certificates, a git identity. Not GIT_DIR and friends (they would point an
# agent's git at another repository), not the parent's secrets.
BASE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "TZ",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "XDG_*",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "GIT_AUTHOR_*",
    "GIT_COMMITTER_*",
    "SSH_AUTH_SOCK",
    "OOMPA_*",
)


def env_matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


class UnknownHarness(KeyError):
    pass


class HarnessRegistry:
    """Name -> HarnessSpec. A plugin may add or replace entries before the swarm starts."""

    def __init__(self, specs: tuple[HarnessSpec, ...] = BUILTIN_HARNESSES) -> None:
        self._specs: dict[str, HarnessSpec] = {s.name: s for s in specs}

    def register(self, spec: HarnessSpec) -> None:
        if spec.parser not in PARSERS:
            raise ValueError(f"harness {spec.name!r}: unknown parser {spec.parser!r}")
        self._specs[spec.name] = spec

    def get(self, name: str) -> HarnessSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownHarness(f"unknown harness {name!r} (known: {known})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __iter__(self) -> Iterator[HarnessSpec]:
        return iter(self._specs.values())
