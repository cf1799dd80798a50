"""Record and replay of harness calls: cassettes.

A *cassette* is one JSON file per swarm run (``{swarm-id}.cassette.json``, shape in
``schemas/cassette.schema.json``, described in ``docs/cassettes.md``) holding every harness call
of the run: who made it (worker, role, call index), what ran (argv, prompt, working directory,
an environment subset), what came back (stdout, stderr, exit code) and what the call did to the
files of its working directory (its commits as patches with their messages and identities, and
the change of the working tree as one patch). Secrets are redacted before anything is written.

The rooms:

- ``format``: the file: its format, ``load``, ``validate`` against the schema, writing;
- ``redact``: ``Redactor``, secrets out of everything a cassette keeps;
- ``worktree``: snapshots of a working directory, the changes of a call as patches, and
  ``apply_changes`` to do them again;
- ``matching``: how a call is keyed and normalized, and the diff when it does not match;
- ``recorder``: ``CassetteRecorder``, the ``CallObserver`` that writes a run's cassette;
- ``playback``: ``replay``, what a fake harness runs for each call when ``OOMPA_FAKE_CASSETTE``
  is set;
- ``order``: ``ReplayOrder``, the engine's side of a replay (replies in the recorded order);
- ``compare``: ``comparable_artifacts``, a run folder with what varies between runs set aside.

The fakes run isolated (``python -IS``, no site-packages) and load ``format`` and ``playback``
by path (``fake_harnesses/_fake/replay.py``), without running this ``__init__``: those two and
what they import (``matching``, ``redact``, ``worktree``) import nothing but the standard
library and each other, and only relatively. No module here imports pytest; the engine-side
parts import the rest of the package lazily.
"""

from __future__ import annotations

from .compare import VOLATILE_FILES, VOLATILE_KEYS, comparable_artifacts
from .format import (
    ENV_CASSETTE,
    FORMAT,
    SUFFIX,
    VERSION,
    CassetteError,
    load,
    resolve_cassette,
    utc_now,
    validate,
)
from .matching import (
    REPLAY_MISMATCH,
    RULES,
    SESSION_ID,
    TAG,
    ReplayMismatch,
    Side,
    call_key,
    call_slot,
    diff_views,
    infer_role,
    prompt_tag,
    view,
)
from .order import ORDER_SETTLE, ORDER_TIMEOUT, ReplayOrder, expect, replayed, unreplayed
from .playback import Replayed, ReplayState, replay
from .recorder import CassetteRecorder
from .redact import REDACTED, SECRET_NAME, SECRET_PATTERNS, Redactor, is_secret_name
from .worktree import EMPTY_TREE, GitFailed, Snapshot, apply_changes, capture, repo_root, snapshot

__all__ = [
    "EMPTY_TREE",
    "ENV_CASSETTE",
    "FORMAT",
    "ORDER_SETTLE",
    "ORDER_TIMEOUT",
    "REDACTED",
    "REPLAY_MISMATCH",
    "RULES",
    "SECRET_NAME",
    "SECRET_PATTERNS",
    "SESSION_ID",
    "SUFFIX",
    "TAG",
    "VERSION",
    "VOLATILE_FILES",
    "VOLATILE_KEYS",
    "CassetteError",
    "CassetteRecorder",
    "GitFailed",
    "Redactor",
    "ReplayMismatch",
    "ReplayOrder",
    "ReplayState",
    "Replayed",
    "Side",
    "Snapshot",
    "apply_changes",
    "call_key",
    "call_slot",
    "capture",
    "comparable_artifacts",
    "diff_views",
    "expect",
    "infer_role",
    "is_secret_name",
    "load",
    "prompt_tag",
    "replay",
    "replayed",
    "repo_root",
    "resolve_cassette",
    "snapshot",
    "unreplayed",
    "utc_now",
    "validate",
    "view",
]
