"""The plugin's fixtures, for harness authors and for this project's own tests.

- ``oompa_repo``: a throwaway git repository with ``main`` (``GitRepo``);
  ``@pytest.mark.oompa_repo(template=..., tasks=[...], files={...})`` seeds it, and
  ``oompa_repo_factory`` makes more of them.
- ``oompa_swarm``: runs a swarm in process against such a repo (with the bundled fake
  harnesses unless told otherwise) and returns a ``SwarmRun``. Harnesses registered through
  ``pytest_oompa_register_harnesses`` and ``pytest_oompa_harness_command`` apply; with the
  ``fake_harness`` fixture in the same test, the swarm shares its scenario, state and log.
- ``fake_harness``: the bundled fakes first on ``PATH`` for one test (``FakeHarness``).
- ``real_harness``: a real CLI, opt-in with ``--oompa-real-harness=NAME[,NAME]``, else skipped
  with the reason (``RealHarness``).
- ``oompa_harness_registry``: the harness registry as a swarm of this session sees it.
- ``fake_model_api`` and ``oompa_model_api``: the loopback fake model API.

pytest loads this module in every run, so it holds only the declarations: each fixture imports
what it needs (the engine, the fakes, the fake model API) when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oompa.plugin.stash import FAKE_HARNESS_KEY

if TYPE_CHECKING:
    from pytest_oompa.harnesses.registry import HarnessRegistry
    from pytest_oompa.harnesses.spec import HarnessCommand
    from pytest_oompa.offline.fake_api import FakeModelAPI
    from pytest_oompa.plugin.fake_harness import FakeHarness
    from pytest_oompa.plugin.git_repo import GitRepo
    from pytest_oompa.plugin.real_harness import ModelAPI, RealHarness
    from pytest_oompa.plugin.swarm_runner import SwarmRun


@pytest.fixture
def oompa_repo(request: pytest.FixtureRequest, tmp_path: Path) -> GitRepo:
    """A throwaway git repository on ``main`` with one commit; seeded by
    ``@pytest.mark.oompa_repo(template=..., tasks=[...], files={...})``."""
    from pytest_oompa.plugin.git_repo import GitRepo, seed_from_marker

    repo = GitRepo(tmp_path / "project")
    seed_from_marker(repo, request)
    return repo


@pytest.fixture
def oompa_repo_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., GitRepo]:
    """``oompa_repo_factory(template=None, tasks=(), files=None, name=None)``: another
    throwaway repository on ``main``, seeded (a relative template is relative to the test
    file)."""
    from pytest_oompa.plugin.git_repo import GitRepo

    count = 0

    def make(
        template: str | Path | None = None,
        tasks: Iterable[str | Mapping[str, Any]] = (),
        files: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> GitRepo:
        nonlocal count
        count += 1
        repo = GitRepo(tmp_path / (name or f"repo-{count}"))
        if template is not None and not Path(template).is_absolute():
            template = request.path.parent / template
        if template is not None or tasks or files:
            repo.seed(template, tasks, files)
        return repo

    return make


@pytest.fixture
def oompa_swarm(
    request: pytest.FixtureRequest, tmp_path: Path, oompa_repo: GitRepo
) -> Callable[..., SwarmRun]:
    """``oompa_swarm(config_dict, scenario=..., prompts=...)`` runs a swarm on ``oompa_repo``
    with the bundled fake harnesses and returns a ``SwarmRun``."""
    from pytest_oompa.plugin.registry import registry_for
    from pytest_oompa.plugin.swarm_runner import SwarmRunner

    hook = request.config.hook

    def adjust(command: HarnessCommand, role: str) -> HarnessCommand:
        adjusted: HarnessCommand | None = hook.pytest_oompa_harness_command(
            command=command, role=role
        )
        return adjusted or command

    registry = registry_for(request.config)
    return SwarmRunner(tmp_path, oompa_repo, registry, adjust_command=adjust, node=request.node)


@pytest.fixture
def oompa_harness_registry(request: pytest.FixtureRequest) -> HarnessRegistry:
    """The harness registry a swarm of this session uses: the built-in entries plus what
    ``pytest_oompa_register_harnesses`` implementations (plugins, conftest.py) add."""
    from pytest_oompa.plugin.registry import registry_for

    return registry_for(request.config)


@pytest.fixture
def fake_harness(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    oompa_harness_registry: HarnessRegistry,
) -> Iterator[FakeHarness]:
    """The bundled fake claude/codex/opencode/gemini first on ``PATH`` for this test, with a
    state folder, an invocation log and a scenario of its own (``OOMPA_FAKE_*`` are set, so
    any subprocess of the test uses them). ``oompa_swarm`` in the same test shares them."""
    from pytest_oompa.plugin.fake_harness import FakeHarness

    harness = FakeHarness(tmp_path / "fake-harness", monkeypatch, oompa_harness_registry)
    request.node.stash[FAKE_HARNESS_KEY] = harness
    yield harness
    del request.node.stash[FAKE_HARNESS_KEY]


@pytest.fixture
def real_harness(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    oompa_harness_registry: HarnessRegistry,
) -> RealHarness:
    """A real CLI and its version; opt-in with ``--oompa-real-harness=NAME[,NAME]``.

    Parametrize it by name (``@pytest.mark.parametrize("real_harness", ["claude"],
    indirect=True)``); unparametrized, a test runs once per selected name. A CLI that is not
    selected, not installed or broken skips the test with the reason."""
    from pytest_oompa.harnesses.real_clis import NAMES
    from pytest_oompa.plugin.real_harness import REAL_ALL, REAL_OPTION, real_harness_for

    name = getattr(request, "param", None)
    if name is None:
        pytest.skip(
            f"no real harness selected: run with {REAL_OPTION}=NAME[,NAME] "
            f"({', '.join(NAMES)} or {REAL_ALL})"
        )
    return real_harness_for(
        request.config, str(name), tmp_path / "real-home", oompa_harness_registry
    )


@pytest.fixture
def fake_model_api(tmp_path: Path) -> Iterator[FakeModelAPI]:
    """The loopback fake model API (``pytest_oompa.offline.fake_api``), started for the test:
    script it with ``fake_model_api.script(match, replies)``, point real CLIs at it with
    ``fake_model_api.environment(home)``, read ``fake_model_api.requests`` afterwards."""
    from pytest_oompa.offline.fake_api import FakeModelAPI

    with FakeModelAPI(log_path=tmp_path / "model-api.jsonl") as api:
        yield api


@pytest.fixture
def oompa_model_api(pytestconfig: pytest.Config) -> Iterator[ModelAPI | None]:
    """The model API the real CLIs' model checks talk to: with --oompa-fake-api, the loopback
    fake model API, scripted by each check; else None, and those checks skip with the reason.
    A conftest.py may override it with another API."""
    if not pytestconfig.getoption("oompa_fake_api"):
        yield None
        return
    from pytest_oompa.offline.fake_api import FakeModelAPI

    with FakeModelAPI() as api:
        yield api.as_model_api()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """An unparametrized ``real_harness`` runs once per name selected on the command line."""
    if "real_harness" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "real_harness" in names:
            return
    from pytest_oompa.plugin.real_harness import selected_real_harnesses

    selected = selected_real_harnesses(metafunc.config)
    if selected:
        metafunc.parametrize("real_harness", selected, indirect=True, ids=selected)
