"""The Anthropic Messages protocol (``POST /v1/messages``), which ``claude`` speaks.

Also serves ``/v1/messages/count_tokens`` (a rough count); claude's ``HEAD /`` reachability
check is the server's. The reply streams as ``message_start``, one content block per text and
tool call (``text_delta``, ``input_json_delta``), ``message_delta`` and ``message_stop``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_oompa.offline.fake_api.protocols.base import (
    STATUS_KINDS,
    Reply,
    Route,
    Sse,
    Streamed,
    split,
)
from pytest_oompa.offline.fake_api.requests import Message, RequestView, text_of


class Anthropic:
    """``WireProtocol`` of the Anthropic Messages API."""

    name = "anthropic"
    tool_call_prefix = "toolu_oompa"

    def route(self, path: str) -> Route | None:
        if not path.startswith("/v1/messages"):
            return None
        if path.endswith("/count_tokens"):
            return Route("count", count_field="input_tokens")
        return Route("generate")

    def view(self, path: str, body: Mapping[str, Any]) -> RequestView:
        messages: list[Message] = []
        for m in body.get("messages") or []:
            content = m.get("content")
            if m.get("role") == "assistant":
                messages.append(Message("assistant", text_of(content)))
                continue
            blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
            results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
            rest = [
                b for b in blocks if not (isinstance(b, dict) and b.get("type") == "tool_result")
            ]
            if results:
                messages.append(Message("tool", text_of([r.get("content") for r in results])))
            if rest:
                messages.append(Message("user", text_of(rest)))
        tools = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
        return RequestView(
            self.name,
            str(body.get("model", "")),
            tuple(messages),
            tuple(tools),
            {t: "function" for t in tools},
            text_of(body.get("system")),
            bool(body.get("stream")),
        )

    def stream(
        self, reply: Reply, rid: str, ids: Iterator[int], body: Mapping[str, Any]
    ) -> Streamed:
        msg_id = f"msg_oompa{rid}"
        sse = Sse()
        usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
        start_usage = {**usage, "output_tokens": 1}
        message: dict[str, Any] = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                **start_usage,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        sse.named("message_start", {"type": "message_start", "message": message})
        content: list[dict[str, Any]] = []
        index = 0
        if reply.text:
            sse.named(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in split(reply.text):
                sse.named(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            sse.named("content_block_stop", {"type": "content_block_stop", "index": index})
            content.append({"type": "text", "text": reply.text})
            index += 1
        for call in reply.calls:
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
        stop = "tool_use" if reply.stop_for_tools else "end_turn"
        sse.named(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        sse.named("message_stop", {"type": "message_stop"})
        whole = {**message, "content": content, "stop_reason": stop, "usage": usage}
        return Streamed(sse.events, whole)

    def stream_error(self, rid: str, message: str) -> bytes:
        data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = STATUS_KINDS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
