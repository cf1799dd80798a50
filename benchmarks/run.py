"""pytest-oompa's benchmarks, measured against baselines taken in the same run.

    python benchmarks/run.py [--quick] [--repeat N] [--json PATH] [--only a,b,...] [--keep]

(a) per-iteration time of a 1-worker swarm vs the bash "git floor" (benchmarks/floor.sh: the
    same git work per iteration, the same agent), with git spawns per iteration;
(b) wall time of 4x10 and 8x10 swarms vs the floor with the same concurrency;
(c) concurrency efficiency: W workers (4, 8, 16) whose agent sleeps 1 s, I iterations:
    I x 1 s / wall (the floor's efficiency alongside);
(d) `pytest --collect-only` of a 200-worker x 50-iteration config (10,000 items) vs plain
    `pytest --collect-only` on an empty folder;
(e) peak RSS of `pytest --oompa-swarm` at 64 workers (64x2) vs plain pytest's;
(f) artifact writes per iteration (ArtifactStore.write_iteration + update_live_summary, schema
    validation and fsync included) vs plain json.dump + os.replace;
(g) what the plugin costs a pytest start: a one-test run with the plugin installed vs the same
    run with `-p no:oompa`, and a 1-worker, 1-iteration swarm vs that bare start; each with the
    bytecode cache warm and with PYTHONDONTWRITEBYTECODE=1 (no cached bytecode of the package);
(h) the end-of-call sweep (engine/processes.py: the group ended, escapees found through the
    subreaper's tree and killed): ProcessSupervisor.run of a trivial command with the sweep on
    vs off, per call; beside it, a call that leaves a background child to kill, and the
    marker scan of every process (what the sweep costs where there is no subreaper);
(i) what the live view costs: a 4-worker x 3-iteration swarm whose agent takes 0.5 s, under a
    pseudo-terminal, with --oompa-live=on (the status block redrawn every second) vs off (a
    progress line per phase change): wall time, and the pytest process's CPU time;
(j) a swarm's workers on Ray (--oompa-ray): 32 workers x 3 iterations, 1-s agents, on a
    two-node cluster started on this machine vs the same swarm on threads in one process
    (each a fresh subprocess): wall time, the bundle round trip per call (a remote call's
    time beyond its agent's), the coordinator's peak RSS.

The agent is the bundled fake claude (default behaviour: append a line, git add + commit, ask
for a merge), started through the same wrapper (pytest_oompa.core.paths.fake_bin_dir()) by the
engine and by the floor; probes off. Swarms (a)-(c) run in this process (the engine's API, as
the oompa_swarm fixture does); (d) and (e) are subprocesses of this interpreter. Every run is
checked: each iteration merged, every iteration's work file is on main, no worktree, branch or
dirty file left behind. Engine and floor runs alternate, so load from elsewhere hits both.

Figures are medians of --repeat runs (default 3; 5 for the cheap ones in full mode) with
min-max. Exit status 1 if a correctness check failed (a missed performance target is not a
failure: it is reported).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from pytest_oompa.core import paths
from pytest_oompa.core.atomic import atomic_write_text, dumps_json
from pytest_oompa.core.config import resolve
from pytest_oompa.core.results import IterationResult, WorkerMetrics
from pytest_oompa.engine import processes, prompts
from pytest_oompa.engine.swarm import Swarm, SwarmListener, SwarmOptions
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.runs.artifacts import ArtifactStore, utc_now_iso, validate_artifact

HERE = Path(__file__).resolve().parent
FLOOR_SCRIPT = HERE / "floor.sh"
IDENTITY = {"user.name": "oompa bench", "user.email": "bench@oompa.invalid"}
DELAY_SCENARIO = {"default": {"worker": {"delay": 1, "builtin": True}}}
J_ALONE = (1, 8)  # (j): one worker on the cluster, for the round trip with nothing else running
FLOOR_GIT_PER_ITERATION = 10  # floor.sh: the lines of its loop
FLOOR_FLOCK_PER_ITERATION = 3  # with more than one worker


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ figures


@dataclass
class Row:
    id: str
    label: str
    unit: str  # ms | s | MB | eff | calls
    values: list[float]
    baseline: list[float] | None = None
    baseline_label: str = ""
    lower_is_better: bool = True
    target: str = ""  # text, e.g. "ratio <= 1.15"
    target_check: Callable[[Row], bool] | None = field(default=None, repr=False)
    note: str = ""
    other: float | None = None  # cores busy with other processes during the figure (average)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def base_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        base = self.base_median
        return self.median / base if base else None

    @property
    def delta(self) -> float | None:
        base = self.base_median
        return self.median - base if base is not None else None

    @property
    def target_met(self) -> bool | None:
        return self.target_check(self) if self.target_check else None

    def as_json(self) -> dict[str, Any]:
        def summary(xs: list[float] | None) -> dict[str, Any] | None:
            if not xs:
                return None
            return {
                "median": statistics.median(xs),
                "min": min(xs),
                "max": max(xs),
                "n": len(xs),
                "values": xs,
            }

        return {
            "id": self.id,
            "label": self.label,
            "unit": self.unit,
            "value": summary(self.values),
            "baseline": summary(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "delta": self.delta,
            "lower_is_better": self.lower_is_better,
            "target": self.target,
            "target_met": self.target_met,
            "note": self.note,
            "other_cores": self.other,
        }


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "eff":
        return f"{value:.2f}"
    if unit == "calls":
        return f"{value:.1f}"
    if unit == "us":
        return f"{value:.0f} us"
    return f"{value:.3g} {unit}"


def fmt_range(xs: list[float], unit: str) -> str:
    main = fmt(statistics.median(xs), unit)
    if len(xs) < 2:
        return main
    lo, hi = fmt(min(xs), unit).split()[0], fmt(max(xs), unit).split()[0]
    return f"{main} [{lo}-{hi}]"


def table(rows: list[Row]) -> str:
    header = (
        "figure",
        "oompa  median [min-max]",
        "baseline  median [min-max]",
        "ratio",
        "target",
        "other",
    )
    lines = []
    for r in rows:
        base = ""
        if r.baseline:
            base = f"{r.baseline_label} {fmt_range(r.baseline, r.unit)}".strip()
        elif r.baseline_label:
            base = r.baseline_label
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        target = r.target
        if r.target_met is not None:
            target += "  ok" if r.target_met else "  MISSED"
        other = f"{r.other:.2f}" if r.other is not None else ""
        lines.append((r.label, fmt_range(r.values, r.unit), base, ratio, target, other))
        if r.note:
            lines.append(("", f"  {r.note}", "", "", "", ""))
    figures = [header, *(x for x in lines if x[0] or x[2:] != ("", "", "", ""))]
    widths = [max(len(x[i]) for x in figures) for i in range(6)]
    out: list[str] = []
    for i, cols in enumerate([header, *lines]):
        if cols[0] == "" and cols[2:] == ("", "", "", ""):  # a note, wrapped under the figures
            indent = " " * (widths[0] + 2)
            width = max(len(out[1]), widths[0] + 60)
            out += textwrap.wrap(
                cols[1].strip(),
                width,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_on_hyphens=False,
            )
            continue
        out.append(
            "  ".join(
                [
                    cols[0].ljust(widths[0]),
                    cols[1].ljust(widths[1]),
                    cols[2].ljust(widths[2]),
                    cols[3].rjust(max(5, widths[3])),
                    cols[4].ljust(widths[4]),
                    cols[5].rjust(widths[5]),
                ]
            ).rstrip()
        )
        if i == 0:
            out.append("-" * len(out[0]))
    out.append(
        "ratio = oompa median / baseline median (efficiency: higher is better, else lower); "
        "other = cores busy with processes not ours during the figure (/proc/stat minus our rusage)"
    )
    return "\n".join(out)


# ------------------------------------------------------------------------------------ machine


def _run_text(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def machine_info(tmp: Path) -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    fs = "?"
    with contextlib.suppress(OSError):
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(tmp).startswith(parts[1]) and len(parts[1]) > len(best):
                best, fs = parts[1], parts[2]
    checkout = _run_text(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    dirty = _run_text(
        ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "pytest_oompa"]
    )
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu_model,
        "memory_gb": round(mem_gb, 1),
        "python": f"{platform.python_version()} ({sys.executable})",
        "git": _run_text(["git", "--version"]),
        "bash": _run_text(["bash", "--version"]).splitlines()[0] if shutil.which("bash") else "?",
        "os": f"{platform.system()} {platform.release()}",
        "tmp": f"{tmp} ({fs})",
        "pytest": metadata.version("pytest"),
        "pytest-oompa": f"{metadata.version('pytest-oompa')} at {checkout}"
        + (" + uncommitted changes in pytest_oompa/" if dirty else ""),
        "loadavg_start": os.getloadavg(),
        "env_notes": [
            f"{k}={os.environ[k]}"
            for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
            if k in os.environ
        ],
    }


def print_machine(m: dict[str, Any]) -> None:
    print(
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, {m['os']}\n"
        f"         python {m['python']}, {m['git']}, {m['bash']}\n"
        f"         pytest {m['pytest']}, pytest-oompa {m['pytest-oompa']}\n"
        f"         temp dirs in {m['tmp']}; load average at start "
        + " ".join(f"{x:.2f}" for x in m["loadavg_start"])
    )
    if m["env_notes"]:
        print(
            f"         {', '.join(m['env_notes'])} in this shell: (d) and (e) use a private, "
            "warm bytecode cache instead"
        )


BUSY_CORES = 0.25


class OtherLoad:
    """CPU used by processes that are not this benchmark's, from a start to now: the machine's
    busy time (/proc/stat) minus our own and our children's (rusage), in cores."""

    # CPU seconds of processes of ours that rusage never sees: the Ray cluster of (j), whose
    # processes are killed, not waited for (RayNodes reads their CPU from /proc).
    unreaped = 0.0

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.busy = self._busy()
        self.ours = sum(_cpu()) + OtherLoad.unreaped

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        ticks = [int(x) for x in fields[:8]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")

    def cores(self) -> float | None:
        busy = self._busy()
        if busy is None or self.busy is None:
            return None
        wall = time.perf_counter() - self.start
        other = (busy - self.busy) - (sum(_cpu()) + OtherLoad.unreaped - self.ours)
        return max(0.0, other / wall) if wall > 0 else None


def settle(budget: float, window: float = 2.0) -> None:
    """Wait (up to ``budget`` seconds) for a window in which other processes stay quiet."""
    deadline = time.perf_counter() + budget
    while True:
        meter = OtherLoad()
        time.sleep(window)
        other = meter.cores()
        if other is None or other < BUSY_CORES:
            return
        if time.perf_counter() >= deadline:
            log(f"    other processes still use {other:.2f} cores; going on")
            return
        log(f"    waiting: other processes use {other:.2f} cores")


# ------------------------------------------------------------------------------------ repos


class Workspace:
    def __init__(self, root: Path, keep: bool) -> None:
        self.root = root
        self.keep = keep
        self._n = 0

    def fresh(self, what: str) -> Path:
        self._n += 1
        folder = self.root / f"{self._n:03d}-{what}"
        folder.mkdir(parents=True)
        return folder

    def done(self, folder: Path) -> None:
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)


REAL_GIT = shutil.which("git") or "git"  # resolved before any shim is on PATH


def git(repo: Path, *args: str) -> str:
    """The benchmark's own git calls (setup, checks): never counted by the spawn shim."""
    proc = subprocess.run([REAL_GIT, *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def new_repo(path: Path) -> Path:
    """A project on main with one commit and its own identity (engine and floor alike)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for key, value in IDENTITY.items():
        git(path, "config", key, value)
    (path / "README.md").write_text("# benchmark project\n", encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


def repo_problems(repo: Path, expected_work_files: int) -> list[str]:
    """Every iteration's change landed on main, and nothing was left behind."""
    problems = []
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    if status:
        problems.append(f"dirty tree: {status[:5]}")
    branches = git(repo, "branch", "--format=%(refname:short)").split()
    if branches != ["main"]:
        problems.append(f"branches left: {branches[:5]}")
    worktrees = [
        x
        for x in git(repo, "worktree", "list", "--porcelain").splitlines()
        if x.startswith("worktree ")
    ]
    if len(worktrees) != 1:
        problems.append(f"worktrees left: {worktrees[1:5]}")
    files = [
        f
        for f in git(repo, "ls-tree", "-r", "--name-only", "main").split()
        if f.startswith("oompa-work/")
    ]
    if len(files) != expected_work_files:
        problems.append(f"{len(files)} work files on main, expected {expected_work_files}")
    return problems


def fake_worker_calls(log_path: Path) -> int:
    if not log_path.exists():
        return 0
    n = 0
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.strip() and json.loads(line).get("role") == "worker":
            n += 1
    return n


def slope(times: list[float]) -> float | None:
    """Seconds per iteration between the first and the last finished iteration."""
    times = sorted(times)
    return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None


# ------------------------------------------------------------------------------------ runs


@dataclass
class RunResult:
    kind: str  # engine | floor
    workers: int
    iterations: int
    wall: float
    per_iteration: float | None  # steady state, 1 worker: finish-to-finish slope
    git_calls: int | None = None  # engine: Repo.calls for the whole run
    git_calls_steady: float | None = None  # engine: per iteration between first and last
    retries: int = 0
    problems: list[str] = field(default_factory=list)
    head: float | None = None  # engine: start of run() to the first iteration's start
    tail: float | None = None  # engine: the last iteration's end to the end of run()
    cpu_self: float = 0.0  # engine: this process's CPU seconds during the run (all threads)
    cpu_children: float = 0.0  # CPU seconds of the processes started (git, agents, bash)

    @property
    def cpu_per_iteration(self) -> float:
        return (self.cpu_self + self.cpu_children) / (self.workers * self.iterations)


RUNS: list[dict[str, Any]] = []  # every run, for the JSON


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _record(run: RunResult) -> RunResult:
    RUNS.append({**asdict(run), "cpu_per_iteration": run.cpu_per_iteration})
    return run


LAST_RESULTS: list[IterationResult] = []  # the last engine run's iteration results, for (f)
LAST_NOTES: list[str] = []  # the last engine run's notes (a cluster's placements), for (j)


class _Timeline(SwarmListener):
    def __init__(self) -> None:
        self.events: list[tuple[float, IterationResult, int]] = []
        self.swarm: Swarm | None = None

    def iteration_finished(self, result: IterationResult) -> None:
        calls = self.swarm.repo.calls if self.swarm else 0
        self.events.append((time.perf_counter(), result, calls))


def _agent_env(folder: Path) -> dict[str, str]:
    return {
        "OOMPA_FAKE_LOG": str(folder / "fake-calls.jsonl"),
        "OOMPA_FAKE_STATE": str(folder / "fake-state"),
    }


def run_engine(
    ws: Workspace,
    workers: int,
    iterations: int,
    scenario: dict[str, Any] | None = None,
    cluster: Any = None,
) -> RunResult:
    folder = ws.fresh(f"engine-{workers}x{iterations}")
    repo = new_repo(folder / "project")
    cfg_dir = folder / "config"
    cfg_dir.mkdir()
    fake: Any = True
    if scenario is not None:
        (cfg_dir / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
        fake = {"scenario": "scenario.json"}
    data = {
        "probe": False,
        "fake_harnesses": fake,
        "workers": [{"model": "claude:opus", "iterations": iterations, "count": workers}],
    }
    cfg_path = cfg_dir / "oompa.json"
    cfg_path.write_text(json.dumps(data), encoding="utf-8")
    registry = HarnessRegistry()
    config = resolve(data, cfg_path, registry.names())
    listener = _Timeline()
    cpu0 = _cpu()
    start_epoch = time.time()
    start = time.perf_counter()
    swarm = Swarm(
        config,
        SwarmOptions(
            runs_dir=folder / "runs",
            repo_root=repo,
            env=_agent_env(folder),
            registry=registry,
            cluster=cluster,
        ),
        listener,
    )
    listener.swarm = swarm
    result = swarm.run()
    wall = time.perf_counter() - start
    cpu1 = _cpu()
    LAST_RESULTS[:] = [e[1] for e in listener.events]
    LAST_NOTES[:] = result.notes
    head = tail = None
    if listener.events:
        tail = start + wall - max(e[0] for e in listener.events)
        with contextlib.suppress(ValueError):
            first = min(
                datetime.fromisoformat(e[1].started_at.replace("Z", "+00:00")).timestamp()
                for e in listener.events
            )
            head = first - start_epoch

    expected = workers * iterations
    problems = list(result.errors)
    outcomes = [r.outcome.value for r in result.iterations]
    if outcomes.count("merged") != expected:
        others = sorted({o for o in outcomes if o != "merged"})
        problems.append(f"{outcomes.count('merged')}/{expected} iterations merged ({others})")
    merges = sum(w.metrics.merges for w in result.workers.values())
    if merges != expected:
        problems.append(f"{merges} merges in the worker metrics, expected {expected}")
    problems += repo_problems(repo, expected)
    calls = fake_worker_calls(folder / "fake-calls.jsonl")
    if calls != expected:
        problems.append(f"{calls} agent calls, expected {expected}")

    per_iteration = steady = None
    if workers == 1 and len(listener.events) > 1:
        events = sorted(listener.events, key=lambda e: e[0])
        per_iteration = slope([e[0] for e in events])
        steady = (events[-1][2] - events[0][2]) / (len(events) - 1)
    ws.done(folder)
    return _record(
        RunResult(
            "engine",
            workers,
            iterations,
            wall,
            per_iteration,
            swarm.repo.calls,
            steady,
            0,
            problems,
            cpu_self=cpu1[0] - cpu0[0],
            cpu_children=cpu1[1] - cpu0[1],
            head=head,
            tail=tail,
        )
    )


def floor_prompt() -> str:
    """The engine's first prompt for a worker, without its [oompa:swarm:worker] tag."""
    status = "Pending: 0, In Progress: 0, Complete: 0\nPending tasks: (none)"
    tag = prompts.tag("floor", "w0")
    text = prompts.fresh("floor", "w0", status, "")
    assert text.startswith(tag)
    return text[len(tag) :]


def floor_env(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{paths.fake_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    env["IS_SANDBOX"] = "1"  # what the engine adds to every claude call (the harness registry)
    env.update(_agent_env(folder))
    env.update(extra)
    return env


def run_floor(
    ws: Workspace,
    workers: int,
    iterations: int,
    scenario: dict[str, Any] | None = None,
    path_prefix: str | None = None,
) -> RunResult:
    folder = ws.fresh(f"floor-{workers}x{iterations}")
    repo = new_repo(folder / "project")
    out = folder / "out"
    out.mkdir()
    prompt_file = folder / "prompt.txt"
    prompt_file.write_text(floor_prompt(), encoding="utf-8")
    extra = {
        "FLOOR_REPO": str(repo),
        "FLOOR_AGENT": str(paths.fake_bin_dir() / "claude"),
        "FLOOR_PROMPT_FILE": str(prompt_file),
        "FLOOR_OUT": str(out),
        "FLOOR_SWARM": "floor",
    }
    if scenario is not None:
        (folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
        extra["OOMPA_FAKE_SCENARIO"] = str(folder / "scenario.json")
    env = floor_env(folder, extra)
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    argv = ["bash", str(FLOOR_SCRIPT), str(workers), str(iterations)]
    cpu0 = _cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    cpu1 = _cpu()

    expected = workers * iterations
    problems = []
    if proc.returncode != 0:
        problems.append(f"floor.sh exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    problems += repo_problems(repo, expected)
    calls = fake_worker_calls(folder / "fake-calls.jsonl")
    if calls != expected:
        problems.append(f"{calls} agent calls, expected {expected}")
    retries = len((out / "retries").read_text().splitlines()) if (out / "retries").exists() else 0
    per_iteration = None
    if workers == 1:
        times = [
            float(parts[2])
            for line in (out / "times").read_text().splitlines()
            if (parts := line.split()) and len(parts) == 3 and parts[1] != "0"
        ]
        if len(times) != expected:
            problems.append(f"{len(times)} iteration timestamps, expected {expected}")
        per_iteration = slope(times)
    ws.done(folder)
    return _record(
        RunResult(
            "floor",
            workers,
            iterations,
            wall,
            per_iteration,
            None,
            None,
            retries,
            problems,
            cpu_self=0.0,
            cpu_children=cpu1[1] - cpu0[1],
        )
    )


# ------------------------------------------------------------------------------------ spawns


GIT_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >>"$OOMPA_BENCH_GIT_LOG"
exec {git} "$@"
"""


@contextlib.contextmanager
def git_shim(ws: Workspace, log_path: Path) -> Iterator[str]:
    """A `git` first on PATH that logs each spawn (for this process and its children)."""
    folder = ws.fresh("git-shim")
    shim = folder / "git"
    shim.write_text(GIT_SHIM.format(git=REAL_GIT), encoding="utf-8")
    shim.chmod(0o755)
    saved = {k: os.environ.get(k) for k in ("PATH", "OOMPA_BENCH_GIT_LOG")}
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["OOMPA_BENCH_GIT_LOG"] = str(log_path)
    try:
        yield str(folder)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def count_spawns(ws: Workspace, iterations: int) -> dict[str, Any]:
    """Count every git spawn of a 1-worker run, engine and floor, through a logging shim:
    the orchestrator's own, and the agent's (the fake commits with user.name=fake-agent)."""
    out: dict[str, Any] = {}
    for kind in ("engine", "floor"):
        log_path = ws.root / f"git-spawns-{kind}.log"
        with git_shim(ws, log_path) as shim_dir:
            if kind == "engine":
                run = run_engine(ws, 1, iterations)
            else:
                run = run_floor(ws, 1, iterations, path_prefix=shim_dir)
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        agent = [x for x in lines if "user.name=fake-agent" in x]
        own = [x for x in lines if "user.name=fake-agent" not in x]
        out[kind] = {
            "total_own": len(own),
            "per_iteration_own": len(own) / iterations,
            "per_iteration_agent": len(agent) / iterations,
            "repo_calls": run.git_calls,
            "commands": sorted({" ".join(x.split()[:2]) for x in own}),
            "problems": run.problems,
        }
    return out


# ------------------------------------------------------------------------------------ pytest


def subprocess_env(ws: Workspace) -> dict[str, str]:
    """The caller's environment with a private, warm bytecode cache: (d) and (e) measure an
    installed package, not one that recompiles its sources at every start (this checkout is
    installed editable, and PYTHONDONTWRITEBYTECODE may be set)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ws.root / "pycache")
    return env


def no_bytecode_env() -> dict[str, str]:
    """The caller's environment as a CI image or container often has it: bytecode is neither
    written nor cached for this package (pytest's rewritten bytecode included)."""
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def forget_rewritten_bytecode() -> None:
    """Remove pytest's assertion-rewritten bytecode of the package (``*-pytest-*.pyc``): pytest
    rewrites every module of a pytest11 plugin's distribution, and reads such a file when it
    exists even where it writes none. Without it, every module the plugin loads is parsed,
    rewritten and compiled again at every start."""
    package = Path(paths.__file__).resolve().parents[1]
    for pyc in package.rglob("__pycache__/*-pytest-*.pyc"):
        pyc.unlink(missing_ok=True)


def timed(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc


def collect_setup(ws: Workspace, workers: int, iterations: int) -> tuple[Path, Path]:
    empty = ws.fresh("pytest-empty")
    cfg_dir = ws.fresh("pytest-collect")
    data = {
        "probe": False,
        "fake_harnesses": True,
        "workers": [{"model": "claude:opus", "iterations": iterations, "count": workers}],
    }
    (cfg_dir / "oompa.json").write_text(json.dumps(data), encoding="utf-8")
    return empty, cfg_dir / "oompa.json"


PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
RSS_WRAPPER = r"""
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "maxrss_kb": r.ru_maxrss,
                  "tail": p.stdout.decode("utf-8", "replace")[-1500:]}))
"""


def peak_rss(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """Peak RSS (MB) of ``argv`` and its descendants (the largest one: the pytest process),
    measured by a fresh wrapper process's RUSAGE_CHILDREN."""
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["maxrss_kb"] / 1024, data["rc"], data["tail"]


# ------------------------------------------------------------------------------------ ray


# A cluster on loopback, for this benchmark only: no token (Ray turns token authentication on
# for `ray start` clusters; the coordinator would need it too), no usage report.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
RAY_OBJECT_STORE = str(100 * 2**20)  # bytes per node: bundles are small, /dev/shm may be too
RAY_WAITER = r"""
import sys, time, ray
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
        break
    except ConnectionError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
while time.monotonic() < deadline:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if sum(1 for n in alive if n.get("Resources", {}).get("CPU", 0) > 0) >= want:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"{want} nodes with CPUs did not join in time")
"""


Key = tuple[int, float]  # a process: its pid and start time (pids are reused)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayNodes:
    """A Ray cluster of this benchmark's own on this machine: a head with no CPU (the GCS;
    no worker lands there) and ``nodes`` nodes of ``cpus`` CPUs, each a ``ray start --block``
    process in a session of its own, with its own temporary folder under one private
    folder. ``close`` kills every process of it (nothing else: other Ray clusters on the
    machine are left alone) and removes the folder.

    Most of the cluster's CPU never reaches this process's rusage (Ray reaps its own
    workers, and is killed): a thread reads it from /proc every second (``cpu``), and what
    rusage does get at the end is taken off, for the ``other`` column."""

    def __init__(self, nodes: int, cpus: int, env: dict[str, str]) -> None:
        self.nodes, self.cpus = nodes, cpus
        self.env = {**env, **RAY_ENV}
        self.temp = Path(tempfile.mkdtemp(prefix="oompa-bray-", dir="/tmp"))  # short: sockets
        self.address = f"127.0.0.1:{free_port()}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.startup = 0.0
        # (pid, start time) -> its own CPU seconds, its reaped children's, its parent's key
        self._cpu: dict[Key, tuple[float, float, Key | None]] = {}
        self._alive: set[Key] = set()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_cpu, daemon=True)

    def start(self) -> None:
        ray = str(Path(sys.executable).parent / "ray")
        common = [
            f"--object-store-memory={RAY_OBJECT_STORE}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
            "--block",
        ]
        began = time.perf_counter()
        port = self.address.rpartition(":")[2]
        self._sampler.start()
        self._spawn(
            "h",
            [
                ray,
                "start",
                "--head",
                f"--port={port}",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",  # not 10001: another cluster's
                *common,
            ],
        )
        deadline = time.monotonic() + 90
        while True:  # the GCS answers: the nodes can join
            try:
                socket.create_connection(("127.0.0.1", int(port)), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.procs[0].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start at {self.address}") from None
                time.sleep(0.2)
        for k in range(1, self.nodes + 1):
            argv = [ray, "start", f"--address={self.address}", f"--num-cpus={self.cpus}"]
            self._spawn(str(k), [*argv, *common])
        waiter = subprocess.run(
            [sys.executable, "-c", RAY_WAITER, self.address, str(self.nodes), "120"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if waiter.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not come up: {waiter.stderr[-500:]}")
        self.startup = time.perf_counter() - began

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs.append(
            subprocess.Popen(
                [*argv, f"--temp-dir={self.temp / name}"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def _sample_cpu(self) -> None:
        while True:
            keys: dict[int, Key] = {}
            found = []
            for p in self._descendants():
                with contextlib.suppress(psutil.Error):
                    keys[p.pid] = (p.pid, p.create_time())
                    found.append((p, p.ppid(), p.cpu_times()))
            for p, ppid, t in found:
                own, reaped = t.user + t.system, t.children_user + t.children_system
                self._cpu[keys[p.pid]] = (own, reaped, keys.get(ppid))
            self._alive = {keys[p.pid] for p, _, _ in found}
            if self._done.wait(1.0):
                return

    def cpu(self) -> float:
        """CPU seconds of the cluster's processes: each one's own, as last read, and what each
        reaped, less the part of it already read from those children (read alive, gone
        since)."""
        counted: dict[Key, float] = {}
        for key, (own, reaped, parent) in self._cpu.items():
            if key not in self._alive and parent is not None:
                counted[parent] = counted.get(parent, 0.0) + own + reaped
        return sum(
            own + max(0.0, reaped - counted.get(key, 0.0))
            for key, (own, reaped, _) in self._cpu.items()
        )

    def _descendants(self) -> list[psutil.Process]:
        found = []
        for proc in list(self.procs):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                found += [root, *root.children(recursive=True)]
        return found

    def _processes(self) -> dict[int, psutil.Process]:
        """Every process of the cluster: the `ray start` processes and their descendants, and
        any that outlived its parent (reparented, found by the private folder in its argv)."""
        found = {p.pid: p for p in self._descendants()}
        for p in psutil.process_iter(["cmdline"]):
            if any(str(self.temp) in arg for arg in p.info["cmdline"] or ()):
                found.setdefault(p.pid, p)
        return found

    def close(self) -> list[str]:
        """Kill every process of the cluster at once (a graceful `ray stop` takes half a
        minute and there is nothing worth keeping); returns the processes still there."""
        if self._sampler.is_alive():
            self._done.set()
            self._sampler.join()
            self._sample_cpu()  # the last reading (the event is set: one pass)
        before = sum(_cpu())
        everything = self._processes()
        for pid in everything:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        deadline = time.monotonic() + 10
        left = list({**everything, **self._processes()}.values())
        while True:
            _reap(left)
            left = [p for p in left if _alive(p)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        _reap(list(everything.values()))
        OtherLoad.unreaped += max(0.0, self.cpu() - (sum(_cpu()) - before))
        shutil.rmtree(self.temp, ignore_errors=True)
        return [f"pid {p.pid} still running" for p in left]


def _reap(processes: list[psutil.Process]) -> None:
    """Wait for those that are this process's children: if a figure ran a swarm here, the
    engine made this process a subreaper, and a killed cluster's orphans come to it."""
    for p in processes:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p.pid, os.WNOHANG)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def coordinator_main(spec: dict[str, Any]) -> int:
    """A child process's body (``--coordinator``): one swarm, on threads or, with an address,
    on the Ray cluster there; what it measured goes to spec["out"] as JSON."""
    ws = Workspace(Path(spec["root"]), keep=False)
    cluster: Any = None
    bundles: dict[str, list[int]] = {"out": [], "back": []}
    if spec["address"]:
        from pytest_oompa.engine.cluster import ray_cluster, transfer

        # The sizes of the bundles the coordinator packs and unpacks (its side of each call).
        pack, unpack = transfer.pack, transfer.unpack

        def counted_pack(
            repo: Path, state: transfer.TreeState, known: Iterable[str], name: str
        ) -> bytes | None:
            bundle = pack(repo, state, known, name)
            bundles["out"].append(len(bundle or b""))
            return bundle

        def counted_unpack(repo: Path, bundle: bytes | None) -> None:
            bundles["back"].append(len(bundle or b""))
            unpack(repo, bundle)

        vars(ray_cluster).update(pack=counted_pack, unpack=counted_unpack)
        cluster = ray_cluster.RayCluster(spec["address"], scratch=spec["scratch"])
    run = run_engine(ws, spec["workers"], spec["iterations"], spec["scenario"], cluster)
    durations: dict[int, list[float]] = {}
    for r in LAST_RESULTS:
        durations.setdefault(r.iteration, []).append(r.duration_ms / 1000)
    nodes = sorted(
        {m.group(1) for n in LAST_NOTES if (m := re.search(r"runs on node .*\((\w+)\)", n))}
    )
    failed = [
        f"{r.worker_id} #{r.iteration} {r.outcome.value}: {(r.error or '').strip()[:400]}"
        for r in LAST_RESULTS
        if r.outcome.value != "merged"
    ]
    document = {
        "run": asdict(run),
        "failed": failed,
        "overheads": list(cluster.call_overheads) if cluster is not None else [],
        "bundles": bundles,
        "durations": {str(k): v for k, v in sorted(durations.items())},
        "nodes": nodes,
        "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    Path(spec["out"]).write_text(json.dumps(document), encoding="utf-8")
    return 0


def coordinator_run(
    spec: dict[str, Any], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[dict[str, Any] | None, float, str]:
    """Run ``coordinator_main`` in a fresh process under the RSS wrapper (as (e) does): what it
    measured, its peak RSS (MB), and its output's tail, or None and why."""
    argv = [sys.executable, "-c", RSS_WRAPPER, sys.executable, str(Path(__file__).resolve())]
    argv += ["--coordinator", json.dumps(spec)]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, 0.0, f"no result in {timeout:g} s"
    try:
        data = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return None, 0.0, f"exit {proc.returncode}: {(stdout + stderr)[-800:]}"
    out = Path(spec["out"])
    if data["rc"] != 0 or not out.exists():
        return None, 0.0, f"exit {data['rc']}: {data['tail'][-800:]}"
    return json.loads(out.read_text(encoding="utf-8")), data["maxrss_kb"] / 1024, data["tail"]


def quantile(xs: list[float], q: float) -> float:
    """The q-quantile of xs (linear between the two nearest ranks)."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1]


# ------------------------------------------------------------------------------------ artifacts


def iteration_doc(worker: str, n: int) -> dict[str, Any]:
    """What Recorder.iteration writes for a merged iteration."""
    metrics = WorkerMetrics(merges=n, completed=n).contract()
    return {
        "worker-id": worker,
        "iteration": n,
        "outcome": "merged",
        "timestamp": utc_now_iso(),
        "duration-ms": 71,
        "task-id": "task-1",
        "recycled-tasks": [],
        "error-snippet": None,
        "review-rounds": 1,
        "metrics": metrics,
    }


def live_entry(n: int) -> dict[str, Any]:
    return {**WorkerMetrics(merges=n, completed=n).contract(), "iteration": n, "status": "merged"}


def bench_artifacts(folder: Path, calls: int, live_workers: int) -> dict[str, float]:
    """Per-call microseconds: the store, and baselines writing the same two documents."""
    store = ArtifactStore(folder / "runs", f"bench-{live_workers}")
    for k in range(live_workers):
        store.update_live_summary(f"w{k}", live_entry(1))
    workers = [f"w{k}" for k in range(live_workers)]

    start = time.perf_counter()
    for i in range(calls):
        w, n = workers[i % live_workers], i + 2
        store.write_iteration(iteration_doc(w, n))
        store.update_live_summary(w, live_entry(n))
    store_us = (time.perf_counter() - start) / calls * 1e6

    # The same documents, as the store would have produced them.
    now = utc_now_iso()
    live_workers_map: dict[str, Any] = {w: {**live_entry(2), "updated-at": now} for w in workers}
    live_doc = {"swarm-id": "bench", "updated-at": now, "workers": live_workers_map}
    plain_dir = folder / "plain"
    plain_dir.mkdir(exist_ok=True)

    def plain_write(path: Path, doc: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, path)

    start = time.perf_counter()
    for i in range(calls):
        w, n = workers[i % live_workers], i + 2
        plain_write(plain_dir / f"{w}-i{n}.json", iteration_doc(w, n))
        now = utc_now_iso()
        live_workers_map[w] = {**live_entry(n), "updated-at": now}
        live_doc["updated-at"] = now
        plain_write(plain_dir / "live-summary.json", live_doc)
    plain_us = (time.perf_counter() - start) / calls * 1e6

    start = time.perf_counter()
    for i in range(calls):
        w, n = workers[i % live_workers], i + 2
        validate_artifact("iteration", json.loads(dumps_json(iteration_doc(w, n))))
        validate_artifact("live-summary", json.loads(dumps_json(live_doc)))
    validate_us = (time.perf_counter() - start) / calls * 1e6

    atomic_dir = folder / "atomic"
    atomic_dir.mkdir(exist_ok=True)
    live_text = dumps_json(live_doc)
    start = time.perf_counter()
    for i in range(calls):
        w, n = workers[i % live_workers], i + 2
        atomic_write_text(atomic_dir / f"{w}-i{n}.json", dumps_json(iteration_doc(w, n)))
        atomic_write_text(atomic_dir / "live-summary.json", live_text)
    atomic_us = (time.perf_counter() - start) / calls * 1e6
    return {"store": store_us, "plain": plain_us, "validate": validate_us, "atomic": atomic_us}


def bench_recorder(ws: Workspace, calls: int, runs: int) -> list[float] | str:
    """ms per Recorder.iteration(result), with results of a real 1-worker run: every file the
    engine writes for an iteration. Internal API: a string says why it was skipped."""
    import dataclasses

    if not LAST_RESULTS:
        run_engine(ws, 1, 2)
    results = LAST_RESULTS
    if not results:
        return "no iteration result to replay"
    out = []
    try:
        for _ in range(runs):
            folder = ws.fresh("recorder")
            cfg_path = folder / "oompa.json"
            data = {"probe": False, "fake_harnesses": True, "workers": [{"model": "claude:opus"}]}
            cfg_path.write_text(json.dumps(data), encoding="utf-8")
            registry = HarnessRegistry()
            config = resolve(data, cfg_path, registry.names())
            repo = new_repo(folder / "project")
            swarm = Swarm(
                config,
                SwarmOptions(runs_dir=folder / "runs", repo_root=repo, registry=registry),
            )
            recorder = swarm.recorder
            start = time.perf_counter()
            for i in range(calls):
                recorder.iteration(dataclasses.replace(results[0], iteration=i + 1))
            out.append((time.perf_counter() - start) / calls * 1000)
            ws.done(folder)
    except Exception as exc:  # the engine's internals moved: report, do not fail the run
        return f"{type(exc).__name__}: {exc}"
    return out


# ------------------------------------------------------------------------------------ main


@dataclass
class Plan:
    quick: bool
    repeat: int  # expensive figures
    cheap: int  # cheap figures
    a_iterations: int
    b_sizes: list[tuple[int, int]]
    c_workers: list[int]
    c_iterations: int
    d_size: tuple[int, int] = (200, 50)
    e_size: tuple[int, int] = (64, 2)
    f_calls: int = 100
    spawn_iterations: int = 5
    g_runs: int = 7
    h_calls: int = 200
    j_size: tuple[int, int] = (32, 3)


def make_plan(quick: bool, repeat: int | None) -> Plan:
    if quick:
        return Plan(
            True,
            repeat or 1,
            repeat or 3,
            a_iterations=10,
            b_sizes=[(4, 5), (8, 5)],
            c_workers=[4, 8, 16],
            c_iterations=2,
            e_size=(64, 1),
            f_calls=50,
            h_calls=100,
            j_size=(8, 2),
        )
    return Plan(
        False,
        repeat or 3,
        repeat or 5,
        a_iterations=20,
        b_sizes=[(4, 10), (8, 10)],
        c_workers=[4, 8, 16],
        c_iterations=3,
    )


class Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, what: str, problems: list[str], detail: str = "") -> None:
        self.items.append({"what": what, "ok": not problems, "problems": problems})
        if detail:
            self.items[-1]["detail"] = detail
        if problems:
            log(f"  CHECK FAILED: {what}: {problems}")

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.items if not c["ok"]]


def med(xs: list[float]) -> float:
    return statistics.median(xs)


class Bench:
    def __init__(self, ws: Workspace, plan: Plan) -> None:
        self.ws = ws
        self.plan = plan
        self.rows: list[Row] = []
        self.checks = Checks()
        self.extra: dict[str, Any] = {}
        self.env = subprocess_env(ws)

    def pair(
        self, what: str, workers: int, iterations: int, runs: int, scenario: Any = None
    ) -> tuple[list[RunResult], list[RunResult]]:
        """Engine and floor runs, alternating, every one checked."""
        eng, flo = [], []
        for _ in range(runs):
            e = run_engine(self.ws, workers, iterations, scenario)
            f = run_floor(self.ws, workers, iterations, scenario)
            self.checks.add(f"{what} engine {workers}x{iterations}", e.problems)
            self.checks.add(
                f"{what} floor {workers}x{iterations}", f.problems, f"{f.retries} retries"
            )
            eng.append(e)
            flo.append(f)
            if workers == 1 and e.per_iteration and f.per_iteration:
                log(
                    f"    engine {e.per_iteration * 1e3:.1f} ms/it, "
                    f"floor {f.per_iteration * 1e3:.1f} ms/it"
                )
            else:
                log(f"    engine {e.wall:.2f} s ({e.git_calls} git), floor {f.wall:.2f} s")
        return eng, flo

    # (a) ---------------------------------------------------------------------------------------

    def figure_a(self) -> None:
        n, runs = self.plan.a_iterations, self.plan.cheap
        log(f"(a) 1 worker x {n}, engine vs floor, {runs} runs each")
        eng, flo = self.pair("(a)", 1, n, runs)
        self.rows.append(
            Row(
                "a.per_iteration",
                f"(a) per iteration, 1 worker x {n}",
                "ms",
                [e.per_iteration * 1e3 for e in eng if e.per_iteration],
                [f.per_iteration * 1e3 for f in flo if f.per_iteration],
                "floor",
                target="ratio <= 1.00",
                target_check=lambda r: (r.ratio or 0) <= 1.0,
                note="steady state: (last finish - first finish) / (N - 1); instant fake agent",
            )
        )
        heads = [e.head * 1e3 for e in eng if e.head is not None]
        tails = [e.tail * 1e3 for e in eng if e.tail is not None]
        self.rows.append(
            Row(
                "a.wall",
                f"    whole run, 1 worker x {n}",
                "s",
                [e.wall for e in eng],
                [f.wall for f in flo],
                "floor",
                note=(
                    f"engine Swarm() + run(): start to first iteration {fmt_range(heads, 'ms')}, "
                    f"last iteration to return {fmt_range(tails, 'ms')}"
                ),
            )
        )
        self.rows.append(
            Row(
                "a.cpu",
                "    CPU per iteration, all processes",
                "ms",
                [e.cpu_per_iteration * 1e3 for e in eng],
                [f.cpu_per_iteration * 1e3 for f in flo],
                "floor",
                note=(
                    "whole run, user+sys incl. git and agent; the engine process alone: "
                    + fmt_range([e.cpu_self / n * 1e3 for e in eng], "ms")
                ),
            )
        )
        steady = [e.git_calls_steady for e in eng if e.git_calls_steady is not None]
        total = med([e.git_calls or 0 for e in eng])
        self.rows.append(
            Row(
                "a.git_spawns",
                "    git spawns per iteration",
                "calls",
                steady,
                [float(FLOOR_GIT_PER_ITERATION)] * len(steady),
                "floor",
                note=(
                    f"engine: Repo.calls between first and last iteration (whole run: {total:.0f} "
                    f"for {n}); the agent's own 2 (add, commit) on both sides not counted"
                ),
            )
        )

    def figure_spawns(self) -> None:
        k = self.plan.spawn_iterations
        log(f"(spawns) 1 worker x {k} through a git shim that logs every spawn")
        spawns = count_spawns(self.ws, k)
        self.extra["git_spawns"] = spawns
        eng, flo = spawns["engine"], spawns["floor"]
        for kind in ("engine", "floor"):
            self.checks.add(f"(spawns) {kind} 1x{k}", spawns[kind]["problems"])
        mismatch = []
        if eng["repo_calls"] != eng["total_own"]:
            mismatch.append(f"Repo.calls {eng['repo_calls']} != {eng['total_own']} shim spawns")
        if flo["per_iteration_own"] != FLOOR_GIT_PER_ITERATION:
            mismatch.append(f"floor: {flo['per_iteration_own']} git spawns per iteration")
        self.checks.add("(spawns) Repo.calls and floor.sh agree with the shim", mismatch)
        self.rows.append(
            Row(
                "spawns.whole_run",
                f"    git spawns / iteration, 1x{k} (shim)",
                "calls",
                [eng["per_iteration_own"]],
                [flo["per_iteration_own"]],
                "floor",
                note=(
                    f"every spawn of the whole run (preflight and end included), counted by a git "
                    f"shim: engine {eng['total_own']} for {k} iterations; the agent's own "
                    f"{eng['per_iteration_agent']:.0f} per iteration on both sides not included"
                ),
            )
        )

    # (b) ---------------------------------------------------------------------------------------

    def figure_b(self) -> None:
        for w, n in self.plan.b_sizes:
            log(f"(b) {w} workers x {n}, engine vs floor, {self.plan.repeat} runs each")
            eng, flo = self.pair("(b)", w, n, self.plan.repeat)
            per_e = med([e.wall for e in eng]) / (w * n) * 1e3
            per_f = med([f.wall for f in flo]) / (w * n) * 1e3
            spawns = med([(e.git_calls or 0) / (w * n) for e in eng])
            cpu_e = med([e.cpu_per_iteration for e in eng]) * 1e3
            cpu_f = med([f.cpu_per_iteration for f in flo]) * 1e3
            big = w >= 8
            self.rows.append(
                Row(
                    f"b.wall_{w}x{n}",
                    f"(b) wall, {w} workers x {n}",
                    "s",
                    [e.wall for e in eng],
                    [f.wall for f in flo],
                    "floor",
                    target="ratio <= 1.15" if big else "",
                    target_check=(lambda r: (r.ratio or 0) <= 1.15) if big else None,
                    note=(
                        f"wall/iteration {per_e:.0f} vs {per_f:.0f} ms; CPU/iteration {cpu_e:.0f} "
                        f"vs {cpu_f:.0f} ms; git spawns/iteration {spawns:.1f} vs "
                        f"{FLOOR_GIT_PER_ITERATION} (+{FLOOR_FLOCK_PER_ITERATION} flock)"
                    ),
                )
            )

    # (c) ---------------------------------------------------------------------------------------

    def figure_c(self) -> None:
        n = self.plan.c_iterations
        for w in self.plan.c_workers:
            log(f"(c) {w} workers x {n}, 1 s agent, engine vs floor, {self.plan.repeat} runs each")
            eng, flo = self.pair("(c)", w, n, self.plan.repeat, DELAY_SCENARIO)
            big = w >= 16
            self.rows.append(
                Row(
                    f"c.efficiency_{w}",
                    f"(c) efficiency, {w} workers x {n}, 1 s agent",
                    "eff",
                    [n * 1.0 / e.wall for e in eng],
                    [n * 1.0 / f.wall for f in flo],
                    "floor",
                    lower_is_better=False,
                    target=">= 0.90" if big else "",
                    target_check=(lambda r: r.median >= 0.9) if big else None,
                    note=(
                        f"{n} x 1 s / wall; wall {fmt_range([e.wall for e in eng], 's')} vs "
                        f"{fmt_range([f.wall for f in flo], 's')}"
                    ),
                )
            )

    # (d) ---------------------------------------------------------------------------------------

    def figure_d(self) -> None:
        w, n = self.plan.d_size
        runs = self.plan.cheap
        log(f"(d) pytest --collect-only, {w}x{n} = {w * n} items vs an empty folder, {runs} runs")
        empty, cfg = collect_setup(self.ws, w, n)
        plain_argv = [*PYTEST, "--collect-only", "-q"]
        collect_argv = [*PYTEST, "--collect-only", "-q", f"--oompa-swarm={cfg}"]
        bare_argv = [*PYTEST, "-p", "no:oompa", "--collect-only", "-q"]
        timed(plain_argv, empty, self.env)  # warm the private bytecode cache
        timed(collect_argv, cfg.parent, self.env)
        plain, collect, bare = [], [], []
        for _ in range(runs):
            t, p = timed(plain_argv, empty, self.env)
            bad = [] if p.returncode == 5 else [f"exit {p.returncode}: {p.stdout[-300:]}"]
            self.checks.add("(d) plain pytest", bad)
            plain.append(t)
            t, p = timed(bare_argv, empty, self.env)
            bare.append(t)
            t, p = timed(collect_argv, cfg.parent, self.env)
            m = re.search(r"(\d+) tests? collected", p.stdout)
            got = int(m.group(1)) if m else 0
            bad = []
            if p.returncode != 0 or got != w * n:
                bad = [f"exit {p.returncode}, {got} collected: {(p.stdout + p.stderr)[-400:]}"]
            self.checks.add(f"(d) collect {w * n}", bad)
            collect.append(t)
            log(f"    plain {plain[-1]:.2f} s, collect {collect[-1]:.2f} s")
        self.rows.append(
            Row(
                "d.collect",
                f"(d) pytest --collect-only, {w}x{n} = {w * n} items",
                "s",
                collect,
                plain,
                "plain pytest",
                target="delta <= 1.50 s",
                target_check=lambda r: (r.delta or 0) <= 1.5,
                note=(
                    f"beyond plain pytest: {med(collect) - med(plain):.2f} s; "
                    f"plain pytest with -p no:oompa: {fmt_range(bare, 's')}"
                ),
            )
        )

    # (e) ---------------------------------------------------------------------------------------

    def figure_e(self) -> None:
        w, n = self.plan.e_size
        runs = self.plan.repeat
        log(f"(e) peak RSS, pytest --oompa-swarm {w}x{n} vs plain pytest, {runs} runs")
        empty = self.ws.fresh("rss-empty")
        rss, base, walls = [], [], []
        for _ in range(runs):
            base.append(peak_rss([*PYTEST, "--collect-only", "-q"], empty, self.env)[0])
            folder = self.ws.fresh(f"rss-{w}x{n}")
            repo = new_repo(folder / "project")
            config = {
                "probe": False,
                "fake_harnesses": True,
                "workers": [{"model": "claude:opus", "iterations": n, "count": w}],
            }
            (folder / "oompa.json").write_text(json.dumps(config), encoding="utf-8")
            argv = [
                *PYTEST,
                "-q",
                f"--oompa-swarm={folder / 'oompa.json'}",
                f"--oompa-repo={repo}",
                f"--oompa-runs-dir={folder / 'runs'}",
            ]
            start = time.perf_counter()
            mb, rc, tail = peak_rss(argv, folder, {**self.env, **_agent_env(folder)})
            walls.append(time.perf_counter() - start)
            bad = [] if rc == 0 and f"{w * n} passed" in tail else [f"exit {rc}: {tail[-400:]}"]
            self.checks.add(f"(e) pytest swarm {w}x{n}", bad + repo_problems(repo, w * n))
            rss.append(mb)
            self.ws.done(folder)
            log(f"    swarm {mb:.1f} MB in {walls[-1]:.1f} s, plain pytest {base[-1]:.1f} MB")
        self.rows.append(
            Row(
                "e.rss",
                f"(e) peak RSS, pytest swarm {w} workers x {n}",
                "MB",
                rss,
                base,
                "plain pytest",
                target="<= 100 MB",
                target_check=lambda r: r.median <= 100,
                note=(
                    "max RSS of pytest and its descendants (RUSAGE_CHILDREN of a fresh wrapper); "
                    f"wall {fmt_range(walls, 's')}"
                ),
            )
        )

    # (f) ---------------------------------------------------------------------------------------

    def figure_f(self) -> None:
        calls, runs = self.plan.f_calls, self.plan.cheap
        for live in (1, 64):
            log(f"(f) artifact writes, {calls} calls, {live} live worker(s), {runs} runs")
            got: dict[str, list[float]] = {}
            for _ in range(runs):
                folder = self.ws.fresh(f"artifacts-{live}")
                for k, v in bench_artifacts(folder, calls, live).items():
                    got.setdefault(k, []).append(v / 1000)
                self.ws.done(folder)
            self.rows.append(
                Row(
                    f"f.artifacts_{live}",
                    f"(f) artifacts / iteration, {live} live worker{'s' if live > 1 else ''}",
                    "ms",
                    got["store"],
                    got["plain"],
                    "json.dump+os.replace",
                    note=(
                        f"the same documents: schema validation {fmt(med(got['validate']), 'ms')}, "
                        f"atomic writes with fsync {fmt(med(got['atomic']), 'ms')}"
                    ),
                )
            )
        log(f"(f) Recorder.iteration, {calls} calls, {runs} runs")
        rec = bench_recorder(self.ws, calls, runs)
        if isinstance(rec, str):
            self.extra["recorder_skipped"] = rec
            log(f"    skipped: {rec}")
            return
        self.rows.append(
            Row(
                "f.recorder",
                "    Recorder.iteration, 1 worker",
                "ms",
                rec,
                note="all the engine writes per iteration: iteration, calls/ and live summary",
            )
        )

    # (g) ---------------------------------------------------------------------------------------

    def figure_g(self) -> None:
        runs = self.plan.g_runs
        folder = self.ws.fresh("startup")
        (folder / "test_one.py").write_text("def test_one():\n    assert True\n", encoding="utf-8")
        one = [*PYTEST, "-q", "test_one.py"]
        bare = [*PYTEST, "-p", "no:oompa", "-q", "test_one.py"]
        for mode, env in (("bytecode cached", self.env), ("no bytecode", no_bytecode_env())):
            log(f"(g) pytest start, {mode}: one test with and without the plugin, {runs} runs")
            if mode == "no bytecode":
                forget_rewritten_bytecode()
            else:
                timed(one, folder, env)  # warm the private cache
            with_plugin, without, swarm = [], [], []
            for i in range(runs):
                t, p = timed(one, folder, env)
                self.checks.add(f"(g) one test, {mode}", [] if p.returncode == 0 else [p.stdout])
                with_plugin.append(t)
                t, p = timed(bare, folder, env)
                without.append(t)
                sw = self.ws.fresh(f"startup-swarm-{i}")
                repo = new_repo(sw / "project")
                cfg = {"probe": False, "fake_harnesses": True, "workers": [{"model": "claude:x"}]}
                cfg["workers"][0]["iterations"] = 1
                (sw / "oompa.json").write_text(json.dumps(cfg), encoding="utf-8")
                argv = [
                    *PYTEST,
                    "-q",
                    f"--oompa-swarm={sw / 'oompa.json'}",
                    f"--oompa-repo={repo}",
                    f"--oompa-runs-dir={sw / 'runs'}",
                ]
                t, p = timed(argv, sw, {**env, **_agent_env(sw)})
                ok = p.returncode == 0 and "1 passed" in p.stdout
                self.checks.add(
                    f"(g) 1x1 swarm, {mode}",
                    ([] if ok else [p.stdout[-400:]]) + repo_problems(repo, 1),
                )
                swarm.append(t)
                self.ws.done(sw)
                log(f"    plugin {with_plugin[-1]:.3f} s, -p no:oompa {without[-1]:.3f} s, ")
                log(f"    swarm 1x1 {swarm[-1]:.3f} s")
            key = "cached" if mode == "bytecode cached" else "nobytecode"
            self.rows.append(
                Row(
                    f"g.idle_{key}",
                    f"(g) one-test pytest run, plugin installed, {mode}",
                    "s",
                    with_plugin,
                    without,
                    "-p no:oompa",
                    target="ratio <= 1.10",
                    target_check=lambda r: (r.ratio or 9) <= 1.10,
                )
            )
            self.rows.append(
                Row(
                    f"g.swarm_{key}",
                    f"(g) 1 worker x 1 iteration swarm, {mode}",
                    "s",
                    swarm,
                    without,
                    "bare pytest start",
                    target="delta <= 0.30 s",
                    target_check=lambda r: (r.delta or 9) <= 0.30,
                    note="the whole pytest process: start, preflight, one iteration, artifacts",
                )
            )

    # (i) ---------------------------------------------------------------------------------------

    def figure_i(self) -> None:
        runs = self.plan.cheap
        log(f"(i) the live view: 4x3 swarm, 0.5 s agent, on a terminal, on vs off, {runs} runs")
        got: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": []} for m in ("on", "off")}
        for i in range(runs):
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                sw = self.ws.fresh(f"live-{mode}-{i}")
                repo = new_repo(sw / "project")
                scenario = {"default": {"worker": {"builtin": True, "delay": 0.5}}}
                (sw / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
                cfg = {
                    "probe": False,
                    "fake_harnesses": {"scenario": str(sw / "scenario.json")},
                    "workers": [{"model": "claude:x", "iterations": 3, "count": 4}],
                }
                (sw / "oompa.json").write_text(json.dumps(cfg), encoding="utf-8")
                argv = [
                    *PYTEST,
                    f"--oompa-swarm={sw / 'oompa.json'}",
                    f"--oompa-repo={repo}",
                    f"--oompa-runs-dir={sw / 'runs'}",
                    f"--oompa-live={mode}",
                ]
                wall, cpu, rc, tail = run_in_pty(argv, sw, {**self.env, **_agent_env(sw)})
                ok = rc == 0 and "12 passed" in tail
                self.checks.add(
                    f"(i) 4x3 swarm, live {mode}",
                    ([] if ok else [tail[-400:]]) + repo_problems(repo, 12),
                )
                got[mode]["wall"].append(wall)
                got[mode]["cpu"].append(cpu)
                self.ws.done(sw)
                log(f"    live {mode}: wall {wall:.2f} s, cpu {cpu:.2f} s")
        self.rows.append(
            Row(
                "i.wall",
                "(i) 4x3 swarm on a terminal, --oompa-live=on",
                "s",
                got["on"]["wall"],
                got["off"]["wall"],
                "--oompa-live=off",
                target="ratio <= 1.05",
                target_check=lambda r: (r.ratio or 9) <= 1.05,
            )
        )
        self.rows.append(
            Row(
                "i.cpu",
                "(i) the same, CPU time of pytest and its agents",
                "s",
                got["on"]["cpu"],
                got["off"]["cpu"],
                "--oompa-live=off",
                note="the block is redrawn once a second: a snapshot and a few hundred bytes",
            )
        )

    # (h) ---------------------------------------------------------------------------------------

    def figure_h(self) -> None:
        calls, runs = self.plan.h_calls, self.plan.cheap
        log(f"(h) end-of-call sweep: {calls} trivial calls with and without it, {runs} runs")
        got = bench_sweep(self.ws.fresh("sweep"), calls, runs)
        self.checks.add("(h) calls exit 0, the left child killed and reported", got["problems"])
        self.rows.append(
            Row(
                "h.sweep",
                "(h) a trivial call (/bin/true), sweep on",
                "ms",
                got["on"],
                got["off"],
                "sweep off",
                target="delta <= 8 ms (a tenth of an iteration)",
                target_check=lambda r: (r.delta or 0) <= 8,
                note=(
                    f"the sweep alone {fmt(med(got['on']) - med(got['off']), 'ms')} per call; "
                    f"a call leaving a background child to kill {fmt(med(got['left']), 'ms')}; "
                    f"the marker scan of all {got['processes']} processes (no subreaper) "
                    f"{fmt(med(got['scan']), 'ms')}"
                ),
            )
        )

    # (j) ---------------------------------------------------------------------------------------

    def figure_j(self) -> None:
        w, n = self.plan.j_size
        runs, nodes, cpus = self.plan.repeat, 2, 2
        try:
            import ray  # noqa: F401  (only whether it is installed)
        except ImportError:
            self.extra["ray_skipped"] = "ray is not installed (pip install pytest-oompa[ray])"
            log(f"(j) skipped: {self.extra['ray_skipped']}")
            return
        log(f"(j) {w} workers x {n}, 1 s agent, on Ray vs on threads, {runs} runs each")
        folder = self.ws.fresh("ray")
        # "alone": one worker on the cluster, what a call costs with nothing else running
        sizes = {"threads": (w, n), "ray": (w, n), "alone": J_ALONE}
        got: dict[str, list[dict[str, Any]]] = {k: [] for k in sizes}
        rss: dict[str, list[float]] = {k: [] for k in sizes}
        # A warm bytecode cache for every process of both variants, as in (d) and (e): each
        # actor is a new Python process importing the package, and without bytecode it would
        # compile it anew (~1 s of CPU an actor here), which measures the checkout's setup.
        env = {k: v for k, v in self.env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(self.ws.root / "pycache")
        warm = "import pytest_oompa.engine.cluster.ray_cluster, pytest_oompa.engine.swarm, ray"
        subprocess.run([sys.executable, "-c", warm], env=env, check=True)
        cluster = RayNodes(nodes, cpus, env)
        try:
            cluster.start()
            log(f"    cluster up in {cluster.startup:.1f} s at {cluster.address}")
            for i in range(runs):
                for kind in (
                    ("threads", "ray", "alone") if i % 2 == 0 else ("alone", "ray", "threads")
                ):
                    kw, kn = sizes[kind]
                    root = folder / f"{kind}-{i}"
                    root.mkdir()
                    spec = {
                        "root": str(root),
                        "workers": kw,
                        "iterations": kn,
                        "scenario": DELAY_SCENARIO,
                        "address": None if kind == "threads" else cluster.address,
                        "scratch": str(root / "nodes"),
                        "out": str(root / "result.json"),
                    }
                    env = {**env, **RAY_ENV}
                    doc, mb, why = coordinator_run(spec, root, env, timeout=900)
                    if doc is None:
                        self.checks.add(f"(j) {kind} {kw}x{kn}", [why])
                        continue
                    problems = list(doc["run"]["problems"]) + doc["failed"][:5]
                    spread = min(kw, nodes)  # SPREAD: every node has workers
                    if kind != "threads" and len(doc["nodes"]) != spread:
                        problems.append(f"workers on {len(doc['nodes'])} nodes, not {spread}")
                    if kind != "threads" and len(doc["overheads"]) != kw * kn:
                        problems.append(f"{len(doc['overheads'])} remote calls, not {kw * kn}")
                    kept = [p.name for p in (root / "nodes").glob("oompa-node-*")]
                    if kept:
                        problems.append(f"workspaces left on the nodes: {kept[:3]}")
                    self.checks.add(f"(j) {kind} {kw}x{kn}", problems)
                    got[kind].append(doc)
                    rss[kind].append(mb)
                    log(f"    {kind}: wall {doc['run']['wall']:.2f} s, coordinator {mb:.0f} MB")
        finally:
            left = cluster.close()
            self.checks.add("(j) every process of the Ray cluster ended", left)
            self.ws.done(folder)
        if not got["ray"] or not got["threads"]:
            return
        self._rows_j(w, n, got, rss, cluster.startup, nodes, cpus)

    def _rows_j(
        self,
        w: int,
        n: int,
        got: dict[str, list[dict[str, Any]]],
        rss: dict[str, list[float]],
        startup: float,
        nodes: int,
        cpus: int,
    ) -> None:
        def first_and_later(kind: str) -> str:
            first = [x for d in got[kind] for x in d["durations"].get("1", [])]
            later = [x for d in got[kind] for k, v in d["durations"].items() if k != "1" for x in v]
            return f"{med(first):.2f} / {med(later):.2f} s" if first and later else "?"

        heads = {k: [d["run"]["head"] for d in got[k] if d["run"]["head"]] for k in got}
        self.rows.append(
            Row(
                "j.wall",
                f"(j) Ray: wall, {w} workers x {n}, 1 s agent",
                "s",
                [d["run"]["wall"] for d in got["ray"]],
                [d["run"]["wall"] for d in got["threads"]],
                "threads",
                target="ratio <= 1.20",
                target_check=lambda r: (r.ratio or 9) <= 1.20,
                note=(
                    f"a cluster started here, its start-up ({startup:.1f} s) not in the wall: a "
                    f"head with no CPU + {nodes} nodes of {cpus} CPUs (ray start), the workers "
                    f"spread over the {nodes}; the actors' placement is in it. Iteration 1 / "
                    f"later ones, median: {first_and_later('ray')} vs "
                    f"{first_and_later('threads')}; start to first iteration "
                    f"{fmt_range(heads['ray'], 's')} vs {fmt_range(heads['threads'], 's')}"
                ),
            )
        )
        overheads = [[x * 1e3 for x in d["overheads"]] for d in got["ray"]]
        out = [x / 1024 for d in got["ray"] for x in d["bundles"]["out"]]
        back = [x / 1024 for d in got["ray"] for x in d["bundles"]["back"]]
        self.rows.append(
            Row(
                "j.round_trip",
                "    bundle round trip per call, median",
                "ms",
                [med(xs) for xs in overheads],
                note=(
                    f"p90 {fmt_range([quantile(xs, 0.9) for xs in overheads], 'ms')}; a remote "
                    "call's time beyond its agent process's: capture + pack, the object store, "
                    "the node's unpack + restore, its capture + pack, the coordinator's unpack "
                    f"+ restore, Ray's calls (placement excluded); {w * n} calls a run; bundles "
                    f"out median {med(out):.1f} KB (max {max(out):.1f}), back {med(back):.1f} "
                    f"KB (max {max(back):.1f})"
                ),
            )
        )
        alone = [[x * 1e3 for x in d["overheads"]] for d in got["alone"] if d["overheads"]]
        if alone:
            self.rows.append(
                Row(
                    "j.round_trip_alone",
                    f"    the same, {J_ALONE[0]} worker x {J_ALONE[1]} alone",
                    "ms",
                    [med(xs) for xs in alone],
                    note=(
                        f"p90 {fmt_range([quantile(xs, 0.9) for xs in alone], 'ms')}: with "
                        f"nothing else running; the rest of the figure above is {w} workers "
                        f"contending for this machine's {os.cpu_count()} cores"
                    ),
                )
            )
        self.rows.append(
            Row(
                "j.rss",
                "    coordinator peak RSS",
                "MB",
                rss["ray"],
                rss["threads"],
                "threads",
                note=(
                    "max RSS of the swarm's process and the processes it waited for "
                    "(RUSAGE_CHILDREN of a fresh wrapper): on threads that includes the agents, "
                    "on Ray only what runs here (the nodes' processes not counted)"
                ),
            )
        )


def bench_sweep(folder: Path, calls: int, runs: int) -> dict[str, Any]:
    """Per run, the median ms of a ``/bin/true`` call with the sweep on and off (alternating,
    so load from elsewhere hits both), of a call that leaves ``sleep`` behind, and of one
    marker scan of the whole process table."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    on, off = processes.ProcessSupervisor(), processes.ProcessSupervisor(sweep=False)
    got: dict[str, Any] = {"on": [], "off": [], "left": [], "scan": [], "problems": []}

    def per_call(sup: processes.ProcessSupervisor, argv: list[str]) -> float:
        start = time.perf_counter()
        result = sup.run(argv, cwd=folder, env=env)
        took = (time.perf_counter() - start) * 1e3
        if result.exit_code != 0:
            got["problems"].append(f"{argv}: exit {result.exit_code}")
        if argv[0] == "/bin/sh" and [x.escaped for x in result.leftovers] != ["same-group"]:
            got["problems"].append(f"left child: reported {result.leftovers}")
        return took

    for sup in (on, off):  # warm both paths
        per_call(sup, ["/bin/true"])
    for _ in range(runs):
        times: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(calls):
            times["on"].append(per_call(on, ["/bin/true"]))
            times["off"].append(per_call(off, ["/bin/true"]))
        got["on"].append(med(times["on"]))
        got["off"].append(med(times["off"]))
        left = "sleep 600 >/dev/null 2>&1 &"
        got["left"].append(med([per_call(on, ["/bin/sh", "-c", left]) for _ in range(10)]))
        scans = []
        for _ in range(20):
            start = time.perf_counter()
            processes._Sweep(0, "none", frozenset())._scan(set())
            scans.append((time.perf_counter() - start) * 1e3)
        got["scan"].append(med(scans))
        log(
            f"    on {got['on'][-1]:.2f} ms, off {got['off'][-1]:.2f} ms, "
            f"left child {got['left'][-1]:.2f} ms, scan {got['scan'][-1]:.2f} ms"
        )
    got["processes"] = len(psutil.pids())
    return got


FIGURES = ("a", "spawns", "b", "c", "d", "e", "f", "g", "h", "i", "j")


def run_in_pty(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the process and its children, exit status, output tail) of ``argv``
    on a 120x40 pseudo-terminal whose output is read as fast as it comes."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, {**env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"})
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status, usage = os.wait4(pid, 0)
    os.close(fd)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs (~90 s)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per figure (default 3; 5 for cheap ones)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {FIGURES}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--coordinator", default="", help=argparse.SUPPRESS)  # (j)'s children
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        metavar="S",
        help=f"before each figure, wait up to S seconds for other processes to use less than "
        f"{BUSY_CORES} cores (a shared machine)",
    )
    args = parser.parse_args()
    if args.coordinator:
        return coordinator_main(json.loads(args.coordinator))
    plan = make_plan(args.quick, args.repeat)
    only = [x.strip() for x in args.only.split(",") if x.strip()] or list(FIGURES)
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {sorted(unknown)}; expected some of {FIGURES}")

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="oompa-bench-"))
    ws = Workspace(root, args.keep)
    machine = machine_info(root)
    print_machine(machine)
    mode = "quick" if plan.quick else "full"
    print(f"mode: {mode}; runs per figure {plan.repeat}, cheap figures {plan.cheap}\n", flush=True)
    paths.fake_bin_dir()  # the agent wrappers: made once, used by the engine and the floor
    bench = Bench(ws, plan)
    try:
        for name in FIGURES:
            if name in only:
                if args.settle > 0:
                    settle(args.settle)
                before, meter = len(bench.rows), OtherLoad()
                getattr(bench, f"figure_{name}")()
                other = meter.cores()
                for row in bench.rows[before:]:
                    row.other = other
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    elapsed = time.perf_counter() - started
    machine["loadavg_end"] = os.getloadavg()
    print(table(bench.rows))
    print()
    checks = bench.checks
    failed = checks.failed
    print(f"checks: {len(checks.items) - len(failed)}/{len(checks.items)} passed", end="")
    print("".join(f"\n  FAILED {c['what']}: {c['problems']}" for c in failed))
    loads = " ".join(f"{x:.2f}" for x in machine["loadavg_end"])
    print(f"done in {elapsed:.0f} s; load average at the end {loads}")
    busy = [
        f
        for f in FIGURES
        if any(r.id.split(".")[0] == f and (r.other or 0) > BUSY_CORES for r in bench.rows)
    ]
    if busy:
        print(
            f"warning: other processes kept more than {BUSY_CORES} cores busy during "
            f"({'), ('.join(busy)}): wall-time figures there are noisy, CPU figures less so"
        )
    if args.keep:
        print(f"kept: {root}")
    if args.json:
        document = {
            "command": " ".join(["python", *sys.argv]),
            "mode": mode,
            "plan": asdict(plan),
            "machine": machine,
            "elapsed_s": elapsed,
            "rows": [r.as_json() for r in bench.rows],
            "checks": checks.items,
            "runs": RUNS,
            "extra": bench.extra,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"json: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
