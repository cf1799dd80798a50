"""The section "Transcripts and diffs": what each iteration (or cycle) did, from its files.

Per iteration, folded: the patch its merge brought into main (``diffs/``, see
:mod:`~pytest_oompa.report.patches`) and the transcript of each of its harness calls in order
(worker, fix, sync, reviewer; a cycle's attempts labelled; ``commands/``, see
:mod:`~pytest_oompa.report.transcripts`). A run of many workers and iterations would make a page
too big to open, so besides the caps of one call and one patch there are two more: an iteration
shows at most :attr:`WorkCaps.unit_entries` transcript entries, and the page at most
:attr:`WorkCaps.page_chars` characters of transcripts and patches; past them the page says what
it left out and links the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_oompa.report.formatting import plural
from pytest_oompa.report.markup import Child, Element, add, el
from pytest_oompa.report.model import Iteration, Run
from pytest_oompa.report.patches import PatchCaps, render_patch
from pytest_oompa.report.sections import joined, muted, outcome_badge, section
from pytest_oompa.report.transcripts import TranscriptCaps, read_transcript, render_call

__all__ = ["WorkCaps", "anchor", "work"]


@dataclass(frozen=True)
class WorkCaps:
    """Every cap of the section, in one place (the tests make them small)."""

    transcript: TranscriptCaps = field(default_factory=TranscriptCaps)
    patch: PatchCaps = field(default_factory=PatchCaps)
    unit_entries: int = 500  # transcript entries of one iteration or cycle, all its calls
    page_chars: int = 12_000_000  # characters of transcripts and patches on the whole page


def anchor(it: Iteration) -> str:
    """The id of its entry in the section: ``work-it-w0-3``, ``work-cy-w1-2``."""
    return it.work_anchor


def work(run: Run, caps: WorkCaps | None = None) -> Element:
    caps = caps or WorkCaps()
    out = section("work", "Transcripts and diffs")
    shown = [it for it in run.iterations if it.calls or it.patch_rel]
    if not shown:
        return add(
            out,
            muted(
                f"No {run.unit_noun()} left a transcript or a patch: the run kept no ",
                el("code", "calls/"),
                " records and no ",
                el("code", "diffs/"),
                " (they are kept from pytest-oompa's 0.7.3 support on).",
            ),
        )
    t, p = caps.transcript, caps.patch
    add(
        out,
        el(
            "p",
            f"Per {run.unit_noun()}: the patch its merge brought into main and the transcript "
            "of each harness call (the agent's messages, its tool calls with their input, the "
            "results, errors). Shown up to a cap, which says what it left out: "
            f"{t.text_chars:,} characters of a tool input or result, "
            f"{t.call_entries} entries of a call, {caps.unit_entries} of an {run.unit_noun()}, "
            f"{p.file_lines} lines of a patched file, {p.patch_lines:,} of a patch; "
            "the links lead to the whole files.",
        ),
    )
    skipped = len(run.iterations) - len(shown)
    if skipped:
        add(
            out,
            muted(f"{plural(skipped, run.unit_noun())} left neither (no calls record, no merge)."),
        )
    budget = [caps.page_chars]
    for it in shown:
        add(out, _unit(run, it, caps, budget))
    return out


def _unit(run: Run, it: Iteration, caps: WorkCaps, budget: list[int]) -> Element:
    """One iteration's entry; ``budget`` holds the page's characters left, and shrinks."""
    calls = it.calls or []
    head: list[Child] = [
        el("b", f"{it.worker} · {it.key}"),
        " ",
        outcome_badge(it.outcome),
        el("span", {"class": "muted"}, f" · {plural(len(calls), 'call')}"),
    ]
    body = el("div", {"class": "wbody"})
    if budget[0] <= 0:
        links = [el("a", {"href": rel}, rel) for rel in (it.calls_rel, it.patch_rel) if rel]
        add(
            body,
            el(
                "p",
                {"class": "cut"},
                f"Not shown: the page's {caps.page_chars:,} characters of transcripts and "
                "patches are used up. See ",
                joined(links, " and "),
                ".",
            ),
        )
        return _box(it, head, body)
    if it.patch_rel:
        diff_box, summary = _diff(run, it, caps, budget)
        head.append(el("span", {"class": "muted"}, f" · diff: {summary}"))
        body.append(diff_box)
    elif it.outcome == "merged":
        body.append(muted("No patch kept for this merge (the run predates diffs/)."))
    if calls:
        body.append(el("h4", "Transcripts"))
        room = caps.unit_entries
        unit_cap = f"this {it.noun}'s cap of {caps.unit_entries} entries"
        for k, call in enumerate(calls, 1):
            t = read_transcript(run.run_dir / call.log, caps.transcript) if call.log else None
            box, n, chars = render_call(
                call,
                t,
                f"{anchor(it)}-{k}",
                min(room, caps.transcript.call_entries),
                caps.transcript,
                unit_cap,
            )
            room -= n
            budget[0] -= chars
            body.append(box)
    elif it.calls is None:
        body.append(muted(f"No calls record for this {it.noun}, so no transcripts."))
    return _box(it, head, body)


def _diff(run: Run, it: Iteration, caps: WorkCaps, budget: list[int]) -> tuple[Element, str]:
    assert it.patch_rel is not None
    try:
        text = (run.run_dir / it.patch_rel).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        why = exc.strerror or str(exc)
        return muted(f"{it.patch_rel} could not be read: {why}"), "unreadable"
    patch, summary, used = render_patch(text, it.patch_rel, caps.patch)
    budget[0] -= used
    box = el(
        "details",
        {"class": "diffbox", "id": f"{anchor(it)}-diff", "open": True},
        el(
            "summary",
            el("b", "Diff merged into main"),
            el("span", {"class": "muted"}, f" · {summary}"),
        ),
        patch,
        el(
            "p",
            {"class": "muted txlog"},
            "The patch: ",
            el("a", {"href": it.patch_rel}, it.patch_rel),
        ),
    )
    return box, summary


def _box(it: Iteration, head: list[Child], body: Element) -> Element:
    return el(
        "details",
        {"class": "work", "id": anchor(it), "data-outcome": it.outcome},
        el("summary", head),
        body,
    )
