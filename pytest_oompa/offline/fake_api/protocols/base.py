"""The ``WireProtocol`` every wire protocol of the fake model API implements, and what they share.

A wire protocol is the HTTP dialect one family of CLIs speaks to its model API (Anthropic
Messages, OpenAI Responses, OpenAI Chat Completions, Gemini). The server knows none of them: it
asks each registered protocol whether a request path is its own (``route``), has it read the
request body into a neutral ``RequestView`` (``view``), and has it write a scripted ``Reply`` as
its own event stream (``stream``), a failure in the middle of one (``stream_error``) and an HTTP
error answer (``error_body``). One module per protocol implements this, the way pytest-xdist
keeps one module per scheduler behind its ``scheduler/protocol.py``; the registry in
``protocols/__init__.py`` names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytest_oompa.offline.fake_api.requests import RequestView

#: An HTTP status as the error ``type`` the providers use for it.
STATUS_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Route:
    """What a POST path asks of a protocol: a model response, a token count (answered with
    ``{count_field: N}``), or something the fake does not serve (``method`` names it)."""

    action: Literal["generate", "count", "unknown"]
    count_field: str = ""
    method: str = ""


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


@dataclass(frozen=True)
class Streamed:
    """A reply written in a protocol's shape: the server-sent events of a streamed answer (the
    first one is where a stall or a stream error falls), and the whole answer as one JSON
    object for a request that did not ask to stream."""

    events: list[bytes]
    whole: dict[str, Any]


class WireProtocol(Protocol):
    """One wire protocol, as the fake model API serves it."""

    #: The protocol's name in scenarios, the request log and wire cassettes.
    name: str
    #: The prefix of the tool-call ids the fake API makes up for it.
    tool_call_prefix: str

    def route(self, path: str) -> Route | None:
        """What a POST to ``path`` (no query) asks for, or None when the path is not this
        protocol's."""
        ...

    def view(self, path: str, body: Mapping[str, Any]) -> RequestView:
        """The neutral view of a request to ``path`` (the query is ignored); raises ValueError
        when the path is not one of this protocol's model paths and the view needs it."""
        ...

    def stream(
        self, reply: Reply, rid: str, ids: Iterator[int], body: Mapping[str, Any]
    ) -> Streamed:
        """``reply`` as this protocol's answer; ``rid`` is a fresh response number, ``ids`` a
        counter for the ids of its items, ``body`` the request (for its streaming options)."""
        ...

    def stream_error(self, rid: str, message: str) -> bytes:
        """The event that breaks a stream off with an error (``rid`` as given to ``stream``)."""
        ...

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """An HTTP error answer's body."""
        ...


class Sse:
    """Frames one protocol's server-sent events; the server writes them with optional stalls."""

    def __init__(self) -> None:
        self.events: list[bytes] = []

    def named(self, event: str, data: Mapping[str, Any]) -> None:
        self.events.append(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    def data(self, data: Mapping[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.events.append(f"data: {text}\n\n".encode())


def split(text: str) -> list[str]:
    """A text in two streamed pieces (a stall falls between them)."""
    if len(text) < 2:
        return [text] if text else []
    half = len(text) // 2
    return [text[:half], text[half:]]


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    """The error body of the OpenAI APIs (Responses and Chat Completions alike)."""
    kind = STATUS_KINDS.get(status, "api_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, kind)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
