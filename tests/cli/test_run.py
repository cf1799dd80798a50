"""``oompa run [FILE] [-- PYTEST-ARGS]``: a swarm as a pytest session, pytest's exit status."""

from __future__ import annotations

from oompa_cli import FAST, oompa

CONFIG = {**FAST, "workers": [{"model": "claude:opus", "iterations": 1}]}


def test_run_is_pytest_with_the_swarm_and_the_arguments_after_the_dash_dash(oompa_repo):
    oompa_repo.add_swarm_config(CONFIG)
    proc = oompa("run", "--", "-p", "no:cacheprovider", "-rA", cwd=oompa_repo.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED oompa.json::w0::i1" in proc.stdout  # -rA reached pytest
    # The run went where pytest puts it, so the read-side commands find it from the repo.
    listed = oompa("list", cwd=oompa_repo.path)
    assert listed.returncode == 0 and "completed" in listed.stdout, listed
    viewed = oompa("view", cwd=oompa_repo.path)
    assert viewed.returncode == 0 and "w0-i1" in viewed.stdout, viewed


def test_run_exits_with_pytests_status(oompa_repo):
    scenario = {"workers": {"w0": {"worker": [{"exit": 1, "stderr": "boom"}]}}}
    oompa_repo.add_swarm_config(CONFIG, scenario)
    oompa_repo.git("mv", "oompa.json", "failing.json")
    oompa_repo.commit("a config of another name")
    proc = oompa("run", "failing.json", "--", "-p", "no:cacheprovider", cwd=oompa_repo.path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED failing.json::w0::i1" in proc.stdout


def test_pytests_usage_errors_are_pytests(oompa_repo):
    oompa_repo.add_swarm_config(CONFIG)
    proc = oompa("run", "--", "--no-such-pytest-option", cwd=oompa_repo.path)
    assert proc.returncode == 4  # pytest's ExitCode.USAGE_ERROR, passed through
