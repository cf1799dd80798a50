"""Record and replay (pytest_oompa.offline.cassette, the fakes' replay mode, --oompa-record and
--oompa-replay): a recorded run replays to the same artifacts on a fresh repo, a call that
differs fails with a diff, secrets never reach the cassette. Real git, real fake processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_oompa import GitRepo, SwarmRun
from pytest_oompa.core.paths import fake_bin_dir, fake_harnesses_dir
from pytest_oompa.offline import cassette
from pytest_oompa.offline.cassette import (
    CassetteRecorder,
    Redactor,
    Side,
    apply_changes,
    capture,
    comparable_artifacts,
    snapshot,
    view,
)
from pytest_oompa.plugin.swarm_runner import SwarmRunner

FAKES = fake_harnesses_dir()

SWARM_ID = "20260101T000000Z-c0ffee"

# Three workers on three CLIs, a planner, a gemini reviewer, the probes; every kind of call
# and change: w0 (codex) claims, then resumes, commits and merges after a needs-changes round
# (its fix resumes and commits too); w1 (claude) errors, then claims, commits and merges; w2
# (opencode) leaves an uncommitted draft ("working"), then resumes, rewrites it and merges
# without committing (the engine commits). The planner writes tasks in the project root.
# Claims never contend, so what the recorded run did is what any replay must do again.
CONFIG: dict[str, Any] = {
    "probe": True,
    "executor_wait": 0,
    "workers": [
        {"model": "codex:gpt-5.3-codex:medium", "iterations": 2},
        {"model": "claude:opus", "iterations": 2},
        {"model": "opencode:fake/fake-model", "iterations": 2},
    ],
    "reviewer": {"model": "gemini:gemini-2.5-pro"},
    "planner": {"model": "claude:sonnet", "max_pending": 3},
}
SCENARIO: dict[str, Any] = {
    "workers": {
        "w0": {
            "worker": [
                {"claim": ["t0"]},
                {"write": {"w0.txt": "w0\n"}, "commit": "w0: implement t0", "merge": True},
            ],
            "reviewer": [{"say": "- add a test", "verdict": "needs-changes"}, "default"],
        },
        "w1": {
            "worker": [
                {"exit": 1, "stderr": "quota exceeded"},
                {"claim": ["task-1"], "write": {"w1.txt": "w1\n"}, "commit": True, "merge": True},
            ]
        },
        "w2": {
            "worker": [
                {"write": {"w2.txt": "draft\n"}, "say": "still thinking"},
                {"claim": ["task-2"], "write": {"w2.txt": "done\n"}, "merge": True},
            ]
        },
    }
}
OUTCOMES = {
    "w0": ["claimed", "merged"],
    "w1": ["error", "merged"],
    "w2": ["working", "merged"],
}


@pytest.fixture(autouse=True)
def _no_cassette_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cassette.ENV_CASSETTE, raising=False)


def new_repo(folder: Path, tasks: tuple[str, ...] = ("t0",)) -> GitRepo:
    repo = GitRepo(folder / "project")
    for task in tasks:
        repo.add_task(task)
    repo.commit("tasks")
    return repo


def record(
    folder: Path, config: dict[str, Any], scenario: dict[str, Any] | None = None, **kw: Any
) -> tuple[SwarmRun, CassetteRecorder]:
    repo = new_repo(folder)
    recorder = CassetteRecorder(
        folder / "cassettes",
        swarm_id=SWARM_ID,
        repo_root=repo.path,
        env=kw.pop("os_env", None),
        extra_env={**config.get("env", {}).get("set", {}), **kw.get("env", {})},
    )
    run = SwarmRunner(folder, repo)(
        config, scenario=scenario, call_observer=recorder, swarm_id=SWARM_ID, **kw
    )
    assert recorder.problems == []
    return run, recorder


def replay(
    folder: Path,
    cassette_path: Path,
    config: dict[str, Any],
    scenario: dict[str, Any] | None = None,
    **kw: Any,
) -> SwarmRun:
    """On a fresh repo made the same way (so: the same content, other commit ids), as
    --oompa-replay does it: the fakes play the cassette, the engine gets replies in order."""
    repo = new_repo(folder)
    state = folder / "replay-state"
    env = {cassette.ENV_CASSETTE: str(cassette_path), "OOMPA_FAKE_STATE": str(state)}
    order = cassette.ReplayOrder(cassette.load(cassette_path), state)
    return SwarmRunner(folder, repo)(
        config, scenario=scenario, env={**env, **kw.pop("env", {})}, call_observer=order, **kw
    )


def comparable(run: SwarmRun) -> dict[str, Any]:
    return comparable_artifacts(
        run.run_dir, {str(run.repo.path): "<repo>", str(run.config_path.parent): "<config>"}
    )


def tree(repo: GitRepo) -> dict[str, str]:
    """main's files and their blob ids, but the completed tasks (they carry timestamps)."""
    lines = repo.git("ls-tree", "-r", "main").splitlines()
    entries = (line.split(None, 3) for line in lines)
    return {e[3]: e[2] for e in entries if not e[3].startswith("tasks/complete/")}


# ------------------------------------------------------------------------------------------
# the round trip
# ------------------------------------------------------------------------------------------


def test_a_recorded_run_replays_to_identical_artifacts(tmp_path: Path) -> None:
    recorded, recorder = record(tmp_path / "rec", CONFIG, SCENARIO)
    assert {w: recorded.outcomes(w) for w in OUTCOMES} == OUTCOMES
    assert recorded.result.planner is not None and recorded.result.planner.tasks_created == 2
    path = recorder.path
    assert path is not None and path.name == f"{SWARM_ID}.cassette.json"
    data = cassette.load(path)
    cassette.validate(data)
    keys = [c["key"] for c in data["calls"]]
    assert "planner/planner/1" in keys and "w0/fix/1" in keys and "w0/reviewer/2" in keys
    assert "@opencode:fake/fake-model/probe/1" in keys
    assert data["harness-versions"]["codex"] == "codex-cli 0.169.0"
    w0 = {c["key"]: c for c in data["calls"]}["w0/worker/2"]
    assert [c["message"] for c in w0["changes"]["commits"]] == ["w0: implement t0\n"]
    assert "+w0" in w0["changes"]["patch"]

    # Scenario or not, the fakes now play the cassette back.
    replayed = replay(tmp_path / "rep", path, CONFIG, SCENARIO)
    assert {w: replayed.outcomes(w) for w in OUTCOMES} == OUTCOMES
    assert {c["replay"] for c in replayed.fake_calls} == set(keys)
    assert cassette.unreplayed(data, tmp_path / "rep" / "replay-state") == []

    want, got = comparable(recorded), comparable(replayed)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    # The project ends the same: every file but the completed tasks' timestamps, and the
    # agents' commits (made again with their messages, identities and dates).
    assert tree(replayed.repo) == tree(recorded.repo)
    for run in (recorded, replayed):
        assert run.repo.status() == [] and run.repo.branches() == ["main"]
    # (Merge commits are left out: whether a merge fast-forwards depends on which worker
    # merged first, in the recording as in any run.)
    rec_log, rep_log = (
        sorted(
            line.replace(run.result.swarm_id, "<swarm>")
            for line in run.repo.git("log", "--format=%s", "main").splitlines()
            if not line.startswith("oompa: merge ")
        )
        for run in (recorded, replayed)
    )
    assert rep_log == rec_log
    assert "w0: implement t0" in rec_log and "w0: fix" in rec_log

    # Session ids are this run's own, mapped consistently: the fix resumed the worker's.
    def sessions(run: SwarmRun) -> list[str]:
        calls = run.artifact("calls/w0-i2.json")["calls"]
        return [c["session-id"] for c in calls if c["role"] in ("worker", "fix")]

    rec_ids, rep_ids = sessions(recorded), sessions(replayed)
    assert len(set(rec_ids)) == len(set(rep_ids)) == 1 and set(rec_ids) != set(rep_ids)


def test_a_claim_race_is_decided_as_it_was_recorded(tmp_path: Path) -> None:
    """Both workers claim t0; when recorded, w1 ended first (w0 was slow) and won. Replayed,
    the fakes answer at once, but the engine gets each reply only after the replies recorded
    as coming before it (ReplayOrder): w1 wins again."""
    work = {"claim": ["t0"], "commit": True, "merge": True}
    scenario = {
        "workers": {
            "w0": {"worker": {**work, "write": {"w0.txt": "0"}, "delay": 0.6}},
            "w1": {"worker": {**work, "write": {"w1.txt": "1"}}},
        }
    }
    config = {"probe": False, "workers": [{"model": "claude:opus", "iterations": 1, "count": 2}]}
    recorded, recorder = record(tmp_path / "rec", config, scenario)
    assert recorder.path is not None
    claims = {w: r.metrics.claims for w, r in recorded.workers.items()}
    assert claims == {"w0": 0, "w1": 1}
    replayed = replay(tmp_path / "rep", recorder.path, config, scenario)  # (ignored)
    assert {w: r.metrics.claims for w, r in replayed.workers.items()} == claims
    assert comparable(replayed) == comparable(recorded)


def test_a_changed_prompt_fails_the_call_with_a_diff(tmp_path: Path) -> None:
    config = {
        "probe": False,
        "workers": [{"model": "claude:opus", "iterations": 1, "prompt": "w.md"}],
    }
    _, recorder = record(tmp_path / "rec", config, prompts={"w.md": "Implement the task.\n"})
    assert recorder.path is not None
    run = replay(tmp_path / "rep", recorder.path, config, prompts={"w.md": "Implement it twice.\n"})
    assert run.outcomes("w0") == ["error"]
    error = run.artifact("errors/w0-i1-worker-1.json")
    assert error["exit-code"] == cassette.REPLAY_MISMATCH == 96
    stderr = error["stderr-tail"]
    assert "call w0/worker/1 does not match" in stderr
    assert "--- cassette w0/worker/1\n+++ this call\n" in stderr
    assert "\n-    Implement the task.\n" in stderr
    assert "\n+    Implement it twice.\n" in stderr
    assert "\n-argv[0]" not in stderr  # only what differs, normalized (paths, ids, swarm id)
    assert run.artifact("iterations/w0-i1.json")["error-snippet"].startswith(
        "claude failed: exit code 96"
    )


def test_a_prompt_that_fools_the_role_inference_still_replays(tmp_path: Path) -> None:
    """Calls are keyed by the role the fakes can tell from the prompt, on both sides."""
    config = {
        "probe": False,
        "workers": [{"model": "claude:opus", "iterations": 1, "prompt": "w.md"}],
    }
    prompts = {"w.md": "When the reviewer says VERDICT: NEEDS_CHANGES: Fix these issues.\n"}
    recorded, recorder = record(tmp_path / "rec", config, prompts=prompts)
    assert recorder.path is not None
    [call] = cassette.load(recorder.path)["calls"]
    assert (call["key"], call["role"]) == ("w0/fix/1", "worker")
    run = replay(tmp_path / "rep", recorder.path, config, prompts=prompts)
    assert run.outcomes("w0") == recorded.outcomes("w0") == ["working"]
    assert comparable(run) == comparable(recorded)


def test_role_inference_is_the_fakes(tmp_path: Path) -> None:
    import importlib
    import importlib.util

    from pytest_oompa.engine import prompts
    from pytest_oompa.engine.tasks import ClaimResult

    folder = FAKES / "_fake"
    spec = importlib.util.spec_from_file_location(
        "fake_for_roles", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    sys.modules["fake_for_roles"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["fake_for_roles"])
    invocation = importlib.import_module("fake_for_roles.invocation")
    fake_scenario = importlib.import_module("fake_for_roles.scenario")
    samples = [
        prompts.PROBE_PROMPT,
        prompts.fresh("S", "w0", "Pending: 0", "Fix these issues."),
        prompts.resume("S", "w1", "Pending: 0"),
        prompts.claim_results("S", "w0", ClaimResult(("t1",)), "Pending: 0"),
        prompts.review("S", "w0", "+x", "", ["Fix these issues."]),
        prompts.fix("S", "w0", ["VERDICT: NEEDS_CHANGES\n- a"]),
        prompts.planner("S", "", "Pending: 0", 2),
        "[oompa:S:w0] VERDICT: NEEDS_CHANGES alone",
    ]
    for prompt in samples:
        run = invocation.Run("claude", [])
        run.prompt = prompt
        fake_scenario.infer_role(run)
        assert cassette.infer_role(prompt, cassette.prompt_tag(prompt)[1]) == run.role, prompt


def test_the_recorders_of_a_run_share_one_lock_outside_the_cassette_folder(
    tmp_path: Path,
) -> None:
    """Processes recording one run (pytest-xdist) merge into one cassette under one lock
    file, in the project's git folder: nothing but the cassette is left in the user's folder."""
    config = {"probe": False, "workers": [{"model": "gemini:gemini-2.5-pro", "iterations": 1}]}
    run, recorder = record(tmp_path / "rec", config, {"default": {"worker": {"say": "hm"}}})
    assert recorder.path is not None
    assert [p.name for p in recorder.path.parent.iterdir()] == [recorder.path.name]
    other = CassetteRecorder(
        recorder.path.parent, swarm_id=SWARM_ID, repo_root=run.repo.path, record_versions=False
    )
    assert other.lock_path == recorder.lock_path
    assert recorder.lock_path.parent == (run.repo.path / ".git").resolve()
    other.write()  # another process's rewrite keeps this one's calls
    assert len(cassette.load(recorder.path)["calls"]) == len(recorder.calls) > 0
    assert [p.name for p in recorder.path.parent.iterdir()] == [recorder.path.name]


def test_a_call_the_cassette_lacks_fails(tmp_path: Path) -> None:
    config = {"probe": False, "workers": [{"model": "gemini:gemini-2.5-pro", "iterations": 1}]}
    _, recorder = record(tmp_path / "rec", config, {"default": {"worker": {"say": "hm"}}})
    assert recorder.path is not None
    more = {**config, "workers": [{"model": "gemini:gemini-2.5-pro", "iterations": 2}]}
    run = replay(tmp_path / "rep", recorder.path, more)
    assert run.outcomes("w0") == ["working", "error"]
    stderr = run.artifact("errors/w0-i2-worker-1.json")["stderr-tail"]
    assert "has no call w0/worker/2 (recorded for w0/worker: w0/worker/1)" in stderr


# ------------------------------------------------------------------------------------------
# redaction
# ------------------------------------------------------------------------------------------

SECRETS = {
    "anthropic": "sk-ant-api03-" + "A1b2C3d4" * 4,
    "openai": "sk-proj-" + "Z9y8X7w6" * 3,
    "github": "ghp_" + "0123456789abcdefABCD" * 2,
    "google": "AIzaSy" + "B-cdEFghIJklMNopQRstUVwxYZ0123",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.payload.sig",
    "password": "correct horse battery staple",
    "plain-token": "opaque-value-without-a-shape-42",
}


def test_secrets_never_reach_the_cassette(tmp_path: Path) -> None:
    s = SECRETS
    scenario = {
        "workers": {
            "w0": {
                "worker": {
                    "say": f"found {s['openai']} and {s['github']}",
                    "stderr": f"Authorization: Bearer {s['bearer']} / {s['plain-token']}",
                    "write": {"conf.py": f"KEY = '{s['google']}'\n"},
                    "commit": f"add key {s['google']}",
                    "merge": True,
                }
            }
        }
    }
    config = {
        "probe": False,
        "workers": [{"model": "claude:opus", "iterations": 1, "prompt": "p.md"}],
        "env": {"set": {"MY_SERVICE_PASSWORD": s["password"]}},
    }
    env = {"ANTHROPIC_API_KEY": s["anthropic"], "GITHUB_TOKEN": s["plain-token"]}
    run, recorder = record(
        tmp_path / "rec",
        config,
        scenario,
        prompts={"p.md": f"Use the key {s['anthropic']}."},
        os_env={**os.environ, **env},
        env=env,
    )
    assert run.outcomes("w0") == ["merged"]
    assert recorder.path is not None
    text = recorder.path.read_text(encoding="utf-8")
    for name, secret in SECRETS.items():
        assert secret not in text, name
    call = {c["key"]: c for c in json.loads(text)["calls"]}["w0/worker/1"]
    assert call["env"]["ANTHROPIC_API_KEY"] == "<redacted>"
    assert call["env"]["GITHUB_TOKEN"] == "<redacted>"
    assert call["env"]["MY_SERVICE_PASSWORD"] == "<redacted>"
    assert call["prompt"].endswith("Use the key <redacted>.")
    assert "Bearer <redacted>" in call["stderr"]
    assert "KEY = '<redacted>'" in call["changes"]["patch"]
    assert call["changes"]["commits"][0]["message"] == "add key <redacted>\n"
    # A redacted cassette still replays: a live secret is redacted the same way first.
    replayed = replay(
        tmp_path / "rep", recorder.path, config, prompts={"p.md": f"Use the key {s['anthropic']}."}
    )
    assert replayed.outcomes("w0") == ["merged"]
    assert (replayed.repo.path / "conf.py").read_text() == "KEY = '<redacted>'\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("key sk-ant-api03-abcdefghijkl1234 end", "key <redacted> end"),
        ("OPENAI=sk-proj-AbC123dEf456gHi", "OPENAI=<redacted>"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token <redacted>"),
        ("github_pat_11ABCDEFG0123456789_abcdefXYZ", "<redacted>"),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "<redacted>"),
        ("Authorization: Bearer abc.def-ghi_123", "Authorization: Bearer <redacted>"),
        ("AKIAIOSFODNN7EXAMPLE", "<redacted>"),
        # not keys: words that merely start alike
        ("risk-assessment task-sk-1 desk-lamp", "risk-assessment task-sk-1 desk-lamp"),
        ("a sk-short one", "a sk-short one"),
        ("Bearer of bad news", "Bearer of bad news"),
    ],
)
def test_redaction_patterns(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


def test_redaction_of_env_names_and_values() -> None:
    env = {
        "OPENAI_API_KEY": "whatever-it-is-1",
        "DB_PASSWORD": "x",
        "HF_TOKEN_PATH": "/home/me/.token",
        "TOKENIZERS_PARALLELISM": "false",
        "MODEL": "opus",
    }
    r = Redactor(env)
    assert r.env(env) == {
        "OPENAI_API_KEY": "<redacted>",
        "DB_PASSWORD": "<redacted>",
        "HF_TOKEN_PATH": "<redacted>",
        "TOKENIZERS_PARALLELISM": "<redacted>",
        "MODEL": "opus",
    }
    # a secret's value is removed wherever it shows up; short values and paths are not searched
    assert r.text("got whatever-it-is-1; false; /home/me/.token") == (
        "got <redacted>; false; /home/me/.token"
    )


def test_redaction_of_a_patch_keeps_its_binary_hunks() -> None:
    key = "sk-" + "a1B2c3D4e5F6g7H8"
    patch = (
        "diff --git a/k.txt b/k.txt\n--- a/k.txt\n+++ b/k.txt\n@@ -1 +1 @@\n"
        f"-old\n+{key}\n"
        "diff --git a/b.bin b/b.bin\nGIT binary patch\nliteral 20\n"
        f"zcmV+{key}\n\nliteral 0\nHcmV?d00001\n\n"
    )
    out = Redactor().patch(patch)
    assert "+<redacted>\n" in out and f"zcmV+{key}\n" in out  # base85 data is not text


# ------------------------------------------------------------------------------------------
# the pieces
# ------------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return proc.stdout


def test_capture_and_apply_reproduce_commits_and_uncommitted_changes(tmp_path: Path) -> None:
    origin = GitRepo(tmp_path / "a")
    origin.write("keep.txt", "keep\n")
    origin.write("old.txt", "old\n")
    origin.write("gone.txt", "bye\n")
    origin.commit("base")
    origin.write("draft.txt", "uncommitted before the call\n")
    copy = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(origin.path), str(copy)], check=True)
    (copy / "draft.txt").write_text("uncommitted before the call\n")

    before = snapshot(origin.path)
    assert before is not None
    # What an agent does: two commits (one amended), a binary file, a deletion, leftovers.
    origin.write("a.txt", "one\n")
    origin.git("add", "-A")
    origin.git("commit", "-q", "-m", "first\n\nwith a body")
    origin.write("bin.dat", "")
    (origin.path / "bin.dat").write_bytes(bytes(range(256)))
    origin.git("rm", "-q", "gone.txt")
    origin.git("add", "-A")
    origin.git("commit", "-q", "-m", "second")
    origin.write("old.txt", "changed but not committed\n")
    origin.write("new-untracked.txt", "untracked\n")
    changes = capture(before)
    assert changes is not None
    assert [c["message"] for c in changes["commits"]] == ["first\n\nwith a body\n", "second\n"]
    assert changes["drop"] == 0

    apply_changes(copy, changes)
    after_a, after_b = snapshot(origin.path), snapshot(copy)
    assert after_a is not None and after_b is not None
    assert after_b.tree == after_a.tree  # the same files, committed or not
    # the same commits: same patches, messages, identities, dates and parents
    assert git(copy, "rev-parse", "HEAD").strip() == origin.head("HEAD")
    assert git(copy, "status", "--porcelain").splitlines() == [
        " M old.txt",
        "?? new-untracked.txt",
    ]
    assert (copy / "bin.dat").read_bytes() == bytes(range(256))

    # An amend rewrites history: the old HEAD is dropped, then the new commit made.
    before = snapshot(origin.path)
    assert before is not None
    origin.git("commit", "-q", "--amend", "-m", "second, amended")
    changes = capture(before)
    assert changes is not None and changes["drop"] == 1
    assert [c["message"] for c in changes["commits"]] == ["second, amended\n"]
    apply_changes(copy, changes)
    assert git(copy, "rev-parse", "HEAD").strip() == origin.head("HEAD")
    # Nothing happened: no changes to record.
    before = snapshot(origin.path)
    assert before is not None and capture(before) is None


def test_normalization_of_what_varies_between_runs() -> None:
    rules = cassette.RULES
    sid_rec, sid_live = (
        "0f3b2a1c-1111-4222-8333-444455556666",
        "9a8b7c6d-aaaa-4bbb-8ccc-ddddeeeeffff",
    )
    recorded = {
        "role": "worker",
        "worker": "w0",
        "cwd": "/tmp/rec/project/.w0-i1",
        "argv": [
            "/usr/local/bin/codex",
            "exec",
            "-C",
            "/tmp/rec/project/.w0-i1",
            "resume",
            sid_rec,
            "[oompa:S1:w0] ## Task status\nPending: 2, In Progress: 0, Complete: 1\n"
            "Pending tasks: a, b\n\nat 2026-01-01T10:00:00.123Z",
        ],
    }
    live = {
        **recorded,
        "cwd": "/var/x/repo/.w0-i1",
        "argv": [
            "/tmp/oompa-fakes-1/codex",
            "exec",
            "-C",
            "/var/x/repo/.w0-i1",
            "resume",
            sid_live,
            "[oompa:S2:w0] ## Task status\nPending: 0, In Progress: 1, Complete: 2\n"
            "Pending tasks: (none)\n\nat 2027-05-05T11:11:11Z",
        ],
    }
    rec_side = Side("/tmp/rec/project", "S1")
    live_side = Side("/var/x/repo", "S2", {sid_live: sid_rec})
    want, got = view(recorded, rec_side, rules), view(live, live_side, rules)
    assert want == got
    assert got["argv"][0] == "codex" and got["cwd"] == "<repo>/.w0-i1"
    assert "Pending: <n>, In Progress: <n>, Complete: <n>\nPending tasks: <ids>" in got["argv"][6]
    # Without the rules, each of these differences shows in the diff.
    diff = cassette.diff_views(view(recorded, rec_side, ()), view(live, live_side, ()), "k")
    for line in (f"-argv[5]: {sid_rec}", f"+argv[5]: {sid_live}", "-    Pending tasks: a, b"):
        assert f"\n{line}\n" in diff
    # An unknown session id is not papered over.
    other = Side("/var/x/repo", "S2", {})
    assert view(live, other, rules)["argv"][5] == sid_live


def test_cassette_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(cassette.CassetteError, match="no cassettes"):
        cassette.resolve_cassette(tmp_path)
    bad = tmp_path / "x.cassette.json"
    bad.write_text(json.dumps({"format": "oompa-cassette", "version": 2, "calls": []}))
    with pytest.raises(cassette.CassetteError, match="cassette version 2; this pytest-oompa"):
        cassette.load(tmp_path)
    (tmp_path / "y.cassette.json").write_text("{}")
    with pytest.raises(cassette.CassetteError, match="2 cassettes"):
        cassette.resolve_cassette(tmp_path)
    with pytest.raises(cassette.CassetteError, match=r"\$: 'swarm-id' is a required property"):
        cassette.validate({"format": "oompa-cassette", "version": 1, "calls": []})


def fake(
    harness: str, *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(fake_bin_dir() / harness), *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def test_fakes_replay_versions_and_refuse_a_bad_cassette(tmp_path: Path) -> None:
    path = tmp_path / "r.cassette.json"
    recorder = CassetteRecorder(tmp_path, swarm_id="r", record_versions=False)
    data = recorder.document()
    data["harness-versions"] = {"claude": "2.1.300 (Claude Code)"}
    cassette.validate(data)
    path.write_text(json.dumps(data))
    env = {cassette.ENV_CASSETTE: str(path), "OOMPA_FAKE_STATE": str(tmp_path / "state")}
    assert fake("claude", "--version", cwd=tmp_path, env=env).stdout == "2.1.300 (Claude Code)\n"
    assert fake("gemini", "--version", cwd=tmp_path, env=env).stdout == "0.61.0\n"  # not recorded
    path.write_text("[]")
    argv = ("-p", "--dangerously-skip-permissions", "--output-format", "json", "--", "hi")
    proc = fake("claude", *argv, cwd=tmp_path, env={**env, "IS_SANDBOX": "1"})
    assert proc.returncode == 97
    assert "bad cassette: " in proc.stderr and "not an oompa-cassette file" in proc.stderr


# ------------------------------------------------------------------------------------------
# the plugin options
# ------------------------------------------------------------------------------------------


def test_record_then_replay_through_the_plugin_options(pytester: pytest.Pytester) -> None:
    repo = GitRepo(pytester.path)
    scenario = {"workers": {"w1": {"reviewer": [{"verdict": "needs-changes"}, "default"]}}}
    config = {
        "probe": False,
        "workers": [{"model": "claude:opus", "iterations": 1, "count": 2}],
        "reviewer": {"model": "codex:o3"},
    }
    repo.add_swarm_config(config, scenario, tasks=("t1", "t2"))
    start = repo.head()
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-record=cassettes")
    assert result.ret == 0
    [path] = (pytester.path / "cassettes").glob("*.cassette.json")
    data = cassette.load(path)
    result.stdout.fnmatch_lines([f"cassette: {len(data['calls'])} call(s) recorded in cassettes/*"])
    assert repo.status() == []  # the cassette folder is excluded from the project's tree

    repo.git("reset", "-q", "--hard", start)
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-replay=cassettes")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    n = len(data["calls"])
    result.stdout.fnmatch_lines([f"replay: {n} of {n} recorded call(s) replayed from cassettes/*"])

    # Both at once, or a cassette that is not there: usage errors before anything runs.
    result = pytester.runpytest(
        "--oompa-swarm=oompa.json", "--oompa-record=c", "--oompa-replay=cassettes"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--oompa-record and --oompa-replay exclude each other*"])
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-replay=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--oompa-replay: *nowhere: no such cassette*"])


def test_cassette_module_imports_only_the_standard_library() -> None:
    """The fakes load the replay side by path under ``python -IS``: no site-packages, no
    package (``fake_harnesses/_fake/replay.py`` loads ``cassette/format.py`` and
    ``cassette/playback.py``, and what those import)."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(FAKES)!r})\n"
        "from _fake import replay\n"
        "fmt, playback = replay.cassette_module('format'), replay.cassette_module('playback')\n"
        "third = ('pytest', 'jsonschema', 'filelock')\n"
        "assert not [n for n in sys.modules if n.startswith(third)]\n"
        "assert fmt.__file__.endswith('format.py') and callable(playback.replay)\n"
        "print(replay.cassette_module('matching').REPLAY_MISMATCH)"
    )
    proc = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert proc.stdout == "96\n", proc.stderr


def test_the_sync_marker_is_the_engines():
    from pytest_oompa.engine import prompts
    from pytest_oompa.offline.cassette import matching

    assert matching.SYNC_MARKER == prompts.SYNC_MARKER
    prompt = prompts.sync("s", "w1", "CONFLICT", "", "", "")
    assert matching.infer_role(prompt, "w1") == "sync"
    assert matching.infer_role(prompts.fix("s", "w1", [prompt]), "w1") == "fix"
