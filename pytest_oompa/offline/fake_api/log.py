"""The request log of the fake model API: one ``RequestRecord`` per request it received.

Tests read it (``FakeModelAPI.requests``, ``model_requests()``, ``unmatched``) to see what the
CLIs sent and how each request was answered; ``--log`` appends each as a JSON line. Secret
headers are redacted before anything is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_oompa.offline.fake_api.requests import RequestView

#: The status a request no scripted turn (or recording) answers gets: a clear client error
#: the CLI gives up on, never a hang.
UNMATCHED_STATUS = 400


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


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()
    }
