"""Run an 8-worker x 10-iteration swarm with the fake harnesses N times in a row and check that
every run merges all 80 iterations (oompa loses some here to concurrent `git worktree` calls).

    python benchmarks/stress_merges.py [--runs 20] [--workers 8] [--iterations 10]

Exits non-zero on the first run that loses an iteration, leaves a dirty tree, or leaves a
worktree or branch behind; prints one line a run and a summary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_oompa import GitRepo
from pytest_oompa.plugin.swarm_runner import SwarmRunner


def one_run(workers: int, iterations: int) -> tuple[int, float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="oompa-stress-") as tmp:
        repo = GitRepo(Path(tmp) / "project")
        runner = SwarmRunner(Path(tmp), repo)
        start = time.perf_counter()
        run = runner(
            {
                "probe": False,
                "workers": [{"model": "claude:opus", "iterations": iterations, "count": workers}],
            }
        )
        took = time.perf_counter() - start
        merges = sum(w.metrics.merges for w in run.workers.values())
        problems = []
        if repo.status():
            problems.append(f"dirty tree: {repo.status()[:5]}")
        if repo.branches() != ["main"] or len(repo.worktrees()) != 1:
            problems.append(f"left behind: {repo.branches()} {repo.worktrees()}")
        # Each iteration of the default fake agent adds one file of its own: every merge
        # that really landed on main left exactly one.
        files = [f for f in repo.files() if f.startswith("oompa-work/")]
        if len(files) != merges:
            problems.append(f"{merges} merges reported, {len(files)} work files on main")
        return merges, took, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    expected = args.workers * args.iterations
    times = []
    for i in range(1, args.runs + 1):
        merges, took, problems = one_run(args.workers, args.iterations)
        times.append(took)
        status = "ok" if merges == expected and not problems else "FAILED"
        print(f"run {i:2}: {merges}/{expected} merged in {took:.1f} s  {status} {problems or ''}")
        if status != "ok":
            return 1
    print(
        f"{args.runs} runs, every one merged all {expected} iterations; "
        f"median {statistics.median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
