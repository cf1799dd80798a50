"""``oompa check``: the real harness CLIs found and their versions, the bundled fakes as fakes."""

from __future__ import annotations

import json
import os

from oompa_cli import oompa

from pytest_oompa.core.paths import fake_bin_dir
from pytest_oompa.harnesses.real_clis import PINNED

HARNESSES = ["claude", "codex", "opencode", "gemini"]


def _env(tmp_path, *folders):
    """Only these folders on PATH, and no install cache of real CLIs."""
    return {
        "PATH": os.pathsep.join(str(f) for f in folders),
        "OOMPA_CLIS_DIR": "",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def _rows(stdout):
    table = stdout.split("\n\n")[0].splitlines()
    assert table[0].split() == ["harness", "kind", "version", "pinned", "path"]
    return [line.split() for line in table[1:]]


def test_only_fakes_on_path_are_listed_as_fakes_and_exit_1(tmp_path):
    proc = oompa("check", env=_env(tmp_path, fake_bin_dir()))
    assert proc.returncode == 1, proc.stderr
    rows = _rows(proc.stdout)
    assert [(r[0], r[1]) for r in rows] == [(h, "fake") for h in HARNESSES]
    assert {r[-1] for r in rows} == {str(fake_bin_dir() / h) for h in HARNESSES}
    assert "claude (fake): the bundled fake" in proc.stdout
    assert proc.stdout.rstrip().endswith("real harness CLIs available: 0 of 4 (none)")


def test_a_real_cli_with_its_version_beside_a_fake(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    claude = stubs / "claude"  # a stand-in for the real CLI: it answers --version
    claude.write_text("#!/bin/sh\necho '1.2.3 (Claude Code)'\n")
    claude.chmod(0o755)
    proc = oompa("check", env=_env(tmp_path, fake_bin_dir(), stubs))
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    assert rows[0] == ["claude", "real", "1.2.3", PINNED["claude"][1], str(claude)]
    assert rows[1][:2] == ["claude", "fake"]
    assert f"claude 1.2.3 is not the pinned {PINNED['claude'][1]}" in proc.stdout
    # The fake is first on PATH: a bare 'claude' would run it, and check says so.
    assert "a bare 'claude' runs this one" in proc.stdout
    assert "real harness CLIs available: 1 of 4 (claude)" in proc.stdout
    found = json.loads(oompa("check", "--json", env=_env(tmp_path, stubs)).stdout)
    assert [(f["harness"], f["kind"]) for f in found] == [
        ("claude", "real"),
        ("codex", "missing"),
        ("opencode", "missing"),
        ("gemini", "missing"),
    ]
    assert "not installed" in found[1]["note"]
