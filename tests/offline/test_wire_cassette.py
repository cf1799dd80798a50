"""Wire cassettes (pytest_oompa.offline.wire_cassette): recording through the fake model API in
front of an upstream (here another fake model API standing in for a provider), strict replay,
secrets, normalization, and the swarm options that use them. The real CLIs record and replay in
tests/harnesses/test_real_clis.py."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fake_api import CWD, GEMINI_PATH, anthropic, chat, gemini, post, responses, user

from pytest_oompa.offline import wire_cassette
from pytest_oompa.offline.fake_api import FakeModelAPI
from pytest_oompa.offline.wire_cassette import (
    WireCassetteError,
    WireRecorder,
    WireReplayer,
    normalize,
    parse_upstream,
    remap,
)
from pytest_oompa.runs.artifacts import validate_artifact

KEY = "sk-ant-api03-realrealrealrealreal"
SCENARIO = {
    "conversations": [
        {
            "match": "do the work",
            "turns": [
                {"say": "Writing.", "write": {"path": "a.txt", "content": "A\n"}},
                "Done.\nCOMPLETE_AND_READY_FOR_MERGE",
            ],
        },
        {"match": "flaky", "turns": [{"fail_first": [429], "say": "after a retry"}]},
    ]
}
SWARM = "20261121T120000Z-c0ffee"  # swarm ids as the engine makes them
PROMPT = f"[oompa:{SWARM}:w0] do the work"
OTHER_CWD = "/srv/elsewhere/w0"


@pytest.fixture
def upstream() -> Iterator[FakeModelAPI]:
    with FakeModelAPI(SCENARIO, max_stall=10) as server:
        yield server


def recording(upstream: FakeModelAPI, path: Path, **kw: Any) -> tuple[FakeModelAPI, WireRecorder]:
    recorder = WireRecorder(
        path, upstreams=dict.fromkeys(wire_cassette.PROVIDERS, upstream.url), **kw
    )
    return FakeModelAPI(recorder=recorder, max_stall=10), recorder


def moved(body: Any, swarm: str = "20261121T130000Z-beef00") -> Any:
    """The same request from another run: another working directory and swarm id."""
    return json.loads(json.dumps(body).replace(CWD, OTHER_CWD).replace(SWARM, swarm))


FIRST = {
    "anthropic": ("/v1/messages?beta=true", anthropic([user(PROMPT)])),
    "responses": (
        "/v1/responses",
        responses([{"type": "message", "role": "user", "content": PROMPT}]),
    ),
    "chat": ("/v1/chat/completions", chat([user(PROMPT)])),
    "gemini": (
        GEMINI_PATH,
        gemini(
            [
                {
                    "role": "user",
                    "parts": [{"text": f"{PROMPT}\nI'm currently working in the directory: {CWD}"}],
                }
            ]
        ),
    ),
}


# ------------------------------------------------------------------------------------------
# Record, then replay, in each protocol
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", list(FIRST))
def test_record_then_replay_each_protocol(
    protocol: str, upstream: FakeModelAPI, tmp_path: Path
) -> None:
    path, body = FIRST[protocol]
    cassette = tmp_path / "c.wire.json"
    proxy, _ = recording(upstream, cassette, clients={"claude": "2.1.197"})
    with proxy:
        recorded = post(proxy, path, body)
    assert recorded.status == 200
    assert [r.kind for r in upstream.requests] == ["main"]
    data = json.loads(cassette.read_text())
    validate_artifact("wire-cassette", data)
    (exchange,) = data["exchanges"]
    assert exchange["protocol"] == protocol and exchange["kind"] == "main"
    assert exchange["turn"] == 0 and exchange["bindings"]["cwd"] == CWD
    assert data["clients"] == {"claude": "2.1.197"}
    # The write tool call carries the recorded absolute path for the CLIs that take one.
    absolute = protocol in ("anthropic", "chat")  # (these requests offer a write tool)
    assert (f"{CWD}/a.txt" in recorded.raw.decode()) is absolute

    with FakeModelAPI(replayer=WireReplayer(cassette)) as api:
        replayed = post(api, path, moved(body))
        again = post(api, path, moved(body))
    assert replayed.status == 200
    assert replayed.headers["content-type"] == recorded.headers["content-type"]
    # Byte for byte the recording, with this run's working directory in it.
    assert replayed.raw.decode() == recorded.raw.decode().replace(CWD, OTHER_CWD)
    assert again.status == 400
    assert "was recorded 1 time(s); this is request 2" in json.dumps(again.json())
    assert [r.kind for r in api.requests] == ["main", "unmatched"]


def test_a_resumed_conversation_and_retries_replay_in_order(
    upstream: FakeModelAPI, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.wire.json"
    first = anthropic([user(PROMPT)])
    flaky = anthropic([user("flaky call")])
    proxy, _ = recording(upstream, cassette)
    with proxy:
        tool_turn = post(proxy, "/v1/messages", first)
        (call,) = [
            d["content_block"]
            for n, d in tool_turn.events()
            if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
        ]
        second = anthropic(
            [
                user(PROMPT),
                {"role": "assistant", "content": [{**call, "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call["id"], "content": "ok"}
                    ],
                },
            ]
        )
        done = post(proxy, "/v1/messages", second)
        statuses = [post(proxy, "/v1/messages", flaky).status for _ in range(2)]
    assert statuses == [429, 200]
    assert '"stop_reason": "end_turn"' in done.raw.decode()

    replayer = WireReplayer(cassette)
    with FakeModelAPI(replayer=replayer) as api:
        assert [post(api, "/v1/messages", flaky).status for _ in range(2)] == [429, 200]
        assert post(api, "/v1/messages", moved(first)).status == 200
        assert replayer.unreplayed()[0]["turn"] == 1
        replay_done = post(api, "/v1/messages", moved(second))
    assert replay_done.raw == done.raw
    assert replayer.replayed() == replayer.total == 4
    assert replayer.unreplayed() == []
    assert [r.kind for r in api.requests] == ["error", "main", "main", "main"]


def test_a_request_that_differs_is_refused_with_a_diff(
    upstream: FakeModelAPI, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.wire.json"
    proxy, _ = recording(upstream, cassette)
    path, body = FIRST["chat"]
    with proxy:
        post(proxy, path, body)
    changed = json.loads(json.dumps(body).replace("do the work", "do other work"))
    with FakeModelAPI(replayer=WireReplayer(cassette)) as api:
        answer = post(api, path, changed)
    assert answer.status == 400
    message = answer.json()["error"]["message"]
    assert "no recording of chat /v1/chat/completions main" in message
    assert "-[oompa:<swarm>:w0] do the work" in message
    assert "+[oompa:<swarm>:w0] do other work" in message
    (record,) = api.unmatched
    assert record.note == message


def test_secrets_never_reach_the_cassette(upstream: FakeModelAPI, tmp_path: Path) -> None:
    cassette = tmp_path / "c.wire.json"
    env = {"MY_SERVICE_TOKEN": "tok-123456789-secret"}
    body = anthropic([user(f"{PROMPT}; token tok-123456789-secret and sk-proj-abcdefghijklmnop")])
    recorder = WireRecorder(
        cassette, upstreams={"anthropic": upstream.url}, keys={"anthropic": KEY}, env=env
    )
    with FakeModelAPI(recorder=recorder) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request(
            "POST",
            "/v1/messages?key=AIzaSyA-secret-google-key-000000",
            json.dumps(body),
            {"x-api-key": "placeholder", "Authorization": "Bearer sk-ant-oat01-cafecafecafe"},
        )
        assert conn.getresponse().status == 200
        conn.close()
    # The upstream got no query key (test_the_real_key_goes_upstream checks the header).
    (seen,) = upstream.requests
    assert seen.path == "/v1/messages"
    text = cassette.read_text()
    for secret in (
        "tok-123456789-secret",
        "sk-proj-abcdefghijklmnop",
        "AIzaSyA",
        KEY,
        "cafecafe",
        "placeholder",
    ):
        assert secret not in text
    exchanges = json.loads(text)["exchanges"]
    assert len(exchanges) == 1, (recorder.problems, upstream.requests)  # (once flaky on CI)
    (exchange,) = exchanges
    assert exchange["request"]["headers"]["x-api-key"] == "<redacted>"
    assert exchange["path"] == "/v1/messages"
    # A replay compares redacted with redacted: the same request still matches.
    with FakeModelAPI(replayer=WireReplayer(cassette, env=env)) as api:
        assert post(api, "/v1/messages", body).status == 200


class Capture(FakeModelAPI):
    """A provider that keeps the headers it received (its request log redacts keys)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seen: list[dict[str, str]] = []

    def _new_record(self, handler: Any, method: str, protocol: Any, body: Any) -> Any:
        self.seen.append({k.lower(): v for k, v in handler.headers.items()})
        return super()._new_record(handler, method, protocol, body)


@pytest.mark.parametrize(
    ("protocol", "variable", "header", "value"),
    [
        ("anthropic", "ANTHROPIC_API_KEY", "x-api-key", "sk-ant-real"),
        ("responses", "OPENAI_API_KEY", "authorization", "Bearer sk-openai-real"),
        ("chat", "OPENAI_API_KEY", "authorization", "Bearer sk-openai-real"),
        ("gemini", "GEMINI_API_KEY", "x-goog-api-key", "AIza-real"),
    ],
)
def test_the_real_key_goes_upstream(
    protocol: str, variable: str, header: str, value: str, tmp_path: Path
) -> None:
    """What the provider receives: the key from the environment, in its protocol's header,
    never the CLI's placeholder (and no ``key=`` in the query)."""
    key = value.removeprefix("Bearer ")
    keys = wire_cassette.upstream_keys([protocol], {variable: key})
    path, body = FIRST[protocol]
    with Capture(SCENARIO) as provider:
        recorder = WireRecorder(
            tmp_path / "c.wire.json", upstreams={protocol: provider.url}, keys=keys
        )
        with FakeModelAPI(recorder=recorder) as proxy:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            placeholder = {"x-api-key": "x", "authorization": "Bearer x", "x-goog-api-key": "x"}
            target = path + ("&" if "?" in path else "?") + "key=x"
            conn.request("POST", target, json.dumps(body), placeholder)
            assert conn.getresponse().status == 200
            conn.close()
    (seen,) = provider.seen  # type: ignore[attr-defined]
    assert seen[header] == value
    assert seen["accept-encoding"] == "identity"
    assert [v for k, v in seen.items() if k in placeholder and k != header] == []
    assert "key=" not in provider.requests[0].path


def test_a_real_provider_without_a_key_is_never_called(tmp_path: Path) -> None:
    recorder = WireRecorder(tmp_path / "c.wire.json")  # the real providers, no keys
    with FakeModelAPI(recorder=recorder) as proxy:
        answer = post(proxy, *FIRST["anthropic"])
    assert answer.status == 502
    message = answer.json()["error"]["message"]
    assert "no key for https://api.anthropic.com: set ANTHROPIC_API_KEY" in message
    with pytest.raises(WireCassetteError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        wire_cassette.upstream_keys(["gemini"], {})


def test_a_protocol_with_no_upstream_is_a_502(upstream: FakeModelAPI, tmp_path: Path) -> None:
    recorder = WireRecorder(tmp_path / "c.wire.json", upstreams={"chat": upstream.url})
    with FakeModelAPI(recorder=recorder) as proxy:
        answer = post(proxy, *FIRST["anthropic"])
    assert answer.status == 502
    assert "no upstream for the anthropic protocol (upstreams: chat=http" in json.dumps(
        answer.json()
    )
    assert upstream.requests == []


def test_an_unreachable_upstream_is_a_502_and_records_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cassette = tmp_path / "c.wire.json"
    recorder = WireRecorder(cassette, upstreams={"chat": dead})
    with FakeModelAPI(recorder=recorder) as proxy:
        answer = post(proxy, *FIRST["chat"])
    assert answer.status == 502
    assert (
        "oompa wire recorder: cannot forward: http://127.0.0.1:"
        in answer.json()["error"]["message"]
    )
    assert json.loads(cassette.read_text())["exchanges"] == []


def test_a_cli_hanging_up_mid_stream_still_records_the_whole_answer(tmp_path: Path) -> None:
    scenario = {"conversations": [{"turns": [{"say": "a long answer", "stall": 0.5}]}]}
    cassette = tmp_path / "c.wire.json"
    with FakeModelAPI(scenario, max_stall=5) as provider:
        recorder = WireRecorder(cassette, upstreams={"anthropic": provider.url})
        with FakeModelAPI(recorder=recorder) as proxy:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            path, body = FIRST["anthropic"]
            conn.request("POST", path, json.dumps(body))
            response = conn.getresponse()
            assert b"message_start" in response.read1(4096)
            conn.close()  # during the stall
            for _ in range(100):
                if recorder.exchanges:
                    break
                provider._stopping.wait(0.05)
    (exchange,) = recorder.exchanges
    assert exchange["response"]["body"].rstrip().endswith('{"type": "message_stop"}')


def test_replay_warns_about_another_cli_version_and_lists_what_was_not_asked(
    upstream: FakeModelAPI, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.wire.json"
    proxy, _ = recording(upstream, cassette, clients={"codex": "0.169.0"})
    with proxy:
        post(proxy, *FIRST["responses"])
    replayer = WireReplayer(cassette, clients={"codex": "0.170.0"})
    assert replayer.warnings == ["codex is 0.170.0 here; the cassette was recorded with 0.169.0"]
    assert [e["seq"] for e in replayer.unreplayed()] == [1]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=2), "version 2; this reader reads 1"),
        (lambda d: d.update(format="other"), "not a wire cassette"),
        (lambda d: d["exchanges"][0].pop("response"), "'response' is a required property"),
        (lambda d: d["exchanges"][0].update(kind="weird"), "kind"),
    ],
)
def test_bad_cassettes_are_refused(
    edit: Any, message: str, upstream: FakeModelAPI, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.wire.json"
    proxy, _ = recording(upstream, cassette)
    with proxy:
        post(proxy, *FIRST["chat"])
    data = json.loads(cassette.read_text())
    edit(data)
    cassette.write_text(json.dumps(data))
    with pytest.raises(WireCassetteError, match=message):
        WireReplayer(cassette)
    with pytest.raises(WireCassetteError, match="no such wire cassette"):
        WireReplayer(tmp_path / "missing.json")


def split_arguments(cassette: Path, protocol: str) -> None:
    """Rewrite the recorded answer as the real providers stream it: the tool call's arguments
    in two pieces, cut in the middle of the working directory's path."""
    data = json.loads(cassette.read_text())
    response = data["exchanges"][0]["response"]
    blocks = [b for b in response["body"].split("\n\n") if b]
    out = []
    for block in blocks:
        head, _, payload = block.rpartition("data: ")
        event = json.loads(payload) if payload.startswith("{") else None
        if protocol == "anthropic" and event and event.get("delta", {}).get("partial_json"):
            whole = event["delta"]["partial_json"]
            cut = whole.index(CWD) + 4
            for piece in (whole[:cut], whole[cut:]):
                event["delta"]["partial_json"] = piece
                out.append(head + "data: " + json.dumps(event))
            continue
        calls = (
            event["choices"][0]["delta"].get("tool_calls")
            if protocol == "chat" and event and event["choices"]
            else None
        )
        if calls and event is not None:
            whole = calls[0]["function"]["arguments"]
            cut = whole.index(CWD) + 4
            calls[0]["function"]["arguments"] = whole[:cut]
            out.append("data: " + json.dumps(event))
            rest = {"index": 0, "function": {"arguments": whole[cut:]}}
            event["choices"][0]["delta"] = {"tool_calls": [rest]}
            out.append("data: " + json.dumps(event))
            continue
        out.append(block)
    response["body"] = "".join(b + "\n\n" for b in out)
    cassette.write_text(json.dumps(data))


def tool_arguments(protocol: str, raw: bytes) -> str:
    """The tool call's arguments as the CLI reassembles them from the stream."""
    pieces = []
    for block in raw.decode().split("\n\n"):
        payload = block.rpartition("data: ")[2]
        if not payload.startswith("{"):
            continue
        event = json.loads(payload)
        if protocol == "anthropic":
            pieces.append(event.get("delta", {}).get("partial_json", ""))
        elif event["choices"]:
            for call in event["choices"][0]["delta"].get("tool_calls") or []:
                pieces.append(call["function"].get("arguments", ""))
    return "".join(pieces)


@pytest.mark.parametrize("protocol", ["anthropic", "chat"])
def test_a_path_split_across_streamed_pieces_is_remapped(
    protocol: str, upstream: FakeModelAPI, tmp_path: Path
) -> None:
    cassette = tmp_path / "c.wire.json"
    path, body = FIRST[protocol]
    proxy, _ = recording(upstream, cassette)
    with proxy:
        post(proxy, path, body)
    split_arguments(cassette, protocol)
    assert CWD not in json.loads(cassette.read_text())["exchanges"][0]["response"]["body"]
    with FakeModelAPI(replayer=WireReplayer(cassette)) as api:
        replayed = post(api, path, moved(body))
    arguments = json.loads(tool_arguments(protocol, replayed.raw))
    assert f"{OTHER_CWD}/a.txt" in arguments.values()


def test_a_stream_the_upstream_cut_short_is_recorded_and_replayed_cut_short(
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "c.wire.json"
    scenario = {"conversations": [{"turns": [{"say": "cut", "stall": 0.2, "stall_then": "close"}]}]}
    path, body = FIRST["anthropic"]
    with FakeModelAPI(scenario, max_stall=5) as provider:
        recorder = WireRecorder(cassette, upstreams={"anthropic": provider.url})
        with FakeModelAPI(recorder=recorder) as proxy, pytest.raises(http.client.IncompleteRead):
            post(proxy, path, body)
    (exchange,) = json.loads(cassette.read_text())["exchanges"]
    assert exchange["response"]["truncated"] is True
    assert "message_start" in exchange["response"]["body"]
    assert "message_stop" not in exchange["response"]["body"]
    with (
        FakeModelAPI(replayer=WireReplayer(cassette)) as api,
        pytest.raises(http.client.IncompleteRead),
    ):
        post(api, path, moved(body))


def test_a_lone_surrogate_is_recorded_and_replayed(upstream: FakeModelAPI, tmp_path: Path) -> None:
    """JavaScript CLIs cut tool output mid-character: the JSON then holds a lone surrogate."""
    cassette = tmp_path / "c.wire.json"
    path = "/v1/chat/completions"
    body = chat([user(PROMPT + " \ud83d")])
    proxy, recorder = recording(upstream, cassette)
    with proxy:
        assert post(proxy, path, body).status == 200
    assert recorder.problems == []
    with FakeModelAPI(replayer=WireReplayer(cassette)) as api:
        assert post(api, path, body).status == 200


# ------------------------------------------------------------------------------------------
# Normalization
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Today's date is Saturday, November 21, 2026.", "Today's date is <date>, <date>."),
        ("at 2026-11-21T13:50:38.123Z and 13:50", "at <date> and <date>"),
        ("Chunk ID: abdece\nWall time: 0.0012 seconds", "Chunk ID: <hex>\nWall time: <n> seconds"),
        ("make 120 widgets in a decade", "make 120 widgets in a decade"),
        ("Process Group PGID: 4213", "Process Group PGID: <n>"),
        ("[main 1a2b3c4] w0: hello", "[main <hex>] w0: hello"),
        ("session 5f0c8b9e-2d3f-4a1b-9c8d-7e6f5a4b3c2d", "session <uuid>"),
        ("PGID: 48213, files: 12", "PGID: <n>, files: 12"),
        ("epoch 1763726400123", "epoch <n>"),
        ("wrote /tmp/pytest-of-root/x/home/.gemini/tmp/abc", "wrote <tmp>"),
        ("in /srv/w0: ok  \n\n", "in <cwd>: ok"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text, {"cwd": "/srv/w0"}) == expected


_path = st.lists(st.sampled_from(["w0", "proj", "a-b", "x_1"]), min_size=1, max_size=4).map(
    lambda parts: "/srv/" + "/".join(parts)
)
_word = st.text(alphabet="ghijklmnopqrstuvwxyz :\n", max_size=40)


@given(text=st.lists(_word, min_size=1, max_size=5), a=_path, b=_path)
def test_normalize_sees_through_the_working_directory(text: list[str], a: str, b: str) -> None:
    """The same request from two working directories normalizes the same, normalizing is
    idempotent, and an answer remapped from one run to the other carries the other's path."""
    in_a = a.join(text)
    in_b = b.join(text)
    assert normalize(in_a, {"cwd": a}) == normalize(in_b, {"cwd": b})
    once = normalize(in_a, {"cwd": a})
    assert normalize(once, {"cwd": a}) == once
    assert remap(in_a, {"cwd": a}, {"cwd": b}) == in_b


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:9", dict.fromkeys(wire_cassette.PROVIDERS, "http://127.0.0.1:9")),
        ("anthropic=http://a,chat=http://c", {"anthropic": "http://a", "chat": "http://c"}),
    ],
)
def test_parse_upstream(value: str, expected: dict[str, str]) -> None:
    assert parse_upstream(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("chat=http://c,bogus=http://x", "'bogus=http://x' is not PROTOCOL=URL"),
        ("localhost:8080", "is not an http:// or https:// URL with a host"),
        ("http://h:port", "the port is not a number"),
        ("https://user:secret@gw.example", "https://…@gw.example: no credentials in the URL"),
    ],
)
def test_parse_upstream_refuses(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_upstream(value)


def test_a_short_binding_is_left_alone() -> None:
    """A one-letter swarm id must not rewrite every "a" of a replayed answer."""
    assert remap("data: a", {"swarm": "a"}, {"swarm": "b"}) == "data: a"
    assert normalize("[oompa:a:w0] a task", {"swarm": "a"}) == "[oompa:a:w0] a task"


# ------------------------------------------------------------------------------------------
# python -m pytest_oompa fake-api --record / --replay
# ------------------------------------------------------------------------------------------


def serve(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_oompa", "fake-api", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("fake model API on http://127.0.0.1:"), proc.communicate()
    return proc, int(first.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=10)[1]


class At:
    """``post`` takes a server; a port is enough."""

    def __init__(self, port: int) -> None:
        self.port = port


def test_the_fake_api_command_records_and_replays(upstream: FakeModelAPI, tmp_path: Path) -> None:
    cassette = tmp_path / "c.wire.json"
    proc, port = serve("--record", str(cassette), "--upstream", upstream.url)
    try:
        recorded = post(At(port), *FIRST["chat"])  # type: ignore[arg-type]
    finally:
        err = stop(proc)
    assert proc.returncode == 0 and "1 exchange(s) in" in err
    proc, port = serve("--replay", str(cassette))
    try:
        replayed = post(At(port), *FIRST["chat"])  # type: ignore[arg-type]
        unmatched = post(At(port), *FIRST["chat"])  # type: ignore[arg-type]
    finally:
        err = stop(proc)
    assert replayed.raw == recorded.raw and unmatched.status == 400
    assert proc.returncode == 1 and "1 of 1 exchange(s) replayed, 1 unmatched" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay", "missing.json"], "no such wire cassette"),
        (["--upstream", "http://x"], "--upstream only goes with --record"),
        (["--record", "c.json", "--upstream", "nope=http://x"], "--upstream: 'nope=http://x'"),
    ],
)
def test_the_fake_api_command_refuses(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_oompa", "fake-api", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and message in proc.stderr


def test_concurrent_requests_are_all_recorded(tmp_path: Path) -> None:
    cassette = tmp_path / "c.wire.json"
    with FakeModelAPI({"conversations": [{"turns": ["ok"]}]}) as provider:
        recorder = WireRecorder(cassette, upstreams={"chat": provider.url})
        with FakeModelAPI(recorder=recorder) as proxy:
            bodies = [chat([user(f"[oompa:{SWARM}:w{i}] task {i}")]) for i in range(8)]
            with ThreadPoolExecutor(8) as pool:
                statuses = list(
                    pool.map(lambda b: post(proxy, "/v1/chat/completions", b).status, bodies)
                )
    assert statuses == [200] * 8
    data = json.loads(cassette.read_text())
    validate_artifact("wire-cassette", data)
    assert sorted(e["seq"] for e in data["exchanges"]) == list(range(1, 9))
    assert len({e["conversation"] for e in data["exchanges"]}) == 8
    replayer = WireReplayer(cassette)
    with FakeModelAPI(replayer=replayer) as api, ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda b: post(api, "/v1/chat/completions", b).status, bodies))
    assert again == [200] * 8 and replayer.unreplayed() == []
