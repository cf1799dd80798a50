"""pytest-oompa: run coding-agent swarms as pytest sessions.

Every worker iteration of a swarm is a collected test item; the swarm engine itself lives in
plain modules (``pytest_oompa.engine.swarm`` and friends) that never import pytest.
"""

__version__ = "0.1.0"
