"""Every command-line option and ini value of the plugin, in one ``oompa`` group, and how
paths given in them resolve.

Only pytest is imported here: pytest loads this module in every run (through the hook
module), so the options of every part of the plugin are declared without importing the part.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GROUP = ("oompa", "oompa: run coding-agent swarms")


def add_options(parser: pytest.Parser) -> None:
    add_swarm_options(parser)
    add_watch_options(parser)
    add_real_harness_options(parser)
    add_real_swarm_options(parser)
    add_cassette_options(parser)
    add_contract_options(parser)


def add_swarm_options(parser: pytest.Parser) -> None:
    """The swarm's own options: what to run, where, and how the outcome is judged."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-swarm",
        metavar="PATH",
        default=None,
        help="Run the swarm described by this oompa.json; each worker iteration is a test "
        "item (default: the oompa_swarm ini value, else no swarm).",
    )
    group.addoption(
        "--oompa-repo",
        metavar="DIR",
        default=None,
        help="The project repository the swarm works on (default: oompa_repo ini value, "
        "else the config file's folder).",
    )
    group.addoption(
        "--oompa-runs-dir",
        metavar="DIR",
        default=None,
        help="Where run artifacts go. Precedence: this option, ini oompa_runs_dir, env "
        "OOMPA_RUNS_DIR, env RUNS_DIR; default: <rootdir>/runs.",
    )
    group.addoption(
        "--oompa-fake-harnesses",
        action="store_true",
        default=None,
        help="Put the bundled fake claude/codex/opencode/gemini first on the swarm's PATH "
        "(default: the config's fake_harnesses section).",
    )
    group.addoption(
        "--oompa-gate",
        metavar="THRESHOLDS",
        default=None,
        help="Gate thresholds on the swarm's outcome, over the config's gate: e.g. "
        "min_merges=3,max_errors=0,max_rejection_rate=0.2,all_tasks_complete,no_worker_error,"
        "max_wall_time=600,max_cost_usd=5,max_tokens=2000000 (default: the config's gate "
        "section, else none).",
    )
    group.addoption(
        "--oompa-outcomes",
        metavar="MAPPING",
        default=None,
        help="How iteration outcomes report, over the config's outcomes: e.g. "
        "rejected=xfail,working=fail; each one of pass, fail, skip, xfail (default: rejected "
        "and error fail, the others pass).",
    )
    group.addoption(
        "--oompa-no-probe",
        action="store_true",
        default=False,
        help="Skip the preflight probe of each model (default: probe).",
    )
    group.addoption(
        "--oompa-call-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="Kill a harness call (its whole process group) after this many seconds "
        "(default: the config's per-agent timeout, else none).",
    )
    group.addoption(
        "--oompa-sandbox",
        choices=("bwrap", "none"),
        default=None,
        help="Run every harness call under bubblewrap (bwrap: read-only filesystem but the "
        "worktree, the repository's .git, the harness's HOME and a private /tmp), or not "
        "(none) (default: the config's sandbox, else none).",
    )
    group.addoption(
        "--oompa-max-cost",
        metavar="USD",
        type=float,
        default=None,
        help="Start no new harness call once the swarm has spent this many US dollars (from "
        "each CLI's own figures); the run then fails (default: the config's limits.cost_usd, "
        "else no limit).",
    )
    group.addoption(
        "--oompa-resume",
        nargs="?",
        const="",
        default=None,
        metavar="RUN_ID",
        help="Resume a run that was cut off (Ctrl-C, SIGTERM, kill -9, a lost machine): the "
        "same run folder, every worker where it stopped, finished iterations reported from "
        "their artifacts (default: the newest run of this config that did not complete).",
    )
    group.addoption(
        "--oompa-resume-force",
        action="store_true",
        default=False,
        help="Resume even though the config or prompts changed, or main lost a merge of the "
        "run; what was accepted is recorded in the run's oompa-run.json.",
    )
    group.addoption(
        "--oompa-ray",
        metavar="local|auto|ADDRESS",
        default=None,
        help="Run every worker's agents on a Ray cluster, each worker in a workspace of its own "
        "on a node (no shared filesystem): 'local' starts a private cluster for the run, "
        "'auto' or an address (host:port) joins a running one. Needs pytest-oompa[ray].",
    )
    parser.addini("oompa_ray", "Ray cluster to run the workers on (like --oompa-ray).", default="")
    parser.addini("oompa_swarm", "Swarm config file to run (like --oompa-swarm).", default="")
    parser.addini("oompa_repo", "Project repository (like --oompa-repo).", default="")
    parser.addini("oompa_runs_dir", "Run artifacts folder (like --oompa-runs-dir).", default="")


def add_watch_options(parser: pytest.Parser) -> None:
    """How a long swarm is watched: the live terminal, CI progress lines, CI summaries."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-live",
        choices=("auto", "on", "off"),
        default="auto",
        help="A status block under pytest's progress, one line per worker, refreshed about "
        "once a second (auto: on a terminal; default: auto). Off a terminal, one line per "
        "phase change instead.",
    )
    group.addoption(
        "--oompa-progress-every",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="Without the live view, print every busy worker's phase when nothing has been "
        "printed for this long, so CI logs never go silent (default: 60; 0: never).",
    )
    group.addoption(
        "--oompa-summary-md",
        metavar="PATH",
        default=None,
        help="Write a markdown summary of the swarm (workers, gate, failed iterations, "
        "totals) to PATH; with GITHUB_STEP_SUMMARY set it is also appended there.",
    )


def add_real_harness_options(parser: pytest.Parser) -> None:
    """Which real CLIs tests may use, where they are, and the model API they talk to."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-real-harness",
        dest="oompa_real_harness",
        metavar="NAME[,NAME]",
        default=None,
        help="Let tests use these real agent CLIs (real_harness, the contract suite): names "
        "such as claude,codex, or 'all' (default: none; those tests skip).",
    )
    group.addoption(
        "--oompa-fake-api",
        dest="oompa_fake_api",
        action="store_true",
        default=False,
        help="Give the real CLIs the loopback fake model API (pytest_oompa.offline.fake_api): the "
        "contract suite's model checks run against it (default: off; those checks skip).",
    )
    group.addoption(
        "--oompa-real-harness-dir",
        dest="oompa_real_harness_dir",
        metavar="DIR",
        default=None,
        help="Look for the real CLIs in DIR first (an install folder of .ci/install-clis or a "
        "bin folder), then OOMPA_CLIS_DIR, the install cache and PATH.",
    )


def add_real_swarm_options(parser: pytest.Parser) -> None:
    """The model API a swarm's real CLIs talk to: a scenario, or wire cassettes."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-fake-api-scenario",
        dest="oompa_fake_api_scenario",
        metavar="FILE",
        default=None,
        help="With --oompa-swarm, --oompa-real-harness and --oompa-fake-api: the scenario the "
        "fake model API answers the swarm's real CLIs from (docs/real-clis.md).",
    )
    group.addoption(
        "--oompa-wire-record",
        dest="oompa_wire_record",
        metavar="FILE",
        default=None,
        help="With --oompa-swarm and --oompa-real-harness: send the real CLIs' model requests "
        "through a recording proxy on 127.0.0.1 to the real providers (or "
        "--oompa-wire-upstream) and write every HTTP exchange to FILE, secrets redacted.",
    )
    group.addoption(
        "--oompa-wire-replay",
        dest="oompa_wire_replay",
        metavar="FILE",
        default=None,
        help="With --oompa-swarm and --oompa-real-harness: answer the real CLIs from a wire "
        "cassette, offline; a request with no recording fails the session.",
    )
    group.addoption(
        "--oompa-wire-upstream",
        dest="oompa_wire_upstream",
        metavar="URL|PROTOCOL=URL,...",
        default=None,
        help="Where --oompa-wire-record forwards: one base URL for every protocol, or "
        "anthropic=URL,responses=URL,chat=URL,gemini=URL (default: the real providers).",
    )


def add_cassette_options(parser: pytest.Parser) -> None:
    """Recording a swarm's harness calls, and replaying them with the fakes."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-record",
        metavar="DIR",
        default=None,
        help="Record every harness call of the swarm in DIR/{swarm-id}.cassette.json: prompt, "
        "argv, environment subset, output, exit code, file changes and commits; secrets "
        "redacted (default: no recording).",
    )
    group.addoption(
        "--oompa-replay",
        metavar="PATH",
        default=None,
        help="Replay a recorded cassette (a file, or a folder holding exactly one) with the "
        "fake harnesses: each call must match its recording, else its iteration fails with a "
        "diff (default: no replay).",
    )


def add_contract_options(parser: pytest.Parser) -> None:
    """The harness contract suite."""
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--oompa-contract",
        dest="oompa_contract",
        metavar="NAME[:MODEL][,…]",
        default=None,
        help="Run the harness contract suite for these harnesses (registry names, each with "
        "an optional model), against their fakes, and against the real CLIs named by "
        "--oompa-real-harness. With no paths given, only the suite is collected.",
    )
    parser.addini(
        "oompa_contract",
        "Harnesses whose contract suite runs beside the other tests (like --oompa-contract).",
        default="",
    )


def ini_path(config: pytest.Config, name: str) -> Path | None:
    """An ini value as a path, relative to the ini file's folder (else the rootdir)."""
    value = str(config.getini(name) or "")
    if not value:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / value).resolve()


def cli_path(config: pytest.Config, name: str) -> Path | None:
    value = config.getoption(name)
    return Path(value).resolve() if value else None
