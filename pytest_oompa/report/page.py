"""The report page: one static, self-contained HTML file per run, ``runs/{swarm-id}/report.html``.

This module assembles the document (head, header with the run's facts and notices, the timeline
and the table sections, footer) and writes it. The page needs no network and no JavaScript: the
tables carry everything, and each timeline bar is a link to its row. The stylesheet and the
popover script are the package's ``static/report.css`` and ``static/report.js``, inlined so the
file can be opened offline, mailed or attached to a CI job on its own. A Content-Security-Policy
allows no script but that one (by the sha256 of the text actually inlined) and no network access,
a second line of defence behind the escaping that :mod:`~pytest_oompa.report.markup` does.

A page written while its run is running is live: a badge says when it was written, and a meta
refresh (not a script, so the CSP allows it, and it works without JavaScript) reloads it every
:data:`REFRESH_SECONDS` while the engine keeps rewriting it; a finished run's page has neither.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest_oompa.report.sections as sections
from pytest_oompa.core.atomic import atomic_write_text
from pytest_oompa.report.formatting import clip, fmt_cost, fmt_ms, fmt_ts, sum_known
from pytest_oompa.report.markup import Child, Element, add, document, el
from pytest_oompa.report.model import FAILED_OUTCOMES, Run, int_field, load_run, text_field
from pytest_oompa.report.timeline import Span, timeline
from pytest_oompa.report.work import work
from pytest_oompa.runs.files import written_by

__all__ = ["CSS", "JS", "REFRESH_SECONDS", "REPORT_NAME", "render_report", "write_report"]

REPORT_NAME = "report.html"
#: How often a live page (its run still running) reloads itself; the engine rewrites it about
#: as often while the run's files change.
REFRESH_SECONDS = 5


def _static(name: str) -> str:
    return (resources.files("pytest_oompa.report") / "static" / name).read_text(encoding="utf-8")


CSS = _static("report.css")
JS = _static("report.js")


def _script_hash() -> str:
    """The CSP source that lets exactly :data:`JS` run."""
    digest = hashlib.sha256(JS.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------- API


def render_report(run_dir: Path, *, now: datetime | None = None) -> str:
    """The report of the run in ``run_dir`` as one HTML document.

    ``now`` (default: the current time) only decides whether a run without summary.json whose
    heartbeat is recent still counts as running.
    """
    return document(_page(load_run(Path(run_dir), now=now)))


def write_report(run_dir: Path) -> Path:
    """Render the report and write it atomically to ``run_dir/report.html``; return that path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_NAME
    atomic_write_text(path, render_report(run_dir))
    return path


# --------------------------------------------------------------------------- the document


def _page(run: Run) -> Element:
    status, _ = run.status()
    live = status == "running"
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src '{_script_hash()}'; base-uri 'none'; form-action 'none'"
    )
    head = el(
        "head",
        el("meta", {"charset": "utf-8"}),
        el("meta", {"http-equiv": "Content-Security-Policy", "content": csp}),
        el("meta", {"name": "referrer", "content": "no-referrer"}),
        el("meta", {"name": "viewport", "content": "width=device-width,initial-scale=1"}),
        # A live page reloads itself (no script needed; the CSP does not govern it); a finished
        # run's page never does.
        el("meta", {"http-equiv": "refresh", "content": str(REFRESH_SECONDS)}) if live else None,
        el("title", f"oompa swarm {run.swarm_id} · {status}"),
        el("style", CSS),
    )
    span = Span.of(run)
    generated = datetime.now(timezone.utc)
    main = el(
        "main",
        _header(run, generated if live else None),
        timeline(run, span),
        sections.workers(run),
        sections.iterations(run, span),
        work(run),
        sections.tasks(run),
        sections.usage(run),
        sections.planner(run),
        sections.config(run),
        el(
            "footer",
            "Written by pytest-oompa's report from the artifacts in this folder at "
            f"{fmt_ts(generated)}. Times are UTC; offsets count from the swarm's start.",
        ),
    )
    body = el(
        "body",
        main,
        el("div", {"id": "pop", "role": "dialog", "aria-live": "polite", "hidden": True}),
        el("script", JS),
    )
    # data-js turns "ready" when the script ran; the tests read it from the browser's DOM
    return el(
        "html", {"lang": "en", "data-js": "off", "data-live": "yes" if live else None}, head, body
    )


# --------------------------------------------------------------------------- the header


def _header(run: Run, live_since: datetime | None) -> Element:
    """The header; ``live_since`` (the time the page is written) for a live page."""
    status, why = run.status()
    title = el(
        "h1",
        "Swarm ",
        el("code", run.swarm_id),
        " ",
        el("span", {"class": f"status st-{status}"}, status),
        [" ", el("span", {"class": "why"}, why)] if why else None,
    )
    facts = el("dl", {"class": "facts"})
    for dt, dd in _facts(run):
        add(facts, el("div", el("dt", dt), el("dd", dd)))
    nav = el(
        "nav",
        {"aria-label": "Sections"},
        [
            el("a", {"href": f"#{target}"}, text)
            for target, text in (
                ("timeline", "Timeline"),
                ("workers", "Workers"),
                ("iterations", sections.units_title(run)),
                ("work", "Transcripts and diffs"),
                ("tasks", "Task flow"),
                ("usage", "Tokens and cost"),
                ("planner", "Planner"),
                ("config", "Config"),
            )
        ],
    )
    return el("header", title, _live(live_since), facts, _notices(run), _totals(run), nav)


def _live(written: datetime | None) -> Element | None:
    """The badge of a live page: when it was written, and that it reloads itself."""
    if written is None:
        return None
    return el(
        "p",
        {"class": "live", "id": "live", "role": "status"},
        el("span", {"class": "dot", "aria-hidden": "true"}),
        el("b", "Live"),
        f" · written {fmt_ts(written)}. This page reloads itself every {REFRESH_SECONDS} s "
        "and is rewritten while the run's files change; once the run ends it stops.",
    )


def _facts(run: Run) -> list[tuple[str, Child]]:
    config_file = run.config_file()
    writer = written_by(run.run_dir)
    tool_version = text_field(run.meta or {}, "tool-version")
    if writer == "pytest-oompa" and tool_version:
        writer += f" {tool_version}"
    facts: list[tuple[str, Child]] = [
        ("config", el("code", config_file) if config_file else "unknown (not recorded)"),
        ("written by", writer or "unknown"),
        ("started", fmt_ts(run.started)),
    ]
    if run.finished is not None:
        facts.append(("finished", fmt_ts(run.finished)))
    elif run.last_seen is not None:
        facts.append(("last record", fmt_ts(run.last_seen)))
    if run.started is not None and run.end is not None:
        label = "duration" if run.finished is not None else "ran at least"
        facts.append((label, fmt_ms((run.end - run.started).total_seconds() * 1000)))
    meta = run.meta or {}
    before, after = text_field(meta, "main-before"), text_field(meta, "main-after")
    if before or after:
        rng = f"{(before or '?')[:10]}..{(after or '?')[:10]}"
        full = f"{before or '?'}..{after or '?'}"
        facts.append(("main", el("code", {"title": full}, rng)))
    gate = meta.get("gate")
    if isinstance(gate, dict):
        facts.append(("gate", _gate(gate)))
    elif "gate" in meta:
        facts.append(("gate", "none configured"))
    versions = [
        f"{label} {v}"
        for label, key in (
            ("pytest-oompa", "tool-version"),
            ("Python", "python-version"),
            ("pytest", "pytest-version"),
        )
        if (v := text_field(meta, key))
    ]
    harness_versions = meta.get("harness-versions")
    if isinstance(harness_versions, dict):
        versions += [f"{k} {v}" for k, v in sorted(harness_versions.items()) if isinstance(v, str)]
    if versions:
        facts.append(("versions", ", ".join(versions)))
    return facts


def _gate(gate: Mapping[str, Any]) -> Element:
    verdict = gate.get("verdict", gate.get("passed", gate.get("status")))
    if isinstance(verdict, bool):
        verdict = "passed" if verdict else "failed"
    text = str(verdict) if isinstance(verdict, (str, int, float)) else "recorded"
    reasons = gate.get("reasons") or gate.get("reason")
    if isinstance(reasons, list):
        reasons = "; ".join(str(r) for r in reasons)
    if isinstance(reasons, str) and reasons:
        return el("b", text, " ", el("span", {"class": "muted"}, f"({clip(reasons, 300)})"))
    return el("b", text)


def _notices(run: Run) -> list[Element]:
    notices = []
    status, why = run.status()
    if not run.complete:
        units = run.units()
        files = run.unit_noun().replace(" or ", " and ")
        source = "live-summary.json" if run.live is not None else f"the {files} files"
        lost = []
        running = status == "running"
        if "iteration" in units:
            lost.append(
                "an iteration shows here once it has ended"
                if running
                else "an iteration that was running when the run stopped left no record"
            )
        if "cycle" in units:
            lost.append(
                f"a cycle {'still going' if running else 'that was running'} reads as it was "
                "after its last attempt"
            )
        notices.append(
            el(
                "div",
                {"class": "notice", "role": "note"},
                el("b", "Run in progress." if status == "running" else "Incomplete run."),
                f" {why}. Worker numbers come from {source}; {'; '.join(lost)}.",
            )
        )
    if run.orphan_reviews:
        names = ", ".join(r.rel for r in run.orphan_reviews)
        notices.append(
            el(
                "div",
                {"class": "notice", "role": "note"},
                f"Review rounds of {run.units()} that left no {run.unit_noun()} file (cut off "
                f"during their review): {names}",
            )
        )
    engine_errors = (run.meta or {}).get("errors")
    if isinstance(engine_errors, list) and engine_errors:
        notices.append(
            el(
                "div",
                {"class": "notice bad", "role": "alert"},
                el("b", "The run reported errors:"),
                el("ul", [el("li", clip(str(msg), 1000)) for msg in engine_errors[:50]]),
            )
        )
    if run.problems:
        items = [
            el(
                "li",
                [el("code", p.path), ": "] if p.path else None,
                clip(p.message, 500),
            )
            for p in run.problems
        ]
        notices.append(
            el(
                "div",
                {"class": "notice bad", "role": "alert"},
                el("b", "Some files could not be used"),
                " (shown as far as they could be read):",
                el("ul", items),
            )
        )
    return notices


def _totals(run: Run) -> Element:
    counts = Counter(it.outcome for it in run.iterations)
    items = []
    for noun in ("iteration", "cycle"):
        wids = [w for w in run.worker_ids() if run.worker_unit(w) == noun]
        ran = sum(len(run.iterations_of(w)) for w in wids)
        if not wids and not (noun == "iteration" and not run.worker_ids()):
            continue
        configured = sum(int_field(run.worker_config(w), "iterations") or 0 for w in wids)
        of = f" of {configured}" if configured else ""
        items.append((f"{ran}{of}", f"{noun}s recorded"))
    failed = sum(counts[o] for o in FAILED_OUTCOMES)
    kinds = "error or rejected"
    if any(it.is_cycle for it in run.iterations):
        kinds = "error, rejected, merge-failed, sync-failed or stuck"
    items += [
        (str(counts["merged"]), "merged"),
        (str(failed), f"failed ({kinds})"),
        (str(sum(it.review_rounds for it in run.iterations)), "review rounds"),
    ]
    cost = sum_known(c.cost_usd for _, c in run.all_calls())
    if cost is not None:
        items.append((fmt_cost(cost), "cost"))
    return el(
        "ul",
        {"class": "totals", "aria-label": "Totals"},
        [el("li", el("b", value), f" {label}") for value, label in items],
    )
