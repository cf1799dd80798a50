"""The opt-in sandbox (engine/sandbox.py): the bubblewrap argv as a pure function, the paths a
call may write, the preflight check, and real sandboxed swarms with the fakes (skipped, with
the reason, where bubblewrap is missing or cannot run)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from support.contract import assert_run_valid

from pytest_oompa import GitRepo
from pytest_oompa.core.results import Outcome
from pytest_oompa.engine.preflight import PreflightError
from pytest_oompa.engine.processes import MARKER_VAR
from pytest_oompa.engine.sandbox import (
    BASE_MOUNTS,
    Sandbox,
    check_bwrap,
    git_dirs,
    home_paths,
    project_root,
    wrap,
)

FAST = {"probe": False, "executor_wait": 0}
SANDBOX = Sandbox.named("bwrap")
SKIP_REASON = (SANDBOX.problem() if SANDBOX else None) or ""
needs_bwrap = pytest.mark.skipif(
    bool(SKIP_REASON), reason=f"bubblewrap cannot run here: {SKIP_REASON}"
)


# -- the argv ----------------------------------------------------------------------------------


def test_wrap_makes_everything_read_only_but_the_writable_paths():
    argv = wrap(
        ["claude", "-p", "--", "do it"],
        bwrap="/usr/bin/bwrap",
        cwd=Path("/p/.w0-i1"),
        writable=[Path("/p/.w0-i1"), Path("/p/.git"), Path("/home/me")],
    )
    assert argv[:2] == ("/usr/bin/bwrap", "--die-with-parent")
    assert argv[2 : 2 + len(BASE_MOUNTS)] == BASE_MOUNTS
    assert BASE_MOUNTS[:3] == ("--ro-bind", "/", "/")
    assert BASE_MOUNTS[-2:] == ("--tmpfs", "/tmp")
    assert {"--proc", "--dev"} <= set(BASE_MOUNTS)
    rest = argv[2 + len(BASE_MOUNTS) :]
    assert rest == (
        *("--bind", "/home/me", "/home/me"),
        *("--bind", "/p/.git", "/p/.git"),
        *("--bind", "/p/.w0-i1", "/p/.w0-i1"),
        *("--chdir", "/p/.w0-i1", "--", "claude", "-p", "--", "do it"),
    )
    # The network as it is; no new session (the call stays in its process group) and no PID
    # namespace (the end-of-call sweep sees every process).
    assert not {"--unshare-net", "--unshare-all", "--new-session", "--unshare-pid"} & set(argv)


def test_wrap_mounts_outermost_first_and_drops_what_is_already_covered():
    root = Path("/tmp/t/project")
    argv = wrap(
        ["x"],
        bwrap="bwrap",
        cwd=root / ".w0-i1",
        writable=[root / ".w0-i1", root / ".git", root / ".git/worktrees/w", Path("/tmp/t/log")],
        readable=[root, Path("/tmp/fakes"), Path("/tmp/fakes/claude"), root / ".git"],
    )
    mounts = argv[2 + len(BASE_MOUNTS) : argv.index("--chdir")]
    triples = [mounts[i : i + 2] for i in range(0, len(mounts), 3)]
    assert triples == [
        ("--ro-bind", "/tmp/fakes"),
        ("--bind", "/tmp/t/log"),
        ("--ro-bind", "/tmp/t/project"),  # the project read-only, then its writable parts
        ("--bind", "/tmp/t/project/.git"),  # writable wins over readable for the same path
        ("--bind", "/tmp/t/project/.w0-i1"),
    ]


# -- the paths of one call ---------------------------------------------------------------------


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_dirs_of_a_worktree_are_its_admin_folder_and_the_common_one(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    identity = ("-c", "user.name=t", "-c", "user.email=t@t")
    git(*identity, "commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    git("worktree", "add", "-q", "-b", "w", str(repo / "wt"), cwd=repo)
    dirs = git_dirs(repo / "wt")
    assert dirs == [(repo / ".git/worktrees/wt").resolve(), (repo / ".git").resolve()]
    assert project_root(dirs) == repo.resolve()
    assert git_dirs(repo) == [repo / ".git"]
    assert git_dirs(tmp_path) == []
    assert project_root([]) is None


def test_a_project_inside_home_is_bound_back_read_only(tmp_path):
    home = tmp_path / "home"
    repo = home / "src" / "app"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    identity = ("-c", "user.name=t", "-c", "user.email=t@t")
    git(*identity, "commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    git("worktree", "add", "-q", "-b", "w", str(repo / "wt"), cwd=repo)
    argv = Sandbox("bwrap").command(["claude"], repo / "wt", {"HOME": str(home)})
    mounts = argv[2 + len(BASE_MOUNTS) : argv.index("--chdir")]
    assert [mounts[i : i + 2] for i in range(0, len(mounts), 3)] == [
        ("--bind", str(home.resolve())),
        ("--ro-bind", str(repo.resolve())),
        ("--bind", str(repo.resolve() / ".git")),
        ("--bind", str(repo.resolve() / "wt")),
    ]
    # A HOME that is the project itself (as under pytester) stays read-only; the planner,
    # which works in the root, may write there.
    argv = Sandbox("bwrap").command(["claude"], repo / "wt", {"HOME": str(repo)})
    assert ("--bind", str(repo.resolve()), str(repo.resolve())) not in {
        argv[i : i + 3] for i in range(len(argv) - 2)
    }
    argv = Sandbox("bwrap").command(["claude"], repo, {"HOME": str(repo)})
    assert argv[argv.index(str(repo.resolve())) - 1] == "--bind"


def test_home_paths_are_the_harness_config_folders_and_the_fakes_files():
    env = {
        "HOME": "/h",
        "XDG_CONFIG_HOME": "/h/.config",
        "CODEX_HOME": "/c",
        "CLAUDE_CONFIG_DIR": "/cl",
        "OOMPA_FAKE_STATE": "/s",
        "OOMPA_FAKE_LOG": "/l/calls.jsonl",
        "GIT_DIR_LIKE": "/nope",
        "JAVA_HOME": "relative/not/bound",
        "PATH": "/usr/bin",
    }
    folders, files = home_paths(env)
    assert folders == [Path(p) for p in ("/h", "/h/.config", "/c", "/cl", "/s")]
    assert files == [Path("/l/calls.jsonl")]


# -- preflight ---------------------------------------------------------------------------------


def test_no_sandbox_unless_asked():
    assert Sandbox.named("none") is None


def test_a_missing_bwrap_says_how_to_install_it(tmp_path):
    sandbox = Sandbox.named("bwrap", path=str(tmp_path))
    assert sandbox is not None and sandbox.bwrap is None
    problem = sandbox.problem()
    assert problem is not None
    assert "'bwrap' is not on PATH" in problem and "apt-get install bubblewrap" in problem


def test_a_bwrap_that_cannot_run_says_why(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    problem = check_bwrap(str(fake))
    assert problem is not None
    assert "No permissions to creating new namespace" in problem
    assert "user namespaces" in problem or "AppArmor" in problem


def test_preflight_refuses_a_sandbox_that_cannot_run(oompa_repo, oompa_swarm, tmp_path):
    # The harnesses' PATH has the fakes (put first by the swarm) but no bwrap.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PreflightError) as info:
        oompa_swarm(
            {**FAST, "sandbox": "bwrap", "workers": [{"model": "claude:opus", "iterations": 1}]},
            env={"PATH": str(empty)},
        )
    assert any("bubblewrap" in p for p in info.value.problems)


# -- real sandboxed swarms ---------------------------------------------------------------------


@needs_bwrap
def test_a_write_outside_fails_inside_the_agent_and_its_own_work_merges(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.add_task("t2")
    oompa_repo.commit("tasks")
    host_tmp = Path("/tmp") / f"oompa-sandbox-{uuid.uuid4().hex}.txt"
    shell = [
        # Refused: the project root is read-only; the agent sees the error and says so.
        "echo x > ../stray.txt || echo refused > refused-root.txt",
        # /tmp is private: lands in the sandbox's own /tmp, never in the host's.
        f"echo y > {host_tmp} && cat {host_tmp} > tmp-private.txt",
    ]
    scenario = {"default": {"worker": {"builtin": True, "shell": shell, "commit": True}}}
    run = oompa_swarm(
        {
            **FAST,
            "sandbox": "bwrap",
            "workers": [{"model": "claude:opus", "iterations": 2}],
            "reviewer": {"model": "codex:o3"},
        },
        scenario=scenario,
    )
    assert run.outcomes("w0") == ["merged", "merged"]
    assert not (oompa_repo.path / "stray.txt").exists()
    assert not host_tmp.exists()
    assert oompa_repo.status() == []
    files = oompa_repo.files()
    assert "refused-root.txt" in files and "tmp-private.txt" in files
    assert len(oompa_repo.tasks("complete")) == 2
    # the fakes' log and session state stayed writable: every call was logged
    assert [c["role"] for c in run.fake_calls] == ["worker", "reviewer"] * 2
    # what ran is in the command log: the harness under bwrap
    started = json.loads(
        (run.run_dir / "commands/w0-i1-worker-1.ndjson").read_text().split("\n")[0]
    )
    assert Path(started["argv"][0]).name == "bwrap"
    assert_run_valid(run.run_dir)


@needs_bwrap
def test_a_sandboxed_session_resumes_and_the_planner_writes_its_tasks(oompa_repo, oompa_swarm):
    """The state a harness keeps between calls (sessions, call counters) survives the
    sandbox, and the planner (which runs in the project root) can add its tasks."""
    scenario = {"default": {"worker": [{"say": "looking", "claim": "auto"}, {"builtin": True}]}}
    run = oompa_swarm(
        {
            **FAST,
            "sandbox": "bwrap",
            "planner": {"model": "claude:opus"},
            "workers": [{"model": "claude:opus", "iterations": 2}],
        },
        scenario=scenario,
    )
    assert run.result.planner is not None and run.result.planner.tasks_created >= 1
    calls = [c for c in run.fake_calls if c["role"] == "worker"]
    assert calls[1]["resumed"] is True
    assert run.outcomes("w0")[-1] == "merged"
    assert oompa_repo.status() == []


@needs_bwrap
def test_the_command_line_turns_the_sandbox_on(pytester):
    repo = GitRepo(pytester.path)
    scenario = {"default": {"worker": {"builtin": True, "shell": "echo x > ../stray.txt"}}}
    config = {**FAST, "sandbox": "none", "workers": [{"model": "claude:opus", "iterations": 1}]}
    repo.add_swarm_config(config, scenario, tasks=["t1"])
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-sandbox=bwrap")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "stray.txt").exists()
    assert repo.tasks("complete") == ["t1"]


# -- the fault cases of issue 13, under the sandbox --------------------------------------------
# The same agents as tests/engine/test_containment_*.py, sandboxed: what they leave running is
# still killed and reported (the sandbox adds no PID namespace), writes outside the worktree now
# fail inside the agent (the iteration merges, nothing is moved), and refs moved through the
# writable .git are still put back and quarantined. Files the agent must leave for the test go
# to $OOMPA_FAKE_STATE: the host cannot see the sandbox's private /tmp.

GIT = "git -c user.name=a -c user.email=a@b -c commit.gpgsign=false"
STATE = '"$OOMPA_FAKE_STATE"'
LISTENER = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "open(sys.argv[1], 'w').write(str(s.getsockname()[1])); time.sleep(600)"
)


def sandboxed(oompa_swarm, oompa_repo, step, *, iterations=1, reviewer=False):
    for t in ("t1", "t2", "t3"):
        oompa_repo.add_task(t)
    oompa_repo.commit("tasks")
    config = {
        **FAST,
        "sandbox": "bwrap",
        "workers": [{"model": "claude:opus", "iterations": iterations}],
    }
    if reviewer:
        config["reviewer"] = {"model": "codex:o3"}
    return oompa_swarm(config, scenario={"default": {"worker": step}})


def read_when_written(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"nothing in {path}")


@pytest.fixture
def killed_at_the_end():
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.kill()
            proc.wait(5)


def marked_processes() -> list[int]:
    """Live processes carrying a call marker of this process's swarms."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER_VAR, "").startswith(f"{os.getpid()}-"):
                found.append(proc.pid)
    return found


@needs_bwrap
@pytest.mark.parametrize(
    ("command", "escaped"),
    [
        (f"sleep 600 >/dev/null 2>&1 & echo $! > {STATE}/pid", "same-group"),
        (f"setsid sleep 600 >/dev/null 2>&1 & echo $! > {STATE}/pid", "own-session"),
        # The orphan writes the pid; the agent waits for it, or the sweep at its exit
        # could kill the orphan before it has written anything.
        (
            f"(sh -c 'sleep 600 & echo $! > {STATE}/pid' >/dev/null 2>&1 &); "
            f"while [ ! -s {STATE}/pid ]; do sleep 0.02; done",
            "same-group",
        ),
        (
            f"{shlex.quote(sys.executable)} -c {shlex.quote(LISTENER)} {STATE}/port "
            f"& echo $! > {STATE}/pid; while [ ! -s {STATE}/port ]; do sleep 0.02; done",
            "same-group",
        ),
    ],
    ids=["background child", "setsid daemon", "double fork", "tcp listener"],
)
def test_what_a_sandboxed_agent_leaves_running_is_killed_and_reported(
    oompa_repo, oompa_swarm, tmp_path, killed_at_the_end, command, escaped
):
    run = sandboxed(oompa_swarm, oompa_repo, {"builtin": True, "shell": [command]})
    state = tmp_path / "swarm-1" / "fake-state"
    killed_at_the_end.append(pid := int(read_when_written(state / "pid")))
    assert run.outcomes("w0") == ["merged"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert marked_processes() == []
    if (state / "port").exists():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int((state / "port").read_text())), 5)
    (call,) = run.artifact("calls/w0-i1.json")["calls"]
    assert [(x["pid"], x["escaped"]) for x in call["leftovers"]] == [(pid, escaped)]
    assert oompa_repo.status() == []
    assert_run_valid(run.run_dir)


@needs_bwrap
def test_a_sandboxed_agent_cannot_write_into_another_workers_worktree(oompa_repo, oompa_swarm):
    for t in ("t1", "t2", "t3"):
        oompa_repo.add_task(t)
    oompa_repo.commit("tasks")
    intrude = [
        "for _ in $(seq 100); do [ -d ../.w0-i1 ] && break; sleep 0.05; done",
        "echo intruder > ../.w0-i1/intruder.txt || echo refused > refused.txt",
    ]
    scenario = {
        "workers": {
            "w0": {"worker": [{"claim": ["t1"], "delay": 0.5}, {"builtin": True}]},
            "w1": {"worker": {"builtin": True, "shell": intrude, "commit": True}},
        }
    }
    config = {
        **FAST,
        "sandbox": "bwrap",
        "workers": [
            {"model": "claude:opus", "iterations": 2},
            {"model": "claude:opus", "iterations": 1},
        ],
    }
    run = oompa_swarm(config, scenario=scenario)
    assert run.outcomes("w1") == ["merged"]
    assert run.outcomes("w0") == ["claimed", "merged"]
    files = oompa_repo.files()
    assert "refused.txt" in files and "intruder.txt" not in files
    assert not (run.run_dir / "stray").exists()
    assert oompa_repo.status() == []
    assert_run_valid(run.run_dir)


@needs_bwrap
@pytest.mark.parametrize(
    "shell",
    [
        f"{GIT} -C .. commit -q --allow-empty -m sneaky",
        f"{GIT} commit -q --allow-empty -m sneaky && git update-ref refs/heads/main HEAD",
    ],
    ids=["commit-from-the-root", "update-ref-from-the-worktree"],
)
def test_main_moved_through_the_writable_git_dir_is_still_quarantined(
    oompa_repo, oompa_swarm, shell
):
    run = sandboxed(oompa_swarm, oompa_repo, {"builtin": True, "shell": shell})
    (result,) = run.result.iterations
    assert result.outcome is Outcome.ERROR, result.error
    assert "moved main outside the merge: quarantined as refs/oompa/quarantine/" in (
        result.error or ""
    )
    assert "sneaky" not in oompa_repo.git("log", "--format=%s", "main")
    assert oompa_repo.head("main") == run.result.main_after
    assert oompa_repo.status() == []
    assert oompa_repo.branches() == ["main"]
    assert_run_valid(run.run_dir)
