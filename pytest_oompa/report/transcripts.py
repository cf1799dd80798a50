"""What an agent did in one harness call, on the page: its command log read as a transcript and
rendered as a list of the agent's messages, its tool calls (with their input), the tools'
results and the errors.

A call's log (``commands/{name}.ndjson``) holds the CLI's whole event stream, read into
:class:`~pytest_oompa.harnesses.transcript.Entry` values by the harnesses layer, the same for
every CLI. A page holds many calls, so each is capped when it is read: a tool input or result
at :attr:`TranscriptCaps.text_chars`, a message at :attr:`TranscriptCaps.message_chars`, a call
at :attr:`TranscriptCaps.call_entries` entries (its beginning and its end, since the end holds
the agent's last word), each cut saying what it left out. A log is read again only when it
changed: the live report is rewritten every few seconds while a run goes on, and the logs of
the calls that ended do not change.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pytest_oompa.harnesses.transcript import Entry, from_command_log
from pytest_oompa.report.formatting import clip, fmt_int, fmt_ms, plural
from pytest_oompa.report.markup import Child, Element, el
from pytest_oompa.report.model import Call

__all__ = ["Transcript", "TranscriptCaps", "entries", "read_transcript", "render_call"]


@dataclass(frozen=True)
class TranscriptCaps:
    """How much of a call's transcript the page shows."""

    text_chars: int = 2000  # a tool call's input, a tool's result, an error
    message_chars: int = 4000  # one message of the agent
    call_entries: int = 200  # entries of one call: its first three quarters and its last quarter
    input_open_chars: int = 400  # a tool input up to this long is shown unfolded


@dataclass(frozen=True)
class Transcript:
    """A call's transcript as the page shows it: the entries kept (``head``, then ``tail``
    after the ``omitted`` ones in between), already clipped, and what the whole log held."""

    harness: str
    head: tuple[Entry, ...]
    tail: tuple[Entry, ...] = ()
    omitted: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # entries of each kind, in the log

    @property
    def total(self) -> int:
        return len(self.head) + self.omitted + len(self.tail)

    def shown(self, room: int) -> tuple[list[Entry], int, list[Entry]]:
        """(head, entries left out, tail) with at most ``room`` entries shown in all."""
        if room >= len(self.head) + len(self.tail):
            return list(self.head), self.omitted, list(self.tail)
        keep_tail = min(len(self.tail), room // 4)
        keep_head = room - keep_tail
        tail = list(self.tail[len(self.tail) - keep_tail :]) if keep_tail else []
        return list(self.head[:keep_head]), self.total - keep_head - keep_tail, tail


def _clipped(entry: Entry, caps: TranscriptCaps) -> Entry:
    limit = caps.message_chars if entry.kind == "message" else caps.text_chars
    text = entry.text if entry.kind == "tool" else clip(entry.text, limit)
    return Entry(entry.kind, text, entry.tool, clip(entry.input, caps.text_chars))


def read_transcript(path: Path, caps: TranscriptCaps = TranscriptCaps()) -> Transcript | None:
    """The transcript of the call logged at ``path``, capped; None when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _read(str(path), st.st_mtime_ns, st.st_size, caps)


@functools.lru_cache(maxsize=256)
def _read(path: str, mtime_ns: int, size: int, caps: TranscriptCaps) -> Transcript:
    """Keyed by the file's change time and size: a log that grew is read again."""
    del mtime_ns, size  # only the cache key
    harness, entries = from_command_log(Path(path))
    counts = dict(Counter(e.kind for e in entries))
    n = caps.call_entries
    if len(entries) <= n:
        return Transcript(harness, tuple(_clipped(e, caps) for e in entries), counts=counts)
    keep_tail = n // 4
    head = entries[: n - keep_tail]
    tail = entries[len(entries) - keep_tail :] if keep_tail else []
    return Transcript(
        harness,
        tuple(_clipped(e, caps) for e in head),
        tuple(_clipped(e, caps) for e in tail),
        omitted=len(entries) - len(head) - len(tail),
        counts=counts,
    )


# --------------------------------------------------------------------------- rendering


def entries(n: int) -> str:
    """``1 entry``, ``3 entries``."""
    return f"{n:,} entr{'y' if n == 1 else 'ies'}"


def _what(t: Transcript) -> str:
    """``3 tool calls, 2 messages, 1 error``."""
    parts = [
        plural(t.counts[kind], noun)
        for kind, noun in (("tool", "tool call"), ("message", "message"), ("error", "error"))
        if t.counts.get(kind)
    ]
    return ", ".join(parts) or "no output"


def _entry(e: Entry, caps: TranscriptCaps) -> tuple[Element, int]:
    """One entry as a list item, and the characters it puts on the page."""
    label = {"message": "agent", "tool": "tool", "result": "result", "error": "error"}.get(
        e.kind, e.kind
    )
    body: Child
    if e.kind == "tool":
        head = el("code", e.text or e.tool or "(a tool)")
        if e.input:
            body = el(
                "details",
                {"open": len(e.input) <= caps.input_open_chars},
                el("summary", head),
                el("pre", {"class": "txin"}, e.input),
            )
        else:
            body = el("div", head)
    elif e.kind == "result" and not e.text.strip():
        body = el("span", {"class": "muted"}, "(no output)")
    else:
        body = el("pre", e.text)
    item = el(
        "li",
        {"class": f"tx-{e.kind}"},
        el("span", {"class": "txk"}, label),
        body,
    )
    return item, len(e.text) + len(e.input)


def call_summary(call: Call, t: Transcript | None) -> list[Child]:
    """The call's line above its transcript: attempt, role, harness:model, what it holds, exit
    code and duration."""
    who = f"{call.role} · {call.harness}:{call.model}" if call.model else call.role
    facts = [f"exit {fmt_int(call.exit_code)}", fmt_ms(call.duration_ms)]
    what: Child = None
    if t is not None:
        cls = "txs bad" if t.counts.get("error") else "txs"
        what = [" · ", el("span", {"class": cls}, _what(t))]
    return [
        el("b", f"a{call.attempt} ") if call.attempt is not None else None,
        el("b", who),
        what,
        el("span", {"class": "muted"}, f" · {', '.join(facts)}"),
    ]


def render_call(
    call: Call,
    t: Transcript | None,
    id_: str,
    room: int,
    caps: TranscriptCaps = TranscriptCaps(),
    unit_cap: str = "this iteration's cap",
) -> tuple[Element, int, int]:
    """The call as a ``<details>`` holding its transcript with at most ``room`` entries (what
    is left of ``unit_cap``, its iteration's or cycle's cap); with the entries and the
    characters it shows."""
    # the agents' own calls unfolded, the reviewer's folded (its verdict is in the table)
    attrs = {"class": "txcall", "id": id_, "open": call.role != "reviewer"}
    box = el("details", attrs, el("summary", call_summary(call, t)))
    log = el("a", {"href": call.log}, call.log) if call.log else None
    if call.log is None or t is None:
        missing = (
            "No command log recorded for this call."
            if call.log is None
            else f"Its command log ({call.log}) is not in this run folder."
        )
        box.append(el("p", {"class": "muted"}, missing))
        if call.failure:  # else the transcript ends with it
            failure = f"Failed: {clip(call.failure, caps.text_chars)}"
            box.append(el("p", {"class": "txfail"}, failure))
        return box, 0, 0
    if t.total == 0:
        box.append(el("p", {"class": "muted"}, "The call printed nothing. Its log: ", log, "."))
        return box, 0, 0
    if room <= 0:
        box.append(
            el(
                "p",
                {"class": "cut"},
                f"Its {entries(t.total)} are not shown: the calls before it used {unit_cap}. "
                "Its log: ",
                log,
                ".",
            )
        )
        return box, 0, 0
    head, omitted, tail = t.shown(room)
    items: list[Element] = []
    chars = 0
    for e in head:
        item, n = _entry(e, caps)
        items.append(item)
        chars += n
    if omitted:
        why = (
            f"a call shows at most {caps.call_entries}"
            if t.omitted == omitted
            else f"the rest of {unit_cap}"
        )
        items.append(
            el(
                "li",
                {"class": "tx-cut"},
                el("span", {"class": "txk"}, "…"),
                el("span", {"class": "cut"}, f"{entries(omitted)} not shown ({why})"),
            )
        )
    for e in tail:
        item, n = _entry(e, caps)
        items.append(item)
        chars += n
    box.append(el("ol", {"class": "tx"}, items))
    box.append(el("p", {"class": "muted txlog"}, f"The whole log ({t.harness or '?'}): ", log))
    return box, len(head) + len(tail), chars
