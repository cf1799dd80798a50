"""The real agent CLIs: where they are installed, their versions, and how to point each one at the
loopback fake model API (``pytest_oompa.offline.fake_api``) and nothing else.

- ``find(name)`` looks for a real CLI (never one of the bundled fakes) in a configured folder,
  the install cache of ``.ci/install-clis``, then ``PATH``, and reads its ``--version``; the
  result says why it cannot be used when it cannot (the skip reason).
- ``RECIPES`` (each registry entry's ``recipe``) holds, per harness, as data, the environment
  and config files that send the CLI to a base URL on 127.0.0.1 with telemetry, update checks
  and retries off; ``environment()`` applies them into a private HOME. The facts come from
  SPEC-harnesses.md and were checked against the pinned versions of the registry entries.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from pytest_oompa.harnesses.registry import BUILTIN_HARNESSES
from pytest_oompa.harnesses.spec import Recipe, fill

if TYPE_CHECKING:
    from pytest_oompa.harnesses.spec import HarnessCommand

# The pinned packages and versions, from the registry entries. Keep in step with
# .ci/install-clis (a test compares them).
PINNED: Mapping[str, tuple[str, str]] = MappingProxyType(
    {s.name: (s.real.package, s.real.version) for s in BUILTIN_HARNESSES if s.real is not None}
)
NAMES = tuple(PINNED)
DIR_ENV = "OOMPA_CLIS_DIR"  # the install folder (.ci/install-clis DIR), or its bin folder
VERSION_TIMEOUT = 60.0
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.-]+)?")


def default_install_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pytest-oompa" / "clis"


def install_bin_dirs(configured: str | Path | None = None) -> list[Path]:
    """Folders to look in before PATH: the configured one (``OOMPA_CLIS_DIR`` or an argument;
    either the install folder or a bin folder) and the default install cache."""
    folders: list[Path] = []
    for base in (configured, os.environ.get(DIR_ENV), default_install_dir()):
        if not base:
            continue
        base = Path(base).expanduser()
        for candidate in (base / "node_modules" / ".bin", base):
            if candidate.is_dir() and candidate not in folders:
                folders.append(candidate)
    return folders


def is_fake(path: Path) -> bool:
    """One of pytest-oompa's bundled fake harnesses (or a wrapper starting one)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"_fake" in head


@dataclass(frozen=True)
class RealCLI:
    """A real CLI found on this machine, or why there is none usable."""

    name: str
    path: Path | None = None
    version: str | None = None
    skip_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.path is not None and self.skip_reason is None

    @property
    def bin_dir(self) -> Path:
        assert self.path is not None, self.skip_reason
        return self.path.parent

    @property
    def pinned(self) -> str:
        return PINNED[self.name][1] if self.name in PINNED else ""


def which_real(name: str, folders: Sequence[Path] = (), path: str | None = None) -> Path | None:
    """The first executable ``name`` that is not a fake: the folders, then PATH."""
    search = [str(f) for f in folders]
    search += (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep)
    for folder in search:
        if not folder:
            continue
        found = shutil.which(name, path=folder)
        if found and not is_fake(Path(found)):
            return Path(found)
    return None


def read_version(binary: Path, timeout: float = VERSION_TIMEOUT) -> str:
    """``binary --version``, run in a throwaway HOME and folder; raises RuntimeError."""
    with tempfile.TemporaryDirectory(prefix="oompa-version-") as tmp:
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": tmp, "XDG_DATA_HOME": tmp}
        env.update({"XDG_STATE_HOME": tmp, "XDG_CACHE_HOME": tmp, "CODEX_HOME": tmp})
        env.update(NO_NETWORK_EXTRAS)
        try:
            proc = subprocess.run(
                [str(binary), "--version"],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{binary} --version failed: {exc}") from None
    found = _VERSION.search(proc.stdout)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        raise RuntimeError(f"{binary} --version exited {proc.returncode}: {tail}")
    return found.group(0)


def find(
    name: str,
    configured: str | Path | None = None,
    *,
    path: str | None = None,
    require_pinned: bool = False,
) -> RealCLI:
    """Find the real CLI ``name`` and its version, or the reason it cannot be used."""
    folders = install_bin_dirs(configured)
    binary = which_real(name, folders, path)
    if binary is None:
        places = [str(p) for p in (configured, os.environ.get(DIR_ENV)) if p]
        places = list(dict.fromkeys([*places, str(default_install_dir())]))
        return RealCLI(
            name,
            skip_reason=f"the real {name!r} CLI is not installed (looked in "
            f"{', '.join(places)} and PATH; install the pinned CLIs with .ci/install-clis)",
        )
    try:
        version = read_version(binary)
    except RuntimeError as exc:
        return RealCLI(name, binary, skip_reason=str(exc))
    if require_pinned and name in PINNED and version != PINNED[name][1]:
        return RealCLI(
            name,
            binary,
            version,
            skip_reason=f"{binary} is {name} {version}, not the pinned {PINNED[name][1]}",
        )
    return RealCLI(name, binary, version)


@functools.cache
def find_cached(name: str, configured: str | None = None) -> RealCLI:
    """``find`` once per process (``--version`` costs up to ~2 s for gemini)."""
    return find(name, configured)


# ----------------------------------------------------------------------------------------------
# Environment recipes: each real CLI against a base URL on 127.0.0.1, and nothing else
# ----------------------------------------------------------------------------------------------

# Placeholders in recipe values and files: {base_url} (http://127.0.0.1:PORT), {home}.
NO_NETWORK_EXTRAS: Mapping[str, str] = MappingProxyType(
    {
        "DO_NOT_TRACK": "1",
        "NO_UPDATE_NOTIFIER": "1",
    }
)


# The built-in CLIs' fake-API recipes, from their registry entries.
RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {s.name: s.recipe for s in BUILTIN_HARNESSES if s.recipe is not None}
)

# Shared by every recipe: a private HOME and XDG dirs, and a git identity for the agent's
# commits, in the environment too: gemini runs its shell tool with GIT_CONFIG_GLOBAL=/dev/null.
_COMMON_ENV: Mapping[str, str] = MappingProxyType(
    {
        "HOME": "{home}",
        "XDG_CONFIG_HOME": "{home}/.config",
        "XDG_DATA_HOME": "{home}/.local/share",
        "XDG_STATE_HOME": "{home}/.local/state",
        "XDG_CACHE_HOME": "{home}/.cache",
        # gemini writes an error report file into the temporary folder on every API error.
        "TMPDIR": "{home}/tmp",
        "GIT_AUTHOR_NAME": "oompa real-cli test",
        "GIT_AUTHOR_EMAIL": "real-cli@oompa.invalid",
        "GIT_COMMITTER_NAME": "oompa real-cli test",
        "GIT_COMMITTER_EMAIL": "real-cli@oompa.invalid",
        **NO_NETWORK_EXTRAS,
    }
)
_GITCONFIG = """\
[user]
\tname = oompa real-cli test
\temail = real-cli@oompa.invalid
[commit]
\tgpgsign = false
[init]
\tdefaultBranch = main
"""


def environment(
    base_url: str, home: Path, harnesses: Iterable[str] | None = None
) -> dict[str, str]:
    """The environment for the given harnesses (default: all four) against ``base_url``,
    with their config files written under ``home``. The recipes do not conflict, so one
    environment serves a swarm that mixes CLIs."""
    home = Path(home)
    names = list(harnesses) if harnesses is not None else list(RECIPES)
    env = {k: fill(v, base_url, home) for k, v in _COMMON_ENV.items()}
    files = {".gitconfig": _GITCONFIG}
    for name in names:
        recipe_env, recipe_files = RECIPES[name].render(base_url, home)
        env.update(recipe_env)
        files.update(recipe_files)
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = home / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return env


def path_with(bin_dirs: Iterable[Path], path: str | None = None) -> str:
    """PATH with the given folders first."""
    rest = path if path is not None else os.environ.get("PATH", "")
    return os.pathsep.join([*(str(d) for d in bin_dirs), rest])


def real_environment(
    clis: Iterable[RealCLI], base_url: str, home: Path, path: str | None = None
) -> dict[str, str]:
    """Everything a swarm or a test needs to run these real CLIs against the fake API at
    ``base_url``: the recipes' environment (files written under ``home``) and PATH with the
    CLIs' folders first."""
    found = [c for c in clis if c.available]
    env = environment(base_url, home, [c.name for c in found])
    folders = list(dict.fromkeys(c.bin_dir for c in found))
    env["PATH"] = path_with(folders, path)
    return env


def set_pwd(command: HarnessCommand, role: str) -> HarnessCommand:
    """An ``adjust_command`` that sets ``PWD`` to the call's working directory: opencode works
    in ``$PWD`` when it is set, not in its process's cwd, and a harness call inherits the
    PWD of the process that started the swarm."""
    return dataclasses.replace(command, env={**command.env, "PWD": str(command.cwd)})
