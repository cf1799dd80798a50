"""The pytest session's view of one swarm: it runs the engine in the background and reports
each collected item as soon as its iteration is known, so a swarm reads like a test run while
every worker runs at once.

Under pytest-xdist (see plugin/xdist/) the same object serves both sides: on the controller
it holds the run (prepared, planned and ended there), on each node the workers that node runs
(``distributed`` says which).
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pytest_oompa.core.config import (
    ConfigError,
    SwarmConfig,
    load_config,
    parse_outcomes,
)
from pytest_oompa.core.gate import GateSection
from pytest_oompa.core.gate import merge as merge_gate
from pytest_oompa.core.gate import passed as gate_passed
from pytest_oompa.core.results import IterationResult, PlannerResult, WorkerReport
from pytest_oompa.engine.cluster import Cluster
from pytest_oompa.engine.git import Repo
from pytest_oompa.engine.preflight import PreflightError
from pytest_oompa.engine.spend import Spend, usd
from pytest_oompa.engine.swarm import Swarm, SwarmListener, SwarmOptions, SwarmResult
from pytest_oompa.plugin.items import IterationItem, OompaItem, PlannerItem, SwarmFile
from pytest_oompa.plugin.options import cli_path, ini_path
from pytest_oompa.plugin.registry import registry_for
from pytest_oompa.plugin.stash import SESSION_KEY
from pytest_oompa.runs.reader import format_table, runs_dir_from_env, worker_rows
from pytest_oompa.runs.recorder import summary_entry
from pytest_oompa.runs.resume import ResumePlan, ResumeRefused, plan_resume

__all__ = ["SESSION_KEY", "SwarmSession"]
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class _Event:
    kind: str  # planner | iteration | worker | swarm
    payload: Any


class _QueueListener(SwarmListener):
    """Hands engine events (from worker threads) to the main thread, where pytest lives."""

    def __init__(self) -> None:
        self.events: queue.Queue[_Event] = queue.Queue()

    def planner_finished(self, result: PlannerResult) -> None:
        self.events.put(_Event("planner", result))

    def iteration_finished(self, result: IterationResult) -> None:
        self.events.put(_Event("iteration", result))

    def worker_finished(self, report: WorkerReport) -> None:
        self.events.put(_Event("worker", report))

    def swarm_finished(self, result: SwarmResult) -> None:
        self.events.put(_Event("swarm", result))


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _still_stopping(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("\noompa: still stopping the swarm and recording the run; one moment\n")


class _Signals:
    """The signal handling of one swarm run, in the main thread.

    While it runs, SIGTERM ends it as Ctrl-C does (agents stopped, tasks recycled, summary
    written). Once it is interrupted, further SIGINT/SIGTERM are only acknowledged until the
    session is over (restored in pytest_unconfigure): pytest formats the interrupt's traceback
    and prints its terminal summary around sessionfinish, and a second Ctrl-C landing there
    would kill the process with a traceback, or before the run's end is written.
    """

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}

    def _set(self, signum: int, handler: Any) -> None:
        try:
            previous = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            return
        self._saved.setdefault(signum, previous)

    def running(self) -> None:
        self._set(signal.SIGTERM, _raise_interrupt)

    def shield(self) -> None:
        self._set(signal.SIGINT, _still_stopping)
        self._set(signal.SIGTERM, _still_stopping)

    def restore(self) -> None:
        for signum, previous in self._saved.items():
            signal.signal(signum, previous)
        self._saved.clear()


class SwarmSession:
    def __init__(
        self,
        config: pytest.Config,
        swarm_config: SwarmConfig,
        options: SwarmOptions,
    ) -> None:
        self.config = config
        self.swarm_config = swarm_config
        self.options = options
        self.swarm: Swarm | None = None
        self.result: SwarmResult | None = None
        self.iteration_results: dict[tuple[str, int], IterationResult] = {}
        self.worker_reports: dict[str, WorkerReport] = {}
        self.planner_result: PlannerResult | None = None
        self.interrupted = False
        self.signals = _Signals()
        # "": this process runs the whole swarm; "controller" or "node" under pytest-xdist.
        self.distributed = ""
        self._listener: _QueueListener | None = None
        self._reportable: set[Any] = set()  # keys of items whose result is known (nodes)

    @property
    def gate(self) -> GateSection:
        return self.options.gate or GateSection()

    @property
    def swarm_id(self) -> str:
        return self.swarm.swarm_id if self.swarm else ""

    def relative(self, path: Path | None) -> str:
        if path is None:
            return "(not written)"
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def unreached_reason(self, worker_id: str, iteration: int) -> str:
        # The live result: a worker's end is reported before the swarm's.
        timed_out = self.swarm.result.timed_out if self.swarm else ""
        if timed_out:
            return f"not reached: {timed_out}"
        report = self.worker_reports.get(worker_id)
        if report and report.stop_reason:
            return f"not reached: {report.stop_reason}"
        if self.result and self.result.interrupted:
            return "not reached: the swarm was stopped"
        what = next(
            (w.unit_name for w in self.swarm_config.workers if w.id == worker_id), "iteration"
        )
        return f"not reached: worker {worker_id} did not run {what} {iteration}"

    # -- the run loop --------------------------------------------------------------------------

    @staticmethod
    def limits(items: list[pytest.Item]) -> dict[str, int]:
        """Worker id -> the highest iteration selected, for the workers with selected items."""
        limits: dict[str, int] = {}
        for item in items:
            if isinstance(item, IterationItem):
                limits[item.worker_id] = max(limits.get(item.worker_id, 0), item.iteration)
        return limits

    def new_swarm(self, limits: dict[str, int] | None, run_planner: bool) -> Swarm:
        """Make and prepare this session's swarm (a failed preflight is a usage error)."""
        self.options.limits = limits
        self.options.run_planner = run_planner
        self._listener = _QueueListener()
        self.swarm = swarm = Swarm(self.swarm_config, self.options, self._listener)
        try:
            swarm.prepare()
        except PreflightError as exc:
            raise pytest.UsageError(str(exc)) from None
        return swarm

    def runtestloop(self, session: pytest.Session) -> None:
        items = [i for i in session.items if isinstance(i, OompaItem)]
        run_planner = any(isinstance(i, PlannerItem) for i in items)
        # From started.json on (written while preparing) SIGTERM must end the run cleanly: it is
        # how dashboards stop it.
        self.signals.running()
        swarm = self.new_swarm(self.limits(list(items)), run_planner)
        listener = self._listener
        assert listener is not None
        pending: dict[Any, OompaItem] = {item.key: item for item in items}
        # A resumed run's finished iterations are reported first, as they were recorded.
        earlier = [r for r in swarm.result.iterations if r.resumed]
        for result in earlier:
            self.iteration_results[result.key] = result
        swarm.start()
        try:
            for result in earlier:
                item = pending.pop(result.key, None)
                if item is not None:
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=None)
            while pending:
                try:
                    event = listener.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if swarm.running:
                        continue
                    # Gone without a word (cannot happen unless the engine has a bug):
                    # report what is left rather than wait forever.
                    event = _Event("swarm", swarm.result)
                for key in self._absorb(event):
                    if key not in pending:
                        continue
                    item = pending.pop(key)
                    # Items run in completion order, so the next one is unknown: tear the
                    # collector chain down after each (swarm items use no fixtures).
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=None)
                if session.shouldfail or session.shouldstop:
                    swarm.stop()
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            self.signals.shield()
            swarm.stop()
            raise
        finally:
            self._drain(swarm, listener)

    def _absorb(self, event: _Event) -> list[Any]:
        """Record an engine event; return the keys of the items it makes reportable."""
        if event.kind == "planner":
            self.planner_result = event.payload
            return ["planner"]
        if event.kind == "iteration":
            result: IterationResult = event.payload
            self.iteration_results[result.key] = result
            self.config.hook.pytest_oompa_iteration_finished(result=result)
            return [result.key]
        if event.kind == "worker":
            report: WorkerReport = event.payload
            self.worker_reports[report.worker_id] = report
            return [
                (report.worker_id, n)
                for n in range(report.iterations_run + 1, report.iterations + 1)
            ]
        self.result = event.payload
        return [
            "planner",
            *((w.id, n) for w in self.swarm_config.workers for n in range(1, w.units + 1)),
            "gate",  # last: its verdict needs the whole run
        ]

    def _drain(self, swarm: Swarm, listener: _QueueListener) -> None:
        """Wait for the swarm to clean up and write its summary; a second Ctrl-C does not
        cut that short (every file is written atomically, but half a cleanup would leave
        worktrees and claimed tasks behind)."""
        while True:
            try:
                if swarm.wait(POLL_SECONDS):
                    break
            except KeyboardInterrupt:
                swarm.stop()
        self.absorb_pending()
        # An xdist node's swarm is only a part of the run: the controller announces its end.
        if self.result is not None and self.distributed != "node":
            self.config.hook.pytest_oompa_swarm_finished(result=self.result)

    def report_earlier(self, results: list[IterationResult]) -> None:
        """A resumed run's finished iterations (on an xdist node): reportable at once."""
        for result in results:
            self.iteration_results[result.key] = result
            self._reportable.add(result.key)

    def absorb_pending(self) -> None:
        """Record the engine events already waiting, without blocking."""
        listener = self._listener
        while listener is not None:
            try:
                self._reportable.update(self._absorb(listener.events.get_nowait()))
            except queue.Empty:
                break

    # -- an xdist node: its workers run in the background, each item waits for its result -----

    def wait_for(self, key: Any) -> None:
        """Block until the item ``key`` can be reported: its iteration ended, or its worker or
        the swarm ended first. Ctrl-C (or SIGTERM) stops this process's workers cleanly."""
        swarm, listener = self.swarm, self._listener
        if swarm is None or listener is None or not swarm.started:
            return
        try:
            while key not in self._reportable:
                try:
                    event = listener.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if swarm.running:
                        continue
                    event = _Event("swarm", swarm.result)  # see runtestloop
                self._reportable.update(self._absorb(event))
        except KeyboardInterrupt:
            self.interrupted = True
            self.signals.shield()
            swarm.stop()
            self.drain()
            raise

    def drain(self) -> None:
        """Wait for this process's swarm to end (after ``swarm.stop()`` if it must stop)."""
        if self.swarm is not None and self._listener is not None and self.swarm.started:
            self._drain(self.swarm, self._listener)

    # -- the collection and the run loop of a swarm session (hooks of this plugin object)

    def pytest_collect_file(
        self, file_path: Path, parent: pytest.Collector
    ) -> pytest.Collector | None:
        if file_path.resolve() == self.swarm_config.path:
            return SwarmFile.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.distributed or session.config.option.collectonly:
            return None  # (distributed: pytest-xdist's loop runs the items, see plugin/xdist/)
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest's own loop reports the collection errors
        others = [i for i in session.items if not isinstance(i, OompaItem)]
        for i, item in enumerate(others):
            nextitem = others[i + 1] if i + 1 < len(others) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
        self.runtestloop(session)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """An engine failure fails the run even when every reported item passed; then the
        run's final status goes to oompa-run.json, the index and the metrics history."""
        if self.distributed == "node":
            return  # the controller ends the run
        result = self.result
        if result is not None and result.errors:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        elif (
            result is not None
            and session.exitstatus == pytest.ExitCode.OK
            and (result.timed_out or result.spend_limits_reached or not gate_passed(result.gate))
        ):
            # A failed gate, a swarm timeout or a spend limit reached fails the run even when
            # the ::gate item was deselected and every reported iteration passed.
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.swarm is None:
            return
        # An interruption is what happened, whatever pytest got to record before it ended.
        status = pytest.ExitCode.INTERRUPTED if self.interrupted else session.exitstatus
        try:
            self.swarm.finalize(int(status))
        except Exception as exc:  # never raise out of sessionfinish: say it and go on
            self.config.issue_config_time_warning(
                pytest.PytestWarning(f"oompa: could not record the end of the run: {exc}"), 2
            )

    # -- reporting -----------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminal = terminalreporter
        result = self.result
        if result is None or self.distributed == "node":
            return
        terminal.section(f"oompa swarm {result.swarm_id}", sep="=", bold=True)
        reports = [
            result.workers[w.id] for w in self.swarm_config.workers if w.id in result.workers
        ]
        for line in format_table(worker_rows(summary_entry(r) for r in reports)).splitlines():
            terminal.write_line(line)
        if result.planner is not None:
            p = result.planner
            text = f"created {p.tasks_created} task(s)" if p.ran else f"skipped: {p.skipped_reason}"
            terminal.write_line(f"planner: {text}" + (f" ({p.error})" if p.error else ""))
        if result.main_before and result.main_after and result.main_before != result.main_after:
            terminal.write_line(f"main: {result.main_before[:10]}..{result.main_after[:10]}")
        if result.gate:
            ok = gate_passed(result.gate)
            terminal.write_line(f"gate: {'passed' if ok else 'FAILED'}", green=ok, red=not ok)
            for check in result.gate:
                terminal.write_line(f"  {check}", red=not check.ok)
        _spend_summary(terminal, result, self.swarm)
        if result.timed_out:
            terminal.write_line(result.timed_out, red=True)
        if result.interrupted:
            terminal.write_line("the swarm was stopped before it finished", yellow=True)
        for error in result.errors:
            terminal.write_line(f"engine error: {error}", red=True)
        for note in result.notes:
            terminal.write_line(f"note: {note}", yellow=True)
        plan = self.options.resume
        if plan is not None:
            done = sum(plan.finished(w.id) for w in self.swarm_config.workers)
            terminal.write_line(
                f"resumed run {plan.swarm_id} ({plan.previous_status}): {done} iteration(s) "
                "or cycle(s) were done before, reported from their artifacts"
            )
            for change in plan.forced:
                terminal.write_line(f"  resumed despite: {change}", yellow=True)
        left = _leftovers(result)
        if left:
            what = (
                "process left behind by an agent was"
                if left == 1
                else "processes left behind by agents were"
            )
            terminal.write_line(f"{left} {what} killed (see the items' reports)", yellow=True)
        terminal.write_line(f"artifacts: {self.relative(result.run_dir)}")


def _leftovers(result: SwarmResult) -> int:
    """How many processes the agents' calls left running (each killed after its call)."""
    calls = [c for r in result.iterations for c in r.calls]
    if result.planner is not None and result.planner.call is not None:
        calls.append(result.planner.call)
    return sum(len(c.leftovers) for c in calls)


def _spend_summary(terminal: Any, result: SwarmResult, swarm: Swarm | None) -> None:
    """What each worker (and the planner, the probes) spent, from the CLIs' own figures,
    against the swarm's limit; every limit reached; what the limits cannot see."""
    meter = swarm.caller.spend if swarm is not None else None
    total = sum(result.spend.values(), Spend())
    limited = meter is not None and meter.active
    if not (limited or total.cost_usd or total.tokens):
        return
    limits = meter.limits if meter is not None else None
    shown = [usd(limits.cost_usd)] if limits and limits.cost_usd is not None else []
    shown += [f"{limits.tokens:,} tokens"] if limits and limits.tokens is not None else []
    of = f" (swarm limit {', '.join(shown)})" if shown else ""
    terminal.write_line(f"spend: {total.describe()}{of}")
    for account, spend in sorted(result.spend.items()):
        terminal.write_line(f"  {account}: {spend.describe()}")
    for reached in result.spend_limits_reached:
        terminal.write_line(f"{reached}: no new call started after it", red=True)
    for note in meter.notes if meter is not None else ():
        terminal.write_line(f"  note: {note}", yellow=True)


def _cluster(config: pytest.Config) -> Cluster | None:
    """The Ray cluster of --oompa-ray (or the ``oompa_ray`` ini value), not yet connected."""
    address = config.getoption("oompa_ray") or str(config.getini("oompa_ray") or "")
    if not address:
        return None
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        raise pytest.UsageError(
            "oompa: --oompa-ray and -n exclude each other: with Ray one process coordinates "
            "the swarm and Ray spreads the workers; -n spreads them over this machine only"
        )
    try:
        from pytest_oompa.engine.cluster.ray_cluster import RayCluster
    except ImportError as exc:
        raise pytest.UsageError(
            f"oompa: --oompa-ray={address} needs Ray ({exc.name or 'ray'} is not installed): "
            "pip install 'pytest-oompa[ray]'"
        ) from None
    return RayCluster(address)


def start(config: pytest.Config, swarm_path: Path) -> SwarmSession:
    """Validate the swarm config and the options, and register the session that runs it
    (``pytest_configure``, when ``--oompa-swarm`` or ``oompa_swarm`` names a config)."""
    registry = registry_for(config)
    try:
        swarm_config = load_config(swarm_path, registry.names())
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("oompa_fake_harnesses"):
        swarm_config = dataclasses.replace(swarm_config, use_fake_harnesses=True)
    sandbox = config.getoption("oompa_sandbox")
    if sandbox:
        swarm_config = dataclasses.replace(swarm_config, sandbox=sandbox)
    max_cost = config.getoption("oompa_max_cost")
    if max_cost is not None:
        if not max_cost > 0:
            raise pytest.UsageError(f"oompa: --oompa-max-cost must be above 0 (got {max_cost:g})")
        limits = swarm_config.limits.model_copy(update={"cost_usd": max_cost})
        swarm_config = dataclasses.replace(swarm_config, limits=limits)
    outcomes = config.getoption("oompa_outcomes")
    try:
        gate = merge_gate(swarm_config.gate, config.getoption("oompa_gate"))
        if outcomes:
            mapping = {**swarm_config.outcomes, **parse_outcomes(outcomes)}
            swarm_config = dataclasses.replace(swarm_config, outcomes=mapping)
    except ValueError as exc:
        raise pytest.UsageError(f"oompa: {exc}") from None
    repo_root = cli_path(config, "oompa_repo") or ini_path(config, "oompa_repo")
    options = SwarmOptions(
        runs_dir=runs_dir(config, repo_root or swarm_config.path.parent),
        repo_root=repo_root,
        probe=False if config.getoption("oompa_no_probe") else None,
        call_timeout=config.getoption("oompa_call_timeout"),
        gate=gate,
        registry=registry,
        adjust_command=lambda command, role: (
            config.hook.pytest_oompa_harness_command(command=command, role=role) or command
        ),
    )
    options.cluster = _cluster(config)  # before the hook: a plugin may bring its own
    config.hook.pytest_oompa_swarm_options(
        config=config, swarm_config=swarm_config, options=options
    )
    resume_id = config.getoption("oompa_resume")
    if resume_id is not None and not hasattr(config, "workerinput"):
        options.resume = _plan_resume(config, swarm_config, options, resume_id)
    session = SwarmSession(config, swarm_config, options)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "oompa-session")
    # The swarm is the test run: with no paths on the command line, collect only the swarm;
    # with paths, collect the swarm as well.
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args = [str(swarm_path)]
    elif str(swarm_path) not in config.args:
        config.args.append(str(swarm_path))
    return session


def runs_dir(config: pytest.Config, repo: Path) -> Path:
    """Where the run's files go: the option, the ini, env ``OOMPA_RUNS_DIR``, env ``RUNS_DIR``,
    else ``<repo>/runs``, where oompa itself writes and dashboards (unleashd) look for a
    project's runs, whether or not the repo is pytest's rootdir."""
    found = cli_path(config, "oompa_runs_dir") or ini_path(config, "oompa_runs_dir")
    if found:
        return found
    from_env = runs_dir_from_env()
    return from_env.resolve() if from_env else repo.resolve() / "runs"


def _plan_resume(
    config: pytest.Config, swarm_config: SwarmConfig, options: SwarmOptions, run_id: str
) -> ResumePlan:
    """The run to resume and where each worker continues; a refusal is a usage error."""
    repo = Repo(options.repo_root or swarm_config.path.parent)

    def on_main(sha: str) -> bool:
        return repo.is_ancestor(sha, "main")

    try:
        return plan_resume(
            Path(options.runs_dir),
            swarm_config,
            run_id or None,
            force=bool(config.getoption("oompa_resume_force")),
            contains=on_main,
            last_main=repo.engine_main() if repo.is_repo() else None,
        )
    except ResumeRefused as exc:
        raise pytest.UsageError(f"cannot resume: {exc}") from None
