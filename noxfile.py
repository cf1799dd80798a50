"""The test suite on every Python the package claims (``requires-python = ">=3.10"``).

``.ci/run`` runs the whole suite, the real-CLI tier included, on the machine's default Python
(the README's test command), then these sessions on the others with the real tier and the
Ray cluster tier left out: the real CLIs are Node programs, the same whatever Python drives
them, and both tiers take minutes. Interpreters come from PATH (pyenv provides them on the
project's machines); a missing one fails its session rather than being skipped, so a green
run means every version ran.

    nox                           # every version
    nox -s tests-3.10 -- -k gate  # one version, pytest arguments after --
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
REAL_TIER = "tests/harnesses/test_real_clis.py"
# The Ray cluster tier starts clusters of several nodes (a minute and a half on two cores);
# it runs once, with the README's test command, like the real tier.
CLUSTER_TIER = "tests/cluster"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    args = session.posargs or [
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        f"--ignore={REAL_TIER}",
        f"--ignore={CLUSTER_TIER}",
    ]
    session.run("pytest", *args)
