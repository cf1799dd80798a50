"""The report's "Transcripts and diffs" section and its live page, from hand-made run folders:
contract files through the artifact store, command logs through the engine's own
:class:`~pytest_oompa.runs.commandlog.CommandLog` (a claude ``stream-json`` stream in its output
events), patches as the plain files the engine keeps in ``diffs/``. The page is parsed into a
tree and read by element and class, never by matching markup text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

from support.run_meta import oompa_run

from pytest_oompa.report import render_report
from pytest_oompa.report.markup import to_html
from pytest_oompa.report.model import Call, load_run
from pytest_oompa.report.page import REFRESH_SECONDS
from pytest_oompa.report.patches import PatchCaps, parse_patch
from pytest_oompa.report.transcripts import TranscriptCaps, read_transcript, render_call
from pytest_oompa.report.work import WorkCaps, work
from pytest_oompa.runs.artifacts import ArtifactStore
from pytest_oompa.runs.commandlog import CommandLog

T0 = datetime(2026, 2, 1, 9, 0, 0, tzinfo=timezone.utc)
SID = "20260201T090000Z-work01"
HOSTILE = "<script>alert(1)</script>"


def iso(seconds: float) -> str:
    ts = T0 + timedelta(seconds=seconds)
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- the page as a tree


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str = "", cls: str = "") -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (not tag or c.tag == tag) and (not cls or cls in c.classes):
                    found.append(c)
                found += c.all(tag, cls)
        return found

    def one(self, tag: str = "", cls: str = "") -> Node:
        (found,) = self.all(tag, cls)
        return found

    def by_id(self, id_: str) -> Node:
        (found,) = [n for n in self.all() if n.attrs.get("id") == id_]
        return found

    def kids(self, tag: str) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node) and c.tag == tag]


class Tree(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "img", "input", "link", "hr", "col", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.at = self.root
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in self.VOID:
            self.at = node

    def handle_endtag(self, tag: str) -> None:
        assert self.at.tag == tag, f"</{tag}> closes <{self.at.tag}>"
        assert self.at.parent is not None
        self.at = self.at.parent

    def handle_data(self, data: str) -> None:
        self.at.children.append(data)


def page(run_dir: Path, **kwargs: Any) -> tuple[str, Node]:
    text = render_report(run_dir, **kwargs)
    return text, Tree(text).root


# --------------------------------------------------------------------------- hand-made runs


def claude_stream(*steps: tuple[str, Any]) -> str:
    """A claude ``--output-format stream-json`` stdout: ("say", text), ("tool", (name, input,
    result)), ("fail", text) as the final result's error."""
    lines: list[dict[str, Any]] = [{"type": "system", "subtype": "init", "session_id": "s"}]
    final: dict[str, Any] = {"type": "result", "subtype": "success", "is_error": False}
    for n, (kind, value) in enumerate(steps):
        if kind == "say":
            content = [{"type": "text", "text": value}]
            lines.append({"type": "assistant", "message": {"content": content}})
            final["result"] = value
        elif kind == "tool":
            name, tool_input, result = value
            use = {"type": "tool_use", "id": f"tu{n}", "name": name, "input": tool_input}
            lines.append({"type": "assistant", "message": {"content": [use]}})
            res = {"type": "tool_result", "tool_use_id": f"tu{n}", "content": result}
            lines.append({"type": "user", "message": {"content": [res]}})
        elif kind == "fail":
            final = {"type": "result", "subtype": "error", "is_error": True, "result": value}
    lines.append(final)
    return "".join(json.dumps(line) + "\n" for line in lines)


class WorkRun:
    """A run folder with iterations whose calls left command logs, and merges that left
    patches."""

    def __init__(self, tmp_path: Path, iterations: int = 1) -> None:
        self.store = ArtifactStore(tmp_path / "runs", SID)
        self.dir = self.store.run_dir
        self.store.write_run(
            {
                "swarm-id": SID,
                "started-at": iso(0),
                "config-file": "/p/oompa.json",
                "workers": [
                    {
                        "id": "w0",
                        "harness": "claude",
                        "model": "opus",
                        "reasoning": None,
                        "iterations": iterations,
                        "can-plan": True,
                        "prompts": [],
                    }
                ],
                "planner": None,
                "reviewer": {"harness": "claude", "model": "sonnet", "prompts": []},
            }
        )
        self.n = 0

    def iteration(
        self,
        calls: list[tuple[str, str | None, int]],
        patch: str | None = None,
        outcome: str = "merged",
    ) -> int:
        """An iteration whose calls are (role, its stdout or None for no log, exit code)."""
        self.n += 1
        n = self.n
        self.store.write_iteration(
            {
                "worker-id": "w0",
                "iteration": n,
                "outcome": outcome,
                "timestamp": iso(10 * n),
                "duration-ms": 9000,
                "task-id": "t1",
                "recycled-tasks": [],
                "error-snippet": None,
                "review-rounds": 0,
                "metrics": {
                    "merges": 0,
                    "rejections": 0,
                    "errors": 0,
                    "recycled": 0,
                    "review-rounds-total": 0,
                },
            }
        )
        records = []
        for k, (role, stdout, code) in enumerate(calls, 1):
            name = f"w0-i{n}-{role}-{k}"
            failure = None if code == 0 else f"exit code {code}"
            if stdout is not None:
                log = CommandLog(self.dir / "commands" / f"{name}.ndjson")
                log.start(argv=["claude", "-p"], cwd="/p/.w0", role=role, harness="claude")
                log.output("stdout", stdout.encode())
                log.close(**{"exit-code": code, "duration-ms": 1200, "failure": failure})
            records.append(
                {
                    "name": name,
                    "role": role,
                    "attempt": None,
                    "harness": "claude",
                    "model": "opus",
                    "argv": ["claude", "-p"],
                    "cwd": "/p/.w0",
                    "exit-code": code,
                    "duration-ms": 1200,
                    "session-id": None,
                    "input-tokens": 10,
                    "output-tokens": 5,
                    "cost-usd": None,
                    "failure": failure,
                    "log": f"commands/{name}.ndjson",
                    "error": None,
                }
            )
        calls_file = self.dir / "calls" / f"w0-i{n}.json"
        calls_file.parent.mkdir(exist_ok=True)
        record = {"swarm-id": SID, "worker-id": "w0", "iteration": n, "calls": records}
        calls_file.write_text(json.dumps(record), encoding="utf-8")
        if patch is not None:
            (self.dir / "diffs").mkdir(exist_ok=True)
            (self.dir / "diffs" / f"w0-i{n}.patch").write_text(patch, encoding="utf-8")
        return n

    def meta(self, status: str) -> None:
        done = {} if status == "running" else {"finished_at": iso(60), "exit_status": 0}
        meta = oompa_run(SID, status, iso(0), **done)
        (self.dir / "oompa-run.json").write_text(json.dumps(meta), encoding="utf-8")

    def heartbeat(self, at: float) -> None:
        (self.dir / "heartbeat.json").write_text(
            json.dumps(
                {
                    "swarm-id": SID,
                    "pid": 1,
                    "host": "h",
                    "updated-at": iso(at),
                    "interval-s": 5,
                    "state": "running",
                }
            ),
            encoding="utf-8",
        )

    def section(self, caps: WorkCaps) -> Node:
        return Tree(to_html(work(load_run(self.dir), caps))).root


PATCH = """\
diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,4 +1,4 @@ def main():
 import sys
-print("old")
+print("new")
+print("<b>bold</b>")
 sys.exit(0)
\\ No newline at end of file
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 3333333..0000000
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-gone
--- a line that looks like a header
"""


def numbered_patch(files: int, lines: int) -> str:
    out = []
    for f in range(files):
        out += [
            f"diff --git a/f{f}.txt b/f{f}.txt",
            "new file mode 100644",
            "--- /dev/null",
            f"+++ b/f{f}.txt",
            f"@@ -0,0 +1,{lines} @@",
        ]
        out += [f"+f{f} line {k}" for k in range(lines)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- transcripts


def test_a_transcript_shows_messages_tool_calls_with_input_and_cut_results(tmp_path):
    run = WorkRun(tmp_path)
    long_result = "x" * 5000
    worker = claude_stream(
        ("say", f"Looking at the task. {HOSTILE}"),
        ("tool", ("Bash", {"command": "pytest -q", "description": "run the tests"}, "3 passed")),
        ("tool", ("Read", {"file_path": "/p/.w0/src/app.py"}, long_result)),
        ("say", "Done.\nCOMPLETE_AND_READY_FOR_MERGE"),
    )
    reviewer = claude_stream(("say", "VERDICT: APPROVED"))
    run.iteration([("worker", worker, 0), ("reviewer", reviewer, 0)], patch=PATCH)
    text, root = page(run.dir)
    assert HOSTILE not in text  # agent text is escaped like any other artifact text

    entry = root.by_id("work-it-w0-1")
    assert entry.tag == "details" and "open" not in entry.attrs  # folded until asked for
    assert "w0 · i1" in entry.kids("summary")[0].text()
    calls = entry.all("details", "txcall")
    # in the order the iteration made them; the agent's call unfolded, the reviewer's folded
    assert [c.attrs["id"] for c in calls] == ["work-it-w0-1-1", "work-it-w0-1-2"]
    assert "open" in calls[0].attrs and "open" not in calls[1].attrs
    assert "worker · claude:opus" in calls[0].kids("summary")[0].text()
    assert "2 tool calls, 2 messages" in calls[0].kids("summary")[0].text()

    items = calls[0].one("ol", "tx").kids("li")
    kinds = [li.attrs["class"] for li in items]
    assert kinds == ["tx-message", "tx-tool", "tx-result", "tx-tool", "tx-result", "tx-message"]
    assert items[0].one("pre").text() == f"Looking at the task. {HOSTILE}"
    # the tool call: its summary line and its input, pretty-printed
    bash = items[1]
    assert bash.one("summary").text() == "Bash: pytest -q"
    assert json.loads(bash.one("pre", "txin").text()) == {
        "command": "pytest -q",
        "description": "run the tests",
    }
    assert items[2].one("pre").text() == "3 passed"
    # a long result is cut, saying how much was left out
    cut = items[4].one("pre").text()
    assert cut == "x" * 2000 + "\n… (3,000 more characters)"
    # the whole log is linked
    hrefs = [a.attrs["href"] for a in calls[0].all("a")]
    assert hrefs == ["commands/w0-i1-worker-1.ndjson"]
    # the iterations table links its row to the entry
    row = root.by_id("it-w0-1")
    assert any(a.attrs.get("href") == "#work-it-w0-1" for a in row.all("a"))
    nav = [a.attrs["href"] for a in root.one("nav").all("a")]
    assert "#work" in nav


def test_errors_and_missing_logs_are_visible(tmp_path):
    run = WorkRun(tmp_path)
    failed = claude_stream(("say", "Trying."), ("fail", "API Error: 529 overloaded"))
    run.iteration([("worker", failed, 1), ("fix", None, 1)], outcome="error")
    _, root = page(run.dir)
    first, second = root.by_id("work-it-w0-1").all("details", "txcall")
    assert "bad" in first.one("span", "txs").classes  # its summary says it holds errors
    errors = [li.one("pre").text() for li in first.all("li") if li.attrs["class"] == "tx-error"]
    # the CLI's error, then the call's failure (from the log's exit event)
    assert errors == ["API Error: 529 overloaded", "exit code 1"]
    # a call whose log is not in the folder: said so, with its failure
    texts = [p.text() for p in second.all("p")]
    assert "Its command log (commands/w0-i1-fix-2.ndjson) is not in this run folder." in texts
    assert "Failed: exit code 1" in texts


def test_a_call_an_iteration_and_the_page_are_capped_saying_what_was_cut(tmp_path):
    run = WorkRun(tmp_path, iterations=2)
    many = claude_stream(*[("say", f"step {k}") for k in range(30)])
    run.iteration([("worker", many, 0), ("fix", many, 0), ("fix", many, 0)])
    run.iteration([("worker", many, 0)], patch=numbered_patch(1, 5))
    caps = WorkCaps(
        transcript=TranscriptCaps(call_entries=10),
        unit_entries=12,
        page_chars=50,
    )
    root = run.section(caps)
    first, second, third = root.by_id("work-it-w0-1").all("details", "txcall")

    # a call: its first three quarters and its last quarter, the cut between them
    items = first.one("ol", "tx").kids("li")
    shown = [li.one("pre").text() for li in items if li.attrs["class"] == "tx-message"]
    assert shown == [f"step {k}" for k in (*range(8), 28, 29)]
    (cut,) = [li for li in items if li.attrs["class"] == "tx-cut"]
    assert cut.one("span", "cut").text() == "20 entries not shown (a call shows at most 10)"
    assert items.index(cut) == 8

    # the iteration's cap: 12 entries in all, so the second call shows 2, the third none
    items = second.one("ol", "tx").kids("li")
    assert [li.one("pre").text() for li in items[:2]] == ["step 0", "step 1"]
    assert (
        items[2]
        .text()
        .endswith("28 entries not shown (the rest of this iteration's cap of 12 entries)")
    )
    assert not third.all("ol")
    note = third.one("p", "cut").text()
    assert note.startswith("Its 30 entries are not shown: the calls before it used this")
    assert third.one("a").attrs["href"] == "commands/w0-i1-fix-3.ndjson"

    # the page's budget (50 characters) is spent by the first iteration: the second is
    # only linked
    later = root.by_id("work-it-w0-2")
    assert not later.all("details", "txcall") and not later.all("pre")
    assert "the page's 50 characters of transcripts and patches are used up" in later.text()
    links = [a.attrs["href"] for a in later.all("a")]
    assert links == ["calls/w0-i2.json", "diffs/w0-i2.patch"]


# --------------------------------------------------------------------------- diffs


def test_a_diff_shows_its_files_hunk_headers_and_added_and_removed_lines(tmp_path):
    run = WorkRun(tmp_path)
    run.iteration([("worker", claude_stream(("say", "ok")), 0)], patch=PATCH)
    text, root = page(run.dir)
    entry = root.by_id("work-it-w0-1")
    assert "diff: 2 files, +2 -3" in entry.kids("summary")[0].text()
    box = entry.one("details", "diffbox")
    assert "open" in box.attrs  # unfolded with its iteration
    files = box.all("div", "pf")
    assert [f.one("div", "pfh").one("b").text() for f in files] == ["src/app.py", "old.txt"]
    lines = [
        (span.attrs["class"], span.text())
        for span in files[0].all("pre")[1].kids("span")  # after the file's header lines
    ]
    assert lines == [
        ("dh", "@@ -1,4 +1,4 @@ def main():"),
        ("dc", " import sys"),
        ("dd", '-print("old")'),
        ("da", '+print("new")'),
        ("da", '+print("<b>bold</b>")'),
        ("dc", " sys.exit(0)"),
        ("dn", "\\ No newline at end of file"),
    ]
    header = files[0].one("pre", "dmeta").text().splitlines()
    assert header[0] == "diff --git a/src/app.py b/src/app.py" and header[-1] == "+++ b/src/app.py"
    # a removed line that reads like a file header stays a line of its hunk
    deleted = [span.text() for span in files[1].all("span", "dd")]
    assert deleted == ["-gone", "--- a line that looks like a header"]
    assert "<b>bold</b>" not in text  # patch text is escaped
    assert box.all("a")[-1].attrs["href"] == "diffs/w0-i1.patch"


def test_a_diff_is_capped_per_file_and_per_patch(tmp_path):
    run = WorkRun(tmp_path)
    cut_note = "[oompa: patch cut at 1048576 characters of 2000000]"
    run.iteration([], patch=numbered_patch(3, 50) + cut_note + "\n")
    root = run.section(WorkCaps(patch=PatchCaps(file_lines=20, patch_lines=30)))
    box = root.by_id("work-it-w0-1").one("details", "diffbox")
    # the summary counts every line, shown or not
    assert "3 files, +150 -0" in box.one("summary").text()
    first, second = box.all("div", "pf")
    # file 1: its hunk header and 19 lines (20 in all), then the cut
    assert len(first.all("pre")[1].kids("span")) == 20
    assert first.one("p", "cut").text() == (
        "… 31 more lines of this file not shown (a file shows at most 20)."
    )
    # file 2: what is left of the patch's 30 lines
    assert len(second.all("pre")[1].kids("span")) == 10
    assert "41 more lines of this file not shown (the patch's 30 are shown)" in second.text()
    cuts = [p.text() for p in box.all("p", "cut")]
    assert cuts[2].startswith("… 1 more file (51 lines) not shown: a patch shows at most 30")
    assert cuts[3] == f"The kept patch itself was cut when the run recorded it: {cut_note}"


def test_parse_patch_names_files_whatever_their_header():
    patch = parse_patch(
        "diff --git a/a.bin b/a.bin\nnew file mode 100644\nindex 0..1\n"
        "Binary files /dev/null and b/a.bin differ\n"
        "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-x\n"
        "diff --git a/old name.txt b/new name.txt\nsimilarity index 100%\n"
        "rename from old name.txt\nrename to new name.txt\n"
    )
    assert [f.path for f in patch.files] == ["a.bin", "gone.py", "new name.txt"]
    assert [(f.added, f.removed) for f in patch.files] == [(0, 0), (0, 1), (0, 0)]
    assert patch.files[0].header[-1] == "Binary files /dev/null and b/a.bin differ"
    plain = parse_patch("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")  # no git header
    assert [f.path for f in plain.files] == ["x"] and plain.files[0].lines[1:] == ["-a", "+b"]


def test_an_iteration_without_calls_or_patch_and_a_run_without_any(tmp_path):
    run = WorkRun(tmp_path)
    run.store.write_iteration(
        {
            "worker-id": "w0",
            "iteration": 1,
            "outcome": "merged",
            "timestamp": iso(10),
            "duration-ms": 9000,
            "task-id": None,
            "recycled-tasks": [],
            "error-snippet": None,
            "review-rounds": 0,
            "metrics": None,
        }
    )
    _, root = page(run.dir)
    section = root.by_id("work")
    assert not section.all("details")
    assert "No iteration left a transcript or a patch" in section.text()


# --------------------------------------------------------------------------- the live page


def test_a_running_run_is_live_and_refreshes_a_finished_one_never(tmp_path):
    run = WorkRun(tmp_path, iterations=3)
    run.iteration([("worker", claude_stream(("say", "ok")), 0)])
    run.meta("running")
    run.heartbeat(12)
    live_at = T0 + timedelta(seconds=15)

    text, root = page(run.dir, now=live_at)
    html = root.one("html")
    assert html.attrs.get("data-live") == "yes"
    refresh = [m for m in root.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert [m.attrs["content"] for m in refresh] == [str(REFRESH_SECONDS)]
    badge = root.by_id("live")
    assert badge.one("b").text() == "Live"
    assert "written 20" in badge.text() and "reloads itself every 5 s" in badge.text()
    assert "Run in progress." in text
    # the CSP still allows no script but the report's own: a refresh is not a script
    (csp,) = [m for m in root.all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp.attrs["content"]

    # a heartbeat gone stale: cut off, not live
    _, root = page(run.dir, now=T0 + timedelta(minutes=10))
    assert not [m for m in root.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert "data-live" not in root.one("html").attrs

    # the run ended: never refreshes, no badge
    run.meta("completed")
    _, root = page(run.dir, now=live_at)
    assert not [m for m in root.all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert not [n for n in root.all() if n.attrs.get("id") == "live"]


def test_a_cycles_calls_are_labelled_with_their_attempt(tmp_path):
    log = CommandLog(tmp_path / "commands" / "w1-c1-sync-3.ndjson")
    log.start(argv=["claude", "-p"], cwd="/p/.w1", role="sync", harness="claude")
    log.output("stdout", claude_stream(("say", "Resolved the conflict.")).encode())
    log.close(**{"exit-code": 0, "duration-ms": 900, "failure": None})
    call = Call(
        role="sync",
        harness="claude",
        model="opus",
        exit_code=0,
        duration_ms=900,
        input_tokens=None,
        output_tokens=None,
        cost_usd=None,
        failure=None,
        log="commands/w1-c1-sync-3.ndjson",
        error=None,
        attempt=2,
    )
    t = read_transcript(tmp_path / "commands" / "w1-c1-sync-3.ndjson")
    box, shown, _ = render_call(call, t, "work-cy-w1-1-3", room=10)
    node = Tree(to_html(box)).root.one("details", "txcall")
    summary = node.kids("summary")[0]
    assert [b.text() for b in summary.kids("b")] == ["a2 ", "sync · claude:opus"]
    assert shown == 1 and node.one("pre").text() == "Resolved the conflict."
