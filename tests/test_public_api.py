"""The public API at the package root: every name resolves, once per concept, from the module
that defines it; importing the package costs nothing; the docs and examples use only it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_oompa

ROOT = Path(__file__).resolve().parents[1]
INIT = Path(pytest_oompa.__file__)


def type_checking_imports() -> dict[str, str]:
    """name -> module, from the ``if TYPE_CHECKING:`` block of the package root."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                for alias in stmt.names:
                    renamed = f":{alias.name}" if alias.asname else ""
                    names[alias.asname or alias.name] = stmt.module + renamed
    return names


@pytest.mark.parametrize("name", pytest_oompa.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(pytest_oompa, name)
    if name != "__version__":
        module, _, attribute = pytest_oompa._EXPORTS[name].partition(":")
        assert value is getattr(sys.modules[module], attribute or name)


def test_all_the_exports_and_what_type_checkers_see_agree() -> None:
    assert sorted(pytest_oompa.__all__) == sorted(["__version__", *pytest_oompa._EXPORTS])
    assert type_checking_imports() == pytest_oompa._EXPORTS


def test_one_name_per_concept() -> None:
    values = [getattr(pytest_oompa, n) for n in pytest_oompa.__all__ if n != "__version__"]
    assert len({id(v) for v in values}) == len(values)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Swam'"):
        _ = pytest_oompa.Swam  # type: ignore[attr-defined]


def test_importing_the_package_imports_nothing_else() -> None:
    code = "import sys, pytest_oompa; print(sorted(m for m in sys.modules if 'pytest_oompa.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def python_sources() -> list[Path]:
    """The README's and the docs' code blocks, and the examples."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *ROOT.glob("examples/**/*.py"),
    ]


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_and_examples_import_only_the_public_api(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    internal = re.findall(r"^\s*(?:from|import) (pytest_oompa\.[\w.]+)", text, re.M)
    assert internal == [], f"{path.name} imports {internal}: use `from pytest_oompa import ...`"
