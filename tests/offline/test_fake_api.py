"""The loopback fake model API (pytest_oompa.offline.fake_api), with a plain HTTP client: the
four wire protocols and their streaming shapes, tool calls, errors, delays and stalls, unmatched
requests, the request log, the environment recipes and the ``fake-api`` command."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from pytest_oompa.offline.fake_api import ApiScenario, ApiScenarioError, FakeModelAPI

CWD = "/work/proj"
SYSTEM = f"You are an agent.\n - Primary working directory: {CWD}\n"


# ------------------------------------------------------------------------------------------
# A small HTTP client and request bodies in each protocol's shape
# ------------------------------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    def json(self) -> Any:
        return json.loads(self.raw)

    def events(self) -> list[tuple[str | None, Any]]:
        """SSE events as (event name or None, parsed data or the raw string)."""
        out: list[tuple[str | None, Any]] = []
        for block in self.raw.decode().split("\n\n"):
            name, data = None, []
            for line in block.splitlines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
            if data:
                text = "\n".join(data)
                out.append((name, text if text == "[DONE]" else json.loads(text)))
        return out


def post(api: FakeModelAPI, path: str, body: Any, timeout: float = 10) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    finally:
        conn.close()


def anthropic(messages: list[Any], tools: tuple[str, ...] = ("Bash", "Write")) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "system": [{"type": "text", "text": SYSTEM}],
        "messages": messages,
        "tools": [{"name": t, "input_schema": {}} for t in tools],
        "stream": True,
        "max_tokens": 100,
    }


def responses(items: list[Any], tools: tuple[str, ...] = ("exec_command",)) -> dict[str, Any]:
    return {
        "model": "gpt-x",
        "instructions": "be good",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"<cwd>{CWD}</cwd>"}],
            },
            *items,
        ],
        "tools": [{"type": "function", "name": t} for t in tools],
        "stream": True,
    }


def chat(messages: list[Any], tools: tuple[str, ...] = ("bash", "write")) -> dict[str, Any]:
    return {
        "model": "fake-model",
        "messages": [{"role": "system", "content": f"Working directory: {CWD}"}, *messages],
        "tools": [{"type": "function", "function": {"name": t}} for t in tools],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def gemini(contents: list[Any], tools: tuple[str, ...] = ("run_shell_command",)) -> dict[str, Any]:
    return {
        "contents": contents,
        "systemInstruction": {"parts": [{"text": "be good"}]},
        "tools": [{"functionDeclarations": [{"name": t} for t in tools]}],
    }


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


GEMINI_PATH = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"


@pytest.fixture
def api() -> Iterator[FakeModelAPI]:
    with FakeModelAPI(max_stall=10) as server:
        yield server


WORKER = {
    "match": "do the work",
    "turns": [
        {"say": "Writing.", "write": {"path": "src/a.txt", "content": "it's A\n"}},
        {"shell": "git commit -qam 'add a'", "usage": {"input": 7, "output": 3}},
        {"say": "Done.\nCOMPLETE_AND_READY_FOR_MERGE", "expect": "committed"},
    ],
}


# ------------------------------------------------------------------------------------------
# Anthropic Messages
# ------------------------------------------------------------------------------------------


def test_anthropic_text_stream(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [{"match": "hello", "turns": ["Hi there, friend."]}]})
    r = post(api, "/v1/messages?beta=true", anthropic([user("hello")]))
    assert r.status == 200 and r.headers["content-type"] == "text/event-stream"
    events = r.events()
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Hi there, friend."
    start, delta = events[0][1], events[5][1]
    assert start["message"]["role"] == "assistant" and start["message"]["model"] == "claude-x"
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 20
    (record,) = api.requests
    assert (record.protocol, record.kind, record.turn, record.status) == (
        "anthropic",
        "main",
        0,
        200,
    )


def test_anthropic_head_and_non_streaming(api: FakeModelAPI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.request("HEAD", "/")
    assert conn.getresponse().status == 200
    conn.close()
    api.set_scenario([{"turns": ["plain"]}])
    body = {**anthropic([user("x")]), "stream": False}
    message = post(api, "/v1/messages", body).json()
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["input_tokens"] == 100
    count = post(api, "/v1/messages/count_tokens", {"messages": []}).json()
    assert count["input_tokens"] >= 1
    assert [r.kind for r in api.requests] == ["other", "main", "count"]


def test_anthropic_tool_calls_and_turns(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [WORKER]})
    first = [user("[oompa:s:w0] do the work")]
    r = post(api, "/v1/messages", anthropic(first))
    blocks = [d["content_block"] for n, d in r.events() if n == "content_block_start"]
    assert [b["type"] for b in blocks] == ["text", "tool_use"]
    tool = blocks[1]
    assert tool["name"] == "Write" and tool["id"].startswith("toolu_")
    args = next(
        json.loads(d["delta"]["partial_json"])
        for n, d in r.events()
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    # Claude's Write takes an absolute path: the fake reads the cwd from the system prompt.
    assert args == {"file_path": f"{CWD}/src/a.txt", "content": "it's A\n"}
    assert r.events()[-2][1]["delta"]["stop_reason"] == "tool_use"

    history = [
        *first,
        {"role": "assistant", "content": [{"type": "text", "text": "Writing."}, tool]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "ok"}],
        },
    ]
    r = post(api, "/v1/messages", anthropic(history))
    call = next(d["content_block"] for n, d in r.events() if n == "content_block_start")
    assert call["name"] == "Bash"
    assert r.events()[-2][1]["usage"]["output_tokens"] == 3
    assert api.requests[-1].turn == 1
    assert api.requests[-1].tool_calls[0]["arguments"]["command"] == "git commit -qam 'add a'"


# ------------------------------------------------------------------------------------------
# OpenAI Responses
# ------------------------------------------------------------------------------------------


def test_responses_stream_and_tool_calls(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [WORKER]})
    prompt = {"type": "message", "role": "user", "content": "[oompa:s:w0] do the work"}
    r = post(api, "/v1/responses", responses([prompt]))
    events = r.events()
    names = [n for n, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    done = [d["item"] for n, d in events if n == "response.output_item.done"]
    assert [i["type"] for i in done] == ["message", "function_call"]
    assert done[0]["content"][0] == {"type": "output_text", "text": "Writing.", "annotations": []}
    deltas = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert deltas == "Writing."
    call = done[1]
    # codex offers no apply_patch here: the file is written through exec_command, exactly.
    assert call["name"] == "exec_command" and call["call_id"].startswith("call_")
    command = json.loads(call["arguments"])["cmd"]
    assert command == "mkdir -p src && printf %s 'it'\"'\"'s A\n' > src/a.txt"
    completed = events[-1][1]["response"]
    assert completed["status"] == "completed"
    assert completed["usage"]["input_tokens"] == 100
    assert completed["usage"]["output_tokens"] == 20

    items = [
        prompt,
        {"type": "message", "role": "assistant", "content": "Writing."},
        call,
        {"type": "function_call_output", "call_id": call["call_id"], "output": "done"},
    ]
    r = post(api, "/v1/responses", responses(items))
    call = next(d["item"] for n, d in r.events() if n == "response.output_item.done")
    assert json.loads(call["arguments"]) == {"cmd": "git commit -qam 'add a'"}
    assert api.requests[-1].turn == 1  # a message and a call in a row are one response
    items += [call, {"type": "function_call_output", "call_id": "x", "output": "committed"}]
    r = post(api, "/v1/responses", responses(items))
    texts = [d["text"] for n, d in r.events() if n == "response.output_text.done"]
    assert texts == ["Done.\nCOMPLETE_AND_READY_FOR_MERGE"]


def test_responses_apply_patch_when_offered(api: FakeModelAPI) -> None:
    api.set_scenario([{"turns": [{"write": {"path": "b.txt", "content": "one\ntwo\n"}}]}])
    body = responses([{"type": "message", "role": "user", "content": "go"}], ())
    body["tools"] = [{"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "x"}]
    events = post(api, "/v1/responses", body).events()
    item = [d["item"] for n, d in events if n == "response.output_item.done"]
    patch = "*** Begin Patch\n*** Add File: b.txt\n+one\n+two\n*** End Patch"
    assert item[-1]["type"] == "custom_tool_call" and item[-1]["input"] == patch


# ------------------------------------------------------------------------------------------
# OpenAI Chat Completions
# ------------------------------------------------------------------------------------------


def test_chat_stream_title_call_and_tool_calls(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [WORKER], "side": "A title"})
    # opencode's title call: no tools, its own system prompt.
    title = {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "You are a title generator."}, user("x")],
        "stream": True,
    }
    chunks = [d for _, d in post(api, "/v1/chat/completions", title).events()]
    assert chunks[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == "A title" and api.requests[-1].kind == "side"

    r = post(api, "/v1/chat/completions", chat([user('"[oompa:s:w0] do the work"')]))
    chunks = [d for _, d in r.events()]
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls = [
        tc
        for c in chunks[:-1]
        for choice in c["choices"]
        for tc in choice["delta"].get("tool_calls", [])
    ]
    assert calls[0]["function"]["name"] == "write"
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "filePath": f"{CWD}/src/a.txt",
        "content": "it's A\n",
    }
    finish = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finish[-1] == "tool_calls"
    usage = chunks[-2]
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 100

    history = [
        user('"[oompa:s:w0] do the work"'),
        {"role": "assistant", "content": "Writing.", "tool_calls": [calls[0]]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "ok"},
    ]
    r = post(api, "/v1/chat/completions", chat(history))
    calls = [
        tc
        for _, c in r.events()[:-1]
        for choice in c["choices"]
        for tc in choice["delta"].get("tool_calls", [])
    ]
    assert calls[0]["function"]["name"] == "bash"
    assert json.loads(calls[0]["function"]["arguments"])["command"] == "git commit -qam 'add a'"


# ------------------------------------------------------------------------------------------
# Gemini
# ------------------------------------------------------------------------------------------


def test_gemini_stream_function_calls_and_count(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [WORKER]})
    contents = [{"role": "user", "parts": [{"text": "[oompa:s:w0] do the work"}]}]
    r = post(api, GEMINI_PATH, gemini(contents))
    chunks = [d for _, d in r.events()]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert "".join(p.get("text", "") for p in parts) == "Writing."
    # No write_file offered: the write goes through run_shell_command.
    call = next(p["functionCall"] for p in parts if "functionCall" in p)
    assert call["name"] == "run_shell_command"
    assert call["args"]["command"].startswith("mkdir -p src && printf %s")
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"] == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "totalTokenCount": 120,
    }

    contents += [
        {"role": "model", "parts": [{"text": "Writing."}, {"functionCall": call}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": call["name"], "response": {"output": "ok"}}}],
        },
    ]
    body = gemini(contents, ("run_shell_command", "write_file"))
    r = post(api, "/v1beta/models/gemini-x:generateContent", body)
    whole = r.json()  # the non-streaming call answers one JSON object
    part = whole["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"]["args"]["command"] == "git commit -qam 'add a'"
    assert api.requests[-1].turn == 1
    count = post(api, "/v1beta/models/gemini-x:countTokens", body).json()
    assert count["totalTokens"] >= 1


# ------------------------------------------------------------------------------------------
# Errors, delays, stalls
# ------------------------------------------------------------------------------------------


def error_type(body: Any) -> str:
    return str(body["error"]["type"])


def error_status(body: Any) -> str:
    return str(body["error"]["status"])


ERROR_CASES = [
    ("/v1/messages", anthropic([user("boom")]), error_type),
    ("/v1/responses", responses([user("boom")]), error_type),
    ("/v1/chat/completions", chat([user("boom")]), error_type),
    (GEMINI_PATH, gemini([{"role": "user", "parts": [{"text": "boom"}]}]), error_status),
]
KINDS = {
    401: ["authentication_error"] * 3 + ["UNAUTHENTICATED"],
    429: ["rate_limit_error"] * 3 + ["RESOURCE_EXHAUSTED"],
    500: ["api_error"] * 3 + ["INTERNAL"],
}


@pytest.mark.parametrize("status", [401, 429, 500])
def test_http_errors_in_each_protocol_shape(api: FakeModelAPI, status: int) -> None:
    api.set_scenario([{"match": "boom", "turns": [{"error": {"status": status, "message": "m"}}]}])
    for (path, body, kind), expected in zip(ERROR_CASES, KINDS[status], strict=True):
        r = post(api, path, body)
        assert r.status == status and kind(r.json()) == expected
        assert r.headers["retry-after"] == "0"  # a CLI that retries anyway does it at once
    assert {(r.kind, r.status) for r in api.requests} == {("error", status)}


def test_fail_first_then_answer_and_retry_after(api: FakeModelAPI) -> None:
    turn = {"say": "finally", "fail_first": [429, {"status": 500, "retry_after": 2}]}
    api.set_scenario([{"turns": [turn]}])
    body = anthropic([user("x")])
    first, second, third = (post(api, "/v1/messages", body) for _ in range(3))
    assert (first.status, second.status, third.status) == (429, 500, 200)
    assert second.headers["retry-after"] == "2" and second.headers["retry-after-ms"] == "2000"
    assert [r.attempt for r in api.requests] == [1, 2, 3]
    # Attempts are counted per conversation: another first message starts again.
    assert post(api, "/v1/messages", anthropic([user("y")])).status == 429


def test_delay_and_mid_stream_stall(api: FakeModelAPI) -> None:
    api.set_scenario([{"turns": [{"say": "slow reply", "delay": 0.3, "stall": 0.6}]}])
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    t0 = time.monotonic()
    conn.request("POST", "/v1/messages", json.dumps(anthropic([user("x")])))
    resp = conn.getresponse()
    first = resp.readline()
    headers_at = time.monotonic() - t0
    rest = resp.read()
    total = time.monotonic() - t0
    conn.close()
    assert first.startswith(b"event: message_start")
    assert 0.3 <= headers_at < 0.6 + 0.3
    assert total >= 0.9 and b"message_stop" in rest


def test_stall_then_close_truncates_the_stream(api: FakeModelAPI) -> None:
    api.set_scenario([{"turns": [{"say": "never finished", "stall": 0.2, "stall_then": "close"}]}])
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps(chat([user("x")])))
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as err:
        resp.read()
    conn.close()
    assert b"chat.completion.chunk" in err.value.partial and b"[DONE]" not in err.value.partial


def test_stream_error_event(api: FakeModelAPI) -> None:
    api.set_scenario([{"turns": [{"say": "x", "stream_error": "scripted failure"}]}])
    events = post(api, "/v1/messages", anthropic([user("x")])).events()
    assert [n for n, _ in events] == ["message_start", "error"]
    assert events[1][1]["error"]["message"] == "scripted failure"
    events = post(api, "/v1/responses", responses([user("x")])).events()
    assert events[-1][0] == "response.failed"
    chunks = post(api, GEMINI_PATH, gemini([{"role": "user", "parts": [{"text": "x"}]}])).events()
    assert chunks[-1][1]["error"]["message"] == "scripted failure"


def test_stop_wakes_a_stalled_stream() -> None:
    api = FakeModelAPI([{"turns": [{"say": "zz", "stall": 60}]}]).start()
    got: list[bytes] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
        conn.request("POST", "/v1/messages", json.dumps(anthropic([user("x")])))
        resp = conn.getresponse()
        got.append(resp.readline())
        try:
            got.append(resp.read())
        except (http.client.IncompleteRead, OSError):
            got.append(b"<cut>")

    thread = threading.Thread(target=client)
    thread.start()
    while not got:
        time.sleep(0.02)
    t0 = time.monotonic()
    api.stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - t0 < 5
    assert got[0].startswith(b"event: message_start") and b"message_stop" not in got[-1]


# ------------------------------------------------------------------------------------------
# Matching: conversations, turns, side calls, probes, and what matches nothing
# ------------------------------------------------------------------------------------------


def test_unmatched_requests_get_a_clear_error(api: FakeModelAPI) -> None:
    api.set_scenario({"conversations": [WORKER], "probe": None})
    r = post(api, "/v1/messages", anthropic([user("something else")]))
    assert r.status == 400
    message = r.json()["error"]["message"]
    assert "no scripted conversation matches" in message and "something else" in message
    # Past the last scripted turn.
    history = [user("do the work")]
    for _ in range(3):
        history += [{"role": "assistant", "content": "."}, user("committed")]
    r = post(api, "/v1/messages", anthropic(history))
    assert r.status == 400 and "asks for turn 3" in r.json()["error"]["message"]
    # A turn whose expectation is not met.
    history = [user("do the work"), {"role": "assistant", "content": "."}, user("nope")]
    history += [{"role": "assistant", "content": "."}, user("still nope")]
    r = post(api, "/v1/messages", anthropic(history))
    assert r.status == 400 and "expects 'committed'" in r.json()["error"]["message"]
    # A tool the request does not offer.
    r = post(api, "/v1/messages", anthropic([user("do the work")], tools=("Read",)))
    assert r.status == 400 and "offers no shell tool" in r.json()["error"]["message"]
    # Paths nothing serves.
    assert post(api, "/v1/embeddings", {}).status == 404
    assert post(api, "/v1beta/models/g:embedContent", {}).status == 404
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.request("GET", "/v1/models")
    assert conn.getresponse().status == 404
    conn.close()
    assert len(api.unmatched) == 7 and all(r.note for r in api.unmatched)


def test_unreadable_body(api: FakeModelAPI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.request("POST", "/v1/messages", b"{not json", {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and b"unreadable request body" in resp.read()
    conn.close()


def test_conversations_protocols_probe_and_resumed_history(api: FakeModelAPI) -> None:
    api.set_scenario(
        [
            {"match": "Review the changes", "turns": ["VERDICT: APPROVED"]},
            {"match": "work", "protocol": "gemini", "turns": ["gemini work"]},
            {"match": "work", "turns": ["first", "second"]},
        ]
    )

    def reply(body: dict[str, Any], path: str = "/v1/messages") -> str:
        events = post(api, path, body).events()
        return "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")

    assert reply(anthropic([user("[_HIDE_TEST_] say ok")])) == "ok"
    assert api.requests[-1].kind == "probe"
    assert reply(anthropic([user("Review the changes in this worktree")])) == "VERDICT: APPROVED"
    assert reply(anthropic([user("<context>"), user("[oompa:s:w0] work")])) == "first"
    # A resumed session carries the earlier turns: the next scripted turn answers.
    resumed = [
        user("<context>"),
        user("[oompa:s:w0] work"),
        {"role": "assistant", "content": "first"},
        user("continue"),
    ]
    assert reply(anthropic(resumed)) == "second"
    assert api.requests[-1].history()[-2:] == [("assistant", "first"), ("user", "continue")]
    chunks = post(api, GEMINI_PATH, gemini([{"role": "user", "parts": [{"text": "work"}]}]))
    parts = [p for _, c in chunks.events() for p in c["candidates"][0]["content"]["parts"]]
    assert "".join(p["text"] for p in parts) == "gemini work"
    assert [r.conversation for r in api.model_requests()] == [
        "probe",
        "Review the changes",
        "work",
        "work",
        "work",
    ]


def test_concurrent_requests(api: FakeModelAPI) -> None:
    api.set_scenario([{"turns": [{"say": "parallel", "delay": 0.2}]}])
    results: list[int] = []

    def one(n: int) -> None:
        results.append(post(api, "/v1/messages", anthropic([user(f"conversation {n}")])).status)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8 and time.monotonic() - t0 < 1.5
    assert sorted(r.seq for r in api.requests) == list(range(1, 9))


def test_script_and_the_contract_model_api(api: FakeModelAPI, tmp_path: Path) -> None:
    class Reply:
        def __init__(self, text: str, writes: dict[str, str] | None = None) -> None:
            self.text, self.writes = text, writes or {}

    model_api = api.as_model_api()
    model_api.script("[oompa:s:w0]", [Reply("one", {"a.txt": "A"}), "two"])
    model_api.script("[oompa:s:w1]", ["other"])
    model_api.script("[oompa:s:w1]", ["latest wins"])

    def reply(history: list[Any]) -> tuple[str, list[str]]:
        events = post(api, "/v1/messages", anthropic(history)).events()
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
        tools = [
            d["content_block"]["name"]
            for n, d in events
            if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
        ]
        return text, tools

    history: list[Any] = [user("[oompa:s:w0] go")]
    assert reply(history) == ("", ["Write"])
    history += [{"role": "assistant", "content": "w"}, user("written")]
    assert reply(history) == ("one", [])
    history += [{"role": "assistant", "content": "one"}, user("[oompa:s:w0] continue")]
    assert reply(history) == ("two", [])
    assert reply([user("[oompa:s:w1] go")]) == ("latest wins", [])
    env = model_api.environment("codex", tmp_path / "home")
    assert env["CODEX_HOME"] == str(tmp_path / "home" / ".codex")
    assert "ANTHROPIC_BASE_URL" not in env


def test_request_log_file_redacts_keys(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with FakeModelAPI([{"turns": ["x"]}], log_path=log) as api:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
        body = json.dumps(anthropic([user("hi")]))
        conn.request("POST", "/v1/messages", body, {"x-api-key": "sk-secret"})
        conn.getresponse().read()
        conn.close()
    (line,) = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["headers"]["x-api-key"] == "<redacted>" and "sk-secret" not in line
    assert entry["protocol"] == "anthropic" and entry["body"]["messages"][0]["content"] == "hi"
    assert entry["reply"] == "x" and entry["kind"] == "main"


# ------------------------------------------------------------------------------------------
# Scenarios, lifecycle, environment, command line
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"conversation": []}, "unknown field(s) conversation"),
        ([{"turns": [{"sya": "x"}]}], "conversations[0].turns[0]: unknown field(s) sya"),
        ([{"turns": []}], "non-empty list"),
        ([{"turns": [{"error": 200}]}], "400..599"),
        ([{"turns": [{"shell": ""}]}], "a command string"),
        ([{"turns": [{"write": {"path": "a"}, "stall_then": "never"}]}], "stall_then"),
        ([{"turns": [{"tools": [{"run": "x"}]}]}], "unknown tool call 'run'"),
        ([{"match": "x", "protocol": "grpc", "turns": ["x"]}], "protocol"),
        ([{"turns": [{"delay": -1}]}], "delay: a number >= 0"),
    ],
)
def test_bad_scenarios(data: Any, message: str) -> None:
    with pytest.raises(ApiScenarioError, match=re.escape(message)):
        ApiScenario.load(data)


def test_scenario_from_file_and_json_text(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"conversations": [{"match": "m", "turns": ["a", {"say": "b"}]}]}))
    for source in (path, str(path), path.read_text()):
        scenario = ApiScenario.load(source)
        assert [t.say for t in scenario.conversations[0].turns] == ["a", "b"]
    with pytest.raises(ApiScenarioError, match="not JSON"):
        ApiScenario.load("{nope")


def test_loopback_only_and_restart() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeModelAPI(host="0.0.0.0")
    api = FakeModelAPI()
    api.start()
    assert api.url.startswith("http://127.0.0.1:") and api.port > 0
    api.stop()
    api.stop()  # idempotent
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", api.port, timeout=1).request("HEAD", "/")


def test_environment_recipes(api: FakeModelAPI, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = api.environment(home)
    assert env["HOME"] == str(home)
    assert env["ANTHROPIC_BASE_URL"] == api.url and env["ANTHROPIC_API_KEY"]
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["GOOGLE_GEMINI_BASE_URL"] == api.url
    assert env["CODEX_HOME"] == str(home / ".codex") and env["FAKE_API_KEY"]
    codex = tomllib.loads((home / ".codex" / "config.toml").read_text())
    assert codex["model_provider"] == "fake"
    provider = codex["model_providers"]["fake"]
    assert provider["base_url"] == f"{api.url}/v1" and provider["wire_api"] == "responses"
    assert provider["request_max_retries"] == 0 and provider["stream_max_retries"] == 0
    assert codex["analytics"]["enabled"] is False
    opencode = json.loads(env["OPENCODE_CONFIG_CONTENT"])
    assert opencode["provider"]["fake"]["options"]["baseURL"] == f"{api.url}/v1"
    assert opencode["model"] == "fake/fake-model"
    settings = json.loads((home / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["general"]["maxAttempts"] == 1
    assert (home / ".gitconfig").exists() and Path(env["TMPDIR"]).is_dir()
    only = api.environment(tmp_path / "h2", ["claude"])
    assert "CODEX_HOME" not in only and not (tmp_path / "h2" / ".codex").exists()


def test_fake_api_command(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps([{"turns": ["from the command"]}]))
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_oompa",
            "fake-api",
            "--scenario",
            str(scenario),
            "--log",
            str(log),
            "--home",
            str(tmp_path / "home"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("fake model API on http://127.0.0.1:")
        port = int(first.rsplit(":", 1)[1])
        exports = [proc.stdout.readline() for _ in range(3)]
        assert all(line.startswith("export ") for line in exports)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/messages", json.dumps(anthropic([user("x")])))
        raw = conn.getresponse().read()
        events = Response(200, {}, raw).events()
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
        assert text == "from the command"
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped after 1 request" in err
    assert json.loads(log.read_text())["reply"] == "from the command"
    bad = subprocess.run(
        [sys.executable, "-m", "pytest_oompa", "fake-api", "--scenario", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "bad scenario" in bad.stderr
