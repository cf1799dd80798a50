"""The OpenAI Chat Completions protocol (``POST /v1/chat/completions``), which ``opencode``
speaks.

The reply streams as ``chat.completion.chunk`` data events (text pieces, one ``tool_calls``
chunk per call, the finish reason, the usage when ``stream_options.include_usage`` asks for it)
and ``[DONE]``; an error in the middle of a stream is a data event with the error body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_oompa.offline.fake_api.protocols.base import (
    Reply,
    Route,
    Sse,
    Streamed,
    openai_error_body,
    split,
)
from pytest_oompa.offline.fake_api.requests import Message, RequestView, text_of


class Chat:
    """``WireProtocol`` of the OpenAI Chat Completions API."""

    name = "chat"
    tool_call_prefix = "call_oompa"

    def route(self, path: str) -> Route | None:
        return Route("generate") if path.endswith("/chat/completions") else None

    def view(self, path: str, body: Mapping[str, Any]) -> RequestView:
        messages: list[Message] = []
        system = []
        for m in body.get("messages") or []:
            role = m.get("role")
            text = text_of(m.get("content"))
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
            self.name,
            str(body.get("model", "")),
            tuple(messages),
            tuple(tools),
            {t: "function" for t in tools},
            "\n".join(system),
            bool(body.get("stream")),
        )

    def stream(
        self, reply: Reply, rid: str, ids: Iterator[int], body: Mapping[str, Any]
    ) -> Streamed:
        chat_id = f"chatcmpl-oompa{rid}"
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        sse = Sse()
        created = int(time.time())

        def chunk(delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": reply.model,
                "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}],
            }

        sse.data(chunk({"role": "assistant", "content": ""}))
        for piece in split(reply.text):
            sse.data(chunk({"content": piece}))
        for i, call in enumerate(reply.calls):
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
        finish = "tool_calls" if reply.stop_for_tools else "stop"
        sse.data(chunk({}, finish))
        usage = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        if include_usage:
            sse.data({**chunk({}), "choices": [], "usage": usage})
        sse.data("[DONE]")
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for c in reply.calls
            ]
        whole = {
            "id": chat_id,
            "object": "chat.completion",
            "created": created,
            "model": reply.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return Streamed(sse.events, whole)

    def stream_error(self, rid: str, message: str) -> bytes:
        return f"data: {json.dumps(self.error_body(500, message))}\n\n".encode()

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return openai_error_body(status, message)
