"""The spend limit (engine/spend.py): the meter on its own, the caller refusing a call, what
preflight says each harness can honour, and real swarms whose fakes' costs cross the limit
mid-run (the fakes price a call from its length: a long reply is an expensive call)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.contract import assert_run_valid

from pytest_oompa import GitRepo
from pytest_oompa.core.config import AgentSpec, LimitsSection, resolve
from pytest_oompa.core.results import CallRecord, WorkerStatus
from pytest_oompa.engine.calls import HarnessCaller
from pytest_oompa.engine.preflight import PreflightError, spend_coverage
from pytest_oompa.engine.spend import Spend, SpendLimitReached, SpendMeter, over, usd
from pytest_oompa.harnesses.registry import HarnessRegistry
from pytest_oompa.harnesses.spec import SessionMode

FAST = {"probe": False, "executor_wait": 0}
# A claude fake's call with this reply costs about $0.15 (and ~10,000 output tokens).
EXPENSIVE = {"builtin": True, "say": "x" * 40000}


def record(cost: float | None = None, tokens_in: int | None = None, tokens_out: int | None = None):
    return CallRecord(
        role="worker",
        harness="claude",
        model="opus",
        argv=("claude",),
        cwd="/",
        exit_code=0,
        duration_ms=1,
        cost_usd=cost,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
    )


# -- the meter ---------------------------------------------------------------------------------


def test_spend_adds_up_and_counts_calls_without_a_cost():
    spend = Spend().plus(record(1.5, 100, 20)).plus(record(None, 10, None))
    assert spend == Spend(cost_usd=1.5, tokens=130, calls=2, calls_without_cost=1)
    assert spend + spend == Spend(3.0, 260, 4, 2)
    assert spend.describe() == "$1.50, 130 tokens, 2 call(s) (1 reported no cost)"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "$0.00"),
        (0.04, "$0.04"),
        (0.047151, "$0.0472"),
        (5.0249, "$5.02"),
        (1234.5, "$1,234.50"),
    ],
)
def test_dollars_read_well_at_every_scale(amount, shown):
    assert usd(amount) == shown


def test_over_says_which_limit_and_how_far():
    limits = LimitsSection(cost_usd=5.0, tokens=2_000_000)
    assert over(Spend(4.99, 10), limits) is None
    assert over(Spend(5.02, 10), limits) == "$5.02 of $5.00"
    assert over(Spend(1.0, 2_000_001), limits) == "2,000,001 tokens of 2,000,000"
    assert over(Spend(99.0, 99), LimitsSection()) is None


def test_the_swarm_limit_refuses_every_account_once_reached():
    meter = SpendMeter(LimitsSection(cost_usd=1.0))
    meter.check("w0")
    meter.record("w0", record(0.6))
    meter.record("w1", record(0.3))
    meter.check("w1")  # $0.90: under
    meter.record("w1", record(0.12))
    for account in ("w0", "w1", "planner"):
        with pytest.raises(SpendLimitReached, match=r"^spend limit: \$1.02 of \$1.00$"):
            meter.check(account)
    assert meter.reached() == ["spend limit: $1.02 of $1.00"]
    assert meter.accounts()["w1"] == Spend(0.42, 0, 2, 0)
    # the reason is the spend when the limit was reached: calls in flight do not change it
    meter.record("w0", record(0.5))
    assert meter.reached() == ["spend limit: $1.02 of $1.00"]
    assert meter.total().cost_usd == pytest.approx(1.52)


def test_a_worker_limit_stops_that_worker_only():
    meter = SpendMeter(LimitsSection(), {"w0": LimitsSection(tokens=1000), "w1": LimitsSection()})
    assert meter.active and list(meter.worker_limits) == ["w0"]
    meter.record("w0", record(None, 900, 150))
    with pytest.raises(SpendLimitReached, match=r"^spend limit of w0: 1,050 tokens of 1,000$"):
        meter.check("w0")
    meter.check("w1")
    meter.check("planner")
    assert meter.reached() == ["spend limit of w0: 1,050 tokens of 1,000"]


def test_a_harness_that_reports_no_cost_counts_by_tokens():
    meter = SpendMeter(LimitsSection(cost_usd=0.01, tokens=500))
    meter.record("w0", record(None, 400, 50))
    meter.check("w0")  # no cost reported: the cost limit cannot see it, the token limit can
    meter.record("w0", record(None, 40, 20))
    with pytest.raises(SpendLimitReached, match="510 tokens of 500"):
        meter.check("w0")


def test_without_limits_the_meter_only_counts():
    meter = SpendMeter()
    assert not meter.active
    meter.record("w0", record(1e6, 10**9, 0))
    meter.check("w0")
    assert meter.reached() == []


def test_the_meter_is_thread_safe():
    meter = SpendMeter(LimitsSection(cost_usd=1e9))

    def charge(account: str) -> None:
        for _ in range(200):
            meter.record(account, record(0.01, 1, 1))

    threads = [threading.Thread(target=charge, args=(f"w{i % 4}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.total().calls == 1600
    assert meter.total().tokens == 3200
    assert meter.total().cost_usd == pytest.approx(16.0)


def test_processes_of_one_run_share_the_swarm_limit(tmp_path):
    """Under pytest-xdist each process has its meter; the accounts live in one shared file."""
    shared = tmp_path / "spend.json"
    here = SpendMeter(LimitsSection(cost_usd=1.0), shared=shared)
    there = SpendMeter(LimitsSection(cost_usd=1.0), shared=shared)
    here.record("w0", record(0.7))
    there.check("w1")
    there.record("w1", record(0.4))
    with pytest.raises(SpendLimitReached, match=r"\$1.10 of \$1.00"):
        here.check("w0")
    assert here.accounts() == there.accounts() == {"w0": Spend(0.7, 0, 1), "w1": Spend(0.4, 0, 1)}


# -- the caller --------------------------------------------------------------------------------


class NoProcesses:
    def run(self, *args, **kwargs):
        raise AssertionError("a refused call must not start a process")


def test_a_refused_call_starts_nothing(tmp_path):
    meter = SpendMeter(LimitsSection(cost_usd=0.5))
    meter.record("w0", record(0.6))
    caller = HarnessCaller(HarnessRegistry(), NoProcesses(), {}, spend=meter)  # type: ignore[arg-type]
    with pytest.raises(SpendLimitReached):
        caller.call(
            AgentSpec("claude", "opus"),
            role="reviewer",
            prompt="review",
            cwd=tmp_path,
            session=SessionMode.none(),
            worker="w1",
        )


# -- preflight ---------------------------------------------------------------------------------


def config_with(tmp_path: Path, **data):
    return resolve(
        {"workers": [{"model": "claude:opus"}], **data},
        tmp_path / "oompa.json",
        HarnessRegistry().names(),
    )


def test_preflight_says_which_limits_each_harness_can_honour(tmp_path):
    registry = HarnessRegistry()
    config = config_with(
        tmp_path,
        workers=[{"model": "claude:opus"}, {"model": "codex:o3"}],
        reviewer={"model": "gemini:gemini-2.5-pro"},
        limits={"cost_usd": 5.0},
    )
    notes = spend_coverage(config, registry, SpendMeter.for_config(config))
    assert len(notes) == 2
    assert notes[0].startswith("harness 'codex' (codex-jsonl parser) reports no cost")
    assert "counted by tokens only" in notes[0]
    assert notes[1].startswith("harness 'gemini'")
    # a token limit every bundled parser can honour; no limit, nothing to say
    tokens = config_with(tmp_path, workers=[{"model": "codex:o3"}], limits={"tokens": 10})
    assert spend_coverage(tokens, registry, SpendMeter.for_config(tokens)) == []
    plain = config_with(tmp_path, workers=[{"model": "codex:o3"}])
    assert spend_coverage(plain, registry, SpendMeter.for_config(plain)) == []


# -- real swarms -------------------------------------------------------------------------------


def seed(repo, n: int) -> None:
    for i in range(1, n + 1):
        repo.add_task(f"t{i}")
    repo.commit("tasks")


def test_costs_crossing_the_limit_mid_run_stop_new_calls(oompa_repo, oompa_swarm):
    seed(oompa_repo, 5)
    run = oompa_swarm(
        {
            **FAST,
            "limits": {"cost_usd": 0.4},
            "workers": [{"model": "claude:opus", "iterations": 5}],
        },
        scenario={"default": {"worker": EXPENSIVE}},
    )
    # ~$0.15 a call: the third call crosses $0.40; no call starts after it
    assert len(run.fake_calls) == 3
    assert run.outcomes("w0") == ["merged"] * 3
    report = run.workers["w0"]
    assert report.iterations_run == 3
    assert report.status is WorkerStatus.IDLE and not report.interrupted
    assert report.stop_reason.startswith("spend limit: $0.4") and report.stop_reason.endswith(
        " of $0.40"
    )
    result = run.result
    assert result.spend_limits_reached == [report.stop_reason]
    assert result.spend["w0"].calls == 3 and result.spend["w0"].cost_usd >= 0.4
    assert result.status == "failed"
    # what was not reached stays pending for the next run; the project is clean
    assert len(oompa_repo.tasks("pending")) == 2
    assert oompa_repo.status() == []
    assert_run_valid(run.run_dir)


def test_an_iteration_whose_next_call_is_refused_is_abandoned_cleanly(oompa_repo, oompa_swarm):
    """The worker's call crosses the limit; its reviewer may not start: the iteration ends
    like an interrupted one (not reported, its task back in pending, no worktree left)."""
    seed(oompa_repo, 2)
    run = oompa_swarm(
        {
            **FAST,
            "limits": {"cost_usd": 0.1},
            "workers": [{"model": "claude:opus", "iterations": 2}],
            "reviewer": {"model": "codex:o3"},
        },
        scenario={"default": {"worker": EXPENSIVE}},
    )
    assert [c["role"] for c in run.fake_calls] == ["worker"]
    assert run.outcomes("w0") == []
    assert run.workers["w0"].stop_reason.startswith("spend limit: ")
    assert sorted(oompa_repo.tasks("pending")) == ["t1", "t2"]
    assert oompa_repo.tasks("current") == []
    assert oompa_repo.branches() == ["main"]
    assert oompa_repo.worktrees() == [str(oompa_repo.path)]
    assert oompa_repo.status() == []
    assert run.result.status == "failed"
    assert_run_valid(run.run_dir)


def test_a_worker_limit_stops_its_worker_and_the_others_go_on(oompa_repo, oompa_swarm):
    seed(oompa_repo, 6)
    run = oompa_swarm(
        {
            **FAST,
            "workers": [
                {"model": "claude:opus", "iterations": 3, "limits": {"tokens": 15000}},
                {"model": "claude:opus", "iterations": 2},
            ],
        },
        scenario={"workers": {"w0": {"worker": EXPENSIVE}}},
    )
    # w0's calls cost ~10,000 tokens each: its second reaches its limit
    assert run.outcomes("w0") == ["merged", "merged"]
    assert run.workers["w0"].stop_reason.startswith("spend limit of w0: ")
    assert run.outcomes("w1") == ["merged", "merged"]
    assert run.workers["w1"].stop_reason == ""
    assert run.result.status == "failed"


def test_the_run_fails_with_the_reason_and_the_summary_shows_the_spend(pytester):
    """pytest: the iterations not reached are skipped with the reason, exit status 1, the
    spend per worker in the summary; --oompa-max-cost is the swarm's cost limit."""
    repo = GitRepo(pytester.path)
    config = {**FAST, "workers": [{"model": "claude:opus", "iterations": 3}]}
    repo.add_swarm_config(config, {"default": {"worker": EXPENSIVE}}, tasks=["t1", "t2", "t3"])
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-max-cost=0.25", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "spend: $0.3*, * tokens, 2 call(s) (swarm limit $0.25)",
            "  w0: $0.3*, * tokens, 2 call(s)",
            "spend limit: $0.3* of $0.25: no new call started after it",
            "SKIPPED * not reached: spend limit: $0.3* of $0.25",
        ]
    )


def test_under_xdist_the_swarm_limit_holds_across_processes(pytester):
    repo = GitRepo(pytester.path / "project")  # (runpytest_subprocess's files stay outside)
    config = {
        **FAST,
        "limits": {"cost_usd": 0.5},
        "workers": [{"model": "claude:opus", "iterations": 3, "count": 2}],
    }
    tasks = [f"t{i}" for i in range(6)]
    repo.add_swarm_config(config, {"default": {"worker": EXPENSIVE}}, tasks=tasks)
    result = pytester.runpytest_subprocess(
        "--oompa-swarm=project/oompa.json", "-n", "2", "-rs", "-p", "no:cacheprovider"
    )
    # each node's worker spends ~$0.15 a call: together they cross $0.50 after their second
    # (third at most, for a call already in flight); the rest is skipped in both processes
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) in (4, 5) and outcomes["skipped"] == 6 - outcomes["passed"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "spend: *call(s) (swarm limit $0.50)",
            "  w0: *",
            "  w1: *",
            "spend limit: $0.* of $0.50: no new call started after it",
        ]
    )


def test_a_bad_max_cost_is_a_usage_error(pytester):
    GitRepo(pytester.path).add_swarm_config({**FAST, "workers": [{"model": "claude:opus"}]})
    result = pytester.runpytest("--oompa-swarm=oompa.json", "--oompa-max-cost=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--oompa-max-cost must be above 0*"])


def test_probes_that_use_up_the_limit_stop_the_run_before_it_starts(oompa_repo, oompa_swarm):
    seed(oompa_repo, 1)
    with pytest.raises(PreflightError, match="the preflight probes reached the spend limit"):
        oompa_swarm(
            {
                "executor_wait": 0,
                "limits": {"tokens": 1},  # a probe of the fakes: 2 tokens
                "workers": [{"model": "claude:opus", "iterations": 1}],
            }
        )
