"""``--oompa-ray=local`` (a private cluster for the run) and the usage errors of --oompa-ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support.contract import assert_run_valid

from pytest_oompa import GitRepo

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "template"


def ray_processes() -> set[int]:
    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("raylet" in part or "gcs_server" in part for part in p.info["cmdline"] or ())
    }


@pytest.mark.parametrize(
    ("config", "kind"), [("oompa.json", "iterations"), ("oompa-0.7.3.json", "cycles")]
)
def test_the_demo_on_a_private_local_cluster(tmp_path, config, kind):
    pytest.importorskip("ray")
    repo = GitRepo(tmp_path / "project")
    repo.seed(DEMO)
    before = ray_processes()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", f"--oompa-swarm={config}", "--oompa-ray=local"],
        cwd=repo.path,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "15 passed" in out
    assert out.count("note: ray: w") == 5  # each worker placed once, on the one node
    (run,) = [p for p in (repo.path / "runs").iterdir() if p.is_dir()]
    # ours, and oompa's contract for the format: 0.7's files, or 0.7.3's event files
    files = assert_run_valid(run)
    assert len([k for k in files if k.startswith(f"{kind}/")]) == 15
    assert sum(w["merges"] for w in files["summary.json"]["workers"]) == 15
    assert repo.status() == []
    assert ray_processes() - before == set()  # the private cluster is shut down


def oompa(repo: GitRepo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--oompa-swarm=oompa.json", "-p", "no:randomly", *args],
        cwd=repo.path,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "project")
    repo.add_swarm_config({"probe": False, "workers": [{"model": "claude:opus", "iterations": 1}]})
    return repo


def test_ray_and_n_exclude_each_other(repo):
    pytest.importorskip("xdist")
    result = oompa(repo, "--oompa-ray=local", "-n", "2")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--oompa-ray and -n exclude each other" in result.stderr


def test_without_ray_installed_the_option_says_how_to_get_it(repo, tmp_path):
    # A `ray` that cannot be imported, first on the path, as on a machine without it.
    (tmp_path / "no_ray" / "ray").mkdir(parents=True)
    (tmp_path / "no_ray" / "ray" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n"
    )
    path = os.pathsep.join([str(tmp_path / "no_ray"), os.environ.get("PYTHONPATH", "")])
    result = oompa(repo, "--oompa-ray=auto", PYTHONPATH=path)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    expected = "--oompa-ray=auto needs Ray (ray is not installed): pip install 'pytest-oompa[ray]'"
    assert expected in result.stderr


def test_a_ray_section_with_a_typo_names_the_field(repo):
    config = repo.path / "oompa.json"
    config.write_text(
        config.read_text().replace('"probe": false', '"ray": {"memroy": "2GB"}, "probe": false')
    )
    repo.commit("typo")
    result = oompa(repo, "--oompa-ray=local")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "ray.memroy: unknown field; expected one of: num_cpus" in result.stderr


def test_an_unreachable_cluster_is_a_preflight_failure(repo):
    pytest.importorskip("ray")
    result = oompa(repo, "--oompa-ray=127.0.0.1:9")
    assert result.returncode != 0
    assert "--oompa-ray=127.0.0.1:9: cannot reach a Ray cluster" in result.stdout + result.stderr
    assert not (repo.path / "runs").exists() or not any((repo.path / "runs").iterdir())
