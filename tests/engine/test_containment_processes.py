"""Containment: nothing an agent starts outlives its call (issue 13, items 1, 2 and 6).

First the supervisor alone, where each case can show the process alive without the sweep;
then swarms whose fake agents leave processes behind through their shell tool, checked the
same way each time: the iteration still merged, no process with a call's marker is left, the
run's files validate, and what was killed is in the call record, the calls file, the item's
report and the terminal summary.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from support.contract import assert_run_valid

from pytest_oompa import GitRepo
from pytest_oompa.core.results import Outcome
from pytest_oompa.engine import processes
from pytest_oompa.engine.processes import MARKER_VAR, ProcessSupervisor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the cases use setsid and /proc")

FAST = {"probe": False, "executor_wait": 0}
PY = shlex.quote(sys.executable)
LISTENER = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "open(sys.argv[1], 'w').write(str(s.getsockname()[1])); time.sleep(600)"
)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pid(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no pid in {path}")


def marked(value: str = "", where: str = "") -> list[int]:
    """Pids of live processes carrying a call marker (starting with ``value``; with ``where``,
    only those whose PWD is inside that folder)."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        mark = env.get(MARKER_VAR)
        if mark is not None and mark.startswith(value) and where in env.get("PWD", ""):
            found.append(proc.pid)
    return found


@pytest.fixture
def cleanup():
    """Pids a test saw: killed at its end whatever happened (a failing test leaves nothing)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.kill()
            proc.wait(5)  # reaped: this process may be its subreaper
        except psutil.Error:
            pass


def run(sup: ProcessSupervisor, script: str, **kwargs) -> processes.ProcResult:
    return sup.run(["/bin/sh", "-c", script], cwd=Path("/tmp"), env=dict(os.environ), **kwargs)


# -- the supervisor ---------------------------------------------------------------------------

CASES = {
    "background child": ("sleep 600 >/dev/null 2>&1 & echo $! > {pid}", "same-group"),
    "setsid daemon": ("setsid sleep 600 >/dev/null 2>&1 & echo $! > {pid}", "own-session"),
    "double fork": ("(sh -c 'sleep 600 & echo $! > {pid}' >/dev/null 2>&1 &)", "same-group"),
    "a group of its own": (
        f"{PY} -c 'import os, sys, time; os.setpgid(0, 0); "
        'open(sys.argv[1], "w").write(str(os.getpid())); time.sleep(600)\' {pid} '
        ">/dev/null 2>&1 &",
        "orphaned",
    ),
    "environment cleared": (
        "setsid env -i /bin/sh -c 'echo $$ > {pid}; exec sleep 600' >/dev/null 2>&1 &",
        "own-session",
    ),
}


def run_until(sup: ProcessSupervisor, script: str, go: Path) -> threading.Thread:
    """Run ``script`` in a thread, the call lasting until ``go`` exists; its result goes to
    the thread's ``result``."""
    wait = f"\nwhile [ ! -e {go} ]; do sleep 0.02; done"
    thread = threading.Thread(target=lambda: setattr(thread, "result", run(sup, script + wait)))
    thread.start()
    return thread


@pytest.mark.parametrize("case", CASES)
def test_what_a_call_leaves_running_is_killed_and_reported(tmp_path, cleanup, case):
    script, escaped = CASES[case]
    if escaped != "same-group":  # the group kill of old does not get it: alive after the call
        before = tmp_path / "before"
        run(ProcessSupervisor(sweep=False), script.format(pid=before) + "\nsleep 0.3")
        cleanup.append(pid := read_pid(before))
        assert alive(pid), case

    pidfile, go = tmp_path / "pid", tmp_path / "go"
    call = run_until(ProcessSupervisor(), script.format(pid=pidfile), go)
    cleanup.append(pid := read_pid(pidfile))
    assert alive(pid), case  # alive while the call runs
    go.touch()
    call.join(30)
    result: processes.ProcResult = call.result  # type: ignore[attr-defined]
    assert result.exit_code == 0 and result.failure is None
    assert not alive(pid), case
    assert [(x.pid, x.escaped) for x in result.leftovers if x.pid == pid] == [(pid, escaped)]
    assert marked(result.marker) == []


def test_a_clean_call_reports_nothing():
    result = run(ProcessSupervisor(), "true")
    assert result.exit_code == 0 and result.leftovers == ()


def test_a_timeout_kills_the_agent_and_then_its_daemon(tmp_path, cleanup):
    pidfile = tmp_path / "pid"
    script = f"setsid sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}; exec sleep 600"
    result = run(ProcessSupervisor(), script, timeout=0.5)
    cleanup.append(pid := read_pid(pidfile))
    assert result.timed_out and not alive(pid)
    assert [(x.pid, x.escaped) for x in result.leftovers] == [(pid, "own-session")]


def test_a_stopped_call_ends_with_its_daemon(tmp_path, cleanup):
    """Ctrl-C, -x, SIGTERM and the swarm timeout all stop calls through stop_all."""
    sup, pidfile = ProcessSupervisor(), tmp_path / "pid"
    script = f"setsid sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}; exec sleep 600"
    call = threading.Thread(target=lambda: setattr(call, "result", run(sup, script)))
    call.start()
    cleanup.append(pid := read_pid(pidfile))
    deadline = time.monotonic() + 5
    while os.getsid(pid) != pid and time.monotonic() < deadline:  # setsid done: escaped
        time.sleep(0.01)
    assert alive(pid)
    sup.stop_all()
    call.join(30)
    result: processes.ProcResult = call.result  # type: ignore[attr-defined]
    assert result.cancelled and not alive(pid)
    assert [(x.pid, x.escaped) for x in result.leftovers] == [(pid, "own-session")]


def test_a_call_in_flight_keeps_its_processes_when_another_call_ends(tmp_path, cleanup):
    sup = ProcessSupervisor()
    pidfile, go = tmp_path / "pid", tmp_path / "go"
    # B leaves an environment-less daemon (found only by ancestry) and keeps running.
    script = (
        f"setsid env -i /bin/sh -c 'echo $$ > {pidfile}; exec sleep 600' >/dev/null 2>&1 & "
        f"while [ ! -e {go} ]; do sleep 0.05; done"
    )
    results: list[processes.ProcResult] = []
    b = threading.Thread(target=lambda: results.append(run(sup, script, timeout=30)))
    b.start()
    cleanup.append(pid := read_pid(pidfile))
    a = run(sup, "true")  # ends while B runs: its sweep must not take B's daemon
    assert a.leftovers == () and alive(pid)
    go.touch()
    b.join(30)
    assert [(x.pid, x.escaped) for x in results[0].leftovers] == [(pid, "own-session")]
    assert not alive(pid)


def test_the_sweep_steals_no_exit_status_and_leaves_no_zombie(tmp_path):
    # Zombies of processes started before this test are not its own: an orphan of an earlier
    # test in this process (a killed Ray node's) may die at any time, this one a subreaper.
    started = time.time()
    sup = ProcessSupervisor()
    codes: list[int] = []
    stop = threading.Event()

    def git_like() -> None:  # the engine's own children, waited for by another thread
        while not stop.is_set():
            codes.append(subprocess.run(["/bin/sh", "-c", "exit 3"]).returncode)

    t = threading.Thread(target=git_like)
    t.start()
    try:
        for _ in range(5):
            # an orphan that dies by itself: a zombie of the engine (its subreaper)
            run(sup, "(sleep 0.05 &) ; sleep 0.1")
    finally:
        stop.set()
        t.join()
    assert codes and set(codes) == {3}
    zombies = [
        c
        for c in psutil.Process().children()
        if c.status() == psutil.STATUS_ZOMBIE and c.create_time() >= started - 0.05
    ]
    assert zombies == []


# -- swarms -------------------------------------------------------------------------------------


def swarm_with(oompa_swarm, oompa_repo, commands: list[str], **extra):
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    step = {"builtin": True, "shell": commands}
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}], **extra}
    return oompa_swarm(config, scenario={"default": {"worker": step}})


def assert_contained(run, expected: dict[int, str]) -> None:
    """Merged anyway, nothing marked left, the files valid, each pid reported as expected."""
    assert run.outcomes("w0") == [Outcome.MERGED.value]
    assert marked(f"{os.getpid()}-") == []
    assert_run_valid(run.run_dir)
    (call,) = [c for c in run.artifact("calls/w0-i1.json")["calls"] if c["role"] == "worker"]
    reported = {x["pid"]: x["escaped"] for x in call["leftovers"]}
    assert {p: reported.get(p) for p in expected} == expected
    record = next(c for c in run.iterations[("w0", 1)].calls if c.role == "worker")
    assert {x.pid for x in record.leftovers} == set(reported)
    for pid in expected:
        assert not alive(pid)


# Appended to a command that starts `setsid X &`: the agent goes on only once the daemon is a
# session of its own (field 6 of /proc/PID/stat), else the escape label races with setsid.
OWN_SESSION = r"""; while [ "$(cut -d' ' -f6 /proc/$!/stat)" != "$!" ]; do sleep 0.01; done"""


@pytest.mark.parametrize(
    ("case", "command", "escaped"),
    [
        ("background child", "sleep 600 & echo $! > {pid}", "same-group"),
        # (the agent goes on once the daemon is its own session: else the label races)
        ("setsid daemon", "setsid sleep 600 & echo $! > {pid}" + OWN_SESSION, "own-session"),
        ("double fork", "(sh -c 'sleep 600 & echo $! > {pid}' &)", "same-group"),
    ],
)
def test_a_swarm_agent_leaves_a_process(
    oompa_repo, oompa_swarm, tmp_path, cleanup, case, command, escaped
):
    pidfile = tmp_path / "pid"
    run = swarm_with(oompa_swarm, oompa_repo, [command.format(pid=pidfile)])
    cleanup.append(pid := read_pid(pidfile))
    assert_contained(run, {pid: escaped})


def test_a_swarm_agent_leaves_a_tcp_listener(oompa_repo, oompa_swarm, tmp_path, cleanup):
    portfile, pidfile = tmp_path / "port", tmp_path / "pid"
    command = (
        f"{PY} -c {shlex.quote(LISTENER)} {portfile} & echo $! > {pidfile}; "
        f"while [ ! -s {portfile} ]; do sleep 0.02; done"  # the agent goes on once it listens
    )
    run = swarm_with(oompa_swarm, oompa_repo, [command])
    cleanup.append(pid := read_pid(pidfile))
    port = int(portfile.read_text())
    assert_contained(run, {pid: "same-group"})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_swarm_agent_times_out_while_its_daemon_runs(oompa_repo, oompa_swarm, tmp_path, cleanup):
    pidfile = tmp_path / "pid"
    oompa_repo.add_task("t1")
    oompa_repo.commit("tasks")
    step = {"shell": [f"setsid sleep 600 & echo $! > {pidfile}"], "hang": True}
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}
    run = oompa_swarm({**config, "timeouts": {"call": 1}}, scenario={"default": {"worker": step}})
    cleanup.append(pid := read_pid(pidfile))
    result = run.iterations[("w0", 1)]
    assert result.outcome is Outcome.ERROR and "timeout after 1 s" in (result.error or "")
    assert not alive(pid) and marked(f"{os.getpid()}-") == []
    assert_run_valid(run.run_dir)
    (call,) = run.artifact("calls/w0-i1.json")["calls"]
    assert [(x["pid"], x["escaped"]) for x in call["leftovers"]] == [(pid, "own-session")]
    assert "left running by the agent" in _failure_text(run)


def _failure_text(run) -> str:
    from pytest_oompa.plugin.items import describe_failure

    return describe_failure(run.iterations[("w0", 1)], "x")


def test_the_report_and_the_summary_name_what_was_killed(pytester, tmp_path, cleanup):
    pidfile, daemon = tmp_path / "pid", tmp_path / "daemon"
    scenario = {
        "default": {
            "worker": {
                "builtin": True,
                "shell": [
                    f"sleep 600 & echo $! > {pidfile}",
                    f"setsid sleep 601 & echo $! > {daemon}",
                ],
            }
        }
    }
    repo = GitRepo(pytester.path / "project")  # (pytester's own files stay outside it)
    repo.add_swarm_config(
        {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}, scenario, ("t1",)
    )
    result = pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-rA", "-p", "no:cacheprovider"
    )
    cleanup += [read_pid(pidfile), read_pid(daemon)]
    result.assert_outcomes(passed=1)
    # -rA: the passing item's report names them; the summary counts them.
    result.stdout.fnmatch_lines(
        [
            "*PASSES*",
            "*Captured oompa call*",
            "*left running by the agent, killed after its call (2):*",
            "*2 processes left behind by agents were killed*",
        ]
    )
    # The daemon is named as it was when the sweep found it: "setsid sleep 601" when setsid
    # had made its session but not yet exec'd sleep (a race the sweep may win), else "sleep 601".
    for line in (
        f"*worker call w0-i1*: pid {cleanup[0]} (same-group): sleep 600",
        f"*worker call w0-i1*: pid {cleanup[1]} (own-session): *sleep 601",
    ):
        result.stdout.fnmatch_lines([line])
    assert not any(alive(p) for p in cleanup)
    assert marked(where=str(pytester.path)) == []
    # The repo is not the rootdir: its runs go to <repo>/runs, where dashboards look.
    (run_dir,) = (p for p in (repo.path / "runs").iterdir() if p.is_dir())
    assert repo.status() == []
    assert_run_valid(run_dir)


def test_concurrent_workers_each_answer_for_their_own(oompa_repo, oompa_swarm):
    """2 workers x 2 iterations, each call leaving a daemon: each call reports its own one."""
    for t in ("t1", "t2", "t3", "t4"):
        oompa_repo.add_task(t)
    oompa_repo.commit("tasks")
    daemon = "setsid sleep 600 & true" + OWN_SESSION
    step = {"builtin": True, "shell": [daemon]}
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 2, "count": 2}]}
    run = oompa_swarm(config, scenario={"default": {"worker": step}})
    assert marked(f"{os.getpid()}-") == []
    assert_run_valid(run.run_dir)
    for w in ("w0", "w1"):
        assert run.outcomes(w) == ["merged", "merged"]
        for i in (1, 2):
            calls = run.artifact(f"calls/{w}-i{i}.json")["calls"]
            (worker,) = [c for c in calls if c["role"] == "worker"]
            assert [x["escaped"] for x in worker["leftovers"]] == ["own-session"]
