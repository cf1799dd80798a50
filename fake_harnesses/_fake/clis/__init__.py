"""The emulated CLIs: one module each, listed in ``CLIS``.

A CLI module holds everything specific to its CLI and provides:

- ``NAME`` and ``VERSION`` (what ``--version`` prints; a replayed cassette's recorded version
  wins);
- ``OPTS``, its option table for one of the parser families in ``parsers``;
- ``handle(run) -> int``: parse and check ``run.argv`` the way the real CLI does (raising
  ``errors.Refuse`` with its message and exit code), read the prompt, find or start the session
  by the CLI's own rules, and end with ``turn.agent_turn(run, render)``;
- ``render(run, reply, code) -> str``: its output format.

Adding a CLI is a module here plus its line below (and its executable script next to
``_fake/``). ``dispatch`` imports only the module of the CLI it runs: a fake ``claude`` never
loads codex's tables. This file is the table alone, so that the scenario validator can read the
names without importing any CLI.
"""

from __future__ import annotations

#: The CLI name (argv[0], the scenario's ``harnesses`` keys) -> its module in this folder.
CLIS = {
    "claude": "claude",
    "codex": "codex",
    "opencode": "opencode",
    "gemini": "gemini",
}
