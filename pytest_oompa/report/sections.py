"""The report's tables: workers, iterations and cycles, task flow, tokens and cost, planner,
config.

Each section is a function from the loaded :class:`~pytest_oompa.report.model.Run` to one
``<section>`` element, so the page is their concatenation in a fixed order and each can be read
(and changed) alone. The tables carry every fact the timeline draws: the page is complete without
script, and a bar's popover is only its row here, cloned.

Links to the run's files are relative (the report sits in the run folder) and built only from
names the loader found or checked; a file that is not in the folder is shown struck through.
Long texts (agent replies, errors, prompts) are clipped, saying where the rest is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from pytest_oompa.report.formatting import clip, fmt_cost, fmt_int, fmt_ms, plural, sum_known
from pytest_oompa.report.markup import Child, Element, add, el
from pytest_oompa.report.model import (
    ERROR_OUTCOMES,
    OUTCOMES,
    Call,
    Iteration,
    Run,
    int_field,
    natural_key,
)
from pytest_oompa.report.timeline import Span

__all__ = ["config", "iterations", "planner", "tasks", "usage", "workers"]

SNIPPET_CHARS = 600
STDERR_CHARS = 400
REVIEW_CHARS = 2000
PROMPT_CHARS = 20000


# --------------------------------------------------------------------------- building blocks


def section(id_: str, title: str) -> Element:
    """``<section id=…>`` with its ``<h2>``, labelled by it for screen readers."""
    return el(
        "section",
        {"id": id_, "aria-labelledby": f"h-{id_}"},
        el("h2", {"id": f"h-{id_}"}, title),
    )


def muted(*content: Child) -> Element:
    return el("p", {"class": "muted"}, *content)


def table(
    head: Sequence[tuple[str, str]], rows: Iterable[Element], foot: Element | None = None
) -> Element:
    """A scrollable table; ``head`` is (title, class) per column, a header cell each."""
    ths = [el("th", {"scope": "col", "class": cls or None}, title) for title, cls in head]
    return el(
        "div",
        {"class": "wrap"},
        el(
            "table",
            el("thead", el("tr", ths)),
            el("tfoot", foot) if foot is not None else None,
            el("tbody", list(rows)),
        ),
    )


def td(content: Child, cls: str = "") -> Element:
    return el("td", {"class": cls or None}, content)


def row_header(text: str) -> Element:
    return el("th", {"scope": "row"}, text)


def joined(items: Iterable[Element | None], sep: str = " ") -> list[Child]:
    """The items that are there, with ``sep`` between them."""
    out: list[Child] = []
    for item in items:
        if item is not None:
            out += [sep, item] if out else [item]
    return out


def outcome_badge(outcome: str) -> Element:
    label = outcome if outcome in OUTCOMES else "unknown"
    return el("span", {"class": f"o o-{label}"}, outcome)


def file_link(rel: str | None, run_dir: Path, text: str | None = None) -> Element | None:
    """A relative link to a file of the run; struck through when the file is not there."""
    if rel is None:
        return None
    shown = text or rel
    if (run_dir / rel).exists():
        return el("a", {"href": rel}, shown)
    return el("span", {"class": "missing", "title": "not in this run folder"}, shown)


def pre(text: str) -> Element:
    return el("pre", text)


# --------------------------------------------------------------------------- workers


def workers(run: Run) -> Element:
    head = [
        ("Worker", ""),
        ("Harness:model", ""),
        ("Status", ""),
        ("Ran", "n"),
        ("Completed", "n"),
        ("Merges", "n"),
        ("Claims", "n"),
        ("Rejections", "n"),
        ("Errors", "n"),
        ("Recycled", "n"),
        ("Review rounds", "n"),
    ]
    rows = []
    summary_workers = {w["id"]: w for w in (run.summary or {}).get("workers", [])}
    live_workers = (run.live or {}).get("workers", {})
    for wid in run.worker_ids():
        cfg = run.worker_config(wid)
        its = run.iterations_of(wid)
        configured = int_field(cfg, "iterations")
        noun = run.worker_unit(wid)
        ran = f"{len(its)} of {plural(configured, noun)}" if configured else plural(len(its), noun)
        model = f"{cfg.get('harness', '?')}:{cfg.get('model', '?')}"
        status: list[Child]
        if wid in summary_workers:
            s = summary_workers[wid]
            values = [s["completed"], s["merges"], s["claims"], s["rejections"], s["errors"]]
            values += [s["recycled"], s["review-rounds-total"]]
            cells = [td(fmt_int(v), "n") for v in values]
            status = [run.worker_status(wid)]
        else:
            # A cut-off run: count what the iteration (or cycle) files show, take the rest from
            # the live summary, or the last iteration's metrics, or (cycles carry none) count it.
            metrics = dict(
                live_workers.get(wid) or (its[-1].metrics if its else None) or _counted(its)
            )
            merges = sum(1 for it in its if it.outcome == "merged")
            claims = len({t for it in its for t in it.task_ids})
            values2: list[int | None] = [merges, merges, claims]
            values2 += [metrics.get(k) for k in ("rejections", "errors", "recycled")]
            values2.append(metrics.get("review-rounds-total"))
            cells = [td(fmt_int(v), "n") for v in values2]
            cells[2] = td(f"≥{claims}", "n")
            status = [run.worker_status(wid)]
            if not run.complete:  # (upstream writes no summary.json even when it completes)
                status += [" ", el("span", {"class": "muted"}, "(cut off)")]
        rows.append(el("tr", row_header(wid), td(model), td(status), td(ran, "n"), cells))
    foot = None
    if run.summary is not None:
        s = run.summary
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["status-counts"].items()))
        foot = el(
            "tr",
            el("td", {"colspan": 3}, f"{s['total-workers']} workers: {counts}"),
            td(f"{len(run.iterations)} of {s['total-iterations']}", "n"),
            td(str(s["total-completed"]), "n"),
            el("td", {"colspan": 6}),
        )
    out = add(section("workers", "Workers"), table(head, rows, foot))
    if run.summary is None:
        units = run.units()
        files = run.unit_noun().replace(" or ", " and ")
        live = "live-summary.json and " if run.live is not None else ""
        add(
            out,
            muted(
                f"From {live}the {files} files (no summary.json): completed and "
                f"merges count merged {units}; claims count the tasks they name (an iteration "
                "names only its first), so there may be more."
            ),
        )
    return out


def _counted(its: list[Iteration]) -> dict[str, int]:
    """A worker's metrics counted from its units' outcomes (cycle files carry no metrics)."""
    return {
        "rejections": sum(it.outcome == "rejected" for it in its),
        "errors": sum(it.outcome in ERROR_OUTCOMES for it in its),
        "recycled": sum(len(it.recycled) for it in its),
        "review-rounds-total": sum(it.review_rounds for it in its),
    }


# --------------------------------------------------------------------------- iterations


def units_title(run: Run) -> str:
    """The title of the iterations section (and its link): what the run's units are."""
    return run.units().capitalize()


def iterations(run: Run, span: Span) -> Element:
    out = section("iterations", units_title(run))
    if not run.iterations:
        return add(out, muted(f"No {run.unit_noun()} files."))
    has_cycles = any(it.is_cycle for it in run.iterations)
    head = [
        (run.unit_noun().replace(" or ", " / ").capitalize(), ""),
        ("Outcome", ""),
        ("Start", "n"),
        ("Duration", "n"),
        ("Tasks" if has_cycles else "Task", ""),
        ("Recycled", ""),
        ("Reviews", ""),
        ("Calls", ""),
        ("Tokens in/out", "n"),
        ("Cost", "n"),
        ("Error", ""),
        ("Files", ""),
    ]
    rows = []
    for it in run.iterations:
        calls = it.calls or []
        tokens_in = sum_known(c.input_tokens for c in calls)
        tokens_out = sum_known(c.output_tokens for c in calls)
        tokens = (
            "—"
            if tokens_in is None and tokens_out is None
            else f"{fmt_int(tokens_in)} / {fmt_int(tokens_out)}"
        )
        error: list[Child] = []
        if it.error_snippet:
            error.append(pre(clip(it.error_snippet, SNIPPET_CHARS, it.rel)))
        for c in calls:
            if c.stderr_tail.strip():
                tail = c.stderr_tail.strip()[-STDERR_CHARS:]
                error += [el("div", {"class": "muted"}, f"{c.role} stderr:"), pre(tail)]
        outcome: list[Child] = [outcome_badge(it.outcome)]
        if it.open:
            outcome += [" ", el("span", {"class": "muted"}, "(cycle still open)")]
        rows.append(
            el(
                "tr",
                {"id": it.anchor, "data-outcome": it.outcome, "data-unit": it.noun},
                row_header(f"{it.worker} · {it.key}"),
                td(outcome),
                td(span.offset(it.start), "n"),
                td(fmt_ms(it.duration_ms), "n"),
                td(", ".join(it.task_ids) or "—", "nw"),
                td(", ".join(it.recycled) if it.recycled else "—", "nw"),
                td(_reviews_cell(it), "reviews"),
                td(_calls_cell(it, run.run_dir), "calls"),
                td(tokens, "n"),
                td(fmt_cost(sum_known(c.cost_usd for c in calls)), "n"),
                td(error or "—", "err"),
                td(_files_cell(it, run.run_dir), "files"),
            )
        )
    return add(out, table(head, rows))


def _runs(run: Run, wid: str) -> str:
    """What the worker was set to run: ``3 iterations``, ``5 cycles of up to 7 attempts``."""
    n = int_field(run.worker_config(wid), "iterations")
    noun = run.worker_unit(wid)
    text = plural(n, noun) if n is not None else f"? {noun}s"
    resumes = run.max_resumes(wid)
    if noun == "cycle" and resumes is not None:
        text += f" of up to {plural(resumes, 'attempt')}"
    return text


def _calls_cell(it: Iteration, run_dir: Path) -> list[Child]:
    """How many calls (and, for a cycle, attempts) it made; the list of them folded, each with
    links to its command log and error file."""
    if it.calls is None:
        return ["—"]
    if not it.calls:
        return ["none"]
    attempts = it.attempts
    words = f"{plural(len(attempts), 'attempt')}, " if attempts else ""
    words += plural(len(it.calls), "call")
    items = []
    for c in it.calls:
        facts = [f"exit {fmt_int(c.exit_code)}", fmt_ms(c.duration_ms)]
        if c.failure:
            facts.append(clip(c.failure, 200))
        links = joined((file_link(c.log, run_dir, "log"), file_link(c.error, run_dir, "error")))
        items.append(
            el(
                "li",
                el("b", f"a{c.attempt} ") if c.attempt is not None else None,
                f"{c.role} {c.harness}:{c.model}" if c.model else f"{c.role} {c.harness}",
                el("span", {"class": "muted"}, f" ({', '.join(facts)})"),
                [" ", el("span", {"class": "files"}, links)] if links else None,
            )
        )
    return [el("details", el("summary", words), el("ol", {"class": "calls"}, items))]


def _reviews_cell(it: Iteration) -> list[Child]:
    if not it.review_rounds and not it.reviews:
        return ["—"]
    parts: list[Child] = []
    for r in it.reviews:
        output = r.output if r.output is not None else "(no output: the reviewer failed)"
        files = ", ".join(r.diff_files)
        parts.append(
            el(
                "details",
                el(
                    "summary",
                    el("span", {"class": f"rvk v-{r.verdict}", "aria-hidden": "true"}),
                    f" r{r.round}: {r.verdict}",
                ),
                pre(clip(output, REVIEW_CHARS, r.rel)),
                el("div", {"class": "muted"}, f"diff: {clip(files, 300)}") if files else None,
            )
        )
    missing = it.review_rounds - len(it.reviews)
    if missing > 0:
        parts.append(el("span", {"class": "muted"}, f"{missing} round(s) without a review file"))
    return parts


def _files_cell(it: Iteration, run_dir: Path) -> list[Child]:
    links: list[Element | None] = []
    if it.calls or it.patch_rel:  # its entry in the "Transcripts and diffs" section
        what = "transcript" if it.calls else "diff"
        if it.calls and it.patch_rel:
            what = "transcript, diff"
        links.append(el("a", {"href": f"#{it.work_anchor}", "class": "wk"}, what))
    links.append(file_link(it.rel, run_dir, it.noun))
    links += [file_link(r.rel, run_dir, f"review r{r.round}") for r in it.reviews]
    if it.calls_rel:  # each call's own files are linked from the calls cell
        links.append(file_link(it.calls_rel, run_dir, "calls"))
    return joined(links)


# --------------------------------------------------------------------------- task flow


def tasks(run: Run) -> Element:
    out = section("tasks", "Task flow")
    events: dict[str, list[tuple[datetime, str, Iteration]]] = {}
    held: dict[str, set[str]] = {}
    for it in sorted(run.iterations, key=lambda i: (i.end, natural_key(i.worker), i.n)):
        # an iteration names the task its worker holds, a cycle the tasks it claimed: a task
        # the worker held before and this one does not name is no longer held
        mine = held.setdefault(it.worker, set())
        mine.intersection_update(it.task_ids)
        for task in it.task_ids:
            if task not in mine:
                events.setdefault(task, []).append((it.end, "claimed", it))
                mine.add(task)
        if it.outcome == "merged":
            for task in sorted(mine):
                events.setdefault(task, []).append((it.end, "completed", it))
            mine.clear()
        for task in it.recycled:
            events.setdefault(task, []).append((it.end, "recycled", it))
            mine.discard(task)
    if not events:
        return add(out, muted(f"No {run.unit_noun()} claimed, completed or recycled a task."))
    head = [
        ("Task", ""),
        ("Claimed by", ""),
        ("Completed by", ""),
        ("Recycled by", ""),
        ("Last state", ""),
    ]
    rows = []
    states: Counter[str] = Counter()
    for task in sorted(events, key=natural_key):
        evs = events[task]

        def who(kind: str, evs: list[tuple[datetime, str, Iteration]] = evs) -> list[Child]:
            found = [el("a", {"href": f"#{it.anchor}"}, it.label) for _, k, it in evs if k == kind]
            return joined(found, ", ") or ["—"]

        last = evs[-1][1]
        state = {"claimed": "held", "completed": "completed", "recycled": "recycled"}[last]
        states[state] += 1
        rows.append(
            el(
                "tr",
                row_header(task),
                td(who("claimed")),
                td(who("completed")),
                td(who("recycled")),
                td(state),
            )
        )
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    sources = {it.source for it in run.iterations}
    how = []
    if "iteration" in sources:
        how.append(
            "An iteration file names the first task its worker held; other claims show up when "
            "their tasks are recycled."
        )
    if "cycle" in sources:
        how.append("A cycle file names every task its worker claimed in it.")
    return add(
        out,
        el("p", f"{len(events)} task(s) seen: {summary}. {' '.join(how)}"),
        table(head, rows),
    )


# --------------------------------------------------------------------------- tokens and cost


def usage(run: Run) -> Element:
    out = section("usage", "Tokens and cost")
    if not any(it.calls is not None for it in run.iterations) and not run.role_calls:
        return add(
            out,
            muted(
                "This run has no ",
                el("code", "calls/"),
                " records, so tokens and cost are unknown.",
            ),
        )
    head = [
        ("Who", ""),
        ("Calls", "n"),
        ("By role", ""),
        ("Input tokens", "n"),
        ("Output tokens", "n"),
        ("Cost (USD)", "n"),
        ("Unreported", "n"),
    ]
    by_who: dict[str, list[Call]] = {}
    for who, call in run.all_calls():
        by_who.setdefault(who, []).append(call)
    order: list[str] = [w for w in ("preflight", "planner") if w in by_who]
    order += [w for w in run.worker_ids() if w in by_who]
    order += sorted(set(by_who) - set(order), key=natural_key)
    rows = []
    every: list[Call] = []
    for who in order:
        calls = by_who[who]
        every += calls
        rows.append(el("tr", row_header(who), _usage_cells(calls)))
    foot = el("tr", el("td", "all"), _usage_cells(every))
    return add(
        out,
        table(head, rows, foot),
        muted(
            "As the harnesses reported them; “unreported” counts calls that gave no token or "
            "cost figures."
        ),
    )


def _usage_cells(calls: list[Call]) -> list[Element]:
    roles = Counter(c.role for c in calls)
    by_role = ", ".join(f"{r} {n}" for r, n in sorted(roles.items()))
    unreported = sum(
        1
        for c in calls
        if c.input_tokens is None and c.output_tokens is None and c.cost_usd is None
    )
    return [
        td(str(len(calls)), "n"),
        td(by_role),
        td(fmt_int(sum_known(c.input_tokens for c in calls)), "n"),
        td(fmt_int(sum_known(c.output_tokens for c in calls)), "n"),
        td(fmt_cost(sum_known(c.cost_usd for c in calls)), "n"),
        td(str(unreported), "n"),
    ]


# --------------------------------------------------------------------------- planner


def planner(run: Run) -> Element:
    out = section("planner", "Planner")
    configured = run.run or run.started_event  # upstream 0.7.3 writes no run.json
    cfg = (configured or {}).get("planner")
    if configured is None:
        add(out, muted("run.json is missing, so the planner's configuration is unknown."))
    elif cfg is None:
        add(out, el("p", "No planner configured."))
    else:
        prompts = ", ".join(cfg["prompts"]) or "none"
        add(
            out,
            el(
                "p",
                f"{cfg['harness']}:{cfg['model']}, max pending {cfg['max-pending']}, prompts: ",
                el("code", prompts),
                ".",
            ),
        )
    for who in ("planner", "preflight"):
        calls = run.role_calls.get(who)
        if calls is None:
            if who == "planner" and cfg is not None:
                add(
                    out,
                    muted(
                        "No record of the planner's call (no calls/planner.json): it was "
                        "skipped, or the run predates run tracking."
                    ),
                )
            continue
        title = "The planner's call" if who == "planner" else "Preflight probes"
        add(out, el("h3", title), _calls_table(calls, f"calls/{who}.json", run.run_dir))
    return out


def _calls_table(calls: list[Call], rel: str, run_dir: Path) -> Element:
    if not calls:
        return muted(f"{rel} lists no call (skipped).")
    head = [
        ("Role", ""),
        ("Harness:model", ""),
        ("Exit", "n"),
        ("Duration", "n"),
        ("Tokens in/out", "n"),
        ("Cost", "n"),
        ("Failure", ""),
        ("Files", "files"),
    ]
    rows = []
    for c in calls:
        failure = pre(clip(c.failure, SNIPPET_CHARS)) if c.failure else "—"
        links = joined((file_link(c.log, run_dir, "log"), file_link(c.error, run_dir, "error")))
        rows.append(
            el(
                "tr",
                td(c.role),
                td(f"{c.harness}:{c.model}"),
                td(fmt_int(c.exit_code), "n"),
                td(fmt_ms(c.duration_ms), "n"),
                td(f"{fmt_int(c.input_tokens)} / {fmt_int(c.output_tokens)}", "n"),
                td(fmt_cost(c.cost_usd), "n"),
                td(failure),
                td(links or "—", "files"),
            )
        )
    return table(head, rows)


# --------------------------------------------------------------------------- config


def config(run: Run) -> Element:
    out = section("config", "Config")
    configured = run.run or run.started_event  # upstream 0.7.3 writes no run.json
    if configured is None:
        add(out, muted("No readable run.json."))
    else:
        head = [
            ("Worker", ""),
            ("Harness", ""),
            ("Model", ""),
            ("Reasoning", ""),
            ("Runs", ""),
            ("Can plan", ""),
            ("Prompts", ""),
        ]
        rows = []
        for w in configured["workers"]:
            prompts = el("code", ", ".join(w["prompts"])) if w["prompts"] else "—"
            rows.append(
                el(
                    "tr",
                    row_header(w["id"]),
                    td(w["harness"]),
                    td(w["model"]),
                    td(str(w["reasoning"]) if w.get("reasoning") else "—"),
                    td(_runs(run, w["id"])),
                    td("yes" if w["can-plan"] else "no"),
                    td(prompts),
                )
            )
        if run.run is None:
            add(out, muted("From started.json: the run has no run.json."))
        add(out, table(head, rows))
        reviewer = configured.get("reviewer")
        if reviewer:
            prompts_text = ", ".join(reviewer["prompts"]) or "none"
            add(
                out,
                el(
                    "p",
                    f"Reviewer: {reviewer['harness']}:{reviewer['model']}, prompts: ",
                    el("code", prompts_text),
                    ".",
                ),
            )
        else:
            add(out, el("p", "No reviewer: merge requests merge without review."))
    meta = run.meta or {}
    snapshot = meta.get("config")
    if isinstance(snapshot, dict):
        text = json.dumps(snapshot, indent=2, ensure_ascii=False)
        add(
            out,
            el(
                "details",
                el("summary", "The config file as it was at the start"),
                pre(clip(text, PROMPT_CHARS, "oompa-run.json")),
            ),
        )
    prompts_map = meta.get("prompts")
    if isinstance(prompts_map, dict):
        for path, text in sorted(prompts_map.items()):
            if isinstance(text, str):
                add(
                    out,
                    el(
                        "details",
                        el("summary", "Prompt ", el("code", path)),
                        pre(clip(text, PROMPT_CHARS, "oompa-run.json")),
                    ),
                )
    return out
