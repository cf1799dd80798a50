"""The cassette file: its format, reading it, checking it against its schema, writing it.

A cassette is one JSON file per swarm run, ``{swarm-id}.cassette.json`` (shape in
``schemas/cassette.schema.json``, described in ``docs/cassettes.md``). ``load`` is what the fake
harnesses use to read one, so this module imports nothing but the standard library at module
level (``validate`` loads jsonschema and the schema when first asked).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMAT = "oompa-cassette"
VERSION = 1
SUFFIX = ".cassette.json"
ENV_CASSETTE = "OOMPA_FAKE_CASSETTE"


class CassetteError(Exception):
    """A cassette that cannot be used: missing, ambiguous, unreadable or of another format."""


def resolve_cassette(path: Path | str) -> Path:
    """A cassette file, or a folder holding exactly one ``*.cassette.json``."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob(f"*{SUFFIX}"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            names = "".join(f"\n  {f.name}" for f in found)
            raise CassetteError(f"{p}: {what} cassettes (*{SUFFIX}); name one file{names}")
        return found[0]
    if not p.is_file():
        raise CassetteError(f"{p}: no such cassette")
    return p


def load(path: Path | str) -> dict[str, Any]:
    """Read a cassette (standard library only: the fakes use this). Checks the format and
    version and indexes the calls by key; ``validate`` checks the full schema."""
    p = resolve_cassette(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CassetteError(f"{p}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CassetteError(f"{p}: not an {FORMAT} file")
    if data.get("version") != VERSION:
        raise CassetteError(
            f"{p}: cassette version {data.get('version')!r}; this pytest-oompa reads {VERSION}"
        )
    calls = data.get("calls")
    if not isinstance(calls, list) or not all(isinstance(c, dict) and "key" in c for c in calls):
        raise CassetteError(f"{p}: 'calls' must be a list of calls with a 'key'")
    data["_path"] = str(p)
    return data


def validate(data: Mapping[str, Any], where: str = "cassette") -> None:
    """Check ``data`` against ``schemas/cassette.schema.json``; raises CassetteError."""
    problems = sorted(
        _validator().iter_errors({k: v for k, v in data.items() if not k.startswith("_")}),
        key=lambda e: list(e.absolute_path),
    )
    if problems:
        first = problems[0]
        at = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CassetteError(f"{where}: {at}: {first.message}{more}")


_VALIDATOR: Any = None


def _validator() -> Any:
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft7Validator

        from pytest_oompa.runs.artifacts import schemas_dir

        schema = json.loads((schemas_dir() / "cassette.schema.json").read_text(encoding="utf-8"))
        _VALIDATOR = Draft7Validator(schema)
    return _VALIDATOR


def write_file(path: Path, data: Mapping[str, Any]) -> None:
    # ensure_ascii: a patch of a non-UTF-8 file carries surrogate escapes, kept as \udcXX.
    text = json.dumps(data, indent=2, ensure_ascii=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def utc_now(precise: bool = False) -> str:
    """Now in UTC, to the millisecond (``precise``: the microsecond, to order calls)."""
    now = time.time()
    fraction = f"{int(now % 1 * 1e6):06d}" if precise else f"{int(now % 1 * 1000):03d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{fraction}Z"
