"""A loopback fake model API that drives the real ``claude``, ``codex``, ``opencode`` and
``gemini`` CLIs deterministically and offline.

One HTTP server on 127.0.0.1 (a free port, standard library only) speaks the four wire protocols
the CLIs use, each streamed as server-sent events:

========== ==================================================== ============================
protocol   request                                              used by
========== ==================================================== ============================
anthropic  ``POST /v1/messages`` (any query; also ``HEAD /``)   claude
responses  ``POST /v1/responses``                               codex
chat       ``POST /v1/chat/completions``                        opencode
gemini     ``POST /v1beta/models/<m>:streamGenerateContent``    gemini
========== ==================================================== ============================

What the "model" answers is scripted once, protocol-neutrally, by an ``ApiScenario``: a list of
conversations, each picked by a substring of its first user message and made of turns (one
model response each): text, tool calls that run a shell command or write a file (translated
into each protocol's own tool-call shape and the CLI's own tool: ``Bash``/``Write``,
``exec_command``/``apply_patch``, ``bash``/``write``, ``run_shell_command``/``write_file``),
usage figures, HTTP errors, delays and mid-stream stalls. The turn of a request is read from the
request itself (how many model responses its history already holds since the conversation's
first message), so a resumed session continues where it stopped, and retries see the same
turn. Every request is logged (``FakeModelAPI.requests``); a request that no scripted turn
matches is answered with a clear HTTP 400 in the protocol's error shape, never left hanging.

The scenario format is documented in docs/real-clis.md; ``environment(home)`` gives the
environment (and writes the config files) that points each real CLI at this server.

The rooms:

- ``scenario``: the scenario format (``ApiScenario`` and its conversations, turns, tool calls);
- ``requests``: a request read protocol-neutrally (``RequestView``);
- ``protocols/``: one module per wire protocol, each a ``WireProtocol`` (``protocols/base.py``),
  named in the registry ``protocols.PROTOCOLS``;
- ``clis``: the facts about particular CLIs (their tools, how they state their cwd);
  ``tools`` resolves a scenario's tool call into the CLI's own;
- ``log``: the request log (``RequestRecord``);
- ``handler``: HTTP; ``server``: ``FakeModelAPI``, answering;
- ``wire``: recording and replaying through a wire cassette, which the server is handed as a
  ``Recorder`` or ``Replayer`` (``pytest_oompa.offline.wire_cassette`` implements them).

The ``fake-api`` command is ``pytest_oompa.offline.fake_api_command``.
"""

from __future__ import annotations

from pytest_oompa.offline.fake_api.log import RequestRecord
from pytest_oompa.offline.fake_api.protocols import PROTOCOLS, WireProtocol, view_of
from pytest_oompa.offline.fake_api.requests import Message, RequestView
from pytest_oompa.offline.fake_api.scenario import (
    ApiScenario,
    ApiScenarioError,
    Conversation,
    HttpError,
    ToolCall,
    Turn,
)
from pytest_oompa.offline.fake_api.server import ContractModelAPI, FakeModelAPI
from pytest_oompa.offline.fake_api.wire import Recorder, Replayer, Unmatched

__all__ = [
    "PROTOCOLS",
    "ApiScenario",
    "ApiScenarioError",
    "ContractModelAPI",
    "Conversation",
    "FakeModelAPI",
    "HttpError",
    "Message",
    "Recorder",
    "Replayer",
    "RequestRecord",
    "RequestView",
    "ToolCall",
    "Turn",
    "Unmatched",
    "WireProtocol",
    "view_of",
]
