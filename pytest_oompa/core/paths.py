"""Where the bundled data lives: inside the installed package, or in a source checkout."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # pytest_oompa/, above core/
FAKE_NAMES = ("claude", "codex", "opencode", "gemini")
_SHEBANG_LIMIT = 120  # Linux reads at most 127 bytes of a #! line on older kernels


def bundled(name: str) -> Path:
    """``schemas`` or ``fake_harnesses``: an installed wheel maps them into the package
    (see pyproject.toml); a source checkout or editable install has them at the top level."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pytest-oompa's bundled {name!r} folder is missing")


def fake_harnesses_dir() -> Path:
    return bundled("fake_harnesses")


@functools.cache
def fake_bin_dir() -> Path:
    """A folder of ``claude``/``codex``/``opencode``/``gemini`` that start the bundled fakes
    with this interpreter, isolated and without site-packages (``-IS``).

    The bundled scripts say ``#!/usr/bin/env python3``, which through a pyenv shim costs
    ~100 ms a start; these wrappers start in ~12 ms, and a swarm starts hundreds of fakes.
    Falls back to the bundled folder when the interpreter path cannot be a shebang.
    """
    source = fake_harnesses_dir()
    shebang = f"#!{sys.executable} -IS"
    if len(shebang) > _SHEBANG_LIMIT or any(c.isspace() for c in sys.executable):
        return source
    folder = Path(tempfile.mkdtemp(prefix="oompa-fakes-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in FAKE_NAMES:
        script = folder / name
        script.write_text(
            f"{shebang}\nimport sys\nsys.path.insert(0, {str(source)!r})\n"
            f"import _fake\n_fake.main({name!r})\n",
            encoding="utf-8",
        )
        script.chmod(0o755)
    return folder


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-"))


def named_scratch_dir(name: str) -> Path:
    """A private temporary folder that a later process finds again by ``name`` (the fakes'
    sessions of a run, which its resume must still find, as a real CLI's are in its HOME).
    Made owner-only; refused when something else (a link, another user's folder) is there."""
    path = Path(tempfile.gettempdir()) / name
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        info = path.lstat()
        if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
            raise RuntimeError(f"{path} exists and is not this user's own folder") from None
    return path
