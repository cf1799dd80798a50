"""A swarm's end as CI shows it: a markdown summary (GitHub's job summary, or any file a CI
system publishes) and GitHub workflow-command ``::error`` annotations.

Pure functions of a finished :class:`SwarmResult`, the outcome mapping and the rootdir, so
the text is the same in every process and can be checked against golden strings; where it
goes is ``ci_output.py``'s part. No pytest here.

The markdown is GitHub-flavoured: table cells escape ``|`` (and what would read as markup or
HTML), paths and names go in code spans, and every free-text reason is cut to one line so a
table row stays a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pytest_oompa.core.gate import Check
from pytest_oompa.core.gate import passed as gate_passed
from pytest_oompa.core.results import IterationResult, Outcome, WorkerReport
from pytest_oompa.engine.spend import Spend, usd
from pytest_oompa.engine.swarm import SwarmResult
from pytest_oompa.runs.reader import worker_rows
from pytest_oompa.runs.recorder import summary_entry

__all__ = ["failed_items", "github_annotations", "markdown", "reason", "verdict"]

# A job summary is capped (1 MiB a step on GitHub): a run with hundreds of failures lists the
# first ones and says how many more there were.
MAX_FAILED_ROWS = 100
MAX_REASON = 300

VERDICTS = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "interrupted": "⚠️ interrupted",
    "error": "💥 engine error",
}


# -- what the run came to ------------------------------------------------------------------------


def failed_items(result: SwarmResult, outcomes: Mapping[str, str]) -> list[IterationResult]:
    """The iterations and cycles whose item fails (``outcomes[outcome] == "fail"``), in the
    order of the workers' ids and their numbers."""
    failed = [r for r in result.iterations if outcomes.get(r.outcome.value) == "fail"]
    return sorted(failed, key=lambda r: (r.worker_id, r.iteration))


def verdict(result: SwarmResult, outcomes: Mapping[str, str], interrupted: bool = False) -> str:
    """``passed``, ``failed``, ``interrupted`` or ``error``: what the swarm's part of the exit
    status says (engine errors, a failed item or gate, a timeout, a spend limit reached)."""
    if interrupted or result.interrupted:
        return "interrupted"
    if result.errors:
        return "error"
    if (
        failed_items(result, outcomes)
        or not gate_passed(result.gate)
        or result.timed_out
        or result.spend_limits_reached
    ):
        return "failed"
    return "passed"


def reason(item: IterationResult) -> str:
    """Why an iteration or cycle failed, on one line: its error, else its last review's verdict
    (a rejection has no error), else its last attempt's note, else its outcome."""
    if item.error:
        text = item.error
    elif item.reviews:
        last = item.reviews[-1]
        said = _first_line(last.output)
        text = f"review round {last.round}: {last.verdict}" + (f": {said}" if said else "")
    elif item.attempts and item.attempts[-1].note:
        text = item.attempts[-1].note
    elif item.notes:
        text = item.notes[-1]
    else:
        text = item.outcome.value
    return _one_line(text, MAX_REASON)


def shown_path(path: Path | None, rootdir: Path) -> str | None:
    """``path`` relative to the rootdir when it is under it, else as it is; None: not written."""
    if path is None:
        return None
    try:
        return path.relative_to(rootdir).as_posix()
    except ValueError:
        return str(path)


# -- markdown ------------------------------------------------------------------------------------


def markdown(
    result: SwarmResult,
    outcomes: Mapping[str, str],
    rootdir: Path,
    *,
    worker_order: Sequence[str] = (),
    interrupted: bool = False,
) -> str:
    """The summary: title and verdict, the worker table, the gate, the failed iterations and
    cycles, the totals. ``worker_order``: the config's, else the result's."""
    interrupted = interrupted or result.interrupted
    said = VERDICTS[verdict(result, outcomes, interrupted)]
    blocks = [f"## oompa swarm {_code(result.swarm_id)}: {said}"]
    if interrupted:
        blocks.append(
            "The swarm was interrupted (Ctrl-C or SIGTERM) before it finished: this is what "
            "ran until then."
        )
    blocks.append(_workers(result, worker_order))
    if result.gate:
        blocks.append(_gate(result.gate))
    failed = failed_items(result, outcomes)
    if failed:
        blocks.append(_failed(failed, rootdir))
    blocks.append(_totals(result, len(failed), rootdir))
    return "\n\n".join(blocks) + "\n"


def _workers(result: SwarmResult, order: Sequence[str]) -> str:
    ids = [w for w in order if w in result.workers]
    ids += [w for w in result.workers if w not in ids]
    reports: list[WorkerReport] = [result.workers[w] for w in ids]
    header, *rows = worker_rows(summary_entry(r) for r in reports)
    # The counts right-aligned, as numbers read; the first three columns are text.
    align = ["---"] * 3 + ["---:"] * (len(header) - 3)
    return "### Workers\n\n" + _table(header, rows, align)


def _gate(checks: list[Check]) -> str:
    ok = gate_passed(checks)
    rows = [
        (_code(c.name), c.measured, c.threshold, "ok" if c.ok else "**FAILED**") for c in checks
    ]
    title = f"### Gate: {'passed' if ok else 'FAILED'}"
    return f"{title}\n\n" + _table(("check", "measured", "threshold", "result"), rows, raw=(0, 3))


def _failed(failed: list[IterationResult], rootdir: Path) -> str:
    units = [u for u in ("iteration", "cycle") if any(r.unit == u for r in failed)]
    what = " and ".join(f"{u}s" for u in units)
    rows = []
    for r in failed[:MAX_FAILED_ROWS]:
        artifact = shown_path(r.artifact, rootdir)
        rows.append(
            (
                f"{r.worker_id} {r.unit} {r.iteration}",
                r.outcome.value,
                reason(r),
                _code(artifact) if artifact else "(not written)",
            )
        )
    text = f"### Failed {what} ({len(failed)})\n\n" + _table(
        ("item", "outcome", "reason", "artifact"), rows, raw=(3,)
    )
    more = len(failed) - MAX_FAILED_ROWS
    if more > 0:
        text += f"\n\nand {more} more (see the run's files)."
    return text


def _totals(result: SwarmResult, failed: int, rootdir: Path) -> str:
    lines = [f"- {_ran(result.iterations, failed)}"]
    merges = sum(w.merges for w in result.workers.values())
    lines.append(f"- merges into main: {merges}")
    if result.planner is not None:
        p = result.planner
        text = f"created {p.tasks_created} task(s)" if p.ran else f"skipped: {p.skipped_reason}"
        lines.append(f"- planner: {_escape(text + (f' ({p.error})' if p.error else ''))}")
    total = sum(result.spend.values(), Spend())
    lines.append(f"- tokens: {total.tokens:,}; cost: {_cost(total)}; calls: {total.calls}")
    for account, spend in sorted(result.spend.items()):
        lines.append(f"  - {_code(account)}: {_escape(spend.describe())}")
    lines += [f"- spend limit reached: {_escape(r)}" for r in result.spend_limits_reached]
    if result.timed_out:
        lines.append(f"- swarm timeout: {_escape(_one_line(result.timed_out, MAX_REASON))}")
    lines += [f"- engine error: {_escape(_one_line(e, MAX_REASON))}" for e in result.errors]
    lines.append(f"- artifacts: {_code(shown_path(result.run_dir, rootdir) or '')}")
    return "### Totals\n\n" + "\n".join(lines)


def _ran(items: Iterable[IterationResult], failed: int) -> str:
    counts = {"iteration": 0, "cycle": 0}
    merged = 0
    for r in items:
        counts[r.unit] += 1
        merged += r.outcome is Outcome.MERGED
    ran = ", ".join(f"{n} {unit}(s)" for unit, n in counts.items() if n) or "nothing"
    return f"ran: {ran}; {merged} merged, {failed} failed"


def _cost(spend: Spend) -> str:
    if spend.calls_without_cost:
        return (
            f"at least {usd(spend.cost_usd)} ({spend.calls_without_cost} call(s) reported no cost)"
        )
    return usd(spend.cost_usd)


# -- GitHub workflow commands ---------------------------------------------------------------------


def github_annotations(
    result: SwarmResult, outcomes: Mapping[str, str], rootdir: Path
) -> list[str]:
    """One ``::error`` workflow command per failed iteration or cycle (``file=`` its artifact
    when it is under the rootdir, the checkout GitHub resolves paths against), and one for a
    failed gate."""
    lines = []
    for r in failed_items(result, outcomes):
        props = {}
        artifact = shown_path(r.artifact, rootdir)
        if artifact is not None and not Path(artifact).is_absolute():
            props["file"] = artifact
        props["title"] = f"oompa {r.worker_id} {r.unit} {r.iteration}: {r.outcome.value}"
        lines.append(workflow_command("error", props, reason(r)))
    if not gate_passed(result.gate):
        text = "; ".join(str(c) for c in result.gate if not c.ok)
        lines.append(workflow_command("error", {"title": "oompa gate failed"}, text))
    return lines


def workflow_command(name: str, properties: Mapping[str, str], message: str) -> str:
    """``::name key=value,...::message``, escaped as GitHub's toolkit does."""
    props = ",".join(f"{k}={_escape_property(v)}" for k, v in properties.items())
    return f"::{name}{' ' + props if props else ''}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# -- markdown helpers ----------------------------------------------------------------------------

# What would end a table cell or start markup; ``&`` and ``<`` become entities, so no text
# spells an entity or opens an HTML tag.
_MARKUP = re.compile(r"([\\|`*_\[\]])")


def _escape(text: str) -> str:
    """Plain text for a table cell or a list item: one line, markup and ``|`` escaped."""
    text = _MARKUP.sub(r"\\\1", " ".join(text.split()))
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _code(text: str) -> str:
    """A code span (its content is literal but for ``|``, which a table still splits on)."""
    text = " ".join(text.split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" or text.startswith(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    align: Sequence[str] | None = None,
    raw: Sequence[int] = (),
) -> str:
    """A GFM table; the cells of the ``raw`` columns are markdown already, the others text."""
    lines = [_row(_escape(h) for h in header), _row(align or ["---"] * len(header))]
    for row in rows:
        lines.append(_row(c if i in raw else _escape(c) for i, c in enumerate(row)))
    return "\n".join(lines)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
