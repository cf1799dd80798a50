"""The wire protocols the fake model API speaks, one module each, and their registry.

A new provider's protocol is one module implementing ``base.WireProtocol`` plus one line in
``PROTOCOLS``; scenarios (``"protocol": NAME``), the request log and wire cassettes then know it
by its name. A request path goes to the first protocol whose ``route`` takes it, so the order
below is the order paths are tried in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_oompa.offline.fake_api.protocols.anthropic import Anthropic
from pytest_oompa.offline.fake_api.protocols.base import Route, WireProtocol
from pytest_oompa.offline.fake_api.protocols.chat import Chat
from pytest_oompa.offline.fake_api.protocols.gemini import Gemini
from pytest_oompa.offline.fake_api.protocols.responses import Responses
from pytest_oompa.offline.fake_api.requests import RequestView

_IMPLEMENTATIONS: tuple[WireProtocol, ...] = (Anthropic(), Responses(), Chat(), Gemini())
PROTOCOLS: Mapping[str, WireProtocol] = {p.name: p for p in _IMPLEMENTATIONS}
#: Whose error shape answers a request of no known protocol: the OpenAI one, the most common.
FALLBACK = PROTOCOLS["chat"]


def route_of(path: str) -> tuple[WireProtocol, Route] | None:
    """The protocol a POST to ``path`` (no query) speaks, and what it asks for."""
    for protocol in PROTOCOLS.values():
        found = protocol.route(path)
        if found is not None:
            return protocol, found
    return None


def view_of(protocol: str, path: str, body: Mapping[str, Any]) -> RequestView:
    """The protocol-neutral view of a model request (a recorded one, say)."""
    implementation = PROTOCOLS.get(protocol)
    if implementation is None:
        raise ValueError(f"unknown protocol {protocol!r}")
    return implementation.view(path, body)


__all__ = ["FALLBACK", "PROTOCOLS", "Route", "WireProtocol", "route_of", "view_of"]
