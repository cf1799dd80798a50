"""``python -m pytest_oompa fake-api``: the fake model API served from the command line.

It serves a scenario, or sits in front of a wire cassette: ``--record`` forwards every model
request upstream and records the exchanges, ``--replay`` answers from a cassette only. The
command lives beside the ``fake_api`` package rather than in it because it is the one place that
wires the two together: ``wire_cassette`` depends on ``fake_api`` (it keys requests by their
``RequestView``), and ``fake_api`` knows a cassette only as the ``Recorder`` and ``Replayer``
protocols it is handed; the command, above both, builds one and hands it over.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_oompa.offline import wire_cassette
from pytest_oompa.offline.fake_api import ApiScenario, ApiScenarioError, FakeModelAPI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_oompa fake-api",
        description="Serve the loopback fake model API (Anthropic Messages, OpenAI Responses, "
        "OpenAI Chat Completions, Gemini) until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--scenario", metavar="FILE", help="scenario JSON file")
    parser.add_argument("--log", metavar="FILE", help="append every request as a JSON line")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="write the real CLIs' config files into DIR and print the environment to use",
    )
    wire = parser.add_mutually_exclusive_group()
    wire.add_argument(
        "--record",
        metavar="CASSETTE",
        help="forward every model request upstream (the real providers, with the keys in "
        "ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY; or --upstream) and record the "
        "exchanges in this wire cassette",
    )
    wire.add_argument(
        "--replay", metavar="CASSETTE", help="answer from this wire cassette only, strictly"
    )
    parser.add_argument(
        "--upstream",
        metavar="URL|PROTOCOL=URL,...",
        help="with --record: where to forward (default: the real providers)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        scenario = ApiScenario.load(args.scenario) if args.scenario else ApiScenario()
    except (OSError, ApiScenarioError) as exc:
        print(f"fake-api: bad scenario: {exc}", file=sys.stderr)
        return 2
    try:
        recorder, replayer = _wire_modes(args.record, args.replay, args.upstream)
    except (ValueError, OSError) as exc:
        print(f"fake-api: {exc}", file=sys.stderr)
        return 2
    api = FakeModelAPI(
        scenario, port=args.port, log_path=args.log, recorder=recorder, replayer=replayer
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    # Before the address is announced: whoever reads it may signal us at once.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        api.start()
    except OSError as exc:
        print(f"fake-api: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"fake model API on {api.url}", flush=True)
    if args.home:
        for key, value in sorted(api.environment(Path(args.home)).items()):
            print(f"export {key}={shlex.quote(value)}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()
    print(f"fake-api: stopped after {len(api.requests)} request(s)", file=sys.stderr)
    if recorder is not None:
        print(
            f"fake-api: {len(recorder.exchanges)} exchange(s) in {recorder.path}", file=sys.stderr
        )
    if replayer is not None:
        print(
            f"fake-api: {replayer.replayed()} of {replayer.total} exchange(s) replayed, "
            f"{len(api.unmatched)} unmatched request(s)",
            file=sys.stderr,
        )
        return 1 if api.unmatched else 0
    return 0


def _wire_modes(
    record: str | None, replay: str | None, upstream: str | None
) -> tuple[wire_cassette.WireRecorder | None, wire_cassette.WireReplayer | None]:
    """The recorder or replayer the command line asks for; raises ValueError saying why not."""
    if upstream and not record:
        raise ValueError("--upstream only goes with --record")
    try:
        if replay:
            return None, wire_cassette.WireReplayer(replay)
        if not record:
            return None, None
        try:
            upstreams = (
                wire_cassette.parse_upstream(upstream)
                if upstream
                else dict(wire_cassette.PROVIDERS)
            )
        except ValueError as exc:
            raise ValueError(f"--upstream: {exc}") from None
        # Any protocol may be asked for: the keys the environment has go upstream; a real
        # provider whose key is missing answers 502 naming the variable (nothing is sent).
        keys = wire_cassette.available_keys(upstreams, os.environ)
        return wire_cassette.WireRecorder(record, upstreams=upstreams, keys=keys), None
    except wire_cassette.WireCassetteError as exc:
        raise ValueError(str(exc)) from None
