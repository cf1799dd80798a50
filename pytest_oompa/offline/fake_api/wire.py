"""The fake model API in front of a wire cassette: forwarding and recording, or replaying.

With a recorder, model requests go to a real upstream and the exchanges are recorded; with a
replayer, they are answered from a recording. Either replaces the scenario. The recorder and the
replayer (``pytest_oompa.offline.wire_cassette``) are handed to ``FakeModelAPI`` as objects
implementing the ``Recorder`` and ``Replayer`` protocols below, so the dependency goes one way:
the wire cassette knows the fake API (it keys requests by their ``RequestView``), the fake API
knows of the cassette only these protocols.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pytest_oompa.offline.fake_api.handler import ClientGone, Handler
from pytest_oompa.offline.fake_api.log import UNMATCHED_STATUS, RequestRecord
from pytest_oompa.offline.fake_api.protocols import WireProtocol
from pytest_oompa.offline.fake_api.requests import RequestView

#: The upstream's response headers passed on to the CLI, live and on replay (and so kept in a
#: cassette).
KEEP_RESPONSE_HEADERS = ("content-type", "retry-after", "retry-after-ms")


class Unmatched(Exception):
    """A request a replayer has no answer for: no recording, or one that differs from it."""


class UpstreamAnswer(Protocol):
    """The upstream's answer to a forwarded request, being streamed."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def chunks(self) -> Iterable[bytes]:
        """The body as it arrives."""
        ...

    @property
    def truncated(self) -> bool:
        """Whether the upstream broke off before the end (known once ``chunks`` ran out)."""
        ...

    def close(self) -> None: ...


class Recorder(Protocol):
    """Forwards model requests upstream and records the exchanges (``path`` and
    ``exchanges`` are for the session's summary)."""

    problems: list[str]  # exchanges that could not be recorded, and why

    @property
    def path(self) -> Path: ...

    @property
    def exchanges(self) -> Sequence[Mapping[str, Any]]: ...

    def forward(
        self, protocol: str, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> UpstreamAnswer:
        """Send the request upstream; raises OSError when it cannot be sent."""
        ...

    def record(
        self,
        *,
        protocol: str,
        method: str,
        target: str,
        view: RequestView,
        headers: Mapping[str, str],
        body: Any,
        status: int,
        response_headers: Mapping[str, str],
        response_body: bytes,
        duration_ms: int,
        truncated: bool = False,
    ) -> Mapping[str, Any]:
        """Record one exchange; returns it (``seq``, ``kind``, ``conversation``, ``turn``)."""
        ...


class RecordedAnswer(Protocol):
    """A recorded answer, ready for this run."""

    @property
    def exchange(self) -> Mapping[str, Any]:
        """The recorded exchange (``seq``, ``kind``, ``conversation``, ``turn``)."""
        ...

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> str: ...

    @property
    def streamed(self) -> bool: ...

    @property
    def truncated(self) -> bool:
        """The upstream broke this answer off: replay breaks it off at the same point."""
        ...

    def events(self) -> Iterable[bytes]:
        """The body as server-sent events, to write one by one."""
        ...


class Replayer(Protocol):
    """Answers model requests from recordings (``total``, ``replayed`` and ``unreplayed`` are
    for the session's summary)."""

    @property
    def total(self) -> int: ...

    def replayed(self) -> int: ...

    def unreplayed(self) -> Sequence[Mapping[str, Any]]:
        """The recorded exchanges no request asked for (yet), in recording order."""
        ...

    def answer(self, protocol: str, target: str, view: RequestView) -> RecordedAnswer:
        """The recorded answer to this request; raises ``Unmatched`` saying why there is none."""
        ...


def proxy(
    handler: Handler,
    record: RequestRecord,
    recorder: Recorder,
    protocol: WireProtocol,
    view: RequestView,
    body: Any,
    raw: bytes,
) -> None:
    """Forward upstream, stream the answer back as it comes, record the exchange (the whole
    answer, even when the CLI hangs up half way)."""
    start = time.monotonic()
    headers = dict(handler.headers.items())
    try:
        forwarded = recorder.forward(protocol.name, "POST", handler.path, headers, raw)
    except OSError as exc:
        record.kind, record.status = "unmatched", 502
        record.note = f"oompa wire recorder: cannot forward: {exc}"
        handler.close_connection = True
        handler.send_json(502, protocol.error_body(502, record.note))
        return
    captured = bytearray()
    gone: ClientGone | None = None
    content_type = forwarded.headers.get("content-type", "application/json")
    streamed = content_type.startswith("text/event-stream")
    try:
        if streamed:
            handler.start_stream(forwarded.status, content_type)
        for chunk in forwarded.chunks:
            captured += chunk
            if streamed and gone is None:
                try:
                    handler.send_chunk(chunk)
                except ClientGone as exc:
                    gone = exc  # keep reading: the cassette gets the whole answer
    finally:
        forwarded.close()
        # Recorded before the answer ends, so the CLI never sees an answer whose exchange
        # is not in the cassette yet.
        try:
            exchange = recorder.record(
                protocol=protocol.name,
                method="POST",
                target=handler.path,
                view=view,
                headers=headers,
                body=body,
                status=forwarded.status,
                response_headers=forwarded.headers,
                response_body=bytes(captured),
                duration_ms=int((time.monotonic() - start) * 1000),
                truncated=forwarded.truncated,
            )
        except Exception as exc:  # the CLI still gets its answer; the summary says why
            problem = f"{handler.path}: not recorded: {type(exc).__name__}: {exc}"
            recorder.problems.append(problem)
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
            handler.send_raw(forwarded.status, content_type, bytes(captured))
        return
    if streamed:
        handler.end_stream()
    else:
        kept = {
            k: forwarded.headers[k]
            for k in KEEP_RESPONSE_HEADERS
            if k in forwarded.headers and k != "content-type"
        }
        handler.send_raw(forwarded.status, content_type, bytes(captured), kept)


def replay(
    handler: Handler,
    record: RequestRecord,
    replayer: Replayer,
    protocol: WireProtocol,
    view: RequestView,
) -> None:
    """Answer from the recording, as it was streamed (and broken off, if it was)."""
    try:
        answer = replayer.answer(protocol.name, handler.path, view)
    except Unmatched as exc:
        record.kind, record.status = "unmatched", UNMATCHED_STATUS
        record.note = str(exc)
        handler.close_connection = True
        handler.send_json(UNMATCHED_STATUS, protocol.error_body(UNMATCHED_STATUS, record.note))
        return
    exchange = answer.exchange
    record.status = answer.status
    record.kind = "error" if answer.status >= 400 else str(exchange["kind"])
    record.conversation, record.turn = str(exchange["conversation"]), int(exchange["turn"])
    record.note = f"replayed exchange {exchange['seq']}"
    content_type = answer.headers.get("content-type", "application/json")
    if answer.streamed:
        handler.start_stream(answer.status, content_type)
        for event in answer.events():
            handler.send_chunk(event)
        if answer.truncated:
            handler.close_connection = True  # broken off where the recording was
            return
        handler.end_stream()
    else:
        extra = {k: v for k, v in answer.headers.items() if k != "content-type"}
        handler.send_raw(answer.status, content_type, answer.body.encode(), extra)
