"""The fake ``claude``, ``codex``, ``opencode`` and ``gemini`` CLIs for pytest-oompa.

Standard library only, and imports are lazy: every fake invocation pays Python's start-up, and a
swarm test spawns hundreds of them. Each CLI's argv contract is data (one option table per CLI,
each with the source of its facts), parsed the way the real CLI's parser parses it (Commander for
claude, clap for codex, yargs for opencode and gemini), so that argv a fake accepts is argv the
real CLI accepts. See ``README.md`` in ``fake_harnesses/`` for the environment variables, the
state layout, the invocation log and the scenario format.

The rooms: ``clis/`` holds one module per CLI (its argv grammar, version, refusals and exit
codes, session rules, output format; listed in ``clis.CLIS``); the machinery they share is

- ``dispatch``: ``main``, from argv to exit code;
- ``errors``: the exit codes of our own and the refusal exceptions;
- ``parsers``: the three argv parser families (Commander, clap, yargs);
- ``invocation``: ``Run``, what is known of the invocation, its stdin and session store;
- ``log``: the invocation log;
- ``scenario``: validating a scenario, the role and call index of a call, picking its step;
- ``agent_work``: the simulated agent's work in the worktree, the task queue and git;
- ``turn``: one agent turn, played from the scenario or the cassette;
- ``replay``: replaying a cassette through ``pytest_oompa/offline/cassette/``;
- ``output``: printing, and the numbers the output formats share.

The wrappers put ``fake_harnesses/`` on ``sys.path`` and import this package as ``_fake``;
``pytest_oompa.offline.fake_scenario`` loads it under a private name for the scenario
validator. So the modules import each other relatively, never by the package's name.
"""

from __future__ import annotations

from .dispatch import main

__all__ = ["main"]
