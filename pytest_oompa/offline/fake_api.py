"""A loopback fake model API that drives the real ``claude``, ``codex``, ``opencode`` and
``gemini`` CLIs deterministically and offline.

One HTTP server on 127.0.0.1 (a free port, standard library only) speaks the four wire protocols
the CLIs use, each streamed as server-sent events:

========== ==================================================== ============================
protocol   request                                              used by
========== ==================================================== ============================
anthropic  ``POST /v1/messages`` (any query; also ``HEAD /``)   claude
responses  ``POST /v1/responses``                               codex
chat       ``POST /v1/chat/completions``                        opencode
gemini     ``POST /v1beta/models/<m>:streamGenerateContent``    gemini
========== ==================================================== ============================

What the "model" answers is scripted once, protocol-neutrally, by a ``Scenario``: a list of
conversations, each picked by a substring of its first user message and made of turns (one
model response each): text, tool calls that run a shell command or write a file (translated
into each protocol's own tool-call shape and the CLI's own tool: ``Bash``/``Write``,
``exec_command``/``apply_patch``, ``bash``/``write``, ``run_shell_command``/``write_file``),
usage figures, HTTP errors, delays and mid-stream stalls. The turn of a request is read from the
request itself (how many model responses its history already holds since the conversation's
first message), so a resumed session continues where it stopped, and retries see the same
turn. Every request is logged (``FakeModelAPI.requests``); a request that no scripted turn
matches is answered with a clear HTTP 400 in the protocol's error shape, never left hanging.

The scenario format is documented in docs/real-clis.md; ``environment(home)`` gives the
environment (and writes the config files) that points each real CLI at this server.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pytest_oompa.offline.wire_cassette import WireRecorder, WireReplayer

PROTOCOLS = ("anthropic", "responses", "chat", "gemini")
PROBE_MARKER = "[_HIDE_TEST_]"
MAX_BODY = 64 << 20
MAX_LOG = 10_000
DEFAULT_MAX_STALL = 300.0
UNMATCHED_STATUS = 400

Protocol = Literal["anthropic", "responses", "chat", "gemini"]


class ScenarioError(ValueError):
    """The scenario data is not valid."""


# ----------------------------------------------------------------------------------------------
# The scenario: protocol-neutral turns
# ----------------------------------------------------------------------------------------------

_STATUS_TEXT = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


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
            raise ScenarioError(f"{where}: an error is a status code or {{status, message}}")
        _only(data, {"status", "message", "retry_after"}, where)
        status = data.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ScenarioError(f"{where}.status: an HTTP error status 400..599 (got {status!r})")
        message = data.get("message") or f"oompa fake API: scripted HTTP {status}"
        retry = data.get("retry_after")
        if retry is not None and not isinstance(retry, (int, float)):
            raise ScenarioError(f"{where}.retry_after: seconds (got {retry!r})")
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
            raise ScenarioError(f"{where}: a tool call is {{'shell': CMD}} or {{'write': {{...}}}}")
        ((kind, value),) = data.items()
        if kind == "shell":
            if not isinstance(value, str) or not value:
                raise ScenarioError(f"{where}.shell: a command string")
            return cls("shell", command=value)
        if kind == "write":
            if not isinstance(value, dict):
                raise ScenarioError(f"{where}.write: {{'path': P, 'content': TEXT}}")
            _only(value, {"path", "content"}, f"{where}.write")
            path, content = value.get("path"), value.get("content", "")
            if not isinstance(path, str) or not path or not isinstance(content, str):
                raise ScenarioError(f"{where}.write: 'path' and 'content' are strings")
            return cls("write", path=path, content=content)
        raise ScenarioError(f"{where}: unknown tool call {kind!r} (expected shell or write)")


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
            raise ScenarioError(f"{where}: a turn is a reply string or an object")
        _only(data, cls.KEYS, where)
        say = data.get("say", "")
        if not isinstance(say, str):
            raise ScenarioError(f"{where}.say: a string")
        tools: list[ToolCall] = []
        if "shell" in data:
            tools.append(ToolCall.parse({"shell": data["shell"]}, where))
        if "write" in data:
            tools.append(ToolCall.parse({"write": data["write"]}, where))
        extra = data.get("tools", [])
        if not isinstance(extra, list):
            raise ScenarioError(f"{where}.tools: a list of tool calls")
        tools += [ToolCall.parse(t, f"{where}.tools[{i}]") for i, t in enumerate(extra)]
        usage = data.get("usage", {})
        if not isinstance(usage, dict):
            raise ScenarioError(f"{where}.usage: {{'input': N, 'output': N}}")
        _only(usage, {"input", "output"}, f"{where}.usage")
        numbers = {
            "input": usage.get("input", 100),
            "output": usage.get("output", 20),
            "delay": data.get("delay", 0.0),
            "stall": data.get("stall", 0.0),
        }
        for key, value in numbers.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ScenarioError(f"{where}.{key}: a number >= 0 (got {value!r})")
        then = data.get("stall_then", "continue")
        if then not in ("continue", "close"):
            raise ScenarioError(f"{where}.stall_then: 'continue' or 'close' (got {then!r})")
        stream_error = data.get("stream_error")
        if stream_error is not None and not isinstance(stream_error, str):
            raise ScenarioError(f"{where}.stream_error: a message string")
        error = HttpError.parse(data["error"], f"{where}.error") if "error" in data else None
        fail_first = data.get("fail_first", [])
        if not isinstance(fail_first, list):
            raise ScenarioError(f"{where}.fail_first: a list of errors")
        expect = data.get("expect")
        if expect is not None and not isinstance(expect, str):
            raise ScenarioError(f"{where}.expect: a string")
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
            raise ScenarioError(f"{where}: a conversation is {{'match': S, 'turns': [...]}}")
        _only(data, {"match", "protocol", "turns", "name", "comment"}, where)
        match, protocol = data.get("match"), data.get("protocol")
        if match is not None and not isinstance(match, str):
            raise ScenarioError(f"{where}.match: a string")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ScenarioError(f"{where}.protocol: one of {', '.join(PROTOCOLS)}")
        turns = data.get("turns")
        if isinstance(turns, (str, dict)):
            turns = [turns]
        if not isinstance(turns, list) or not turns:
            raise ScenarioError(f"{where}.turns: a non-empty list of turns")
        return cls(
            turns=tuple(Turn.parse(t, f"{where}.turns[{i}]") for i, t in enumerate(turns)),
            match=match,
            protocol=protocol,
            name=str(data.get("name") or match or where),
        )


@dataclass(frozen=True)
class Scenario:
    """What the fake model answers. ``side`` answers the CLIs' side calls (requests offering no
    tools: opencode's title call, claude's quota check); ``probe`` answers oompa's preflight
    probe (a first message containing ``[_HIDE_TEST_]``) when no conversation matches it."""

    conversations: tuple[Conversation, ...] = ()
    side: str = "Fake title"
    probe: str | None = "ok"

    @classmethod
    def from_data(cls, data: Any) -> Scenario:
        if isinstance(data, Scenario):
            return data
        if isinstance(data, list):
            data = {"conversations": data}
        if not isinstance(data, dict):
            raise ScenarioError("a scenario is an object {'conversations': [...]}")
        _only(data, {"conversations", "side", "probe", "comment"}, "scenario")
        convs = data.get("conversations", [])
        if not isinstance(convs, list):
            raise ScenarioError("conversations: a list")
        side, probe = data.get("side", "Fake title"), data.get("probe", "ok")
        if not isinstance(side, str) or (probe is not None and not isinstance(probe, str)):
            raise ScenarioError("side and probe: strings (probe may be null)")
        return cls(
            tuple(Conversation.parse(c, f"conversations[{i}]") for i, c in enumerate(convs)),
            side,
            probe,
        )

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | Sequence[Any] | Scenario) -> Scenario:
        """A Scenario, its data, a JSON text (starting with ``{`` or ``[``) or a file path."""
        if isinstance(source, (Scenario, Mapping, list, tuple)):
            return cls.from_data(dict(source) if isinstance(source, Mapping) else source)
        text = str(source)
        if not text.lstrip().startswith(("{", "[")):
            text = Path(text).read_text(encoding="utf-8")
        try:
            return cls.from_data(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"scenario is not JSON: {exc}") from None


def _only(data: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(unknown)}")


# ----------------------------------------------------------------------------------------------
# Reading a request: a protocol-neutral view of the conversation it carries
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    text: str


@dataclass(frozen=True)
class RequestView:
    protocol: Protocol
    model: str
    messages: tuple[Message, ...]
    tools: tuple[str, ...]  # tool names the CLI offers
    tool_types: Mapping[str, str]  # name -> "function" | "custom" (responses)
    system: str
    stream: bool

    def first_user_index(self, match: str | None) -> int | None:
        for i, m in enumerate(self.messages):
            if m.role == "user" and (match is None or match in m.text):
                return i
        return None

    def turns_since(self, index: int) -> int:
        """Model responses in the history after message ``index`` (consecutive assistant
        messages are one response)."""
        count, previous = 0, None
        for m in self.messages[index + 1 :]:
            if m.role == "assistant" and previous != "assistant":
                count += 1
            if m.role != "system":
                previous = m.role
        return count

    def first_user_text(self) -> str:
        """Every user message before the first response (CLIs put context messages first)."""
        texts = []
        for m in self.messages:
            if m.role == "assistant":
                break
            if m.role == "user":
                texts.append(m.text)
        return "\n".join(texts)

    def since_last_response(self) -> str:
        """What the CLI sent after the last model response: prompts and tool results."""
        texts: list[str] = []
        for m in reversed(self.messages):
            if m.role == "assistant":
                break
            if m.role in ("user", "tool"):
                texts.append(m.text)
        return "\n".join(reversed(texts))

    def cwd(self) -> str | None:
        haystack = self.system + "\n" + "\n".join(m.text for m in self.messages[:6])
        for pattern in _CWD_PATTERNS:
            found = pattern.search(haystack)
            if found:
                return found.group(1).strip()
        return None


_CWD_PATTERNS = (
    re.compile(r"<cwd>([^<\n]+)</cwd>"),  # codex environment_context
    re.compile(r"Primary working directory: ?([^\n]+)"),  # claude
    re.compile(r"Working directory: ?([^\n]+)"),  # claude (older), opencode
    re.compile(r"I'm currently working in the directory: ?([^\n]+)"),  # gemini (older)
    re.compile(r"Workspace Directories:\**\n\s*- (/[^\n]+)"),  # gemini
    re.compile(r"current working directory(?: is)?:? ?(/[^\n]+)", re.IGNORECASE),
)


def _text_of(value: Any) -> str:
    """Text of a content value: a string, a block list, or anything with 'text' inside."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("text", "content", "output", "input", "result"):
            if key in value:
                return _text_of(value[key])
        if "functionResponse" in value:
            return json.dumps(value["functionResponse"].get("response"))
        return ""
    return str(value)


def _view_anthropic(body: Mapping[str, Any]) -> RequestView:
    messages: list[Message] = []
    for m in body.get("messages") or []:
        content = m.get("content")
        if m.get("role") == "assistant":
            messages.append(Message("assistant", _text_of(content)))
            continue
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        rest = [b for b in blocks if not (isinstance(b, dict) and b.get("type") == "tool_result")]
        if results:
            messages.append(Message("tool", _text_of([r.get("content") for r in results])))
        if rest:
            messages.append(Message("user", _text_of(rest)))
    tools = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
    return RequestView(
        "anthropic",
        str(body.get("model", "")),
        tuple(messages),
        tuple(tools),
        {t: "function" for t in tools},
        _text_of(body.get("system")),
        bool(body.get("stream")),
    )


def _view_responses(body: Mapping[str, Any]) -> RequestView:
    messages: list[Message] = []
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    for item in items or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text = _text_of(item.get("content"))
            if role == "assistant":
                messages.append(Message("assistant", text))
            elif role == "user":
                messages.append(Message("user", text))
            else:
                messages.append(Message("system", text))
        elif kind.endswith("_call") and kind != "reasoning":
            messages.append(Message("assistant", _text_of(item.get("arguments", item))))
        elif kind.endswith("_call_output"):
            messages.append(Message("tool", _text_of(item.get("output"))))
    names: dict[str, str] = {}
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            names[str(t.get("name") or t.get("type"))] = str(t.get("type", "function"))
    return RequestView(
        "responses",
        str(body.get("model", "")),
        tuple(messages),
        tuple(names),
        names,
        _text_of(body.get("instructions")),
        bool(body.get("stream")),
    )


def _view_chat(body: Mapping[str, Any]) -> RequestView:
    messages: list[Message] = []
    system = []
    for m in body.get("messages") or []:
        role = m.get("role")
        text = _text_of(m.get("content"))
        if role == "assistant":
            calls = m.get("tool_calls") or []
            text += "".join(json.dumps(c.get("function", {})) for c in calls)
            messages.append(Message("assistant", text))
        elif role == "tool":
            messages.append(Message("tool", text))
        elif role == "user":
            messages.append(Message("user", text))
        else:
            system.append(text)
            messages.append(Message("system", text))
    tools = [
        str((t.get("function") or {}).get("name", ""))
        for t in body.get("tools") or []
        if isinstance(t, dict)
    ]
    return RequestView(
        "chat",
        str(body.get("model", "")),
        tuple(messages),
        tuple(tools),
        {t: "function" for t in tools},
        "\n".join(system),
        bool(body.get("stream")),
    )


def _view_gemini(body: Mapping[str, Any], model: str, stream: bool) -> RequestView:
    messages: list[Message] = []
    for c in body.get("contents") or []:
        parts = c.get("parts") or []
        if c.get("role") == "model":
            texts = [p.get("text", "") for p in parts if isinstance(p, dict)]
            calls = [json.dumps(p["functionCall"]) for p in parts if "functionCall" in p]
            messages.append(Message("assistant", "\n".join(t for t in texts + calls if t)))
            continue
        responses = [p for p in parts if isinstance(p, dict) and "functionResponse" in p]
        rest = [p for p in parts if isinstance(p, dict) and "functionResponse" not in p]
        if responses:
            messages.append(Message("tool", _text_of(responses)))
        if rest:
            messages.append(Message("user", _text_of(rest)))
    tools = [
        str(d.get("name", ""))
        for t in body.get("tools") or []
        if isinstance(t, dict)
        for d in t.get("functionDeclarations") or []
    ]
    return RequestView(
        "gemini",
        model,
        tuple(messages),
        tuple(tools),
        {t: "function" for t in tools},
        _text_of(body.get("systemInstruction")),
        stream,
    )


# ----------------------------------------------------------------------------------------------
# Writing a response: each protocol's event stream
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConcreteCall:
    """A neutral tool call resolved to the CLI's own tool and arguments."""

    id: str
    name: str
    arguments: dict[str, Any] | None  # JSON arguments of a function tool
    raw_input: str | None = None  # the input of a freeform (custom) tool

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments if self.arguments is not None else {})


SHELL_TOOLS: dict[str, tuple[str, ...]] = {
    "anthropic": ("Bash",),
    "responses": ("exec_command", "shell_command", "shell", "local_shell"),
    "chat": ("bash",),
    "gemini": ("run_shell_command",),
}
WRITE_TOOLS: dict[str, tuple[str, ...]] = {
    "anthropic": ("Write",),
    "responses": ("apply_patch",),
    "chat": ("write",),
    "gemini": ("write_file",),
}


class NoTool(Exception):
    """The request does not offer a tool this turn needs."""


def _abs(path: str, cwd: str | None) -> str:
    if path.startswith("/") or cwd is None:
        return path
    return cwd.rstrip("/") + "/" + path


def resolve_tool_call(call: ToolCall, view: RequestView, call_id: str) -> ConcreteCall:
    """The CLI's own tool for a neutral call: its write tool when offered (else ``printf``
    through its shell tool), its shell tool with the argument names that tool takes."""
    offered = set(view.tools)
    cwd = view.cwd()
    if call.kind == "write":
        name = next((n for n in WRITE_TOOLS[view.protocol] if n in offered), None)
        if name == "Write" and cwd is not None:
            args = {"file_path": _abs(call.path, cwd), "content": call.content}
            return ConcreteCall(call_id, name, args)
        if name == "write" and cwd is not None:
            return ConcreteCall(
                call_id, name, {"filePath": _abs(call.path, cwd), "content": call.content}
            )
        if name == "write_file":
            args = {"file_path": _abs(call.path, cwd), "content": call.content}
            return ConcreteCall(call_id, name, args)
        if name == "apply_patch":
            lines = call.content.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            patch = "\n".join(
                ["*** Begin Patch", f"*** Add File: {call.path}"]
                + ["+" + line for line in lines]
                + ["*** End Patch"]
            )
            if view.tool_types.get(name) == "custom":
                return ConcreteCall(call_id, name, None, raw_input=patch)
            return ConcreteCall(call_id, name, {"input": patch})
        # No write tool offered (codex offers apply_patch only for some models): the exact
        # bytes through the shell tool.
        folder = call.path.rsplit("/", 1)[0] if "/" in call.path else ""
        mkdir = f"mkdir -p {shlex.quote(folder)} && " if folder else ""
        quoted = f"printf %s {shlex.quote(call.content)} > {shlex.quote(call.path)}"
        call = ToolCall("shell", command=mkdir + quoted)
    name = next((n for n in SHELL_TOOLS[view.protocol] if n in offered), None)
    if name is None:
        raise NoTool(
            f"the request offers no shell tool (one of {', '.join(SHELL_TOOLS[view.protocol])}); "
            f"offered: {', '.join(sorted(offered)) or 'none'}"
        )
    command = call.command
    if name in ("Bash", "bash"):
        return ConcreteCall(call_id, name, {"command": command, "description": "oompa fake"})
    if name == "exec_command":
        return ConcreteCall(call_id, name, {"cmd": command})
    if name == "shell":
        return ConcreteCall(call_id, name, {"command": ["bash", "-lc", command]})
    return ConcreteCall(call_id, name, {"command": command})


class _Sse:
    """Frames one protocol's events; the handler writes them with optional stall points."""

    def __init__(self) -> None:
        self.events: list[bytes] = []

    def named(self, event: str, data: Mapping[str, Any]) -> None:
        self.events.append(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    def data(self, data: Mapping[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.events.append(f"data: {text}\n\n".encode())


def _split(text: str) -> list[str]:
    """A text in two streamed pieces (a stall falls between them)."""
    if len(text) < 2:
        return [text] if text else []
    half = len(text) // 2
    return [text[:half], text[half:]]


@dataclass
class Reply:
    """A turn resolved for one request: text, concrete tool calls, usage."""

    text: str
    calls: list[ConcreteCall]
    input_tokens: int
    output_tokens: int
    model: str
    stream_error: str | None = None

    @property
    def stop_for_tools(self) -> bool:
        return bool(self.calls)


def stream_anthropic(r: Reply, msg_id: str) -> tuple[list[bytes], dict[str, Any]]:
    sse = _Sse()
    usage = {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}
    start_usage = {**usage, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**start_usage, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }
    sse.named("message_start", {"type": "message_start", "message": message})
    content: list[dict[str, Any]] = []
    index = 0
    if r.text:
        sse.named(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for piece in _split(r.text):
            sse.named(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        sse.named("content_block_stop", {"type": "content_block_stop", "index": index})
        content.append({"type": "text", "text": r.text})
        index += 1
    for call in r.calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        sse.named(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        sse.named(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": call.arguments_json},
            },
        )
        sse.named("content_block_stop", {"type": "content_block_stop", "index": index})
        content.append({**block, "input": call.arguments or {}})
        index += 1
    stop = "tool_use" if r.stop_for_tools else "end_turn"
    sse.named(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": r.output_tokens},
        },
    )
    sse.named("message_stop", {"type": "message_stop"})
    whole = {**message, "content": content, "stop_reason": stop, "usage": usage}
    return sse.events, whole


def anthropic_stream_error(message: str) -> bytes:
    data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
    return f"event: error\ndata: {json.dumps(data)}\n\n".encode()


def stream_responses(
    r: Reply, resp_id: str, ids: Iterator[int]
) -> tuple[list[bytes], dict[str, Any]]:
    sse = _Sse()
    seq = itertools.count()
    base = {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": r.model,
        "status": "in_progress",
        "output": [],
    }

    def ev(kind: str, **data: Any) -> None:
        sse.named(kind, {"type": kind, "sequence_number": next(seq), **data})

    ev("response.created", response=base)
    ev("response.in_progress", response=base)
    output: list[dict[str, Any]] = []
    if r.text:
        item_id = f"msg_{next(ids)}"
        oi = len(output)
        item = {
            "type": "message",
            "id": item_id,
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        ev("response.output_item.added", output_index=oi, item=item)
        part = {"type": "output_text", "text": "", "annotations": []}
        ev(
            "response.content_part.added",
            item_id=item_id,
            output_index=oi,
            content_index=0,
            part=part,
        )
        for piece in _split(r.text):
            ev(
                "response.output_text.delta",
                item_id=item_id,
                output_index=oi,
                content_index=0,
                delta=piece,
            )
        ev(
            "response.output_text.done",
            item_id=item_id,
            output_index=oi,
            content_index=0,
            text=r.text,
        )
        done_part = {**part, "text": r.text}
        ev(
            "response.content_part.done",
            item_id=item_id,
            output_index=oi,
            content_index=0,
            part=done_part,
        )
        done = {**item, "status": "completed", "content": [done_part]}
        ev("response.output_item.done", output_index=oi, item=done)
        output.append(done)
    for call in r.calls:
        oi = len(output)
        if call.raw_input is not None:
            item = {
                "type": "custom_tool_call",
                "id": f"ctc_{next(ids)}",
                "call_id": call.id,
                "name": call.name,
                "input": call.raw_input,
                "status": "completed",
            }
        else:
            item = {
                "type": "function_call",
                "id": f"fc_{next(ids)}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments_json,
                "status": "completed",
            }
        ev("response.output_item.added", output_index=oi, item={**item, "status": "in_progress"})
        ev("response.output_item.done", output_index=oi, item=item)
        output.append(item)
    usage = {
        "input_tokens": r.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": r.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": r.input_tokens + r.output_tokens,
    }
    final = {**base, "status": "completed", "output": output, "usage": usage}
    ev("response.completed", response=final)
    return sse.events, final


def responses_stream_error(resp_id: str, message: str) -> bytes:
    data = {
        "type": "response.failed",
        "response": {
            "id": resp_id,
            "object": "response",
            "status": "failed",
            "error": {"code": "server_error", "message": message},
        },
    }
    return f"event: response.failed\ndata: {json.dumps(data)}\n\n".encode()


def stream_chat(r: Reply, chat_id: str, include_usage: bool) -> tuple[list[bytes], dict[str, Any]]:
    sse = _Sse()
    created = int(time.time())

    def chunk(delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": r.model,
            "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}],
        }

    sse.data(chunk({"role": "assistant", "content": ""}))
    for piece in _split(r.text):
        sse.data(chunk({"content": piece}))
    for i, call in enumerate(r.calls):
        sse.data(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments_json},
                        }
                    ]
                }
            )
        )
    finish = "tool_calls" if r.stop_for_tools else "stop"
    sse.data(chunk({}, finish))
    usage = {
        "prompt_tokens": r.input_tokens,
        "completion_tokens": r.output_tokens,
        "total_tokens": r.input_tokens + r.output_tokens,
    }
    if include_usage:
        sse.data({**chunk({}), "choices": [], "usage": usage})
    sse.data("[DONE]")
    message: dict[str, Any] = {"role": "assistant", "content": r.text}
    if r.calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json},
            }
            for c in r.calls
        ]
    whole = {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": r.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }
    return sse.events, whole


def stream_gemini(r: Reply) -> tuple[list[bytes], dict[str, Any]]:
    sse = _Sse()
    usage = {
        "promptTokenCount": r.input_tokens,
        "candidatesTokenCount": r.output_tokens,
        "totalTokenCount": r.input_tokens + r.output_tokens,
    }
    pieces = _split(r.text)
    parts: list[dict[str, Any]] = [{"text": p} for p in pieces[-1:]]
    parts += [{"functionCall": {"name": c.name, "args": c.arguments or {}}} for c in r.calls]
    if len(pieces) > 1:
        first = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": pieces[0]}]}, "index": 0}
            ]
        }
        sse.data({**first, "modelVersion": r.model})
    if not parts:
        parts = [{"text": ""}]
    last = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": usage,
        "modelVersion": r.model,
    }
    sse.data(last)
    whole_parts: list[dict[str, Any]] = [{"text": r.text}] if r.text else []
    whole_parts += [{"functionCall": {"name": c.name, "args": c.arguments or {}}} for c in r.calls]
    whole = {
        "candidates": [
            {
                "content": {"role": "model", "parts": whole_parts or [{"text": ""}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": r.model,
    }
    return sse.events, whole


def error_body(protocol: Protocol, status: int, message: str) -> dict[str, Any]:
    kind = _STATUS_TEXT.get(status, "api_error")
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    if protocol == "gemini":
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        }
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, kind)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ----------------------------------------------------------------------------------------------
# The request log
# ----------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One request the fake API received, and how it answered."""

    seq: int
    ts: float
    method: str
    path: str
    protocol: str | None
    body: Any
    headers: dict[str, str]
    kind: str = "other"  # main | side | probe | unmatched | error | count | other
    conversation: str | None = None
    turn: int | None = None
    attempt: int | None = None
    status: int = 200
    tools: tuple[str, ...] = ()
    reply: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    view: RequestView | None = field(default=None, repr=False)

    @property
    def matched(self) -> bool:
        return self.kind != "unmatched"

    def history(self) -> list[tuple[str, str]]:
        """(role, text) of every message the request carried (empty for non-model requests)."""
        return [(m.role, m.text) for m in self.view.messages] if self.view else []

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "kind": self.kind,
            "conversation": self.conversation,
            "turn": self.turn,
            "attempt": self.attempt,
            "status": self.status,
            "tools": list(self.tools),
            "reply": self.reply,
            "tool_calls": self.tool_calls,
            "note": self.note,
            "headers": self.headers,
            "body": self.body,
        }


_SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie")


def _safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()
    }


# ----------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------

_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha|)?/models/([^/:]+):([A-Za-z]+)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: FakeModelAPI

    def process_request(self, request: Any, client_address: Any) -> None:
        self.api._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.api._track(request, False)
        super().shutdown_request(request)


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is closed after this
    server_version = "oompa-fake-api/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- entry points --------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.server.api._log_simple(self, "HEAD")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        record = self.server.api._log_simple(self, "GET")
        if self.path.split("?")[0] in ("/", "/health"):
            self._json(200, {"ok": True, "fake": "oompa"})
            return
        record.status, record.kind = 404, "unmatched"
        record.note = f"oompa fake API: nothing serves GET {self.path}"
        self._json(404, {"error": {"message": record.note, "type": "not_found_error"}})

    def do_POST(self) -> None:
        self._started = False
        try:
            self.server.api._handle_post(self)
        except _ClientGone:
            self.close_connection = True
        except Exception as exc:
            # A bug of ours must not look like a network failure to the CLI: a 500 that says
            # what broke (unless the answer had already begun).
            self.close_connection = True
            if not self._started:
                message = f"oompa fake API: internal error: {type(exc).__name__}: {exc}"
                with contextlib.suppress(_ClientGone):
                    self._json(500, {"error": {"message": message, "type": "api_error"}})
            raise

    # -- writing -------------------------------------------------------------------------------

    def _json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._raw(status, "application/json", json.dumps(data).encode(), headers)

    def _raw(
        self,
        status: int,
        content_type: str,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_oompa_{id(payload):x}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._write(payload)

    def _start_stream(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_oompa_stream")
        # Should the stream break, a CLI that retries anyway (opencode) does so at once.
        self.send_header("retry-after-ms", "0")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise _ClientGone from exc


class FakeModelAPI:
    """The loopback fake model API. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        scenario: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | str | None = None,
        max_stall: float = DEFAULT_MAX_STALL,
        recorder: WireRecorder | None = None,
        replayer: WireReplayer | None = None,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the fake model API listens on loopback only (got {host!r})")
        if recorder is not None and replayer is not None:
            raise ValueError("the fake model API records or replays a wire cassette, not both")
        self.scenario = Scenario.load(scenario) if scenario is not None else Scenario()
        # A wire cassette being recorded (requests go upstream) or replayed (answers come from
        # it); either replaces the scenario for model requests.
        self.recorder = recorder
        self.replayer = replayer
        self.host, self.port = host, port
        self.log_path = Path(log_path) if log_path else None
        self.max_stall = max_stall
        self._records: deque[RequestRecord] = deque(maxlen=MAX_LOG)
        self._attempts: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeModelAPI:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.api = self
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="oompa-fake-api"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: stalled streams wake up, open connections are closed."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeModelAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- what tests use ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def model_requests(self, protocol: str | None = None) -> list[RequestRecord]:
        """Requests a conversation answered (kind main, probe or error), in arrival order."""
        return [
            r
            for r in self.requests
            if r.kind in ("main", "probe", "error") and (protocol is None or r.protocol == protocol)
        ]

    @property
    def unmatched(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.kind == "unmatched"]

    def set_scenario(self, scenario: Any) -> None:
        new = Scenario.load(scenario)
        with self._lock:
            self.scenario = new
            self._attempts.clear()

    def add_conversation(
        self, match: str | None, turns: Sequence[Any], *, protocol: str | None = None
    ) -> None:
        """Script one more conversation, ahead of the others: the latest script for a match
        wins."""
        data: dict[str, Any] = {"match": match, "turns": list(turns)}
        if protocol is not None:
            data["protocol"] = protocol
        conversation = Conversation.parse(data, f"added[{match!r}]")
        with self._lock:
            self.scenario = dataclasses.replace(
                self.scenario, conversations=(conversation, *self.scenario.conversations)
            )

    def script(self, match: str, replies: Sequence[Any]) -> None:
        """Answer the conversation whose first prompt contains ``match`` with ``replies``, one
        per CLI call: a reply is a string, or has ``text`` and ``writes`` (``{path: content}``,
        each written with the CLI's own tool, one tool call per response, before the text).
        A resumed session continues with the next reply."""
        turns: list[dict[str, Any]] = []
        for reply in replies:
            text = reply if isinstance(reply, str) else str(getattr(reply, "text", ""))
            writes = {} if isinstance(reply, str) else dict(getattr(reply, "writes", {}) or {})
            turns += [{"write": {"path": p, "content": c}} for p, c in writes.items()]
            turns.append({"say": text})
        self.add_conversation(match, turns)

    def as_model_api(self) -> ContractModelAPI:
        """This server as the contract suite's ``ModelAPI`` (``oompa_model_api`` fixture)."""
        return ContractModelAPI(self)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._attempts.clear()

    def environment(self, home: Path, harnesses: Iterable[str] | None = None) -> dict[str, str]:
        """Environment pointing the real CLIs at this server, with their config files written
        into ``home`` (a private HOME). See ``pytest_oompa.harnesses.real_clis.RECIPES``."""
        from pytest_oompa.harnesses import real_clis

        return real_clis.environment(self.url, Path(home), harnesses)

    # -- logging -------------------------------------------------------------------------------

    def _new_record(
        self, handler: _Handler, method: str, protocol: str | None, body: Any
    ) -> RequestRecord:
        record = RequestRecord(
            seq=next(self._seq),
            ts=time.time(),
            method=method,
            path=handler.path,
            protocol=protocol,
            body=body,
            headers=_safe_headers(dict(handler.headers.items())),
        )
        with self._lock:
            self._records.append(record)
        return record

    def _log_simple(self, handler: _Handler, method: str) -> RequestRecord:
        record = self._new_record(handler, method, None, None)
        self._persist(record)
        return record

    def _persist(self, record: RequestRecord) -> None:
        if self.log_path is None:
            return
        line = json.dumps(record.to_json(), default=str) + "\n"
        with self._lock, self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(line)

    # -- one POST ------------------------------------------------------------------------------

    def _read_body(self, handler: _Handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                out += handler.rfile.read(size)
                handler.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("request body too large")
            raw = bytes(out)
        else:
            length = int(handler.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("request body too large")
            raw = handler.rfile.read(length) if length else b""
        encoding = handler.headers.get("Content-Encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            raw = zlib.decompress(raw, 47)  # gzip or zlib header
        elif encoding and encoding != "identity":
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        return raw

    def _handle_post(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        protocol: Protocol | None = None
        gemini = _GEMINI_PATH.match(path)
        if path.startswith("/v1/messages"):
            protocol = "anthropic"
        elif path.endswith("/responses"):
            protocol = "responses"
        elif path.endswith("/chat/completions"):
            protocol = "chat"
        elif gemini:
            protocol = "gemini"
        try:
            raw = self._read_body(handler)
            body = json.loads(raw) if raw else {}
        except (ValueError, zlib.error) as exc:
            record = self._new_record(handler, "POST", protocol, None)
            record.kind, record.status = "unmatched", 400
            record.note = f"oompa fake API: unreadable request body: {exc}"
            self._persist(record)
            handler.close_connection = True
            handler._json(400, error_body(protocol or "chat", 400, record.note))
            return
        record = self._new_record(handler, "POST", protocol, body)
        try:
            if (self.recorder or self.replayer) and protocol and isinstance(body, dict):
                view = _view_of(protocol, body, gemini)
                record.view, record.tools = view, view.tools
                if self.recorder is not None:
                    self._proxy(handler, record, protocol, view, body, raw)
                else:
                    self._replay(handler, record, protocol, view)
                return
            self._answer(handler, record, path, protocol, body, gemini)
        finally:
            self._persist(record)

    def _answer(
        self,
        handler: _Handler,
        record: RequestRecord,
        path: str,
        protocol: Protocol | None,
        body: Any,
        gemini: re.Match[str] | None,
    ) -> None:
        if protocol is None or not isinstance(body, dict):
            record.kind, record.status = "unmatched", 404
            record.note = f"oompa fake API: nothing serves POST {path}"
            handler._json(404, error_body(protocol or "chat", 404, record.note))
            return
        if protocol == "anthropic" and path.endswith("/count_tokens"):
            record.kind = "count"
            handler._json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
            return
        if gemini and gemini.group(2) == "countTokens":
            record.kind = "count"
            handler._json(200, {"totalTokens": max(1, len(json.dumps(body)) // 4)})
            return
        if gemini and gemini.group(2) not in ("streamGenerateContent", "generateContent"):
            record.kind, record.status = "unmatched", 404
            record.note = f"oompa fake API: nothing serves {gemini.group(2)}"
            handler._json(404, error_body("gemini", 404, record.note))
            return
        view = _view_of(protocol, body, gemini)
        record.view = view
        record.tools = view.tools
        turn, failure = self._pick(record, view)
        if failure is not None:
            if turn is not None and turn.delay:
                self._sleep(turn.delay)
            record.status = failure.status
            record.note = failure.message
            # A CLI that retries anyway (opencode) does so at once, unless the turn says when.
            wait = failure.retry_after or 0.0
            headers = {"Retry-After": f"{wait:g}", "retry-after-ms": str(int(wait * 1000))}
            handler.close_connection = record.kind == "unmatched"
            handler._json(
                failure.status, error_body(protocol, failure.status, failure.message), headers
            )
            return
        assert turn is not None
        try:
            calls = [resolve_tool_call(c, view, self._call_id(protocol)) for c in turn.tools]
        except NoTool as exc:
            record.kind, record.status = "unmatched", UNMATCHED_STATUS
            record.note = f"oompa fake API: turn {record.turn} of {record.conversation}: {exc}"
            handler.close_connection = True
            handler._json(UNMATCHED_STATUS, error_body(protocol, UNMATCHED_STATUS, record.note))
            return
        reply = Reply(
            turn.say,
            calls,
            turn.input_tokens,
            turn.output_tokens,
            view.model or "fake-model",
            turn.stream_error,
        )
        record.reply = turn.say
        record.tool_calls = [
            {"name": c.name, "arguments": c.arguments, "input": c.raw_input} for c in calls
        ]
        if turn.delay:
            self._sleep(turn.delay)
        self._send(handler, protocol, view, reply, turn, body)

    # -- wire cassettes --------------------------------------------------------------------------

    def _proxy(
        self,
        handler: _Handler,
        record: RequestRecord,
        protocol: Protocol,
        view: RequestView,
        body: Any,
        raw: bytes,
    ) -> None:
        """Forward upstream, stream the answer back as it comes, record the exchange (the whole
        answer, even when the CLI hangs up half way)."""
        from pytest_oompa.offline import wire_cassette

        assert self.recorder is not None
        start = time.monotonic()
        headers = dict(handler.headers.items())
        try:
            forwarded = self.recorder.forward(protocol, "POST", handler.path, headers, raw)
        except OSError as exc:
            record.kind, record.status = "unmatched", 502
            record.note = f"oompa wire recorder: cannot forward: {exc}"
            handler.close_connection = True
            handler._json(502, error_body(protocol, 502, record.note))
            return
        captured = bytearray()
        gone: _ClientGone | None = None
        content_type = forwarded.headers.get("content-type", "application/json")
        streamed = content_type.startswith("text/event-stream")
        try:
            if streamed:
                handler._start_stream(forwarded.status, content_type)
            for chunk in forwarded.chunks:
                captured += chunk
                if streamed and gone is None:
                    try:
                        handler._chunk(chunk)
                    except _ClientGone as exc:
                        gone = exc  # keep reading: the cassette gets the whole answer
        finally:
            forwarded.close()
            # Recorded before the answer ends, so the CLI never sees an answer whose exchange
            # is not in the cassette yet.
            try:
                exchange = self.recorder.record(
                    protocol=protocol,
                    method="POST",
                    target=handler.path,
                    view=view,
                    headers=headers,
                    body=body,
                    status=forwarded.status,
                    response_headers=forwarded.headers,
                    response_body=bytes(captured),
                    duration_ms=wire_cassette.elapsed_ms(start),
                    truncated=forwarded.truncated,
                )
            except Exception as exc:  # the CLI still gets its answer; the summary says why
                problem = f"{handler.path}: not recorded: {type(exc).__name__}: {exc}"
                self.recorder.problems.append(problem)
                record.note = problem
            else:
                record.kind = "error" if forwarded.status >= 400 else exchange["kind"]
                record.conversation, record.turn = exchange["conversation"], exchange["turn"]
                record.note = f"recorded as exchange {exchange['seq']}"
            record.status = forwarded.status
        if gone is not None:
            raise gone
        if forwarded.truncated:
            # As the upstream did: the answer stops where it stopped, the connection closes.
            handler.close_connection = True
            if not streamed:
                handler._raw(forwarded.status, content_type, bytes(captured))
            return
        if streamed:
            handler._end_stream()
        else:
            kept = {
                k: forwarded.headers[k]
                for k in wire_cassette.KEEP_RESPONSE_HEADERS
                if k in forwarded.headers and k != "content-type"
            }
            handler._raw(forwarded.status, content_type, bytes(captured), kept)

    def _replay(
        self, handler: _Handler, record: RequestRecord, protocol: Protocol, view: RequestView
    ) -> None:
        from pytest_oompa.offline import wire_cassette

        assert self.replayer is not None
        try:
            answer = self.replayer.answer(protocol, handler.path, view)
        except wire_cassette.Unmatched as exc:
            record.kind, record.status = "unmatched", UNMATCHED_STATUS
            record.note = str(exc)
            handler.close_connection = True
            handler._json(UNMATCHED_STATUS, error_body(protocol, UNMATCHED_STATUS, record.note))
            return
        exchange = answer.exchange
        record.status = answer.status
        record.kind = "error" if answer.status >= 400 else str(exchange["kind"])
        record.conversation, record.turn = str(exchange["conversation"]), int(exchange["turn"])
        record.note = f"replayed exchange {exchange['seq']}"
        content_type = answer.headers.get("content-type", "application/json")
        if answer.streamed:
            handler._start_stream(answer.status, content_type)
            for event in answer.events():
                handler._chunk(event)
            if answer.truncated:
                handler.close_connection = True  # broken off where the recording was
                return
            handler._end_stream()
        else:
            extra = {k: v for k, v in answer.headers.items() if k != "content-type"}
            handler._raw(answer.status, content_type, answer.body.encode(), extra)

    def _call_id(self, protocol: str) -> str:
        n = next(self._ids)
        return f"toolu_oompa{n:06d}" if protocol == "anthropic" else f"call_oompa{n:06d}"

    def _pick(
        self, record: RequestRecord, view: RequestView
    ) -> tuple[Turn | None, HttpError | None]:
        """The scripted turn for a request, or the error to answer (unmatched included)."""
        scenario = self.scenario
        first_text = view.first_user_text()
        if not view.tools:
            record.kind, record.conversation = "side", "side"
            return Turn(say=scenario.side, input_tokens=10, output_tokens=3), None
        for number, conv in enumerate(scenario.conversations):
            if conv.protocol is not None and conv.protocol != view.protocol:
                continue
            start = view.first_user_index(conv.match)
            if start is None:
                continue
            turn_no = view.turns_since(start)
            record.conversation, record.turn = conv.name, turn_no
            if turn_no >= len(conv.turns):
                record.kind = "unmatched"
                return None, HttpError(
                    UNMATCHED_STATUS,
                    f"oompa fake API: conversation {conv.name!r} has {len(conv.turns)} scripted "
                    f"turn(s); this request asks for turn {turn_no} (0-based). Last input: "
                    f"{_clip(view.since_last_response())}",
                )
            turn = conv.turns[turn_no]
            if turn.expect is not None and turn.expect not in view.since_last_response():
                record.kind = "unmatched"
                return None, HttpError(
                    UNMATCHED_STATUS,
                    f"oompa fake API: turn {turn_no} of {conv.name!r} expects "
                    f"{turn.expect!r} in the input since the last response; got: "
                    f"{_clip(view.since_last_response())}",
                )
            digest = hashlib.sha1(first_text.encode("utf-8", "surrogatepass")).hexdigest()
            key = (number, digest, turn_no)
            with self._lock:
                attempt = self._attempts.get(key, 0)
                self._attempts[key] = attempt + 1
            record.attempt = attempt + 1
            if turn.error is not None:
                record.kind = "error"
                return turn, turn.error
            if attempt < len(turn.fail_first):
                record.kind = "error"
                return turn, turn.fail_first[attempt]
            record.kind = "main"
            return turn, None
        if scenario.probe is not None and PROBE_MARKER in first_text:
            record.kind, record.conversation = "probe", "probe"
            record.turn = view.turns_since(view.first_user_index(PROBE_MARKER) or 0)
            return Turn(say=scenario.probe, input_tokens=10, output_tokens=1), None
        record.kind = "unmatched"
        return None, HttpError(
            UNMATCHED_STATUS,
            "oompa fake API: no scripted conversation matches this request; its first user "
            f"message: {_clip(first_text)}",
        )

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(min(seconds, self.max_stall))

    def _send(
        self,
        handler: _Handler,
        protocol: Protocol,
        view: RequestView,
        reply: Reply,
        turn: Turn,
        body: Mapping[str, Any],
    ) -> None:
        rid = f"{next(self._ids):06d}"
        stream_error: bytes | None = None
        if protocol == "anthropic":
            events, whole = stream_anthropic(reply, f"msg_oompa{rid}")
            if reply.stream_error:
                stream_error = anthropic_stream_error(reply.stream_error)
        elif protocol == "responses":
            events, whole = stream_responses(reply, f"resp_oompa{rid}", self._ids)
            if reply.stream_error:
                stream_error = responses_stream_error(f"resp_oompa{rid}", reply.stream_error)
        elif protocol == "chat":
            options = body.get("stream_options")
            include = isinstance(options, dict) and bool(options.get("include_usage"))
            events, whole = stream_chat(reply, f"chatcmpl-oompa{rid}", include)
            if reply.stream_error:
                err = error_body("chat", 500, reply.stream_error)
                stream_error = f"data: {json.dumps(err)}\n\n".encode()
        else:
            events, whole = stream_gemini(reply)
            if reply.stream_error:
                err = error_body("gemini", 500, reply.stream_error)
                stream_error = f"data: {json.dumps(err)}\n\n".encode()
        if not view.stream:
            handler._json(200, whole)
            return
        handler._start_stream()
        for i, event in enumerate(events):
            handler._chunk(event)
            if i == 0 and stream_error is not None:
                handler._chunk(stream_error)
                handler._end_stream()
                return
            if i == 0 and turn.stall:
                self._sleep(turn.stall)
                if turn.stall_then == "close" or self._stopping.is_set():
                    handler.close_connection = True
                    with contextlib.suppress(OSError):
                        handler.connection.shutdown(socket.SHUT_RDWR)
                    return
        handler._end_stream()


def _view_of(
    protocol: Protocol, body: Mapping[str, Any], gemini: re.Match[str] | None
) -> RequestView:
    if protocol == "gemini":
        assert gemini is not None
        return _view_gemini(body, gemini.group(1), gemini.group(2) == "streamGenerateContent")
    if protocol == "anthropic":
        return _view_anthropic(body)
    if protocol == "responses":
        return _view_responses(body)
    return _view_chat(body)


def view_of(protocol: str, path: str, body: Mapping[str, Any]) -> RequestView:
    """The protocol-neutral view of a model request (a recorded one, say)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    gemini = _GEMINI_PATH.match(path.split("?", 1)[0])
    if protocol == "gemini" and gemini is None:
        raise ValueError(f"not a Gemini model path: {path!r}")
    return _view_of(protocol, body, gemini)  # type: ignore[arg-type]


class ContractModelAPI:
    """``FakeModelAPI`` seen through the contract suite's ``ModelAPI`` protocol:
    ``environment(harness, home)`` and ``script(match, replies)``."""

    def __init__(self, api: FakeModelAPI) -> None:
        self.api = api

    def environment(self, harness: str, home: Path) -> dict[str, str]:
        from pytest_oompa.harnesses import real_clis

        return real_clis.environment(self.api.url, Path(home), [harness])

    def script(self, match: str, replies: Sequence[Any]) -> None:
        self.api.script(match, replies)


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------
# python -m pytest_oompa fake-api
# ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_oompa fake-api",
        description="Serve the loopback fake model API (Anthropic Messages, OpenAI Responses, "
        "OpenAI Chat Completions, Gemini) until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--scenario", metavar="FILE", help="scenario JSON file")
    parser.add_argument("--log", metavar="FILE", help="append every request as a JSON line")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="write the real CLIs' config files into DIR and print the environment to use",
    )
    wire = parser.add_mutually_exclusive_group()
    wire.add_argument(
        "--record",
        metavar="CASSETTE",
        help="forward every model request upstream (the real providers, with the keys in "
        "ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY; or --upstream) and record the "
        "exchanges in this wire cassette",
    )
    wire.add_argument(
        "--replay", metavar="CASSETTE", help="answer from this wire cassette only, strictly"
    )
    parser.add_argument(
        "--upstream",
        metavar="URL|PROTOCOL=URL,...",
        help="with --record: where to forward (default: the real providers)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    except (OSError, ScenarioError) as exc:
        print(f"fake-api: bad scenario: {exc}", file=sys.stderr)
        return 2
    try:
        recorder, replayer = _wire_modes(args.record, args.replay, args.upstream)
    except (ValueError, OSError) as exc:
        print(f"fake-api: {exc}", file=sys.stderr)
        return 2
    api = FakeModelAPI(
        scenario, port=args.port, log_path=args.log, recorder=recorder, replayer=replayer
    )
    try:
        api.start()
    except OSError as exc:
        print(f"fake-api: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"fake model API on {api.url}", flush=True)
    if args.home:
        for key, value in sorted(api.environment(Path(args.home)).items()):
            print(f"export {key}={shlex.quote(value)}", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()
    print(f"fake-api: stopped after {len(api.requests)} request(s)", file=sys.stderr)
    if recorder is not None:
        print(
            f"fake-api: {len(recorder.exchanges)} exchange(s) in {recorder.path}", file=sys.stderr
        )
    if replayer is not None:
        print(
            f"fake-api: {replayer.replayed()} of {replayer.total} exchange(s) replayed, "
            f"{len(api.unmatched)} unmatched request(s)",
            file=sys.stderr,
        )
        return 1 if api.unmatched else 0
    return 0


def _wire_modes(
    record: str | None, replay: str | None, upstream: str | None
) -> tuple[WireRecorder | None, WireReplayer | None]:
    """The recorder or replayer the command line asks for; raises ValueError saying why not."""
    from pytest_oompa.offline import wire_cassette

    if upstream and not record:
        raise ValueError("--upstream only goes with --record")
    try:
        if replay:
            return None, wire_cassette.WireReplayer(replay)
        if not record:
            return None, None
        try:
            upstreams = (
                wire_cassette.parse_upstream(upstream)
                if upstream
                else dict(wire_cassette.PROVIDERS)
            )
        except ValueError as exc:
            raise ValueError(f"--upstream: {exc}") from None
        # Any protocol may be asked for: the keys the environment has go upstream; a real
        # provider whose key is missing answers 502 naming the variable (nothing is sent).
        keys = wire_cassette.available_keys(upstreams, os.environ)
        return wire_cassette.WireRecorder(record, upstreams=upstreams, keys=keys), None
    except wire_cassette.WireCassetteError as exc:
        raise ValueError(str(exc)) from None
