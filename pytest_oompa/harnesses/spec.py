"""What a harness entry is: ``HarnessSpec`` (every fact about one agent CLI, as data), the
session modes of a call, and ``build_command``, which turns an entry into an argv.

Argv templates are tuples of strings where ``{prompt}``, ``{model}``, ``{cwd}``, ``{session}``
and ``{reasoning}`` are substituted per element; a substituted value is never re-parsed, and
nothing ever passes through a shell.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

from pytest_oompa.harnesses.output import Entry, ParsedOutput, parse_text, text_transcript


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
    # Reads the CLI's structured output (text, session id, tokens, cost); a plugin's harness
    # brings its own callable.
    parser: Callable[[str], ParsedOutput] = parse_text
    # Reads the same output as what the agent did, step by step (messages, tool calls and
    # their results, errors) for the report; never raises, skips what it cannot read.
    transcript: Callable[[str], list[Entry]] = text_transcript
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
    # A model the CLI accepts when a test names none (fixtures, the contract suite).
    default_model: str = "default"
    # The real CLI: its package in the npm registry and the version the facts were checked
    # against (the real-CLI tier installs exactly this one); None for a plugin's harness.
    real: RealPackage | None = None
    # How the real CLI is pointed at the loopback fake model API; None: it cannot be.
    recipe: Recipe | None = None

    def parse(self, stdout: str) -> ParsedOutput:
        return self.parser(stdout)

    def entries(self, stdout: str) -> list[Entry]:
        return self.transcript(stdout)

    @property
    def parser_name(self) -> str:
        """The parser's name for messages and the contract suite's test ids:
        ``parse_opencode_ndjson`` reads as ``opencode-ndjson``."""
        name: str = getattr(self.parser, "__name__", type(self.parser).__name__)
        return name.removeprefix("parse_").replace("_", "-")


@dataclass(frozen=True)
class RealPackage:
    """Where the real CLI comes from: ``npm install {package}@{version}``."""

    package: str
    version: str


@dataclass(frozen=True)
class Recipe:
    """What the real CLI needs to talk to the fake model API: environment variables and files
    in its private HOME, with ``{base_url}`` and ``{home}`` filled in per run."""

    env: Mapping[str, str]
    files: Mapping[str, str] = field(default_factory=dict)  # path relative to HOME -> content
    api: str = ""  # the wire protocol the fake model API speaks to it
    notes: str = ""

    def render(self, base_url: str, home: Path) -> tuple[dict[str, str], dict[str, str]]:
        env = {k: fill(v, base_url, home) for k, v in self.env.items()}
        files = {k: fill(v, base_url, home) for k, v in self.files.items()}
        return env, files


def fill(template: str, base_url: str, home: Path) -> str:
    return template.replace("{base_url}", base_url.rstrip("/")).replace("{home}", str(home))


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
