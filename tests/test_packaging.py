"""What an installed wheel holds: pyproject.toml lists the packages by hand (two of them map
top-level folders into the package), so a new subpackage that is not listed would be missing
from every non-editable install while an editable checkout still works."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}
    found = set()
    for top, folder in [("pytest_oompa", ROOT / "pytest_oompa"), *mapped.items()]:
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((top, *relative)))
    assert sorted(set(setuptools["packages"]) - {"pytest_oompa.schemas"}) == sorted(found)
