"""``oompa check``: which harness CLIs this machine can run, real ones and the bundled fakes.

For each entry of the harness registry, the real CLI is looked for the way the real-CLI tier
and swarms look for it (``pytest_oompa.harnesses.real_clis.find``: ``OOMPA_CLIS_DIR``, the
``.ci/install-clis`` cache, then ``PATH``, never a fake) and asked its ``--version``. Copies of
the bundled fakes on ``PATH`` are listed too, marked as fakes: a fake first on ``PATH`` answers a
bare ``claude`` with canned replies, which is worth knowing before starting a real swarm.
Harnesses a plugin registers through pytest's hook are not seen here (no pytest session).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pytest_oompa.cli.command import Command
from pytest_oompa.harnesses.real_clis import find, is_fake
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import HarnessSpec
from pytest_oompa.runs.reader import format_table

__all__ = ["CHECK", "Found", "fakes_on_path", "survey"]


@dataclass(frozen=True)
class Found:
    """One harness binary found, or the note that there is none."""

    harness: str
    kind: str  # real | fake | unusable | missing
    path: str | None = None
    version: str | None = None
    pinned: str | None = None
    note: str | None = None


def fakes_on_path(binary: str, path: str | None = None) -> list[Path]:
    """Every bundled fake called ``binary`` on PATH, in PATH order."""
    search = (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep)
    found: list[Path] = []
    for folder in filter(None, search):
        hit = shutil.which(binary, path=folder)
        if hit and is_fake(Path(hit)) and Path(hit) not in found:
            found.append(Path(hit))
    return found


def _survey_one(spec: HarnessSpec) -> list[Found]:
    pinned = spec.real.version if spec.real is not None else None
    real = find(spec.binary)
    rows: list[Found] = []
    if real.available:
        note = None
        if pinned and real.version != pinned:
            note = f"{spec.name} {real.version} is not the pinned {pinned}"
        rows.append(Found(spec.name, "real", str(real.path), real.version, pinned, note))
    elif real.path is not None:  # found, but its --version failed
        rows.append(Found(spec.name, "unusable", str(real.path), None, pinned, real.skip_reason))
    first = shutil.which(spec.binary)
    for fake in fakes_on_path(spec.binary):
        note = "the bundled fake (canned replies, for tests)"
        if first is not None and Path(first) == fake:
            note += f"; a bare '{spec.binary}' runs this one"
        rows.append(Found(spec.name, "fake", str(fake), note=note))
    if not rows:
        rows.append(Found(spec.name, "missing", None, None, pinned, real.skip_reason))
    return rows


def survey(registry: HarnessRegistry | None = None) -> list[Found]:
    """What this machine has, per registry entry, in the registry's order."""
    specs = registry if registry is not None else HarnessRegistry()
    return [row for spec in specs for row in _survey_one(spec)]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_check(args: argparse.Namespace) -> int:
    found = survey()
    real = sorted({f.harness for f in found if f.kind == "real"})
    if args.json:
        print(json.dumps([f.__dict__ for f in found], indent=2))
    else:
        rows = [("harness", "kind", "version", "pinned", "path")]
        rows += [
            (f.harness, f.kind, f.version or "-", f.pinned or "-", f.path or "-") for f in found
        ]
        print(format_table(rows))
        notes = [f"{f.harness} ({f.kind}): {f.note}" for f in found if f.note]
        if notes:
            print("\n" + "\n".join(notes))
        names = len({f.harness for f in found})
        listed = ", ".join(real) if real else "none"
        print(f"\nreal harness CLIs available: {len(real)} of {names} ({listed})")
    return 0 if real else 1


CHECK = Command(
    name="check",
    summary="list the harness CLIs available on this machine (real ones and fakes)",
    description="For each harness of the registry (claude, codex, opencode, gemini): the real "
    "CLI found (OOMPA_CLIS_DIR, the .ci/install-clis cache, then PATH) and its version, "
    "against the pinned one; copies of the bundled fakes on PATH, marked 'fake'. "
    "Exit status 1 when no real harness CLI is available.",
    configure=_configure,
    run=run_check,
)
