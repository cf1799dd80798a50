"""The Gemini protocol (``POST /v1beta/models/<model>:streamGenerateContent``), which ``gemini``
speaks.

The model and whether to stream are in the path (``:generateContent`` does not stream;
``:countTokens`` counts); the conversation is ``contents`` of ``parts`` (text,
``functionCall``, ``functionResponse``). The reply streams as data events of candidates, the
last one with the finish reason and the usage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_oompa.offline.fake_api.protocols.base import (
    Reply,
    Route,
    Sse,
    Streamed,
    split,
)
from pytest_oompa.offline.fake_api.requests import Message, RequestView, text_of

_MODEL_PATH = re.compile(r"^/v1(?:beta|alpha|)?/models/([^/:]+):([A-Za-z]+)$")
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Gemini:
    """``WireProtocol`` of the Gemini API (generativelanguage)."""

    name = "gemini"
    tool_call_prefix = "call_oompa"

    def route(self, path: str) -> Route | None:
        found = _MODEL_PATH.match(path)
        if found is None:
            return None
        method = found.group(2)
        if method == "countTokens":
            return Route("count", count_field="totalTokens")
        if method in ("streamGenerateContent", "generateContent"):
            return Route("generate")
        return Route("unknown", method=method)

    def view(self, path: str, body: Mapping[str, Any]) -> RequestView:
        found = _MODEL_PATH.match(path.split("?", 1)[0])
        if found is None:
            raise ValueError(f"not a Gemini model path: {path!r}")
        model, stream = found.group(1), found.group(2) == "streamGenerateContent"
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
                messages.append(Message("tool", text_of(responses)))
            if rest:
                messages.append(Message("user", text_of(rest)))
        tools = [
            str(d.get("name", ""))
            for t in body.get("tools") or []
            if isinstance(t, dict)
            for d in t.get("functionDeclarations") or []
        ]
        return RequestView(
            self.name,
            model,
            tuple(messages),
            tuple(tools),
            {t: "function" for t in tools},
            text_of(body.get("systemInstruction")),
            stream,
        )

    def stream(
        self, reply: Reply, rid: str, ids: Iterator[int], body: Mapping[str, Any]
    ) -> Streamed:
        sse = Sse()
        usage = {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": reply.output_tokens,
            "totalTokenCount": reply.input_tokens + reply.output_tokens,
        }
        pieces = split(reply.text)
        parts: list[dict[str, Any]] = [{"text": p} for p in pieces[-1:]]
        parts += [
            {"functionCall": {"name": c.name, "args": c.arguments or {}}} for c in reply.calls
        ]
        if len(pieces) > 1:
            first = {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": pieces[0]}]}, "index": 0}
                ]
            }
            sse.data({**first, "modelVersion": reply.model})
        if not parts:
            parts = [{"text": ""}]
        last = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": reply.model,
        }
        sse.data(last)
        whole_parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        whole_parts += [
            {"functionCall": {"name": c.name, "args": c.arguments or {}}} for c in reply.calls
        ]
        whole = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": whole_parts or [{"text": ""}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": reply.model,
        }
        return Streamed(sse.events, whole)

    def stream_error(self, rid: str, message: str) -> bytes:
        return f"data: {json.dumps(self.error_body(500, message))}\n\n".encode()

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        }
