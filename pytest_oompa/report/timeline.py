"""The report's timeline: one lane per worker, one bar per iteration (or cycle), on the run's
time span.

Positions are percentages of the span, so the drawing needs neither a canvas nor script and
scales with the window. Every bar is a link to its row of the iterations table and says its
outcome in words (or its one-letter code when narrow, under CSS container queries), so that no
fact is carried by colour alone; the popover script only decorates these links. A bar names its
unit as ``w0 i3`` (iteration 3) or ``w1 c3`` (cycle 3).

:class:`Span` lives here because the timeline defines the run's time axis; the iterations table
uses it to give each start as an offset on the same axis.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from pytest_oompa.report.formatting import fmt_ms, fmt_offset, fmt_tick, plural
from pytest_oompa.report.markup import Element, add, el
from pytest_oompa.report.model import CYCLE_ONLY_OUTCOMES, OUTCOMES, Run, int_field

__all__ = ["Span", "timeline"]


@dataclass(frozen=True)
class Span:
    """The stretch of time the page draws, and the start that offsets count from."""

    t0: datetime | None  # the swarm's start
    lo: datetime | None  # the earliest of the start and every iteration's start
    hi: datetime | None  # the latest of the end and every iteration's end

    @classmethod
    def of(cls, run: Run) -> Span:
        t0, t1 = run.started, run.end
        lo = [t for t in (t0, *(it.start for it in run.iterations)) if t is not None]
        hi = [t for t in (t1, *(it.end for it in run.iterations)) if t is not None]
        return cls(t0, min(lo) if lo else None, max(hi) if hi else None)

    def offset(self, ts: datetime) -> str:
        """``ts`` as time since the start: ``+12.3 s`` in short runs, else ``+m:ss``."""
        base = self.t0 or self.lo
        seconds = 0.0 if base is None else (ts - base).total_seconds()
        if (
            self.lo is not None
            and self.hi is not None
            and (self.hi - self.lo).total_seconds() < 100
        ):
            return f"+{seconds:.1f} s"
        return "+" + fmt_offset(seconds)


def timeline(run: Run, span: Span) -> Element:
    section = el(
        "section",
        {"id": "timeline", "aria-labelledby": "h-timeline"},
        el("h2", {"id": "h-timeline"}, "Timeline"),
    )
    if span.lo is None or span.hi is None or not run.iterations:
        return add(
            section,
            el(
                "p",
                {"class": "muted"},
                f"No {run.unit_noun()} has been recorded: there is nothing to draw.",
            ),
        )
    lo, hi = span.lo, span.hi
    seconds = max((hi - lo).total_seconds(), 0.001)
    step = tick_step(seconds)
    add(
        section,
        el(
            "p",
            {"class": "muted"},
            f"One lane per worker, one bar per {run.unit_noun()} (start = end - duration), "
            "coloured and labelled by outcome; dots mark review rounds. Each bar links to its "
            "row below; hover or click it for the details.",
        ),
        _legend(run),
    )
    base = (lo - (span.t0 or lo)).total_seconds()
    axis = el("div", {"class": "track"})
    k = 0
    while k * step <= seconds + 1e-9:
        left = 100 * k * step / seconds
        add(axis, el("span", {"style": f"left:{left:.3f}%"}, fmt_tick(base + k * step, step)))
        k += 1
    drawing = el(
        "div",
        {
            "class": "tl",
            "role": "group",
            "aria-label": f"Timeline of {run.units()}",
            "style": f"--tick:{100 * step / seconds:.4f}%",
        },
        el(
            "div",
            {"class": "lane axis", "aria-hidden": "true"},
            el("div", {"class": "who muted"}, "time since start"),
            axis,
        ),
    )
    if "planner" in run.role_calls and span.t0 is not None:
        add(drawing, _planner_lane(run, span.t0, lo, seconds))
    add(drawing, [_lane(run, wid, lo, seconds) for wid in run.worker_ids()])
    return add(section, drawing)


def _legend(run: Run) -> Element:
    counts = Counter(it.outcome for it in run.iterations)
    legend = el("ul", {"class": "legend", "aria-label": "Legend"})
    cycles = any(it.is_cycle for it in run.iterations)
    for outcome, (letter, meaning) in OUTCOMES.items():
        if outcome in CYCLE_ONLY_OUTCOMES and not cycles and not counts[outcome]:
            continue  # an iteration cannot end so: no need to explain it
        add(
            legend,
            el(
                "li",
                {"title": meaning},
                el("span", {"class": f"o o-{outcome}", "aria-hidden": "true"}, letter),
                f" {outcome} ",
                el("span", {"class": "muted"}, str(counts[outcome])),
            ),
        )
    for verdict, text in (
        (None, "review approved"),
        ("needs-changes", "needs changes"),
        ("rejected", "review rejected"),
    ):
        cls = f"rvk v-{verdict}" if verdict else "rvk"
        add(legend, el("li", el("span", {"class": cls, "aria-hidden": "true"}), f" {text}"))
    return legend


def _planner_lane(run: Run, t0: datetime, lo: datetime, seconds: float) -> Element:
    """The planner's call, before the workers start: a lane of its own, linked to its section."""
    calls = run.role_calls["planner"]
    ms = sum(c.duration_ms or 0 for c in calls)
    left = 100 * (t0 - lo).total_seconds() / seconds
    width = 100 * ms / 1000 / seconds
    failed = any(c.failure for c in calls)
    label = f"planner: {'failed' if failed else 'ran'}, {fmt_ms(ms)}"
    bar = el(
        "a",
        {
            "class": f"bar o-{'error' if failed else 'done'}",
            "href": "#planner",
            "style": f"left:{left:.3f}%;width:{width:.3f}%",
            "aria-label": label,
            "title": label,
            "data-outcome": "planner",
        },
        el(
            "span",
            {"class": "lbl"},
            el("span", {"class": "full"}, "planner"),
            el("span", {"class": "short"}, "P"),
        ),
    )
    return el(
        "div",
        {"class": "lane"},
        el("div", {"class": "who"}, el("b", "planner"), el("span", "before the workers")),
        el("div", {"class": "track"}, bar),
    )


def _lane(run: Run, wid: str, lo: datetime, seconds: float) -> Element:
    cfg = run.worker_config(wid)
    its = run.iterations_of(wid)
    model = f"{cfg.get('harness', '?')}:{cfg.get('model', '?')}"
    configured = int_field(cfg, "iterations")
    noun = run.worker_unit(wid)
    ran = f"{len(its)}/{plural(configured, noun)}" if configured else plural(len(its), noun)
    track = el("div", {"class": "track"})
    for it in its:
        left = 100 * (it.start - lo).total_seconds() / seconds
        width = 100 * it.duration_ms / 1000 / seconds
        letter = OUTCOMES.get(it.outcome, ("?", ""))[0]
        label = f"{it.label}: {it.outcome}, {fmt_ms(it.duration_ms)}"
        if it.open:
            label += " (cycle still open)"
        if len(it.task_ids) == 1:
            label += f", task {it.task_ids[0]}"
        elif it.task_ids:
            label += f", tasks {', '.join(it.task_ids)}"
        if it.attempts:
            label += f", {plural(len(it.attempts), 'attempt')}"
        if it.review_rounds:
            verdicts = ", ".join(r.verdict for r in it.reviews)
            label += f", {it.review_rounds} review round(s)" + (f": {verdicts}" if verdicts else "")
        bar = el(
            "a",
            {
                "class": f"bar o-{it.outcome}",
                "href": f"#{it.anchor}",
                "style": f"left:{left:.3f}%;width:{width:.3f}%",
                "data-worker": it.worker,
                f"data-{it.noun}": it.n,
                "data-outcome": it.outcome,
                "aria-label": label,
                "title": label,
            },
            el(
                "span",
                {"class": "lbl"},
                el("span", {"class": "full"}, it.outcome),
                el("span", {"class": "short", "aria-hidden": "true"}, letter),
            ),
        )
        for r in it.reviews:
            if r.timestamp is None or it.duration_ms <= 0:
                pos = 100.0
            else:
                pos = 100 * (r.timestamp - it.start).total_seconds() * 1000 / it.duration_ms
            pos = min(max(pos, 4.0), 96.0)
            review_dot = {
                "class": f"rv v-{r.verdict}",
                "style": f"left:{pos:.1f}%",
                "data-round": r.round,
                "aria-hidden": "true",
            }
            add(bar, el("i", review_dot))
        add(track, bar)
    missing = (configured or 0) - len(its)
    if run.complete and missing > 0:
        end = max((it.end for it in its), default=lo)
        left = 100 * (end - lo).total_seconds() / seconds
        place = f"left:{left + 0.6:.3f}%" if left < 82 else "right:0"
        add(track, el("span", {"class": "nr", "style": place}, f"{missing} not reached"))
    who = el(
        "div",
        {"class": "who", "title": model},
        el("b", wid),
        el("small", f"{run.worker_status(wid)} · ran {ran}"),
        el("span", model),
    )
    return el("div", {"class": "lane", "data-worker": wid}, who, track)


def tick_step(span_s: float) -> float:
    """A round step that draws 5 to 12 gridlines across ``span_s`` seconds."""
    steps = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
    for step in steps:
        if span_s / step <= 12:
            return float(step)
    return float(3600 * (int(span_s / 3600 / 12) + 1))
