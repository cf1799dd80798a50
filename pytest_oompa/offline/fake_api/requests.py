"""A model request read protocol-neutrally: the conversation it carries and the tools it offers.

Each wire protocol (``protocols/``) reads its own request body into a ``RequestView``; from
then on nothing cares which protocol it was: the scenario picks the turn from the view (the
first user message, how many model responses the history holds), tool calls are resolved
against the tools it offers, and wire cassettes key their recordings by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_oompa.offline.fake_api.clis import CWD_PATTERNS


@dataclass(frozen=True)
class Message:
    """One message of the conversation a request carries (a tool result is role "tool")."""

    role: Literal["system", "user", "assistant", "tool"]
    text: str


@dataclass(frozen=True)
class RequestView:
    """A model request, whatever its protocol: model, messages, offered tools, system text."""

    protocol: str  # a name in protocols.PROTOCOLS
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
        for pattern in CWD_PATTERNS:
            found = pattern.search(haystack)
            if found:
                return found.group(1).strip()
        return None


def text_of(value: Any) -> str:
    """Text of a content value: a string, a block list, or anything with 'text' inside."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("text", "content", "output", "input", "result"):
            if key in value:
                return text_of(value[key])
        if "functionResponse" in value:
            return json.dumps(value["functionResponse"].get("response"))
        return ""
    return str(value)
