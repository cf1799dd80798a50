"""Where the bundled data lives: inside the installed package, or in a source checkout."""

from __future__ import annotations

import tempfile
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """``schemas`` or ``fake_harnesses``: an installed wheel maps them into the package
    (see pyproject.toml); a source checkout or editable install has them at the top level."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pytest-oompa's bundled {name!r} folder is missing")


def fake_harnesses_dir() -> Path:
    return bundled("fake_harnesses")


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
