"""Help for every command, and bad input: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from oompa_cli import assert_usage_error, oompa

from pytest_oompa.cli.main import COMMANDS

COMMAND_NAMES = ["run", "list", "view", "tasks", "check", "cleanup", "report"]


def test_upstreams_commands_are_all_there():
    assert [c.name for c in COMMANDS] == COMMAND_NAMES


def test_help_lists_the_commands():
    proc = oompa("--help")
    assert proc.returncode == 0
    for name in COMMAND_NAMES:
        assert f"    {name} " in proc.stdout


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_each_command_has_its_help(name):
    proc = oompa(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: oompa {name}")
    command = next(c for c in COMMANDS if c.name == name)
    assert command.description.split()[0] in proc.stdout


def test_no_command():
    assert assert_usage_error(oompa()) == "oompa: error: a command is required (see oompa --help)"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["frob"], "invalid choice: 'frob'"),
        (["view", "--bogus"], "oompa view: error: unrecognized arguments: --bogus"),
        (["view", "a", "b"], "oompa view: error: unrecognized arguments: b"),
        (["list", "--stale-after", "soon"], "oompa list: error: argument --stale-after"),
        (["list", "--", "-x"], "for 'oompa run' only"),
        (["run", "-x"], "pytest's options go after '--'"),
        (["run", "missing.json"], "oompa run: error: no swarm config missing.json"),
        (["run"], "oompa run: error: no swarm config oompa.json"),
        (["tasks", "--repo", "{tmp}/nope"], "oompa tasks: error: {tmp}/nope: no such folder"),
        (["cleanup", "--repo", "{tmp}"], "oompa cleanup: error: {tmp}: not a git repository"),
        (["cleanup", "--repo", "{tmp}/nope"], "oompa cleanup: error: {tmp}/nope: no such"),
        (["view", "--runs-dir", "{tmp}"], "oompa view: error: no runs in {tmp}"),
        (["report", "--runs-dir", "{tmp}"], "oompa report: error: no runs in {tmp}"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, says):
    args = [a.format(tmp=tmp_path) for a in args]
    line = assert_usage_error(oompa(*args, cwd=tmp_path))
    assert says.format(tmp=tmp_path) in line


def test_no_such_run(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = oompa("view", "nope", "--runs-dir", tmp_path / "runs")
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_console_script_is_installed():
    """pyproject's [project.scripts] entry, in the environment running the tests."""
    script = shutil.which("oompa", path=str(Path(sys.executable).parent))
    assert script, "run 'pip install -e .' to install the oompa console script"
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("pytest-oompa ")
