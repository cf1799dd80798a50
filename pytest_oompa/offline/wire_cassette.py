"""Wire cassettes: the HTTP exchanges between the real agent CLIs and a model API, recorded once
and replayed by the loopback fake model API.

Recording puts ``FakeModelAPI`` in front of the real provider (``WireRecorder``): each CLI is
pointed at 127.0.0.1 by the usual recipes and sends a placeholder key; the recorder swaps in
the real key from this process's environment, forwards the request to the provider, streams the
answer back as it arrives and appends the exchange to the cassette. Replay (``WireReplayer``)
answers every request from the cassette and never touches the network.

Replay is strict. A request is looked up by protocol, path, kind (``main``: the CLI offers
tools; ``side``: a title or quota call; ``count``: token counting), conversation (its first user
message) and turn (model responses already in its history), the n-th such request getting the
n-th recorded one, so retries and resumed sessions replay as recorded. What the CLI sent since
the last model response (the prompt, or the tool results) must then equal the recording. Before
comparing, both sides are normalized: the working directory and the swarm id (read from the
request itself, and mapped back into the recorded answer), temporary paths, dates, uuids, hex
ids and long numbers. A request with no recording, or one that differs, is answered with an
HTTP 400 naming the difference and logged as ``unmatched``.

Secrets never reach the file: credential headers are dropped, ``key=`` query values and every
value of a secret-named environment variable are replaced, and known key shapes are redacted
(``cassette.Redactor``). The cassette stores the CLI versions (``--version``, when the recorder
knows them) and each request's User-Agent; replay warns when the CLI is another version.
Format: ``schemas/wire-cassette.schema.json``, described in docs/cassettes.md.

``WireRecorder`` and ``WireReplayer`` implement the ``Recorder`` and ``Replayer`` protocols of
``fake_api.wire`` and are handed to ``FakeModelAPI``; this module depends on the fake API (for
``RequestView``, which keys the requests), never the other way round.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_oompa import __version__
from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.offline.cassette import Redactor
from pytest_oompa.offline.fake_api import RequestView, Unmatched, view_of
from pytest_oompa.offline.fake_api.wire import KEEP_RESPONSE_HEADERS
from pytest_oompa.runs.artifacts import ArtifactError, utc_now_iso, validate_artifact

FORMAT = "oompa-wire-cassette"
VERSION = 1
KIND = "wire-cassette"
SUFFIX = ".wire.json"
REDACTED = "<redacted>"

#: Where each protocol goes when recording against the real providers.
PROVIDERS: Mapping[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "responses": "https://api.openai.com",
    "chat": "https://api.openai.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
#: The variables holding each provider's key, and the header it goes in.
KEYS: Mapping[str, tuple[tuple[str, ...], str, str]] = {
    "anthropic": (("ANTHROPIC_API_KEY",), "x-api-key", "{key}"),
    "responses": (("OPENAI_API_KEY",), "authorization", "Bearer {key}"),
    "chat": (("OPENAI_API_KEY",), "authorization", "Bearer {key}"),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "x-goog-api-key", "{key}"),
}
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "proxy-authorization"}
)
# Not forwarded: hop-by-hop, recomputed, or (accept-encoding) asking for a body we could not
# record as text.
_DROP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "content-encoding",
        "accept-encoding",
        "te",
        "upgrade",
    }
)
UPSTREAM_TIMEOUT = 600.0

# -- normalization ----------------------------------------------------------------------------

_TAG = re.compile(r"\[oompa:([^:\]\s]+):[^\]\s]+\]")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "uuids",
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        "<uuid>",
    ),
    ("temp-paths", re.compile(r"(?:/tmp|/var/folders|/private/var)/[^\s\"'`<>)\]}]*"), "<tmp>"),
    (
        "dates",
        re.compile(
            r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
            r"|\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b"
            rf"|\b(?:{_MONTHS}) \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b"
            r"|\b\d{1,2}/\d{1,2}/\d{4}\b"
            r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AP]M)?\b"
        ),
        "<date>",
    ),
    # Commit hashes and ids (a digit and a letter: "decade" stays a word), and codex's output
    # chunk ids (which may be letters only).
    (
        "hex-ids",
        re.compile(
            r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b"
            r"|(?<=Chunk ID: )[0-9a-zA-Z]+"
        ),
        "<hex>",
    ),
    # Durations ("Wall time: 0.0012 seconds"), process ids, and long numbers; not a short
    # number a prompt may mean ("make 120 widgets").
    (
        "numbers",
        re.compile(r"\b\d+\.\d+\b|(?<=PID: )\d+|(?<=PGID: )\d+|(?<=pid )\d+|\b\d{6,}\b"),
        "<n>",
    ),
)
#: A binding shorter than this is not replaced (a one-letter swarm id would rewrite every "a").
MIN_BINDING = 6
_SPACE = re.compile(r"[ \t]+")


def bindings_of(view: RequestView) -> dict[str, str]:
    """What varies between a recording and its replay, read from the request: the CLI's working
    directory and the swarm id of the oompa prompt tag."""
    found: dict[str, str] = {}
    cwd = view.cwd()
    if cwd and cwd.startswith("/") and len(cwd) > 1:
        found["cwd"] = cwd.rstrip("/")
    tag = _TAG.search(view.first_user_text())
    if tag:
        found["swarm"] = tag.group(1)
    return found


def normalize(text: str, bindings: Mapping[str, str]) -> str:
    """``text`` with the bindings' values as ``<name>`` and the RULES applied."""
    for name, value in sorted(bindings.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= MIN_BINDING:
            text = text.replace(value, f"<{name}>")
    for _, pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return "\n".join(_SPACE.sub(" ", line).rstrip() for line in text.splitlines()).strip()


def remap(text: str, recorded: Mapping[str, str], live: Mapping[str, str]) -> str:
    """A recorded answer for this run: each recorded binding's value replaced by the live one."""
    pairs = [
        (recorded[k], live[k])
        for k in recorded
        if k in live and recorded[k] != live[k] and len(recorded[k]) >= MIN_BINDING
    ]
    for old, new in sorted(pairs, key=lambda p: -len(p[0])):
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Key:
    protocol: str
    path: str  # without the query
    kind: str  # main | side | count
    conversation: str  # a hash of the normalized first user message
    turn: int

    def label(self) -> str:
        where = f"{self.protocol} {self.path} {self.kind}"
        return f"{where} conversation {self.conversation} turn {self.turn}"


def request_kind(path: str, view: RequestView) -> str:
    if path.endswith(("/count_tokens", ":countTokens")):
        return "count"
    return "main" if view.tools else "side"


def describe(
    protocol: str, path: str, view: RequestView, redactor: Redactor | None = None
) -> tuple[Key, str, dict[str, str]]:
    """(the lookup key, the normalized input since the last response, the bindings); the
    texts are redacted the way a recording is, so a live request compares with one."""
    redact = redactor or _PATTERNS_ONLY
    bindings = bindings_of(view)
    first = normalize(redact.text(view.first_user_text()), bindings)
    # surrogatepass: a CLI that cut a tool's output mid-character sends a lone surrogate.
    conversation = hashlib.sha256(first.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    turn = view.turns_since(view.first_user_index(None) or 0) if view.messages else 0
    key = Key(protocol, path.split("?", 1)[0], request_kind(path, view), conversation, turn)
    text = normalize(redact.text(view.since_last_response()), bindings)
    return key, text, bindings


def describe_recorded(exchange: Mapping[str, Any]) -> tuple[Key, str, dict[str, str]]:
    """``describe`` of a recorded request, from its body with today's rules (a cassette's
    own ``conversation`` and ``input`` are what the recorder saw, kept for reading)."""
    body = exchange["request"]["body"]
    view = view_of(exchange["protocol"], exchange["path"], body if isinstance(body, dict) else {})
    key, text, found = describe(exchange["protocol"], exchange["path"], view)
    return key, text, {**found, **(exchange.get("bindings") or {})}


_PATTERNS_ONLY = Redactor()


def parse_upstream(value: str) -> dict[str, str]:
    """``URL`` (every protocol) or ``PROTOCOL=URL,...``; raises ValueError."""
    value = value.strip()
    if "=" not in value.split("://", 1)[0]:
        return dict.fromkeys(PROVIDERS, _check_url(value))
    found: dict[str, str] = {}
    for part in value.split(","):
        name, sep, url = part.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or name not in PROVIDERS or not url:
            raise ValueError(f"{part!r} is not PROTOCOL=URL (protocols: {', '.join(PROVIDERS)})")
        found[name] = _check_url(url)
    return found


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        # It would be written into the cassette and printed: keys go in the environment.
        raise ValueError(f"{parts.scheme}://…@{parts.hostname}: no credentials in the URL")
    return url.rstrip("/")


# -- the cassette file --------------------------------------------------------------------------


class WireCassetteError(Exception):
    """A wire cassette that cannot be used: missing, unreadable, invalid or of another format."""


def validate(data: Mapping[str, Any], where: str = "wire cassette") -> None:
    try:
        validate_artifact(KIND, dict(data), where=where)
    except ArtifactError as exc:
        raise WireCassetteError(str(exc)) from None


def load(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WireCassetteError(f"{path}: no such wire cassette") from None
    except (OSError, ValueError) as exc:
        raise WireCassetteError(f"{path}: cannot read the wire cassette: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WireCassetteError(f"{path}: not a wire cassette (format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise WireCassetteError(
            f"{path}: wire cassette version {data.get('version')!r}; this reader reads {VERSION}"
        )
    validate(data, str(path))
    return data


# -- recording ----------------------------------------------------------------------------------


def upstream_keys(protocols: Iterator[str] | list[str], env: Mapping[str, str]) -> dict[str, str]:
    """Each protocol's key from ``env``; raises WireCassetteError naming a missing variable."""
    keys: dict[str, str] = {}
    for protocol in protocols:
        names = KEYS[protocol][0]
        value = next((env[n] for n in names if env.get(n)), None)
        if value is None:
            raise WireCassetteError(
                f"recording {protocol} against {PROVIDERS[protocol]} needs "
                f"{' or '.join(names)} in the environment"
            )
        keys[protocol] = value
    return keys


def available_keys(protocols: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """The keys ``env`` has for these protocols (a missing one is left out)."""
    return {
        protocol: value
        for protocol in protocols
        for value in [next((env[n] for n in KEYS[protocol][0] if env.get(n)), None)]
        if value is not None
    }


@dataclass
class Forwarded:
    """The upstream's answer, being streamed: status, headers and the body's chunks."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    close: Any
    truncated: bool = False  # the upstream broke off before the end of its answer


class WireRecorder:
    """Forwards each request to its protocol's upstream and records the exchange.

    ``upstreams`` maps a protocol to a base URL (default: the real providers, ``PROVIDERS``);
    a protocol it does not map is answered with a 502. ``keys`` maps a protocol to the key sent
    upstream in place of the CLI's placeholder; a real provider without one is never sent
    anything, any other upstream then gets the CLI's own headers.

    The cassette is rewritten atomically after each exchange, so a killed run leaves a valid
    file; each exchange is validated and serialized once (the file is the cached texts
    joined), so an exchange costs about the time to write the file, not to rebuild it."""

    def __init__(
        self,
        path: Path | str,
        *,
        upstreams: Mapping[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        clients: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.upstreams = dict(upstreams or PROVIDERS)
        self.keys = dict(keys or {})
        self.clients = dict(clients or {})
        # The upstream keys are secrets too, wherever they come from.
        upstream = {f"UPSTREAM_KEY_{p.upper()}": k for p, k in self.keys.items()}
        self.redactor = Redactor({**(env if env is not None else os.environ), **upstream})
        self._lock = threading.Lock()
        self._exchanges: list[dict[str, Any]] = []
        self._texts: list[str] = []  # each exchange's JSON, as it goes in the file
        self._head = {
            "format": FORMAT,
            "version": VERSION,
            "recorded-at": utc_now_iso(),
            "tool-version": __version__,
            "clients": dict(self.clients),
            "upstreams": {p: self.redactor.text(u) for p, u in sorted(self.upstreams.items())},
            "normalize": ["cwd", "swarm"] + [name for name, _, _ in RULES],
        }
        self.problems: list[str] = []  # exchanges that could not be recorded, and why
        validate({**self._head, "exchanges": []}, str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    @property
    def exchanges(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._exchanges)

    def _write(self) -> None:
        """The whole file: the header (validated once) and the exchanges' cached texts."""
        text = json.dumps({**self._head, "exchanges": []}, indent=2, ensure_ascii=True)
        if self._texts:
            joined = ",\n".join(self._texts)
            text = text.replace('"exchanges": []', f'"exchanges": [\n{joined}\n  ]')
        atomic_write_text(self.path, text + "\n")

    def forward(
        self, protocol: str, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Forwarded:
        """Send the request upstream; raises OSError when it cannot be sent (no upstream or
        no key for this protocol, or the upstream cannot be reached)."""
        url = self.upstreams.get(protocol)
        if url is None:
            raise OSError(f"no upstream for the {protocol} protocol (upstreams: {self.where()})")
        base = urllib.parse.urlsplit(url)
        out = {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}
        key = self.keys.get(protocol)
        if key is None and url == PROVIDERS[protocol]:
            # Never send the CLI's placeholder key (or its requests) to a real provider.
            raise OSError(f"no key for {url}: set {' or '.join(KEYS[protocol][0])}")
        if key is not None:
            out = {k: v for k, v in out.items() if k.lower() not in _CREDENTIAL_HEADERS}
            _, header, template = KEYS[protocol]
            out[header] = template.format(key=key)
            target = _without_key_query(target)
        out["Accept-Encoding"] = "identity"
        out["Content-Length"] = str(len(body))
        path = base.path.rstrip("/") + target
        cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
        try:
            conn = cls(base.netloc, timeout=UPSTREAM_TIMEOUT)
        except (ValueError, http.client.HTTPException) as exc:
            raise OSError(f"{url}: {exc}") from exc
        try:
            conn.request(method, path, body=body, headers=out)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise OSError(f"{base.scheme}://{base.hostname}: {exc}") from exc

        kept = {k.lower(): v for k, v in response.getheaders()}
        forwarded = Forwarded(response.status, kept, iter(()), conn.close)

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    data = response.read1(65536)
                except http.client.IncompleteRead as exc:
                    forwarded.truncated = True
                    if exc.partial:
                        yield exc.partial
                    return
                except (OSError, http.client.HTTPException):
                    forwarded.truncated = True
                    return
                if not data:
                    return
                yield data

        forwarded.chunks = chunks()
        return forwarded

    def where(self) -> str:
        return ", ".join(f"{p}={self.redactor.text(u)}" for p, u in sorted(self.upstreams.items()))

    def record(
        self,
        *,
        protocol: str,
        method: str,
        target: str,
        view: RequestView,
        headers: Mapping[str, str],
        body: Any,
        status: int,
        response_headers: Mapping[str, str],
        response_body: bytes,
        duration_ms: int,
        truncated: bool = False,
    ) -> dict[str, Any]:
        """Add one exchange to the cassette; raises WireCassetteError if it cannot be."""
        key, text, bindings = describe(protocol, target, view, self.redactor)
        redact = self.redactor
        exchange = {
            "seq": 0,
            "protocol": protocol,
            "method": method,
            "path": redact.text(_without_key_query(target)),
            "kind": key.kind,
            "conversation": key.conversation,
            "turn": key.turn,
            "input": text,  # (redacted by describe)
            "bindings": bindings,
            "user-agent": headers.get("user-agent", headers.get("User-Agent", "")),
            "request": {
                "headers": {
                    k.lower(): (REDACTED if k.lower() in _CREDENTIAL_HEADERS else redact.text(v))
                    for k, v in sorted(headers.items())
                },
                "body": redact.deep(body),
            },
            "response": {
                "status": status,
                "headers": {
                    k: response_headers[k] for k in KEEP_RESPONSE_HEADERS if k in response_headers
                },
                "body": redact.text(response_body.decode("utf-8", errors="replace")),
                **({"truncated": True} if truncated else {}),
            },
            "duration-ms": duration_ms,
        }
        with self._lock:
            exchange["seq"] = len(self._exchanges) + 1
            validate(
                {**self._head, "exchanges": [exchange]}, f"{self.path}: exchange {exchange['seq']}"
            )
            # ensure_ascii: a lone surrogate (a CLI that cut a tool's output mid-character)
            # is kept as \udXXX instead of failing the write.
            entry = json.dumps(exchange, indent=2, ensure_ascii=True)
            self._texts.append("\n".join("    " + line for line in entry.splitlines()))
            self._exchanges.append(exchange)
            self._write()
        return exchange


def _without_key_query(target: str) -> str:
    """A request target without a ``key=`` query parameter (gemini's API key)."""
    path, _, query = target.partition("?")
    if not query:
        return target
    kept = [p for p in query.split("&") if not p.lower().startswith("key=")]
    return path + ("?" + "&".join(kept) if kept else "")


# -- replaying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A recorded answer for this run."""

    exchange: Mapping[str, Any]
    status: int
    headers: Mapping[str, str]
    body: str

    @property
    def streamed(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")

    @property
    def truncated(self) -> bool:
        """The upstream broke off this answer: replay breaks it off at the same point."""
        return bool(self.exchange["response"].get("truncated"))

    def events(self) -> list[bytes]:
        """The body as server-sent events, to write one by one."""
        parts = re.split(r"(?<=\n\n)", self.body)
        return [p.encode() for p in parts if p]


def coalesce(protocol: str, body: str) -> str:
    """An event stream with each tool call's streamed argument pieces joined into one event, so
    that a path split across two pieces can be remapped (the providers stream tool arguments
    in fragments: Anthropic ``input_json_delta``, Chat Completions ``tool_calls`` chunks,
    Responses ``*_arguments.delta``/``*_input.delta``). The CLI reassembles them anyway."""
    if "\r\n" in body:
        return body
    out: list[list[Any]] = []  # [event name, data (parsed) or None, raw block]
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        lines = block.split("\n")
        payload = [line[5:].lstrip() for line in lines if line.startswith("data:")]
        names = [line[6:].strip() for line in lines if line.startswith("event:")]
        name = names[0] if names else None
        if len(payload) == 1 and payload[0].startswith("{"):
            try:
                data = json.loads(payload[0])
            except ValueError:
                data = None
        if (
            data is not None
            and out
            and out[-1][1] is not None
            and _merge(protocol, out[-1][1], data)
        ):
            out[-1][2] = None  # changed: written again below
            continue
        out.append([name, data, block])
    blocks = []
    for name, data, raw in out:
        if raw is None:
            head = f"event: {name}\n" if name else ""
            raw = f"{head}data: {json.dumps(data)}"
        blocks.append(raw)
    return "".join(b + "\n\n" for b in blocks)


def _merge(protocol: str, last: dict[str, Any], data: dict[str, Any]) -> bool:
    """Fold ``data``'s argument piece into ``last`` when both continue the same tool call."""
    if protocol == "anthropic":
        d, p = data.get("delta") or {}, last.get("delta") or {}
        if (
            data.get("type") == last.get("type") == "content_block_delta"
            and d.get("type") == p.get("type") == "input_json_delta"
            and data.get("index") == last.get("index")
        ):
            p["partial_json"] = str(p.get("partial_json", "")) + str(d.get("partial_json", ""))
            return True
        return False
    if protocol == "responses":
        kind = str(data.get("type", ""))
        if (
            kind.endswith((".arguments.delta", "_arguments.delta", "_input.delta"))
            and kind == last.get("type")
            and data.get("item_id") == last.get("item_id")
        ):
            last["delta"] = str(last.get("delta", "")) + str(data.get("delta", ""))
            return True
        return False
    if protocol == "chat":
        try:
            (choice,) = data["choices"]
            (previous,) = last["choices"]
            pieces = choice["delta"]["tool_calls"]
            calls = {c["index"]: c for c in previous["delta"]["tool_calls"]}
        except (KeyError, TypeError, ValueError):
            return False
        if set(choice["delta"]) != {"tool_calls"} or choice.get("finish_reason"):
            return False
        if any(
            set(p) - {"index", "function"}
            or set(p.get("function") or {}) != {"arguments"}
            or p.get("index") not in calls
            for p in pieces
        ):
            return False
        for piece in pieces:
            function = calls[piece["index"]].setdefault("function", {})
            function["arguments"] = str(function.get("arguments") or "") + str(
                piece["function"]["arguments"]
            )
        return True
    return False


@dataclass(frozen=True)
class Recorded:
    """A recorded exchange, described with today's rules."""

    exchange: Mapping[str, Any]
    key: Key
    input: str
    bindings: Mapping[str, str]

    @property
    def seq(self) -> int:
        return int(self.exchange["seq"])


class WireReplayer:
    """Answers requests from a wire cassette, strictly (see the module's docstring)."""

    def __init__(
        self,
        source: Path | str | Mapping[str, Any],
        clients: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        # A live request is redacted as the recorder redacted its own (the values of this
        # environment's secret variables too) before the two are compared.
        self.redactor = Redactor({**(env if env is not None else os.environ)})
        self.path = None if isinstance(source, Mapping) else Path(source)
        self.data = dict(source) if isinstance(source, Mapping) else load(source)
        self._by_key: dict[Key, list[Recorded]] = {}
        self._all: list[Recorded] = []
        for ex in self.data["exchanges"]:
            try:
                key, text, bindings = describe_recorded(ex)
            except (KeyError, TypeError, ValueError) as exc:
                where = self.path or "wire cassette"
                raise WireCassetteError(f"{where}: exchange {ex.get('seq')}: {exc}") from None
            recorded = Recorded(ex, key, text, bindings)
            self._all.append(recorded)
            self._by_key.setdefault(key, []).append(recorded)
        self._served: dict[Key, int] = {}
        self._lock = threading.Lock()
        self.warnings = self._version_warnings(clients or {})

    def _version_warnings(self, live: Mapping[str, str]) -> list[str]:
        recorded = self.data.get("clients") or {}
        return [
            f"{name} is {live[name]} here; the cassette was recorded with {recorded[name]}"
            for name in sorted(recorded)
            if name in live and live[name] != recorded[name]
        ]

    @property
    def total(self) -> int:
        return len(self._all)

    def replayed(self) -> int:
        with self._lock:
            return sum(self._served.values())

    def unreplayed(self) -> list[Mapping[str, Any]]:
        """The recorded exchanges no request asked for (yet), in recording order."""
        with self._lock:
            left = [r for key, rs in self._by_key.items() for r in rs[self._served.get(key, 0) :]]
        return [r.exchange for r in sorted(left, key=lambda r: r.seq)]

    def answer(self, protocol: str, target: str, view: RequestView) -> Answer:
        """The recorded answer to this request; raises Unmatched saying why there is none."""
        key, text, bindings = describe(protocol, target, view, self.redactor)
        with self._lock:
            recorded = self._by_key.get(key, [])
            n = self._served.get(key, 0)
            if n >= len(recorded):
                raise Unmatched(self._no_recording(key, text, len(recorded)))
            found = recorded[n]
            if found.input != text:
                raise Unmatched(
                    f"oompa wire replay: {key.label()} differs from the recording "
                    f"(exchange {found.seq}):\n{_diff(found.input, text)}"
                )
            self._served[key] = n + 1
        response = found.exchange["response"]
        body = response["body"]
        if any(found.bindings[k] != bindings.get(k, found.bindings[k]) for k in found.bindings):
            body = remap(coalesce(found.key.protocol, body), found.bindings, bindings)
        return Answer(found.exchange, int(response["status"]), dict(response["headers"]), body)

    def _no_recording(self, key: Key, text: str, count: int) -> str:
        if count:
            return (
                f"oompa wire replay: {key.label()} was recorded {count} time(s); "
                f"this is request {count + 1}"
            )
        same_kind = [
            r
            for r in self._all
            if (r.key.protocol, r.key.kind, r.key.turn) == (key.protocol, key.kind, key.turn)
        ]
        nearest = max(
            same_kind,
            key=lambda r: difflib.SequenceMatcher(None, r.input[:4000], text[:4000]).ratio(),
            default=None,
        )
        message = f"oompa wire replay: no recording of {key.label()}"
        if nearest is not None:
            message += (
                f"; the nearest recorded request (exchange {nearest.seq}) differs:\n"
                + _diff(nearest.input, text)
            )
        return message


def _diff(recorded: str, live: str, limit: int = 60) -> str:
    lines = list(
        difflib.unified_diff(
            recorded.splitlines(), live.splitlines(), "cassette", "this request", lineterm="", n=1
        )
    )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)
