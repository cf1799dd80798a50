"""oompa run artifacts: schemas, validation, and the writer of ``runs/{swarm-id}/``.

Layout (oompa 0.7 contract, see ``docs/artifacts.md``)::

    runs/{swarm-id}/
      run.json                            written at swarm start
      live-summary.json                   rewritten after every iteration; deleted with summary.json
      summary.json                        written at swarm end
      iterations/{worker-id}-i{N}.json    one per iteration, at its end
      reviews/{worker-id}-i{N}-r{R}.json  one per review round

Every artifact is validated against the project's own schema (``schemas/``, compatible with the
oompa 0.7 contract) *before* it is written, so an invalid artifact never lands on disk, and again
when it is read back. Every write is atomic (:mod:`pytest_oompa.core.atomic`).

This module never imports pytest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.locks import SharedLock
from pytest_oompa.core.paths import bundled

__all__ = [
    "ARTIFACT_KINDS",
    "CONTRACT_073_KINDS",
    "CONTRACT_KINDS",
    "EVENT_KINDS",
    "FORMAT_CHECKER",
    "TRACKING_KINDS",
    "ArtifactError",
    "ArtifactStore",
    "check_id",
    "prepare_artifact",
    "read_artifact",
    "schemas_dir",
    "utc_now_iso",
    "validate_artifact",
    "validator",
]

#: The five shapes of oompa's published contract.
CONTRACT_KINDS = ("run", "iteration", "review", "live-summary", "summary")
#: Our run-tracking files, kept out of the contract files (which forbid extra fields).
TRACKING_KINDS = (
    "oompa-run",
    "heartbeat",
    "calls",
    "error",
    "command-event",
    "index",
    "metrics-line",
    "metrics-summary",
    "worker-resume",
)
#: Not under runs/: a recorded run's harness calls (--oompa-record, pytest_oompa.offline.cassette)
#: and a recorded run's HTTP exchanges with the model API (pytest_oompa.offline.wire_cassette).
OTHER_KINDS = ("cassette", "wire-cassette")
#: The four shapes of oompa 0.7.3's event files (``cycle-review`` is 0.7.3's review file, which
#: names its cycle where 0.7.0's names its iteration); see :mod:`pytest_oompa.runs.events`.
CONTRACT_073_KINDS = ("started", "cycle", "cycle-review", "stopped")
#: The event files: 0.7.3's four, and ``workers/{id}.json``, the worker state unleashd reads
#: (no published schema: ours).
EVENT_KINDS = (*CONTRACT_073_KINDS, "worker-state")
ARTIFACT_KINDS = CONTRACT_KINDS + TRACKING_KINDS + OTHER_KINDS + EVENT_KINDS

#: Worker and swarm ids become file names: this is all they may contain.
_ID_RE = re.compile(r"[A-Za-z0-9._-]+")


class ArtifactError(Exception):
    """An artifact failed validation, could not be parsed, or an id cannot be a file name.

    The message names the file (or ``<kind> artifact`` when there is none yet), the artifact kind
    and the JSON path of the failing field; the same facts are attributes.
    """

    def __init__(self, message: str, *, kind: str = "", where: str = "", json_path: str = "$"):
        super().__init__(message)
        self.kind = kind
        self.where = where
        self.json_path = json_path


# --------------------------------------------------------------------------- date-time format

# RFC 3339 ``date-time`` (the grammar JSON Schema's "date-time" format refers to). ASCII digits
# only: ``\d`` would also match other scripts' digits.
_DATE_TIME_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]"
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True  # formats only constrain strings; "type" handles the rest
    match = _DATE_TIME_RE.fullmatch(instance)
    if match is None:
        return False
    try:  # calendar and clock ranges (month 13, Feb 30, hour 24, second 60 are refused)
        datetime.fromisoformat(f"{match['date']}T{match['time']}")
    except ValueError:
        return False
    return True


#: The format checker used for every artifact schema. It checks ``date-time`` only (the one
#: format the contract uses) with the function above, whatever optional packages are installed:
#: jsonschema's own ``date-time`` check silently passes everything without ``rfc3339-validator``.
FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(_is_date_time)


def utc_now_iso() -> str:
    """Now, as RFC 3339 UTC with millisecond precision: ``2025-01-31T12:34:56.789Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- schemas


def schemas_dir() -> Path:
    """The folder holding ``{kind}.schema.json``.

    Installed package: ``pytest_oompa/schemas`` (setuptools maps the top-level ``schemas/`` there);
    source checkout: ``<repo>/schemas``. The package location is tried first.
    """
    return bundled("schemas")


def _check_kind(kind: str) -> None:
    if kind not in ARTIFACT_KINDS:
        raise ArtifactError(
            f"unknown artifact kind {kind!r} (expected one of {', '.join(ARTIFACT_KINDS)})",
            kind=kind,
        )


@functools.cache
def validator(kind: str) -> Draft7Validator:
    """The compiled validator for ``kind`` (loaded, schema-checked and built once, then cached)."""
    _check_kind(kind)
    path = schemas_dir() / f"{kind}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=FORMAT_CHECKER)


def _json_path(path: Any) -> str:
    out = "$"
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, int) else f".{elem}"
    return out


def _field_path(error: ValidationError) -> str:
    """JSON path of the failing field; for a missing or unexpected key, the key itself."""
    path = list(error.absolute_path)
    instance = error.instance
    if isinstance(instance, dict):
        required = error.validator_value
        if error.validator == "required" and isinstance(required, list):
            missing = [k for k in required if k not in instance]
            if missing:
                path.append(missing[0])
        elif (
            error.validator == "additionalProperties"
            and error.validator_value is False
            and isinstance(error.schema, Mapping)
        ):
            known = error.schema.get("properties", {})
            extra = [k for k in instance if k not in known]
            if extra:
                path.append(extra[0])
    return _json_path(path)


def _describe(kind: str, where: str) -> str:
    return f"{where}: {kind} artifact" if where else f"{kind} artifact"


def validate_artifact(kind: str, data: Any, *, where: str = "") -> None:
    """Validate ``data`` against the ``kind`` schema; raise :class:`ArtifactError` if it fails.

    ``where`` (usually the file) goes into the message. The error reported is jsonschema's most
    relevant one; the count of the others is appended.
    """
    errors = list(validator(kind).iter_errors(data))
    if not errors:
        return
    error = best_match(errors)
    assert error is not None
    json_path = _field_path(error)
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    raise ArtifactError(
        f"{_describe(kind, where)} is invalid at {json_path}: {error.message}{more}",
        kind=kind,
        where=where,
        json_path=json_path,
    )


def prepare_artifact(kind: str, data: Any, *, where: str = "") -> tuple[str, dict[str, Any]]:
    """Serialize ``data``, parse the text back and validate *that*: (text to write, its data).

    So a file holds exactly what was checked (a tuple is checked as the JSON array it becomes).
    A value JSON cannot represent is an :class:`ArtifactError` naming its JSON path.
    """
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    try:
        text = dumps_json(data)
    except (TypeError, ValueError) as exc:
        json_path = _unserializable_path(data) or "$"
        raise ArtifactError(
            f"{_describe(kind, where)} cannot be serialized at {json_path}: {exc}",
            kind=kind,
            where=where,
            json_path=json_path,
        ) from exc
    parsed = json.loads(text)
    validate_artifact(kind, parsed, where=where)
    assert isinstance(parsed, dict)  # every artifact schema says "type": "object"
    return text, parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_artifact(path: Path, kind: str, *, ignore: Collection[str] = ()) -> dict[str, Any]:
    """Read, parse and validate one artifact file.

    Undecodable or corrupt JSON and data of the wrong shape raise :class:`ArtifactError` naming the
    file; a missing or unreadable file raises the ``OSError`` as is. Top-level keys in ``ignore``
    are dropped before validation (for files of another writer that adds fields its own schema
    forbids: see :data:`pytest_oompa.runs.files.UPSTREAM_EXTRAS`).
    """
    _check_kind(kind)
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ArtifactError(
            f"{path}: {kind} artifact is not valid JSON: {exc}", kind=kind, where=str(path)
        ) from exc
    if ignore and isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ignore}
    validate_artifact(kind, data, where=str(path))
    assert isinstance(data, dict)  # every artifact schema says "type": "object"
    return data


# --------------------------------------------------------------------------- ids and the store


def check_id(
    value: object, *, what: str = "worker id", kind: str = "", where: str = "", json_path: str = "$"
) -> str:
    """Return ``value`` if it can be (part of) a file name, else raise :class:`ArtifactError`.

    An id is ``[A-Za-z0-9._-]+`` and not ``.`` or ``..``: no separators, so it can never name a
    file outside the run folder.
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or value in (".", ".."):
        prefix = _describe(kind, where) if kind else (where or "artifact store")
        at = f" at {json_path}" if json_path != "$" else ""
        raise ArtifactError(
            f"{prefix}: invalid {what} {value!r}{at}"
            " (allowed: letters, digits, '.', '_', '-'; not '.' or '..')",
            kind=kind,
            where=where,
            json_path=json_path,
        )
    return value


def _check_number(value: object, field: str, kind: str, folder: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArtifactError(
            f"{folder}/: {kind} artifact: invalid {field} {value!r} at $.{field} (an integer >= 1)",
            kind=kind,
            where=f"{folder}/",
            json_path=f"$.{field}",
        )
    return value


class ArtifactStore:
    """Writes one swarm run's artifacts under ``runs_dir/swarm_id``; validates on every write;
    thread-safe.

    Each write serializes the data, validates what was serialized (so the file holds exactly what
    was checked), then writes atomically. ``swarm-id`` in run, live-summary and summary artifacts
    must be the store's. The live summary is held in memory by the store (one writing process per
    run) and rewritten whole, under a lock, on every update.

    With ``shared_lock`` (a file), several processes write one run (pytest-xdist): the live
    summary is then read, merged and rewritten under that cross-process lock, and once any
    process has written ``summary.json`` no process rewrites the live summary.
    """

    def __init__(self, runs_dir: Path, swarm_id: str, shared_lock: Path | None = None) -> None:
        self.swarm_id = check_id(swarm_id, what="swarm id", where=f"{runs_dir}/")
        self.runs_dir = Path(runs_dir)
        self.run_dir: Path = self.runs_dir / swarm_id
        # Shared mode: one lock for this process's threads and the run's other processes.
        self._lock: SharedLock | threading.Lock = (
            SharedLock(shared_lock) if shared_lock else threading.Lock()
        )
        self._shared = shared_lock is not None
        self._workers: dict[str, dict[str, Any]] = {}
        self._finished = False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def _live_workers(self, path: Path) -> dict[str, dict[str, Any]]:
        """The workers of the live summary: on disk when processes share the run (every
        process's entries), else this store's own."""
        if not self._shared:
            return self._workers
        try:
            return dict(read_artifact(path, "live-summary")["workers"])
        except FileNotFoundError:
            return {}
        except (ArtifactError, OSError):  # never lose the run over the live view
            return dict(self._workers)

    # -- paths

    def path_for(self, kind: str, **ids: Any) -> Path:
        """The file of one artifact.

        ``iteration`` needs ``worker_id`` and ``iteration``; ``review`` also ``round``; the others
        take no ids. Ids are checked (:func:`check_id`), numbers must be integers >= 1.
        """
        _check_kind(kind)
        expected = {
            "iteration": {"worker_id", "iteration"},
            "review": {"worker_id", "iteration", "round"},
        }.get(kind, set())
        if set(ids) != expected:
            raise ArtifactError(
                f"{kind} artifact: path_for needs ids {sorted(expected)}, got {sorted(ids)}",
                kind=kind,
            )
        if kind == "run":
            return self.run_dir / "run.json"
        if kind == "live-summary":
            return self.run_dir / "live-summary.json"
        if kind == "summary":
            return self.run_dir / "summary.json"
        folder = self.run_dir / ("iterations" if kind == "iteration" else "reviews")
        worker = check_id(ids["worker_id"], kind=kind, where=f"{folder}/", json_path="$.worker-id")
        n = _check_number(ids["iteration"], "iteration", kind, folder)
        if kind == "iteration":
            return folder / f"{worker}-i{n}.json"
        r = _check_number(ids["round"], "round", kind, folder)
        return folder / f"{worker}-i{n}-r{r}.json"

    # -- writing

    def _prepare(self, kind: str, data: Any, where: Path | None) -> tuple[str, dict[str, Any]]:
        """Serialize, re-parse and validate; return the text to write and what it parses to."""
        label = str(where) if where is not None else ""
        text, parsed = prepare_artifact(kind, data, where=label)
        if kind in ("run", "live-summary", "summary") and parsed["swarm-id"] != self.swarm_id:
            raise ArtifactError(
                f"{_describe(kind, label)} is invalid at $.swarm-id: {parsed['swarm-id']!r} is not "
                f"this store's swarm id {self.swarm_id!r}",
                kind=kind,
                where=label,
                json_path="$.swarm-id",
            )
        assert isinstance(parsed, dict)
        return text, parsed

    @staticmethod
    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return path

    def write_run(self, data: Mapping[str, Any]) -> Path:
        """Write ``run.json`` (at swarm start)."""
        path = self.path_for("run")
        text, _ = self._prepare("run", data, path)
        return self._write(path, text)

    def _guess_path(self, kind: str, data: object) -> Path | None:
        """The file ``data`` is meant for, for error messages, if its ids allow one."""
        if not isinstance(data, Mapping):
            return None
        ids = {"worker_id": data.get("worker-id"), "iteration": data.get("iteration")}
        if kind == "review":
            ids["round"] = data.get("round")
        try:
            return self.path_for(kind, **ids)
        except ArtifactError:
            return None

    def write_iteration(self, data: Mapping[str, Any]) -> Path:
        """Write ``iterations/{worker-id}-i{N}.json`` (from ``worker-id`` and ``iteration``)."""
        text, parsed = self._prepare("iteration", data, self._guess_path("iteration", data))
        path = self.path_for(
            "iteration", worker_id=parsed["worker-id"], iteration=parsed["iteration"]
        )
        return self._write(path, text)

    def write_review(self, data: Mapping[str, Any]) -> Path:
        """Write ``reviews/{worker-id}-i{N}-r{round}.json``."""
        text, parsed = self._prepare("review", data, self._guess_path("review", data))
        path = self.path_for(
            "review",
            worker_id=parsed["worker-id"],
            iteration=parsed["iteration"],
            round=parsed["round"],
        )
        return self._write(path, text)

    def update_live_summary(self, worker_id: str, entry: Mapping[str, Any]) -> Path:
        """Merge ``entry`` into ``worker_id``'s live entry and rewrite ``live-summary.json``.

        The store fills ``swarm-id``, the file's ``updated-at`` and, unless ``entry`` gives one,
        the worker's ``updated-at``. Callers are serialized, so concurrent updates never lose one
        another's entries. An invalid result raises :class:`ArtifactError` and changes nothing
        (neither the file nor the in-memory map). After :meth:`write_summary` (in shared mode: once
        any process wrote ``summary.json``) this does nothing.
        """
        path = self.path_for("live-summary")
        check_id(worker_id, kind="live-summary", where=str(path), json_path="$.workers")
        with self._locked():
            if self._finished:
                return path
            if self._shared and self.path_for("summary").exists():
                self._finished = True  # another process ended the run
                return path
            now = utc_now_iso()
            current = self._live_workers(path)
            merged = {**current.get(worker_id, {}), **entry}
            merged["updated-at"] = entry.get("updated-at", now)
            workers = {**current, worker_id: merged}
            document = {"swarm-id": self.swarm_id, "updated-at": now, "workers": workers}
            text, parsed = self._prepare("live-summary", document, path)
            self._write(path, text)
            self._workers[worker_id] = parsed["workers"][worker_id]
        return path

    def write_summary(self, data: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (at swarm end), then delete ``live-summary.json``.

        From then on :meth:`update_live_summary` writes nothing.
        """
        path = self.path_for("summary")
        text, _ = self._prepare("summary", data, path)
        with self._locked():
            self._write(path, text)
            self._finished = True
            with contextlib.suppress(FileNotFoundError):
                self.path_for("live-summary").unlink()
        return path


def _unserializable_path(data: Any, path: tuple[Any, ...] = ()) -> str | None:
    """JSON path of the first value strict ``json.dumps`` cannot represent, or None."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key is not None and not isinstance(key, (str, int, float, bool)):
                return _json_path((*path, key))
            found = _unserializable_path(value, (*path, key))
            if found is not None:
                return found
        return None
    if isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            found = _unserializable_path(value, (*path, index))
            if found is not None:
                return found
        return None
    if isinstance(data, float) and not math.isfinite(data):
        return _json_path(path)
    if data is None or isinstance(data, (str, int, float, bool)):
        return None
    return _json_path(path)
