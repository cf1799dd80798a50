"""The real agent CLIs as a test sees them: which ones this session may use
(``--oompa-real-harness``), finding each once (``real_clis.find``: a configured folder, the
install cache, then ``PATH``), ``RealHarness`` (one CLI run in a throwaway HOME), and the
``ModelAPI`` protocol a real CLI's model checks talk to.

The ``real_harness`` and ``oompa_model_api`` fixtures are in ``fixtures.py``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from pytest_oompa.harnesses import real_clis
from pytest_oompa.harnesses.registry import BASE_ENV, HarnessRegistry, env_matches
from pytest_oompa.harnesses.spec import HarnessSpec

REAL_OPTION = "--oompa-real-harness"
REAL_ALL = "all"

_REAL_CACHE = pytest.StashKey[dict[str, real_clis.RealCLI]]()


def selected_real_harnesses(config: pytest.Config) -> list[str]:
    """The names given to ``--oompa-real-harness`` (``all``: the four built-in CLIs)."""
    raw = config.getoption("oompa_real_harness", None) or ""
    names: list[str] = []
    for part in str(raw).split(","):
        name = part.strip()
        if name == REAL_ALL:
            names += [n for n in real_clis.NAMES if n not in names]
        elif name and name not in names:
            names.append(name)
    return names


def find_real(config: pytest.Config, binary: str) -> real_clis.RealCLI:
    """``real_clis.find`` once per session and binary (reading a version takes a second)."""
    cache = config.stash.setdefault(_REAL_CACHE, {})
    if binary not in cache:
        cache[binary] = real_clis.find(binary, config.getoption("oompa_real_harness_dir"))
    return cache[binary]


def real_skip_reason(config: pytest.Config, name: str) -> str | None:
    """Why the real ``name`` is not used in this session, or None when it is selected."""
    if name not in selected_real_harnesses(config):
        return (
            f"the real {name!r} CLI is not selected: run with {REAL_OPTION}={name} "
            f"(or {REAL_OPTION}={REAL_ALL})"
        )
    return None


class ModelAPI(Protocol):
    """A model API a real CLI can be pointed at (the loopback model API), for the checks
    that need a model. ``oompa_model_api`` returns one, or None."""

    def environment(self, harness: str, home: Path) -> Mapping[str, str]:
        """Variables (and files written under ``home``) that send ``harness`` to this API."""
        ...

    def script(self, match: str, replies: Sequence[ModelReply]) -> None:
        """Answer the conversation whose first prompt contains ``match`` with ``replies``,
        one per call (a resumed session continues with the next one)."""
        ...


@dataclass(frozen=True)
class ModelReply:
    """What the model answers in one call: files its agent writes (relative to its working
    directory, with the CLI's own tool) and then the reply text."""

    text: str
    writes: Mapping[str, str] = field(default_factory=dict)


NEEDS_MODEL = "needs a model API (see the loopback model API)"


@dataclass
class RealHarness:
    """A real CLI found on this machine, run in a throwaway HOME (no credentials, no user
    config) unless told otherwise."""

    name: str
    path: Path
    version: str
    home: Path
    spec: HarnessSpec | None = None

    @property
    def bin_dir(self) -> Path:
        return self.path.parent

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """PATH (this CLI's folder first), locale, proxies and certificates from this process;
        HOME and the XDG folders in the throwaway HOME; the registry entry's ``env``; then
        ``extra``. API keys and tokens of this process are not passed."""
        keep = tuple(p for p in BASE_ENV if p not in ("HOME", "XDG_*"))
        env = {k: v for k, v in os.environ.items() if env_matches(k, keep)}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")])
        env["HOME"] = str(self.home)
        for var, rel in (
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_CACHE_HOME", ".cache"),
        ):
            (self.home / rel).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / rel)
        if self.spec is not None:
            env.update(self.spec.env)
        env.update(extra or {})
        return env

    def run(
        self,
        *argv: str,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI with ``argv`` (stdin closed unless ``input`` is given)."""
        folder = Path(cwd) if cwd is not None else self.home
        return subprocess.run(
            [str(self.path), *argv],
            cwd=folder,
            env={"PWD": str(folder), **self.env(env)},
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def real_harness_for(
    config: pytest.Config, name: str, home: Path, registry: HarnessRegistry | None = None
) -> RealHarness:
    """The real ``name`` for a test, or ``pytest.skip`` with the reason."""
    reason = real_skip_reason(config, name)
    if reason:
        pytest.skip(reason)
    spec = registry.get(name) if registry is not None and name in registry.names() else None
    found = find_real(config, spec.binary if spec is not None else name)
    if not found.available:
        pytest.skip(found.skip_reason or f"the real {name!r} CLI is not usable")
    assert found.path is not None and found.version is not None
    home.mkdir(parents=True, exist_ok=True)
    return RealHarness(name, found.path, found.version, home, spec)
