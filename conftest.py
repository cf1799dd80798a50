"""Test-suite wide setup. The plugin itself (and its fixtures) load through the pytest11 entry
point of the installed package; this file only keeps the environment of one test from leaking
into another."""

from __future__ import annotations

# Import hypothesis's observability module once here: hypothesis's pytest plugin imports it
# in its terminal summary, and every in-process pytester run would otherwise pay ~3 s for
# re-importing (and assertion-rewriting) it where PYTHONDONTWRITEBYTECODE is set.
import hypothesis.internal.observability  # noqa: F401
import pytest

OOMPA_ENV = (
    "OOMPA_RUNS_DIR",
    "RUNS_DIR",
    "OOMPA_FAKE_SCENARIO",
    "OOMPA_FAKE_LOG",
    "OOMPA_FAKE_STATE",
    "OOMPA_FAKE_CASSETTE",
    # On GitHub Actions every pytester swarm would append to the job's real summary and
    # print ::error lines of its own (plugin/ci_output.py).
    "GITHUB_STEP_SUMMARY",
    "GITHUB_ACTIONS",
)


@pytest.fixture(autouse=True)
def _no_inherited_oompa_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OOMPA_ENV:
        monkeypatch.delenv(name, raising=False)
