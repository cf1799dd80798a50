"""A swarm's workers on other machines: each worker's agent calls run in a workspace of its
own on a cluster node, the worktree carried there and back as git bundles (``transfer``), the
node's side in ``node``, Ray's in ``ray_cluster`` (the only module that imports Ray, and only
imported under ``--oompa-ray``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pytest_oompa.core.config import RaySection
from pytest_oompa.engine.calls import RemoteCalls


class Cluster(RemoteCalls, Protocol):
    """What the swarm asks of a cluster (``ray_cluster.RayCluster``) besides running calls."""

    notes: list[str]  # where workers run, what was lost: said in the run's summary

    def start(
        self,
        *,
        swarm_id: str,
        repo_root: Path,
        resources: Mapping[str, RaySection],
        max_agents: int | None,
        binaries: Sequence[str],
        secrets: Mapping[str, str],
        identity: Mapping[str, str],
        fakes: bool,
    ) -> list[str]: ...

    def stop_all(self) -> None: ...

    def close(self) -> None: ...
