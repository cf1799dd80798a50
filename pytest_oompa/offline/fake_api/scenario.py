"""The fake model API's scenario: what the "model" answers, scripted once for every protocol.

An ``ApiScenario`` is a list of conversations, each picked by a substring of its first user
message and made of turns (one model response each): text, neutral tool calls (run a shell
command, write a file), usage figures, HTTP errors, delays and stalls. Nothing here knows a wire
protocol beyond its name: the protocol modules (``protocols/``) turn a turn into their own
stream, and ``tools`` turns a neutral tool call into the CLI's own tool. The format is
documented in docs/real-clis.md; parsing says which field is wrong (``ApiScenarioError``).

Named ``ApiScenario`` because the fake harnesses have their own scenario
(``pytest_oompa.offline.fake_scenario.Scenario``): one name per concept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_oompa.offline.fake_api.protocols import PROTOCOLS


class ApiScenarioError(ValueError):
    """The scenario data is not valid."""


@dataclass(frozen=True)
class HttpError:
    """An HTTP error answer, in the protocol's own error shape."""

    status: int
    message: str = ""
    retry_after: float | None = None

    @classmethod
    def parse(cls, data: Any, where: str) -> HttpError:
        if isinstance(data, int) and not isinstance(data, bool):
            data = {"status": data}
        if not isinstance(data, dict):
            raise ApiScenarioError(f"{where}: an error is a status code or {{status, message}}")
        _only(data, {"status", "message", "retry_after"}, where)
        status = data.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ApiScenarioError(
                f"{where}.status: an HTTP error status 400..599 (got {status!r})"
            )
        message = data.get("message") or f"oompa fake API: scripted HTTP {status}"
        retry = data.get("retry_after")
        if retry is not None and not isinstance(retry, (int, float)):
            raise ApiScenarioError(f"{where}.retry_after: seconds (got {retry!r})")
        return cls(status, str(message), None if retry is None else float(retry))


@dataclass(frozen=True)
class ToolCall:
    """A neutral tool call: run a shell command, or write a file (relative to the CLI's cwd)."""

    kind: Literal["shell", "write"]
    command: str = ""
    path: str = ""
    content: str = ""

    @classmethod
    def parse(cls, data: Any, where: str) -> ToolCall:
        if not isinstance(data, dict) or len(data) != 1:
            raise ApiScenarioError(
                f"{where}: a tool call is {{'shell': CMD}} or {{'write': {{...}}}}"
            )
        ((kind, value),) = data.items()
        if kind == "shell":
            if not isinstance(value, str) or not value:
                raise ApiScenarioError(f"{where}.shell: a command string")
            return cls("shell", command=value)
        if kind == "write":
            if not isinstance(value, dict):
                raise ApiScenarioError(f"{where}.write: {{'path': P, 'content': TEXT}}")
            _only(value, {"path", "content"}, f"{where}.write")
            path, content = value.get("path"), value.get("content", "")
            if not isinstance(path, str) or not path or not isinstance(content, str):
                raise ApiScenarioError(f"{where}.write: 'path' and 'content' are strings")
            return cls("write", path=path, content=content)
        raise ApiScenarioError(f"{where}: unknown tool call {kind!r} (expected shell or write)")


@dataclass(frozen=True)
class Turn:
    """One model response."""

    say: str = ""
    tools: tuple[ToolCall, ...] = ()
    input_tokens: int = 100
    output_tokens: int = 20
    delay: float = 0.0  # before the response starts
    stall: float = 0.0  # after the first streamed event
    stall_then: Literal["continue", "close"] = "continue"
    stream_error: str | None = None  # an error event in the stream after the first event
    error: HttpError | None = None  # every attempt answers this error
    fail_first: tuple[HttpError, ...] = ()  # the first attempts answer these, then the reply
    expect: str | None = None  # must occur in what the CLI sent since the last response

    KEYS = frozenset(
        {
            "say",
            "shell",
            "write",
            "tools",
            "usage",
            "delay",
            "stall",
            "stall_then",
            "stream_error",
            "error",
            "fail_first",
            "expect",
            "comment",
        }
    )

    @classmethod
    def parse(cls, data: Any, where: str) -> Turn:
        if isinstance(data, str):
            return cls(say=data)
        if not isinstance(data, dict):
            raise ApiScenarioError(f"{where}: a turn is a reply string or an object")
        _only(data, cls.KEYS, where)
        say = data.get("say", "")
        if not isinstance(say, str):
            raise ApiScenarioError(f"{where}.say: a string")
        tools: list[ToolCall] = []
        if "shell" in data:
            tools.append(ToolCall.parse({"shell": data["shell"]}, where))
        if "write" in data:
            tools.append(ToolCall.parse({"write": data["write"]}, where))
        extra = data.get("tools", [])
        if not isinstance(extra, list):
            raise ApiScenarioError(f"{where}.tools: a list of tool calls")
        tools += [ToolCall.parse(t, f"{where}.tools[{i}]") for i, t in enumerate(extra)]
        usage = data.get("usage", {})
        if not isinstance(usage, dict):
            raise ApiScenarioError(f"{where}.usage: {{'input': N, 'output': N}}")
        _only(usage, {"input", "output"}, f"{where}.usage")
        numbers = {
            "input": usage.get("input", 100),
            "output": usage.get("output", 20),
            "delay": data.get("delay", 0.0),
            "stall": data.get("stall", 0.0),
        }
        for key, value in numbers.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ApiScenarioError(f"{where}.{key}: a number >= 0 (got {value!r})")
        then = data.get("stall_then", "continue")
        if then not in ("continue", "close"):
            raise ApiScenarioError(f"{where}.stall_then: 'continue' or 'close' (got {then!r})")
        stream_error = data.get("stream_error")
        if stream_error is not None and not isinstance(stream_error, str):
            raise ApiScenarioError(f"{where}.stream_error: a message string")
        error = HttpError.parse(data["error"], f"{where}.error") if "error" in data else None
        fail_first = data.get("fail_first", [])
        if not isinstance(fail_first, list):
            raise ApiScenarioError(f"{where}.fail_first: a list of errors")
        expect = data.get("expect")
        if expect is not None and not isinstance(expect, str):
            raise ApiScenarioError(f"{where}.expect: a string")
        return cls(
            say=say,
            tools=tuple(tools),
            input_tokens=int(numbers["input"]),
            output_tokens=int(numbers["output"]),
            delay=float(numbers["delay"]),
            stall=float(numbers["stall"]),
            stall_then=then,
            stream_error=stream_error,
            error=error,
            fail_first=tuple(
                HttpError.parse(e, f"{where}.fail_first[{i}]") for i, e in enumerate(fail_first)
            ),
            expect=expect,
        )


@dataclass(frozen=True)
class Conversation:
    """Turns for the conversations whose first user message contains ``match``."""

    turns: tuple[Turn, ...]
    match: str | None = None  # substring of the first user message; None: any conversation
    protocol: str | None = None  # only requests of this protocol
    name: str = ""

    @classmethod
    def parse(cls, data: Any, where: str) -> Conversation:
        if not isinstance(data, dict):
            raise ApiScenarioError(f"{where}: a conversation is {{'match': S, 'turns': [...]}}")
        _only(data, {"match", "protocol", "turns", "name", "comment"}, where)
        match, protocol = data.get("match"), data.get("protocol")
        if match is not None and not isinstance(match, str):
            raise ApiScenarioError(f"{where}.match: a string")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ApiScenarioError(f"{where}.protocol: one of {', '.join(PROTOCOLS)}")
        turns = data.get("turns")
        if isinstance(turns, (str, dict)):
            turns = [turns]
        if not isinstance(turns, list) or not turns:
            raise ApiScenarioError(f"{where}.turns: a non-empty list of turns")
        return cls(
            turns=tuple(Turn.parse(t, f"{where}.turns[{i}]") for i, t in enumerate(turns)),
            match=match,
            protocol=protocol,
            name=str(data.get("name") or match or where),
        )


@dataclass(frozen=True)
class ApiScenario:
    """What the fake model answers. ``side`` answers the CLIs' side calls (requests offering no
    tools: opencode's title call, claude's quota check); ``probe`` answers oompa's preflight
    probe (a first message containing ``[_HIDE_TEST_]``) when no conversation matches it."""

    conversations: tuple[Conversation, ...] = ()
    side: str = "Fake title"
    probe: str | None = "ok"

    @classmethod
    def from_data(cls, data: Any) -> ApiScenario:
        if isinstance(data, ApiScenario):
            return data
        if isinstance(data, list):
            data = {"conversations": data}
        if not isinstance(data, dict):
            raise ApiScenarioError("a scenario is an object {'conversations': [...]}")
        _only(data, {"conversations", "side", "probe", "comment"}, "scenario")
        convs = data.get("conversations", [])
        if not isinstance(convs, list):
            raise ApiScenarioError("conversations: a list")
        side, probe = data.get("side", "Fake title"), data.get("probe", "ok")
        if not isinstance(side, str) or (probe is not None and not isinstance(probe, str)):
            raise ApiScenarioError("side and probe: strings (probe may be null)")
        return cls(
            tuple(Conversation.parse(c, f"conversations[{i}]") for i, c in enumerate(convs)),
            side,
            probe,
        )

    @classmethod
    def load(
        cls, source: str | Path | Mapping[str, Any] | Sequence[Any] | ApiScenario
    ) -> ApiScenario:
        """An ApiScenario, its data, a JSON text (starting with ``{`` or ``[``) or a file path."""
        if isinstance(source, (ApiScenario, Mapping, list, tuple)):
            return cls.from_data(dict(source) if isinstance(source, Mapping) else source)
        text = str(source)
        if not text.lstrip().startswith(("{", "[")):
            text = Path(text).read_text(encoding="utf-8")
        try:
            return cls.from_data(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ApiScenarioError(f"scenario is not JSON: {exc}") from None


def _only(data: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ApiScenarioError(f"{where}: unknown field(s) {', '.join(unknown)}")
