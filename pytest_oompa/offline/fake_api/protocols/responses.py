"""The OpenAI Responses protocol (``POST /v1/responses``), which ``codex`` speaks.

The request's ``input`` items carry the conversation (messages, ``*_call`` and
``*_call_output`` items); a tool is a ``function`` or a freeform ``custom`` tool (codex's
``apply_patch``). The reply streams as ``response.created``, output items (a message with its
text deltas, then one item per tool call) and ``response.completed``, each event numbered.
"""

from __future__ import annotations

import itertools
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


class Responses:
    """``WireProtocol`` of the OpenAI Responses API."""

    name = "responses"
    tool_call_prefix = "call_oompa"

    def route(self, path: str) -> Route | None:
        return Route("generate") if path.endswith("/responses") else None

    def view(self, path: str, body: Mapping[str, Any]) -> RequestView:
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
                text = text_of(item.get("content"))
                if role == "assistant":
                    messages.append(Message("assistant", text))
                elif role == "user":
                    messages.append(Message("user", text))
                else:
                    messages.append(Message("system", text))
            elif kind.endswith("_call") and kind != "reasoning":
                messages.append(Message("assistant", text_of(item.get("arguments", item))))
            elif kind.endswith("_call_output"):
                messages.append(Message("tool", text_of(item.get("output"))))
        names: dict[str, str] = {}
        for t in body.get("tools") or []:
            if isinstance(t, dict):
                names[str(t.get("name") or t.get("type"))] = str(t.get("type", "function"))
        return RequestView(
            self.name,
            str(body.get("model", "")),
            tuple(messages),
            tuple(names),
            names,
            text_of(body.get("instructions")),
            bool(body.get("stream")),
        )

    def stream(
        self, reply: Reply, rid: str, ids: Iterator[int], body: Mapping[str, Any]
    ) -> Streamed:
        resp_id = f"resp_oompa{rid}"
        sse = Sse()
        seq = itertools.count()
        base = {
            "id": resp_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": reply.model,
            "status": "in_progress",
            "output": [],
        }

        def ev(kind: str, **data: Any) -> None:
            sse.named(kind, {"type": kind, "sequence_number": next(seq), **data})

        ev("response.created", response=base)
        ev("response.in_progress", response=base)
        output: list[dict[str, Any]] = []
        if reply.text:
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
            for piece in split(reply.text):
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
                text=reply.text,
            )
            done_part = {**part, "text": reply.text}
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
        for call in reply.calls:
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
            ev(
                "response.output_item.added",
                output_index=oi,
                item={**item, "status": "in_progress"},
            )
            ev("response.output_item.done", output_index=oi, item=item)
            output.append(item)
        usage = {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        final = {**base, "status": "completed", "output": output, "usage": usage}
        ev("response.completed", response=final)
        return Streamed(sse.events, final)

    def stream_error(self, rid: str, message: str) -> bytes:
        resp_id = f"resp_oompa{rid}"
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

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return openai_error_body(status, message)
