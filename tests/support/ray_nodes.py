"""A Ray cluster of several nodes on this machine, each node its own ``ray start`` process.

The worker nodes run under bubblewrap with the coordinator's folders (the pytest session's
temporary folder: every test's repository, config and run folder) replaced by an empty
tmpfs. A node that tried to read or write the coordinator's repository or run folder
would find nothing there: a swarm that passes on these nodes has done its work through the
bundles and the messages alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A local test cluster on loopback: no token (Ray turns token authentication on for
# `ray start` clusters; the coordinator would need the token too).
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
# A node that goes away is declared dead in about 3 s (Ray's default is tens of seconds).
ENV |= {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
OBJECT_STORE = str(100 * 2**20)  # bytes per node: bundles are small, and CI has little /dev/shm
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    resources: dict[str, float]
    node_id: str = ""

    def kill(self) -> None:
        """The machine goes away: every process of the node at once, the agents it runs
        (in sessions of their own) included."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        reap_orphans()

    def pids(self) -> set[int]:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return {root.pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.Error:
            return set()


@dataclass
class LocalCluster:
    address: str
    hidden: Path
    temp: Path
    head: subprocess.Popen[bytes]
    nodes: dict[str, Node] = field(default_factory=dict)

    def add_node(self, name: str, cpus: int = 2, **resources: float) -> Node:
        resources = {f"node_{name}": 100.0, **resources}
        argv = [
            *self._hidden_from_nodes(),
            RAY,
            "start",
            f"--address={self.address}",
            f"--num-cpus={cpus}",
            f"--resources={json.dumps(resources)}",
            f"--object-store-memory={OBJECT_STORE}",
            "--disable-usage-stats",
            "--block",
        ]
        proc = subprocess.Popen(
            argv,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        node = Node(name, proc, resources)
        node.node_id = self._wait_for(f"node_{name}")
        self.nodes[name] = node
        return node

    def _hidden_from_nodes(self) -> list[str]:
        return ["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(self.hidden), "--die-with-parent"]

    def alive(self) -> list[dict[str, Any]]:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def _wait_for(self, resource: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.alive():
                if resource in node.get("Resources", {}):
                    return str(node["NodeID"])
            time.sleep(0.2)
        raise AssertionError(f"no node with {resource} joined the cluster in {timeout} s")

    def wait_gone(self, node: Node, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.node_id not in {n["NodeID"] for n in self.alive()}:
                return
            time.sleep(0.2)
        raise AssertionError(f"node {node.name} still alive after {timeout} s")

    def actors_of(self, swarm_id: str) -> list[str]:
        import ray

        named = ray.util.list_named_actors(all_namespaces=True)
        return [a["name"] for a in named if swarm_id in a["name"]]


def reap_orphans(seconds: float = 3.0) -> None:
    """Reap the zombies this process inherited. A test that ran a ProcessSupervisor made the
    test process a child subreaper: the Ray processes a killed node leaves re-parent to it,
    and dead ones would stay zombies among its children (which other tests count)."""
    import psutil

    deadline = time.monotonic() + seconds
    while True:
        waiting = False
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)
                elif "ray" in " ".join(child.cmdline()):
                    waiting = True  # an orphaned Ray process, dying
        if not waiting or time.monotonic() > deadline:
            return
        time.sleep(0.1)


@contextlib.contextmanager
def local_cluster(hidden: Path, **nodes: dict[str, float]) -> Iterator[LocalCluster]:
    """A head with no CPU (no worker lands on it) and the named nodes, 2 CPUs each; the
    test process joins as a driver to watch it. Everything is gone afterwards."""
    import ray

    if shutil.which("bwrap") is None:
        raise RuntimeError("the cluster tests need bubblewrap (bwrap) to hide the coordinator")
    temp = Path(tempfile.mkdtemp(prefix="oompa-ray-", dir="/tmp"))  # short: socket paths
    port = free_port()
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=0",
            "--include-dashboard=false",
            f"--object-store-memory={OBJECT_STORE}",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
            "--block",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cluster = LocalCluster(f"127.0.0.1:{port}", hidden, temp, head)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
                break
            except ConnectionError:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise
                time.sleep(0.5)
        for name, resources in nodes.items():
            cluster.add_node(name, **resources)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        for node in cluster.nodes.values():
            with contextlib.suppress(Exception):
                node.kill()
        # The head as a node: every process of it at once (a graceful `ray stop` takes
        # half a minute and there is nothing of a test cluster worth keeping).
        Node("head", head, {}).kill()
        reap_orphans()
        shutil.rmtree(temp, ignore_errors=True)
