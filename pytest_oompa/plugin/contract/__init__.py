"""The harness contract suite: checks any harness must pass, one per registry fact.

``pytest --oompa-contract=claude[,codex,…]`` runs ``checks.py`` for each named harness against
its fake (the bundled fakes, or whatever binary of that name comes first on ``PATH``), and
against the real CLI too when ``--oompa-real-harness`` names it and it is found. The checks
that need a model skip for a real CLI unless the ``oompa_model_api`` fixture gives one.
See docs/harness-authors.md.
"""

from __future__ import annotations

from pathlib import Path

CHECKS_PATH = Path(__file__).resolve().with_name("checks.py")

__all__ = ["CHECKS_PATH"]
