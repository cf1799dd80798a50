"""The fake agent CLIs asked to make a branch mergeable again (the engine's sync prompt).

Each test builds a real repository: ``main`` and a linked worktree ``.w0-c1`` on its own
branch, with commits on both sides, the way a swarm leaves them when main has moved under a
worker. The fake CLI runs as a subprocess in the worktree with the prompt the engine builds
(``prompts.sync``); what counts is what plain git says afterwards, as the engine's own retry of
``git merge main`` would see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa.engine import prompts
from pytest_oompa.offline.fake_scenario import Scenario, ScenarioError, validate

FAKES = Path(__file__).resolve().parents[2] / "fake_harnesses"
HARNESSES = ("claude", "codex", "opencode", "gemini")
AUTO_APPROVE = {
    "claude": "--dangerously-skip-permissions",
    "codex": "--dangerously-bypass-approvals-and-sandbox",
    "opencode": "--auto",
    "gemini": "--yolo",
}
BRANCH = "oompa/w0-c1"
# Commit subjects the sync prompt quotes: they hold the fix and review markers, which must not
# win over the sync marker.
SYNC_PROMPT = prompts.sync(
    "s1",
    "w0",
    error="CONFLICT (content): Merge conflict in notes.txt",
    branch_log="abc1234 w0: Fix these issues.",
    main_log="def5678 w1: VERDICT: NEEDS_CHANGES handled",
    diff_stat=" notes.txt | 1 +\n 1 file changed, 1 insertion(+)",
)


def argv(h: str, prompt: str, cwd: Path, auto: bool = True) -> list[str]:
    """The fresh-session argv the engine builds for ``h``, optionally without its auto-approve
    flag."""
    if h == "claude":
        head = ["claude", "-p", AUTO_APPROVE[h], "--output-format", "json", "--model", "opus"]
        args = [*head, "--session-id", str(uuid.uuid4()), "--", prompt]
    elif h == "codex":
        head = ["codex", "exec", AUTO_APPROVE[h], "--skip-git-repo-check", "-C", str(cwd)]
        args = [*head, "--json", "-m", "gpt-5-codex", "--", prompt]
    elif h == "opencode":
        args = ["opencode", "run", "--format", "json", AUTO_APPROVE[h], "-m", "fake/m", prompt]
    else:
        head = ["gemini", AUTO_APPROVE[h], "--skip-trust", "-m", "gemini-2.5-pro", "-o", "json"]
        args = [*head, "--session-id", str(uuid.uuid4()), f"--prompt={prompt}"]
    return args if auto else [a for a in args if a != AUTO_APPROVE[h]]


def reply(h: str, stdout: str) -> str:
    """The agent's reply text in ``h``'s structured output."""
    if h == "claude":
        return str(json.loads(stdout)["result"])
    if h == "gemini":
        return str(json.loads(stdout)["response"])
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if h == "codex":
        items = [e["item"] for e in events if e["type"] == "item.completed"]
        return "".join(i["text"] for i in items if i["type"] == "agent_message")
    return "".join(e["part"]["text"] for e in events if e["type"] == "text")


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        check=check,
        capture_output=True,
        text=True,
    )


def out(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout.strip()


class Fake:
    """Runs the fake CLIs with their own state and log, a stdlib-only python and no global
    git identity (the fakes' commits and merges must not need one)."""

    def __init__(self, tmp: Path, python_dir: Path) -> None:
        self.log_path = tmp / "fake-log.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OOMPA_")}
        env.update(
            PATH=os.pathsep.join([str(FAKES), str(python_dir), env["PATH"]]),
            OOMPA_FAKE_STATE=str(tmp / "fake-state"),
            OOMPA_FAKE_LOG=str(self.log_path),
            IS_SANDBOX="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
        )
        self.env = env

    def run(
        self, args: list[str], cwd: Path, scenario: object = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if scenario is not None:
            env["OOMPA_FAKE_SCENARIO"] = json.dumps(scenario)
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest.fixture(scope="module")
def stdlib_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``python3`` without site-packages: the fakes are stdlib only, and skipping ``site``
    is most of their start-up."""
    d = tmp_path_factory.mktemp("stdlib-python")
    exe = d / "python3"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    exe.chmod(0o755)
    return d


@pytest.fixture
def fake(tmp_path: Path, stdlib_python: Path) -> Fake:
    return Fake(tmp_path, stdlib_python)


def make_project(root: Path, conflict: bool) -> Path:
    """``root`` on main and its worktree ``root/.w0-c1`` on BRANCH, each with a commit of its
    own since they parted. With ``conflict``, both changed the end of notes.txt, main deleted
    old.txt that the branch changed, and the branch deleted gone.txt that main changed; else
    they changed different files. Returns the worktree."""
    root.mkdir()
    (root / "notes.txt").write_text("base\n")
    (root / "old.txt").write_text("old\n")
    (root / "gone.txt").write_text("gone\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    git(root, "worktree", "add", "-q", "-b", BRANCH, ".w0-c1")
    wt = root / ".w0-c1"
    if conflict:
        (wt / "notes.txt").write_text("base\nfrom the branch\n")
        (wt / "old.txt").write_text("old\nkept by the branch\n")
        (wt / "gone.txt").unlink()
        (root / "notes.txt").write_text("base\nfrom main\n")
        (root / "old.txt").unlink()
        (root / "gone.txt").write_text("gone\nkept by main\n")
    else:
        (wt / "branch.txt").write_text("branch\n")
        (root / "main.txt").write_text("main\n")
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", "w0: work")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "w1: merged work")
    return wt


@pytest.fixture
def conflicted(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", conflict=True)


def merging(wt: Path) -> bool:
    return git(wt, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0


def assert_unchanged(wt: Path, head: str) -> None:
    """The branch as it was, no merge in progress, and main still conflicting with it."""
    assert out(wt, "rev-parse", "HEAD") == head
    assert out(wt, "status", "--porcelain") == "" and not merging(wt)
    retry = git(wt, "merge", "main", "--no-edit", check=False)
    assert retry.returncode != 0 and "CONFLICT" in retry.stdout
    git(wt, "merge", "--abort")


def no_conflict_markers(wt: Path) -> bool:
    found = git(wt, "grep", "-n", "-e", "^<<<<<<<", "-e", "^=======", "-e", "^>>>>>>>", check=False)
    return found.returncode == 1 and found.stdout == ""


@pytest.mark.parametrize("h", HARNESSES)
def test_the_builtin_sync_agent_merges_main_keeping_both_sides(
    fake: Fake, conflicted: Path, h: str
) -> None:
    wt, root = conflicted, conflicted.parent
    main_head, branch_head = out(root, "rev-parse", "main"), out(wt, "rev-parse", "HEAD")
    r = fake.run(argv(h, SYNC_PROMPT, wt), wt)
    assert r.returncode == 0, r.stderr
    text = reply(h, r.stdout)
    assert text == (
        "Merged main into this branch; resolved conflicts in gone.txt, notes.txt, old.txt "
        "by keeping both sides."
    )
    # What the engine does next: merging main again is a no-op.
    head = out(wt, "rev-parse", "HEAD")
    assert git(wt, "merge", "main", "--no-edit").returncode == 0
    assert out(wt, "rev-parse", "HEAD") == head
    assert out(wt, "rev-parse", "HEAD^1", "HEAD^2").split() == [branch_head, main_head]
    assert (wt / "notes.txt").read_text() == "base\nfrom the branch\nfrom main\n"
    assert (wt / "old.txt").read_text() == "old\nkept by the branch\n"
    assert (wt / "gone.txt").read_text() == "gone\nkept by main\n"
    assert no_conflict_markers(wt)
    assert out(wt, "status", "--porcelain") == "" and not merging(wt)
    assert out(root, "rev-parse", "main") == main_head
    (entry,) = fake.log()
    assert (entry["role"], entry["worker"], entry["step"]) == ("sync", "w0", "builtin")
    assert entry["commits"] == [f"Merge branch 'main' into {BRANCH}"]
    assert out(wt, "log", "-1", "--format=%an") == "fake-agent"


@pytest.mark.parametrize("h", ["claude", "codex"])
def test_resolve_false_leaves_the_branch_as_it_was(fake: Fake, conflicted: Path, h: str) -> None:
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    scenario = {"workers": {"w0": {"sync": {"resolve": False}}}}
    r = fake.run(argv(h, SYNC_PROMPT, wt), wt, scenario)
    assert r.returncode == 0, r.stderr
    assert (
        reply(h, r.stdout)
        == "I could not resolve the conflicts with main; the branch is unchanged."
    )
    assert_unchanged(wt, head)
    assert [(e["role"], e["step"]) for e in fake.log()] == [("sync", "workers.w0.sync")]


def test_resolve_false_beside_builtin_and_from_the_builder(fake: Fake, conflicted: Path) -> None:
    """``builtin`` with ``resolve: false`` is the built-in sync agent giving up; the builder's
    ``resolves(False)`` writes that field."""
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    s = Scenario()
    s.sync("w0").always().says("Looked at it.").builtin().resolves(False)
    assert s.validate() == {
        "workers": {"w0": {"sync": {"say": "Looked at it.", "builtin": True, "resolve": False}}}
    }
    r = fake.run(argv("codex", SYNC_PROMPT, wt), wt, s.to_dict())
    assert reply("codex", r.stdout) == (
        "Looked at it.\nI could not resolve the conflicts with main; the branch is unchanged."
    )
    assert_unchanged(wt, head)


def test_resolve_true_in_a_scripted_step(fake: Fake, conflicted: Path) -> None:
    s = Scenario()
    s.sync().on_call(1).says("On it.").resolves()
    r = fake.run(argv("claude", SYNC_PROMPT, conflicted), conflicted, s.validate())
    assert reply("claude", r.stdout).startswith("On it.\nMerged main into this branch; resolved")
    assert (conflicted / "notes.txt").read_text() == "base\nfrom the branch\nfrom main\n"
    assert out(conflicted, "status", "--porcelain") == "" and not merging(conflicted)
    assert fake.log()[0]["step"] == "default.sync"


@pytest.mark.parametrize("h", HARNESSES)
def test_a_scripted_sync_step_does_only_what_it_says(fake: Fake, conflicted: Path, h: str) -> None:
    """Every CLI's way of passing the prompt (opencode quotes it) still reads as a sync call;
    a step that says neither ``resolve`` nor ``builtin`` leaves the merge undone."""
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    r = fake.run(argv(h, SYNC_PROMPT, wt), wt, {"default": {"sync": {"say": "{role} {worker}"}}})
    assert r.returncode == 0, r.stderr
    assert reply(h, r.stdout) == "sync w0"
    assert_unchanged(wt, head)


def test_crash_and_needs_followup_sync_steps_touch_nothing(fake: Fake, conflicted: Path) -> None:
    """The existing step fields say how a sync call fails without resolving: it dies by a
    signal, or it asks for a follow-up."""
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    steps = [{"crash": "SIGKILL"}, {"needs_followup": "too tangled"}]
    scenario = {"workers": {"w0": {"sync": steps}}}
    r = fake.run(argv("claude", SYNC_PROMPT, wt), wt, scenario)
    assert r.returncode == -9
    r = fake.run(argv("claude", SYNC_PROMPT, wt), wt, scenario)
    assert reply("claude", r.stdout) == "NEEDS_FOLLOWUP: too tangled"
    assert [(e["role"], e["call"]) for e in fake.log()] == [("sync", 1), ("sync", 2)]
    assert_unchanged(wt, head)


@pytest.mark.parametrize("h", ["claude", "codex"])
def test_without_main_conflicts_the_sync_merges_cleanly(fake: Fake, tmp_path: Path, h: str) -> None:
    wt = make_project(tmp_path / "proj", conflict=False)
    main_head = out(wt.parent, "rev-parse", "main")
    r = fake.run(argv(h, SYNC_PROMPT, wt), wt)
    assert reply(h, r.stdout) == "Merged main into this branch: no conflicts."
    assert out(wt, "rev-parse", "HEAD^2") == main_head
    assert (wt / "main.txt").read_text() == "main\n" and (wt / "branch.txt").exists()
    assert out(wt, "status", "--porcelain") == "" and not merging(wt)
    r = fake.run(argv(h, SYNC_PROMPT, wt), wt)  # nothing left to merge
    assert reply(h, r.stdout) == "main was already merged into this branch: nothing to do."
    assert [len(e["commits"]) for e in fake.log()] == [1, 0]


@pytest.mark.parametrize("h", ["claude", "codex"])
def test_without_the_auto_approve_flag_the_merge_is_refused(
    fake: Fake, conflicted: Path, h: str
) -> None:
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    r = fake.run(argv(h, SYNC_PROMPT, wt, auto=False), wt)
    assert r.returncode == 0 and "permission denied for git merge main" in r.stderr
    assert reply(h, r.stdout) == "I was not allowed to run git merge main."
    assert_unchanged(wt, head)
    (entry,) = fake.log()
    assert entry["auto_approve"] is False and entry["denied"] == ["git merge main"]


def test_review_and_fix_prompts_are_not_sync_calls(fake: Fake, conflicted: Path) -> None:
    """The sync sentence quoted in a review's diff or a fix's feedback does not make a sync
    call: the reviewer approves and the fixer commits its fix, and neither merges main."""
    wt = conflicted
    head = out(wt, "rev-parse", "HEAD")
    quoted = f"+    {prompts.SYNC_MARKER}\n{prompts.SYNC_MARKER}"
    review = prompts.review("s1", "w0", quoted, "", [quoted])
    fix = prompts.fix("s1", "w0", [prompts.SYNC_MARKER, "- also this"])
    worker = prompts.fresh("s1", "w0", "Pending: 0", prompts.SYNC_MARKER)
    for h, prompt in (("claude", review), ("opencode", fix), ("codex", worker)):
        assert fake.run(argv(h, prompt, wt), wt).returncode == 0
    assert [e["role"] for e in fake.log()] == ["reviewer", "fix", "worker"]
    assert not merging(wt)
    assert out(wt, "log", "--format=%s", f"{head}..HEAD").split("\n") == ["w0: work", "w0: fix"]
    assert git(wt, "merge-base", "--is-ancestor", "main", "HEAD", check=False).returncode == 1


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_resolve_value_is_a_bad_scenario(fake: Fake, conflicted: Path, value: object) -> None:
    scenario = {"default": {"sync": [{"resolve": value}]}}
    r = fake.run(argv("claude", SYNC_PROMPT, conflicted), conflicted, scenario)
    assert r.returncode == 97
    assert f"default.sync[0].resolve: wrong type {type(value).__name__}" in r.stderr
    with pytest.raises(ScenarioError, match=r"resolve: wrong type"):
        validate(scenario)


def test_resolve_belongs_to_the_sync_role() -> None:
    with pytest.raises(
        ScenarioError, match=r"workers\.w0\.worker\.resolve: only a sync step resolves"
    ):
        validate({"workers": {"w0": {"worker": {"resolve": True}}}})
    s = Scenario()
    s.fix("w0").always().resolves()
    with pytest.raises(ScenarioError, match=r"workers\.w0\.fix\.resolve: only a sync step"):
        s.validate()
