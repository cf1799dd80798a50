"""The harness contract suite (pytest --oompa-contract=NAME), run with pytester: the four fakes
pass it, broken registry entries fail the check that names the broken fact, and real CLIs run
the checks that need no model (the others skip with the reason)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_oompa.core.paths import fake_bin_dir
from pytest_oompa.plugin.real_harness import NEEDS_MODEL

ALL_FAKES = "--oompa-contract=claude,codex,opencode,gemini"
CHECKS_PER_HARNESS = 16
NO_MODEL_CHECKS = 3  # version, a wrong flag, an unknown session

BROKEN_CLAUDE = """
import dataclasses

def pytest_oompa_register_harnesses(registry):
    claude = registry.get("claude")
    registry.register(dataclasses.replace(claude, resume_args={resume_args!r}))
"""


def lit(text: str) -> str:
    """``text`` as an fnmatch pattern that matches it literally ([ and ] are classes there)."""
    return "".join({"[": "[[]", "]": "[]]", "*": "[*]", "?": "[?]"}.get(c, c) for c in text)


def fake_real_cli(folder: Path, name: str) -> Path:
    """A "real" CLI that is a fake in disguise (real_clis.find never returns a bundled fake),
    so the real-target code runs without the real CLIs installed."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\nexec "{fake_bin_dir() / name}" "$@"\n')
    script.chmod(0o755)
    return folder


def test_the_four_fakes_pass_the_contract(pytester):
    result = pytester.runpytest(ALL_FAKES, "-v")
    result.assert_outcomes(passed=4 * CHECKS_PER_HARNESS)
    result.stdout.fnmatch_lines_random(
        [
            "oompa contract: claude:sonnet (fake), codex:gpt-5-codex (fake), "
            "opencode:fake/fake-model (fake), gemini:gemini-2.5-pro (fake)",
            lit(
                "pytest_oompa/contract/checks.py::test_resume_keeps_the_session"
                "[claude-fake: resume_args ('--resume', '{session}')] PASSED"
            )
            + "*",
            lit(
                "pytest_oompa/contract/checks.py::test_fresh_call_is_accepted[codex-fake: new "
                "session: codex exec --dangerously-bypass-approvals-and-sandbox -C {cwd} "
                "--skip-git-repo-check --json -m {model} -- {prompt}] PASSED"
            )
            + "*",
            "*"
            + lit(
                "::test_output_is_parsed[opencode-fake: parser 'opencode-ndjson' reads the "
                "reply text and the session id] PASSED"
            )
            + "*",
            "*"
            + lit(
                "::test_unknown_session_fails_with_the_documented_exit_code[gemini-fake: "
                "exit_codes['unknown-session'] = 42: resuming an unknown session fails with it]"
            )
            + " PASSED*",
            "*"
            + lit(
                "::test_signal_is_understood[codex-fake: VERDICT: NEEDS_CHANGES in the reply, "
                "parse_verdict: 'needs-changes'] PASSED"
            )
            + "*",
            "*"
            + lit(
                "::test_working_directory[codex-fake: cwd_args ('-C', '{cwd}', "
                "'--skip-git-repo-check') and the process cwd: the agent works in {cwd}] PASSED"
            )
            + "*",
        ]
    )


def test_a_wrong_resume_flag_fails_the_resume_checks_readably(pytester):
    pytester.makeconftest(BROKEN_CLAUDE.format(resume_args=("--resume-from", "{session}")))
    result = pytester.runpytest("--oompa-contract=claude", "-k", "resume or fresh")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *"
            + lit(
                "::test_resume_is_accepted[claude-fake: resume: claude -p "
                "--dangerously-skip-permissions --output-format stream-json --verbose "
                "--model {model} --resume-from {session} -- {prompt}]"
            )
            + "*",  # under CI=true pytest does not truncate: the message follows the id
            "FAILED *"
            + lit(
                "::test_resume_keeps_the_session[claude-fake: resume_args ('--resume-from', "
                "'{session}')]"
            )
            + "*",
            "claude (fake */claude) "
            + lit(
                "did not accept the registry's argv for a resume (resume_args "
                "('--resume-from', '{session}')): exit code 1"
            ),
            "*argv: */claude -p --dangerously-skip-permissions --output-format stream-json "
            "--verbose --model sonnet --resume-from * -- *",
            "*error: unknown option '--resume-from'*",
        ]
    )


def test_resuming_by_session_id_is_caught(pytester):
    # oompa's old argv table: the session id flag on a resume (claude refuses: in use).
    pytester.makeconftest(BROKEN_CLAUDE.format(resume_args=("--session-id", "{session}")))
    result = pytester.runpytest("--oompa-contract=claude", "-k", "resume or unknown_session")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*Error: Session ID * is already in use.*",
            "FAILED *::test_unknown_session_fails_with_the_documented_exit_code*",
            "claude (fake */claude): resuming the unknown session *: expected exit 1 "
            + lit("(exit_codes['unknown-session']), got exit 0; the call succeeded: the CLI ")
            + "did not see it as an error",
        ]
    )


def test_a_wrong_documented_exit_code_fails_the_exit_code_check(pytester):
    pytester.makeconftest(
        """
        import dataclasses

        def pytest_oompa_register_harnesses(registry):
            codex = registry.get("codex")
            codes = {**codex.exit_codes, "bad-flag": 1}
            registry.register(dataclasses.replace(codex, exit_codes=codes))
        """
    )
    result = pytester.runpytest("--oompa-contract=codex", "-k", "flag or version")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*codex (fake */codex): "
            + lit(
                "an unknown flag (--oompa-contract-no-such-flag): expected exit 1 "
                "(exit_codes['bad-flag']), got exit 2; fix HarnessSpec.exit_codes['bad-flag'] "
                "or the argv"
            ),
            "*error: unexpected argument '--oompa-contract-no-such-flag' found*",
        ]
    )


def test_a_registered_harness_passes_with_its_binary_on_path(pytester, tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "aider").symlink_to(fake_bin_dir() / "claude")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    pytester.makeconftest(
        """
        import dataclasses

        def pytest_oompa_register_harnesses(registry):
            claude = registry.get("claude")
            registry.register(dataclasses.replace(claude, name="aider", binary="aider"))
        """
    )
    result = pytester.runpytest("--oompa-contract=aider:opus", "-v")
    result.assert_outcomes(passed=CHECKS_PER_HARNESS)
    result.stdout.fnmatch_lines_random(
        ["oompa contract: aider:opus (fake)", "*::test_version[[]aider-fake: version_args*PASSED*"]
    )


def test_a_harness_without_a_binary_is_skipped_with_the_reason(pytester):
    pytester.makeconftest(
        """
        import dataclasses

        def pytest_oompa_register_harnesses(registry):
            gemini = registry.get("gemini")
            registry.register(dataclasses.replace(gemini, name="ghost", binary="oompa-ghost"))
        """
    )
    result = pytester.runpytest("--oompa-contract=ghost", "-rs", "-k", "version")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*ghost: no 'oompa-ghost' in the bundled fakes and PATH*"])


def test_an_unknown_harness_is_a_usage_error(pytester):
    result = pytester.runpytest("--oompa-contract=claude,aider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--oompa-contract: unknown harness 'aider' (known: claude, codex, opencode, gemini;*"]
    )


def test_with_paths_or_from_the_ini_the_suite_runs_beside_other_tests(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    only_version = ("-k", "plain or version")
    beside = pytester.runpytest("--oompa-contract=gemini", "test_plain.py", *only_version)
    beside.assert_outcomes(passed=2)
    marked = pytester.runpytest(
        "--oompa-contract=gemini", "test_plain.py", "-m", "oompa_contract", "-k", "version"
    )
    marked.assert_outcomes(passed=1)
    pytester.makeini("[pytest]\noompa_contract = gemini\n")
    pytester.runpytest(*only_version).assert_outcomes(passed=2)


def test_real_targets_run_the_offline_checks_and_skip_the_model_ones(pytester, tmp_path):
    clis = fake_real_cli(tmp_path / "clis", "claude")
    result = pytester.runpytest(
        "--oompa-contract=claude",
        "--oompa-real-harness=claude",
        f"--oompa-real-harness-dir={clis}",
        "-rs",
        "-v",
        "-k",
        "real",
    )
    result.assert_outcomes(passed=NO_MODEL_CHECKS, skipped=CHECKS_PER_HARNESS - NO_MODEL_CHECKS)
    result.stdout.fnmatch_lines_random(
        [
            "oompa contract: claude:sonnet (fake), claude:sonnet (real)",
            "*"
            + lit("::test_version[claude-real: version_args ('--version',) prints a version]")
            + " PASSED*",
            f"SKIPPED [[]{CHECKS_PER_HARNESS - NO_MODEL_CHECKS}[]] *: {NEEDS_MODEL}",
        ]
    )


MODEL_API_DOUBLE = """
import json
import pytest

class FakesAsModelAPI:
    '''Scripts the "real" CLI (a fake in disguise) through the fakes' own scenario.'''

    def __init__(self):
        self.home = None

    def environment(self, harness, home):
        self.home = home
        return {
            "OOMPA_FAKE_STATE": str(home / "fake-state"),
            "OOMPA_FAKE_SCENARIO": str(home / "scenario.json"),
        }

    def script(self, match, replies):
        steps = [{"say": r.text, "write": dict(r.writes)} for r in replies]
        roles = {role: steps for role in ("worker", "reviewer", "probe")}
        (self.home / "scenario.json").write_text(json.dumps({"default": roles}))

@pytest.fixture
def oompa_model_api():
    return FakesAsModelAPI()
"""


def test_a_model_api_runs_the_model_checks_against_a_real_cli(pytester, tmp_path):
    clis = fake_real_cli(tmp_path / "clis", "codex")
    pytester.makeconftest(MODEL_API_DOUBLE)
    result = pytester.runpytest(
        "--oompa-contract=codex",
        "--oompa-real-harness=codex",
        f"--oompa-real-harness-dir={clis}",
        "-k",
        "real",
    )
    result.assert_outcomes(passed=CHECKS_PER_HARNESS)


# The real tier, opt-in like any use of real CLIs: pytest --oompa-real-harness=all runs it once
# per real CLI (real_harness comes before pytester, which moves HOME, so the install cache in
# the real HOME is found).
def test_a_real_cli_passes_the_checks_that_need_no_model(real_harness, pytester):
    result = pytester.runpytest(
        f"--oompa-contract={real_harness.name}",
        f"--oompa-real-harness={real_harness.name}",
        f"--oompa-real-harness-dir={real_harness.bin_dir}",
        "-k",
        "real",
        "-rs",
    )
    result.assert_outcomes(passed=NO_MODEL_CHECKS, skipped=CHECKS_PER_HARNESS - NO_MODEL_CHECKS)
    result.stdout.fnmatch_lines([f"SKIPPED [[]*[]] *: {NEEDS_MODEL}"])
