"""The fake model API itself: ``FakeModelAPI``, answering model requests from a scenario.

Each POST goes to the wire protocol its path names (``protocols.route_of``), is read into a neutral
``RequestView``, and is answered by the scripted turn the view picks: the conversation whose
match is in its first user message, the turn counted from the model responses its history
already holds (so a resumed session continues, a retry sees the same turn). The reply is written
by the protocol, with the turn's delay, stall or stream error; a request no turn matches gets a
clear HTTP 400 in the protocol's error shape. With a wire cassette (``wire``), recording or
replaying replaces the scenario. Every request is logged (``log``).

HTTP is ``handler``'s; this module is the answering logic and the API tests use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_oompa.offline.fake_api.handler import Handler, Server
from pytest_oompa.offline.fake_api.log import UNMATCHED_STATUS, RequestRecord, safe_headers
from pytest_oompa.offline.fake_api.protocols import FALLBACK, Route, WireProtocol, route_of
from pytest_oompa.offline.fake_api.protocols.base import Reply
from pytest_oompa.offline.fake_api.requests import RequestView
from pytest_oompa.offline.fake_api.scenario import ApiScenario, Conversation, HttpError, Turn
from pytest_oompa.offline.fake_api.tools import NoTool, resolve_tool_call
from pytest_oompa.offline.fake_api.wire import Recorder, Replayer, proxy, replay

#: What a first user message carries when oompa's preflight probes a CLI.
PROBE_MARKER = "[_HIDE_TEST_]"
#: How many requests the log keeps (the oldest go first).
MAX_LOG = 10_000
#: The longest a scripted delay or stall waits, whatever the scenario says.
DEFAULT_MAX_STALL = 300.0


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
        recorder: Recorder | None = None,
        replayer: Replayer | None = None,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError(f"the fake model API listens on loopback only (got {host!r})")
        if recorder is not None and replayer is not None:
            raise ValueError("the fake model API records or replays a wire cassette, not both")
        self.scenario = ApiScenario.load(scenario) if scenario is not None else ApiScenario()
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
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeModelAPI:
        if self._server is not None:
            return self
        server = Server((self.host, self.port), Handler)
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
        new = ApiScenario.load(scenario)
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
        self, handler: Handler, method: str, protocol: str | None, body: Any
    ) -> RequestRecord:
        record = RequestRecord(
            seq=next(self._seq),
            ts=time.time(),
            method=method,
            path=handler.path,
            protocol=protocol,
            body=body,
            headers=safe_headers(dict(handler.headers.items())),
        )
        with self._lock:
            self._records.append(record)
        return record

    def _log_simple(self, handler: Handler, method: str) -> RequestRecord:
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

    def _handle_post(self, handler: Handler) -> None:
        path = handler.path.split("?", 1)[0]
        protocol, route = route_of(path) or (None, None)
        name = protocol.name if protocol else None
        try:
            raw = handler.read_body()
            body = json.loads(raw) if raw else {}
        except (ValueError, zlib.error) as exc:
            record = self._new_record(handler, "POST", name, None)
            record.kind, record.status = "unmatched", 400
            record.note = f"oompa fake API: unreadable request body: {exc}"
            self._persist(record)
            handler.close_connection = True
            handler.send_json(400, (protocol or FALLBACK).error_body(400, record.note))
            return
        record = self._new_record(handler, "POST", name, body)
        try:
            wired = self.recorder is not None or self.replayer is not None
            if wired and protocol is not None and isinstance(body, dict):
                view = protocol.view(path, body)
                record.view, record.tools = view, view.tools
                if self.recorder is not None:
                    proxy(handler, record, self.recorder, protocol, view, body, raw)
                elif self.replayer is not None:
                    replay(handler, record, self.replayer, protocol, view)
                return
            self._answer(handler, record, path, protocol, route, body)
        finally:
            self._persist(record)

    def _answer(
        self,
        handler: Handler,
        record: RequestRecord,
        path: str,
        protocol: WireProtocol | None,
        route: Route | None,
        body: Any,
    ) -> None:
        if protocol is None or route is None or not isinstance(body, dict):
            record.kind, record.status = "unmatched", 404
            record.note = f"oompa fake API: nothing serves POST {path}"
            handler.send_json(404, (protocol or FALLBACK).error_body(404, record.note))
            return
        if route.action == "count":
            record.kind = "count"
            handler.send_json(200, {route.count_field: max(1, len(json.dumps(body)) // 4)})
            return
        if route.action == "unknown":
            record.kind, record.status = "unmatched", 404
            record.note = f"oompa fake API: nothing serves {route.method}"
            handler.send_json(404, protocol.error_body(404, record.note))
            return
        view = protocol.view(path, body)
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
            handler.send_json(
                failure.status, protocol.error_body(failure.status, failure.message), headers
            )
            return
        assert turn is not None
        try:
            calls = [resolve_tool_call(c, view, self._call_id(protocol)) for c in turn.tools]
        except NoTool as exc:
            record.kind, record.status = "unmatched", UNMATCHED_STATUS
            record.note = f"oompa fake API: turn {record.turn} of {record.conversation}: {exc}"
            handler.close_connection = True
            handler.send_json(UNMATCHED_STATUS, protocol.error_body(UNMATCHED_STATUS, record.note))
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

    def _call_id(self, protocol: WireProtocol) -> str:
        return f"{protocol.tool_call_prefix}{next(self._ids):06d}"

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
        handler: Handler,
        protocol: WireProtocol,
        view: RequestView,
        reply: Reply,
        turn: Turn,
        body: Mapping[str, Any],
    ) -> None:
        rid = f"{next(self._ids):06d}"
        streamed = protocol.stream(reply, rid, self._ids, body)
        stream_error = (
            protocol.stream_error(rid, reply.stream_error) if reply.stream_error else None
        )
        if not view.stream:
            handler.send_json(200, streamed.whole)
            return
        handler.start_stream()
        for i, event in enumerate(streamed.events):
            handler.send_chunk(event)
            if i == 0 and stream_error is not None:
                handler.send_chunk(stream_error)
                handler.end_stream()
                return
            if i == 0 and turn.stall:
                self._sleep(turn.stall)
                if turn.stall_then == "close" or self._stopping.is_set():
                    handler.close_connection = True
                    with contextlib.suppress(OSError):
                        handler.connection.shutdown(socket.SHUT_RDWR)
                    return
        handler.end_stream()


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
