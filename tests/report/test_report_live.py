"""The report of real swarms (the bundled fake CLIs) in headless Chromium: an iteration's
transcripts and diff, opened by a link and styled under the page's own Content-Security-Policy;
and the page a slow swarm leaves while it runs, live and reloading itself, then final.

Chromium is driven over its DevTools pipe (``--remote-debugging-pipe``: JSON messages on file
descriptors 3 and 4, no port, no extra package), so a test reads what the browser made of the
page after its script ran (which ``<details>`` are open, computed colours) and screenshots one
element. ``OOMPA_REPORT_TRANSCRIPT_SCREENSHOT=docs/report-transcript.png`` keeps the
screenshot of an opened transcript and diff for the README."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa import GitRepo
from pytest_oompa.core.config import resolve
from pytest_oompa.engine.swarm import Swarm, SwarmOptions
from pytest_oompa.report import write_report


def find_chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)",
)


class Browser:
    """Headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        assert CHROMIUM is not None
        to_r, to_w = os.pipe()  # we write commands, Chromium reads them on fd 3
        from_r, from_w = os.pipe()  # Chromium writes replies on fd 4

        def on_fds_3_and_4() -> None:
            # dup above 10 first: a pipe end may itself be fd 3 or 4
            a = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        self.out = os.fdopen(to_w, "wb", buffering=0)
        self.inp = os.fdopen(from_r, "rb", buffering=0)
        self.buf = b""
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self.session = attached["sessionId"]
        self.send("Page.enable", self.session)

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            chunk = self.inp.read(1 << 16)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.seq += 1
        command: dict[str, Any] = {"id": self.seq, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        self.out.write(json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self.seq:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def open(self, url: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", self.session, url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._message())

    def eval(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self, selector: str, path: Path, max_height: int = 1400) -> None:
        """A PNG of the element ``selector`` (and 12 px around it)."""
        box = self.eval(
            f"(() => {{const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.width, "
            "r.height]})()"
        )
        x, y, w, h = box
        clip = {
            "x": max(0, x - 12),
            "y": max(0, y - 12),
            "width": w + 24,
            "height": min(h + 24, max_height),
            "scale": 1,
        }
        shot = self.send(
            "Page.captureScreenshot",
            self.session,
            format="png",
            captureBeyondViewport=True,
            clip=clip,
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(EOFError, OSError):  # it may be gone already
            self.send("Browser.close")
        self.proc.wait(timeout=30)
        self.out.close()
        self.inp.close()


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "chromium-profile")
    try:
        yield b
    finally:
        b.close()


# --------------------------------------------------------------------------- transcripts, diff

SLUGIFY_BEFORE = '''"""Slugs for titles."""


def slugify(title):
    return title.lower().replace(" ", "-")
'''
SLUGIFY_AFTER = '''"""Slugs for titles."""

import re
import unicodedata


def slugify(title: str) -> str:
    """``"Crème Brûlée!"`` -> ``"creme-brulee"``."""
    ascii_only = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only.lower()).strip("-")
'''
SLUGIFY_TEST = """from app.slugify import slugify


def test_accents_and_punctuation():
    assert slugify("Crème Brûlée!") == "creme-brulee"
"""


def run_demo_swarm(tmp_path: Path) -> Path:
    """Two workers with the fake CLIs: w0 (claude) changes a module, its review asks for a test
    and its fix adds one; w1 (codex) merges a change of its own."""
    repo = GitRepo(tmp_path / "project")
    repo.write("app/slugify.py", SLUGIFY_BEFORE)
    repo.add_task("t1", summary="slugify: fold accents, drop punctuation")
    repo.add_task("t2", summary="docs: say what a slug is")
    repo.commit("seed")
    scenario = {
        "workers": {
            "w0": {
                "worker": {
                    "say": "slugify() now folds accents and drops punctuation.",
                    "claim": "t1",
                    "write": {"app/slugify.py": SLUGIFY_AFTER},
                    "shell": "grep -n 'def ' app/slugify.py",
                    "commit": "slugify: fold accents, drop punctuation",
                    "merge": True,
                },
                "fix": {
                    "say": "Added the test.",
                    "write": {"tests/test_slugify.py": SLUGIFY_TEST},
                    "commit": "slugify: a test",
                },
                "reviewer": [
                    {"say": "- add a test for accented input", "verdict": "needs-changes"},
                    {"say": "Looks good.", "verdict": "approved"},
                ],
            },
            "w1": {
                "worker": {
                    "say": "Documented slugs.",
                    "claim": "t2",
                    "write": {"docs/slugs.md": "# Slugs\n\nLower case, ASCII, dashes.\n"},
                    "commit": "docs: slugs",
                    "merge": True,
                }
            },
        }
    }
    folder = tmp_path / "swarm"
    folder.mkdir()
    (folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
    data = {
        "probe": False,
        "executor_wait": 0,
        "fake_harnesses": {"scenario": "scenario.json"},
        "reviewer": {"model": "claude:sonnet"},
        "workers": [
            {"model": "claude:opus", "iterations": 1},
            {"model": "codex:gpt-5.3-codex:medium", "iterations": 1},
        ],
    }
    config_path = folder / "oompa.json"
    config_path.write_text(json.dumps(data), encoding="utf-8")
    config = resolve(data, config_path, ("claude", "codex"))
    swarm = Swarm(
        config,
        SwarmOptions(
            runs_dir=tmp_path / "runs",
            repo_root=repo.path,
            env={"OOMPA_FAKE_STATE": str(folder / "fake-state")},
        ),
    )
    swarm.prepare()
    swarm.start()
    assert swarm.wait(timeout=60), "the swarm did not end"
    finalize = getattr(swarm, "finalize", None)
    if finalize is not None:
        finalize()
    return swarm.run_dir


def test_a_link_opens_an_iterations_transcripts_and_diff(tmp_path, browser):
    run_dir = run_demo_swarm(tmp_path)
    url = write_report(run_dir).as_uri()
    browser.open(f"{url}#work-it-w0-1")
    facts = browser.eval(
        """(() => {
        const entry = document.getElementById("work-it-w0-1");
        const calls = [...entry.querySelectorAll("details.txcall")];
        const added = entry.querySelector("pre.diff span.da");
        return {
          js: document.documentElement.dataset.js,
          open: entry.open,
          top: Math.round(entry.getBoundingClientRect().top),
          diffOpen: entry.querySelector("details.diffbox").open,
          files: [...entry.querySelectorAll(".pfh b")].map(b => b.textContent),
          hunks: [...entry.querySelectorAll("span.dh")].map(s => s.textContent),
          added: [...entry.querySelectorAll("span.da")].map(s => s.textContent),
          removed: [...entry.querySelectorAll("span.dd")].map(s => s.textContent),
          addedColour: getComputedStyle(added).backgroundColor,
          calls: calls.map(c => [c.querySelector("summary").textContent, c.open]),
          tools: [...entry.querySelectorAll("li.tx-tool summary")].map(s => s.textContent),
          inputs: [...entry.querySelectorAll("li.tx-tool pre.txin")].map(p => p.textContent),
          live: document.getElementById("live") !== null,
          refresh: document.querySelector('meta[http-equiv="refresh"]') !== null,
        };
        })()"""
    )
    assert facts["js"] == "ready"  # the script ran under the page's CSP
    # the link unfolded the entry and scrolled to it; its diff and the agents' calls are open
    assert facts["open"] is True and facts["diffOpen"] is True
    assert 0 <= facts["top"] < 50
    assert facts["files"] == ["app/slugify.py", "tests/test_slugify.py"]
    assert facts["hunks"][0].startswith("@@ -1,5 +1,10 @@")
    assert '    return title.lower().replace(" ", "-")' in [r[1:] for r in facts["removed"]]
    assert "+def test_accents_and_punctuation():" in facts["added"]
    assert facts["addedColour"] == "rgb(218, 251, 225)"  # .da from the inlined stylesheet
    roles = [(summary.split(" · ")[0], is_open) for summary, is_open in facts["calls"]]
    assert roles == [("worker", True), ("reviewer", False), ("fix", True), ("reviewer", False)]
    assert "Write app/slugify.py" in facts["tools"]
    assert any("Bash: grep -n 'def ' app/slugify.py" in t for t in facts["tools"])
    assert any('"file_path"' in i and "unicodedata" in i for i in facts["inputs"])
    assert facts["live"] is False and facts["refresh"] is False  # a finished run
    shot = tmp_path / "report-transcript.png"
    browser.screenshot("#work-it-w0-1", shot, max_height=1500)
    assert shot.stat().st_size > 20_000
    if os.environ.get("OOMPA_REPORT_TRANSCRIPT_SCREENSHOT"):
        shutil.copy(shot, os.environ["OOMPA_REPORT_TRANSCRIPT_SCREENSHOT"])


# --------------------------------------------------------------------------- a mid-run snapshot


def test_a_page_written_mid_run_is_live_and_the_final_page_is_not(tmp_path, browser):
    project = GitRepo(tmp_path / "project")
    slow = {"builtin": True, "delay": 3}
    project.add_swarm_config(
        {
            "probe": False,
            "executor_wait": 0,
            "workers": [{"model": "claude:opus", "iterations": 3}],
        },
        {"workers": {"w0": {"worker": slow}}},
        ("t1", "t2", "t3"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--oompa-swarm=oompa.json", "-p", "no:cacheprovider"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        report = None
        deadline = time.monotonic() + 60
        while report is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            found = next((project.path / "runs").glob("*/report.html"), None)
            # a page that shows an ended iteration (one is written as soon as files change)
            if found is not None and '<details class="work"' in found.read_text("utf-8"):
                report = found
        assert report is not None and proc.poll() is None, "no report.html while the run went on"
        browser.open(report.as_uri())
        during = browser.eval(LIVE_FACTS)
        # the reader opens an iteration; the page reloads itself and keeps it open
        loaded = browser.eval(OPEN_FIRST)
        deadline = time.monotonic() + 15
        while browser.eval("performance.timeOrigin") == loaded and time.monotonic() < deadline:
            time.sleep(0.25)
        reloaded = browser.eval("performance.timeOrigin") != loaded
        still_open = browser.eval('document.querySelector("details.work").open')
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]
    assert during["js"] == "ready"
    assert during["refresh"] == "5"
    assert during["badge"].startswith("Live · written ") and during["badgeShown"]
    assert during["status"] == "running"
    assert reloaded, "the live page did not reload itself"
    assert still_open is True  # kept across the reload (sessionStorage)
    browser.open(report.as_uri())
    after = browser.eval(LIVE_FACTS)
    assert after["refresh"] is None and after["badge"] is None
    assert after["status"] == "completed"
    assert after["bars"] == 3


OPEN_FIRST = """(() => {
  document.querySelector("details.work").open = true;
  return performance.timeOrigin;
})()"""
LIVE_FACTS = """(() => {
  const meta = document.querySelector('meta[http-equiv="refresh"]');
  const badge = document.getElementById("live");
  return {
    js: document.documentElement.dataset.js,
    refresh: meta ? meta.content : null,
    badge: badge ? badge.textContent : null,
    badgeShown: badge ? badge.getBoundingClientRect().height > 0 : false,
    status: document.querySelector("h1 .status").textContent,
    bars: document.querySelectorAll("a.bar[data-worker]").length,
  };
})()"""
