"""A worktree's state carried between repositories as git bundles (engine/cluster/transfer.py)
and a node's workspace driven without Ray (engine/cluster/node.py): real git, real files."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_oompa.engine.cluster.node import CallRequest, NodeWorkspace
from pytest_oompa.engine.cluster.transfer import TreeState, capture, pack, restore, unpack


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def new_project(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "t")
    git(root, "config", "user.email", "t@t")
    (root / "a.txt").write_text("a\n")
    (root / "tasks" / "pending").mkdir(parents=True)
    (root / "tasks" / "pending" / "t1.json").write_text('{"id": "t1"}')
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def add_worktree(root: Path, name: str) -> Path:
    path = root / f".{name}"
    git(root, "worktree", "add", "-q", "-b", f"oompa/{name}", str(path), "main")
    return path


def files_of(worktree: Path) -> dict[str, str]:
    return {
        p.relative_to(worktree).as_posix(): p.read_text()
        for p in sorted(worktree.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(worktree).parts
    }


def status(worktree: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=worktree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(out.splitlines(), key=lambda line: line[3:])


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    """A coordinator's worktree and an empty bare repository standing for a node's."""
    wt = add_worktree(new_project(tmp_path / "coordinator"), "w0-i1")
    node = tmp_path / "node.git"
    git(tmp_path, "init", "-q", "--bare", str(node))
    return wt, node


def node_worktree(node: Path, state: TreeState) -> Path:
    path = node.parent / "node-wt"
    if not path.exists():
        git(node, "worktree", "add", "-q", "--detach", str(path), state.head)
    return path


def send(wt: Path, node: Path, known: set[str]) -> tuple[Path, bytes | None]:
    state = capture(wt)
    bundle = pack(wt, state, known, name="w0")
    unpack(node, bundle)
    git(node, "update-ref", "refs/heads/main", state.main)
    there = node_worktree(node, state)
    restore(there, state)
    known |= state.commits
    return there, bundle


# One change to a worktree: (kind, file index, content).
CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["write", "untracked", "delete", "commit", "stage"]),
        st.integers(0, 3),
        st.text("xyz\n", max_size=6),
    ),
    max_size=6,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=CHANGES)
def test_the_node_gets_the_worktree_as_it_is(tmp_path_factory, changes):
    base = tmp_path_factory.mktemp("t")
    wt = add_worktree(new_project(base / "c"), "w0-i1")
    node = base / "n.git"
    git(base, "init", "-q", "--bare", str(node))
    for kind, i, content in changes:
        path = wt / ("a.txt" if i == 0 else f"f{i}.txt")
        if kind == "delete":
            path.unlink(missing_ok=True)
        elif kind == "commit":
            git(wt, "add", "-A")
            git(wt, "commit", "-q", "--allow-empty", "-m", "c")
        else:
            path.write_text(content)
            if kind == "stage":
                git(wt, "add", path.name)
    there, _ = send(wt, node, set())
    assert files_of(there) == files_of(wt)
    # The index is not carried (the receiver's is the branch's): a file the branch does
    # not have is untracked there, staged here or not.
    committed = set(git(wt, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    untracked = set(git(there, "ls-files", "--others").splitlines())
    assert untracked == set(files_of(wt)) - committed
    assert git(there, "rev-parse", "HEAD") == git(wt, "rev-parse", "HEAD")
    assert git(there, "branch", "--show-current") == "oompa/w0-i1"


def test_the_work_comes_back_and_later_bundles_carry_only_what_is_new(sides):
    wt, node = sides
    known: set[str] = set()
    there, first = send(wt, node, known)
    # The agent, on the node: a commit, an edit left uncommitted, a new untracked file.
    (there / "a.txt").write_text("changed\n")
    git(there, "commit", "-q", "-am", "agent")
    (there / "b.txt").write_text("new\n")
    (there / "a.txt").write_text("changed again\n")
    back = capture(there)
    unpack(wt, pack(node, back, known, name="w0-i1"))
    restore(wt, back)
    assert (wt / "a.txt").read_text() == "changed again\n"
    assert (wt / "b.txt").read_text() == "new\n"
    assert git(wt, "log", "-1", "--format=%s") == "agent"
    assert status(wt) == [" M a.txt", "?? b.txt"]
    known |= back.commits
    # Nothing new on either side: no bundle at all.
    assert pack(wt, capture(wt), known, name="w0") is None
    # One more commit: the next bundle holds it, not the history the node has.
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", "more")
    _, second = send(wt, node, known)
    assert first is not None and second is not None
    heads = subprocess.run(
        ["git", "bundle", "list-heads", "/dev/stdin"], input=second, capture_output=True, cwd=wt
    )
    assert heads.returncode == 0
    assert len(second) < len(first)
    # Every temporary ref of the packs is gone.
    assert git(wt, "for-each-ref", "refs/oompa-transfer") == ""
    assert git(node, "for-each-ref", "refs/oompa-transfer") == ""


def test_a_merge_in_progress_travels_and_main_goes_with_it(sides):
    wt, node = sides
    root = wt.parent
    (root / "a.txt").write_text("main's\n")
    git(root, "commit", "-q", "-am", "main moves")
    (wt / "a.txt").write_text("mine\n")
    git(wt, "commit", "-q", "-am", "mine")
    merged = subprocess.run(["git", "merge", "main"], cwd=wt, capture_output=True)
    assert merged.returncode != 0  # a conflict
    git(wt, "add", "a.txt")  # resolved as it stands (markers and all, for the test)
    there, _ = send(wt, node, set())
    assert git(there, "rev-parse", "MERGE_HEAD") == git(root, "rev-parse", "main")
    git(there, "commit", "-q", "--no-edit")
    back = capture(there)
    assert back.merge_head is None
    unpack(wt, pack(node, back, set(), name="w0-i1"))
    restore(wt, back)
    assert not (Path(git(wt, "rev-parse", "--absolute-git-dir")) / "MERGE_HEAD").exists()
    parents = git(wt, "log", "-1", "--format=%P").split()
    assert len(parents) == 2 and git(root, "rev-parse", "main") in parents


def test_a_node_workspace_runs_a_call_and_sends_the_worktree_back(tmp_path):
    """NodeWorkspace without Ray: the call runs in the node's own clone, the paths it was
    given are the node's, and the worktree comes back as the agent left it."""
    root = new_project(tmp_path / "coordinator")
    wt = add_worktree(root, "w0-i1")
    scenario = root / "scenario.json"
    scenario.write_text('{"say": "hi"}')
    workspace = NodeWorkspace(
        "s1", "w0", str(root), {"user.name": "n", "user.email": "n@n"}, str(tmp_path / "node")
    )
    state = capture(wt)
    script = (
        'pwd > where.txt; cat ../tasks/pending/t1.json > task.txt; cat "$SCENARIO" > seen.txt; '
        "git add -A && git commit -q -m agent && echo loose > loose.txt; echo done"
    )
    request = CallRequest(
        call_id="c1",
        worktree=wt.name,
        state=state,
        argv=("sh", "-c", script),
        env={"SCENARIO": str(scenario)},
        inherit=("PATH", "HOME"),
        files={"tasks/pending/t1.json": b'{"id": "t1"}', "scenario.json": scenario.read_bytes()},
        timeout=30,
    )
    reply = workspace.run(request, pack(root, state, set(), name="w0"))
    assert reply.proc.exit_code == 0, reply.proc.stderr
    assert reply.proc.cwd == wt  # told in the coordinator's terms
    assert b"done" in b"".join(chunk for _, chunk in reply.output)
    unpack(root, reply.bundle)
    restore(wt, reply.state)
    node_wt = workspace.project / wt.name
    assert (wt / "where.txt").read_text().strip() == str(node_wt)  # it ran there, not here
    assert (wt / "task.txt").read_text() == '{"id": "t1"}'
    assert (wt / "seen.txt").read_text() == '{"say": "hi"}'
    assert git(wt, "log", "-1", "--format=%s %an") == "agent n"
    assert status(wt) == ["?? loose.txt"]
    workspace.close()
    assert not workspace.root.exists()


def test_receiving_does_not_trip_over_a_worktree_being_added_meanwhile(sides):
    """Other workers add and remove worktrees while a bundle is received on the coordinator:
    ``git bundle unbundle`` walked their half-made HEADs and failed about one time in ten."""
    wt, node = sides
    root = wt.parent
    there, _ = send(wt, node, set())
    (there / "a.txt").write_text("from the node\n")
    git(there, "commit", "-q", "-am", "node work")
    back = capture(there)
    bundle = pack(node, back, set(), name="w0-i1")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["git", "worktree", "add", "-q", "--detach", ".wx", "main"], cwd=root)
            subprocess.run(["git", "worktree", "remove", "--force", ".wx"], cwd=root)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(60):
            unpack(root, bundle)
    finally:
        stop.set()
        thread.join()
    assert git(root, "cat-file", "-t", back.head) == "commit"
