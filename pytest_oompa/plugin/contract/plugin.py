"""``--oompa-contract=NAME[:MODEL][,…]``: collect the harness contract suite for these
harnesses. With no paths on the command line only the suite is collected (as with
``--oompa-swarm``); with paths, or from the ``oompa_contract`` ini value, it runs beside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_oompa.plugin.contract import CHECKS_PATH
from pytest_oompa.plugin.real_harness import selected_real_harnesses
from pytest_oompa.plugin.registry import registry_for
from pytest_oompa.plugin.stash import SESSION_KEY

if TYPE_CHECKING:
    from pytest_oompa.harnesses.registry import HarnessRegistry

OPTION = "--oompa-contract"
MARKER = "oompa_contract"
NODE_ID = "pytest_oompa/contract/checks.py"


@dataclass(frozen=True)
class Target:
    """One harness the suite checks, and against what: its fake or the real CLI."""

    harness: str
    model: str
    kind: str  # "fake" | "real"

    def __str__(self) -> str:
        return f"{self.harness}-{self.kind}"


TARGETS_KEY = pytest.StashKey[list[Target]]()


def parse_targets(text: str, registry: HarnessRegistry, real: list[str]) -> list[Target]:
    """``claude,opencode:fake/fake-model`` -> a fake target per name (and a real one for the
    names in ``real``). A model after the first ``:``; without one, a default model."""
    targets: list[Target] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, model = part.partition(":")
        known = registry.names()
        if name not in known:
            raise pytest.UsageError(
                f"oompa: {OPTION}: unknown harness {name!r} (known: {', '.join(known)}; "
                "a plugin or conftest.py adds one with pytest_oompa_register_harnesses)"
            )
        model = model or registry.get(name).default_model
        targets.append(Target(name, model, "fake"))
        if name in real:
            targets.append(Target(name, model, "real"))
    return targets


@pytest.hookimpl(trylast=True)  # after the swarm plugin, which may have replaced config.args
def pytest_configure(config: pytest.Config) -> None:
    from_option = config.getoption("oompa_contract")
    text = from_option or str(config.getini("oompa_contract") or "")
    if not text.strip():
        return
    registry = registry_for(config)
    targets = parse_targets(text, registry, selected_real_harnesses(config))
    if not targets:
        return
    config.stash[TARGETS_KEY] = targets
    checks = str(CHECKS_PATH)
    only = (
        from_option
        and config.args_source is not pytest.Config.ArgsSource.ARGS
        and SESSION_KEY not in config.stash
    )
    if only:
        config.args = [checks]
    elif checks not in config.args:
        config.args.append(checks)


def pytest_report_header(config: pytest.Config) -> str | None:
    targets = config.stash.get(TARGETS_KEY, None)
    if not targets:
        return None
    shown = ", ".join(f"{t.harness}:{t.model} ({t.kind})" for t in targets)
    return f"oompa contract: {shown}"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    """The suite's module, with a stable node id wherever the package is installed (outside
    the rootdir pytest would give it an empty one)."""
    if module_path.resolve() != CHECKS_PATH:
        return None
    module: pytest.Module = pytest.Module.from_parent(parent, path=module_path, nodeid=NODE_ID)
    return module
