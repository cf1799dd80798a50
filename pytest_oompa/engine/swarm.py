"""The swarm: preflight, the planner, every worker at once, and the end of the run.

``Swarm`` is the engine's entry point and knows nothing of pytest: the plugin, the
``oompa_swarm`` fixture and plain scripts all drive it the same way, and observe it through a
``SwarmListener``. Workers are threads (their work is subprocesses, which release the GIL).

Besides the 0.7.0 artifacts, the swarm records the moments a dashboard needs to show a run live
(oompa 0.7.3's event files, through the recorder): ``started.json`` as soon as the run is
tracked, ``workers/{id}.json`` when an iteration starts and when a worker ends, a cycle file at
each iteration's end, ``stopped.json`` when the run's end is recorded. A process attached to a
run another process prepared (pytest-xdist's nodes) writes only its own workers' files.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pytest_oompa.core import paths
from pytest_oompa.core.config import SwarmConfig, WorkerSpec
from pytest_oompa.core.gate import Check, GateFacts, GateSection
from pytest_oompa.core.gate import evaluate as evaluate_gate
from pytest_oompa.core.gate import passed as gate_passed
from pytest_oompa.core.locks import SharedLock
from pytest_oompa.core.results import (
    CallRecord,
    IterationResult,
    Outcome,
    PlannerResult,
    WorkerMetrics,
    WorkerReport,
    WorkerStatus,
)
from pytest_oompa.engine.activity import ActivityBoard
from pytest_oompa.engine.calls import CallObserver, HarnessCaller
from pytest_oompa.engine.cluster import Cluster
from pytest_oompa.engine.git import Repo
from pytest_oompa.engine.guard import Guard
from pytest_oompa.engine.live_report import LiveReport
from pytest_oompa.engine.planner import run_planner
from pytest_oompa.engine.preflight import (
    PreflightError,
    check_harnesses,
    check_repo,
    harness_versions,
    probe_models,
)
from pytest_oompa.engine.processes import SWARM_VAR, ProcessSupervisor, kill_orphans_of
from pytest_oompa.engine.sandbox import Sandbox
from pytest_oompa.engine.spend import Spend, SpendMeter
from pytest_oompa.engine.tasks import TaskQueue, valid_task_id
from pytest_oompa.engine.worker import SwarmContext, WorkerRunner, utc_now
from pytest_oompa.harnesses.registry import BASE_ENV, HarnessRegistry, env_matches
from pytest_oompa.harnesses.spec import HarnessCommand
from pytest_oompa.report import write_report
from pytest_oompa.runs.artifacts import ArtifactStore
from pytest_oompa.runs.recorder import Recorder
from pytest_oompa.runs.resume import (
    ResumePlan,
    finished_results,
    forget_unfinished,
    resume_event,
)
from pytest_oompa.runs.tracking import (
    HEARTBEAT_SECONDS,
    Counts,
    RunTracker,
    seconds_between,
    status_for_exit,
    stop_reason,
)

# the worktrees of iterations and of cycles (0.7.3 mode)
WORKTREE_PATTERNS = ("/.w*-i*/", "/.w*-c*/")


def new_swarm_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class SwarmListener:
    """Observer of a running swarm. Called from worker threads: implementations must be
    thread-safe and quick (hand the event to another thread if there is real work)."""

    def planner_finished(self, result: PlannerResult) -> None:
        pass

    def iteration_finished(self, result: IterationResult) -> None:
        pass

    def worker_finished(self, report: WorkerReport) -> None:
        pass

    def swarm_finished(self, result: SwarmResult) -> None:
        pass


@dataclass
class SwarmOptions:
    runs_dir: Path
    repo_root: Path | None = None  # default: the config file's folder
    swarm_id: str | None = None
    # worker id -> highest iteration to run; a worker not in the map does not run. None: all.
    limits: Mapping[str, int] | None = None
    run_planner: bool = True
    probe: bool | None = None  # None: the config's "probe" setting
    env: Mapping[str, str] | None = None  # extra environment for every harness call
    call_timeout: float | None = None
    registry: HarnessRegistry | None = None
    # Adjust each harness command before it runs: (command, role) -> command.
    adjust_command: Callable[[HarnessCommand, str], HarnessCommand] | None = None
    stall_timeout: float | None = None  # kill a call that prints nothing for this long
    gate: GateSection | None = None  # None: the config's gate
    call_observer: CallObserver | None = None  # sees every harness call (recording)
    heartbeat_interval: float = HEARTBEAT_SECONDS
    # Several processes run this swarm (pytest-xdist): a folder they all share, for who holds
    # which task and the live summary's lock. None: this process runs the whole swarm.
    shared_dir: Path | None = None
    # This process only runs its workers (``limits``) of a run another process prepares and
    # ends: no preflight, planner, run.json, tracking, timeout, task-queue commit, summary or
    # gate. Needs ``swarm_id`` and ``shared_dir``.
    attached: bool = False
    # Continue a run an earlier process left (runs/resume.py): its id, folder and workers.
    resume: ResumePlan | None = None
    # Run the workers' agent calls on a cluster's nodes (--oompa-ray); None: here.
    cluster: Cluster | None = None


@dataclass
class SwarmResult:
    swarm_id: str
    run_dir: Path
    repo_root: Path
    started_at: str
    finished_at: str = ""
    planner: PlannerResult | None = None
    workers: dict[str, WorkerReport] = field(default_factory=dict)
    iterations: list[IterationResult] = field(default_factory=list)
    interrupted: bool = False
    main_before: str = ""
    main_after: str = ""
    errors: list[str] = field(default_factory=list)  # the engine itself failed somewhere
    preflight_problems: list[str] = field(default_factory=list)
    timed_out: str = ""  # why the swarm timeout stopped the run, if it did
    gate: list[Check] = field(default_factory=list)  # empty: no gate
    status: str = "running"  # then completed | failed | interrupted (see tracking.py)
    exit_status: int | None = None
    # The spend limits (engine/spend.py): each limit reached fails the run; spend per account.
    spend_limits_reached: list[str] = field(default_factory=list)
    spend: dict[str, Spend] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth saying, not failures (a resume's)


class Swarm:
    def __init__(
        self, config: SwarmConfig, options: SwarmOptions, listener: SwarmListener | None = None
    ) -> None:
        self.config = config
        self.options = options
        self.listener = listener or SwarmListener()
        resume = options.resume
        self.swarm_id = resume.swarm_id if resume else (options.swarm_id or new_swarm_id())
        self.registry = options.registry or HarnessRegistry()
        self.repo = Repo(options.repo_root or config.path.parent)
        shared = options.shared_dir
        if options.attached and (shared is None or options.swarm_id is None):
            raise ValueError("an attached swarm needs the run's swarm_id and shared_dir")
        self.queue = (
            TaskQueue(self.repo.root) if shared is None else SharedTaskQueue(self.repo.root, shared)
        )
        self.supervisor = ProcessSupervisor()
        runs_dir = Path(options.runs_dir)
        lock = shared / "live-summary.lock" if shared is not None else None
        self.recorder = Recorder(ArtifactStore(runs_dir, self.swarm_id, lock), config)
        source_env, extra_env = self._harness_env()
        timeouts = config.timeouts
        self._stop = threading.Event()
        self.caller = HarnessCaller(
            self.registry,
            self.supervisor,
            source_env,
            options.call_timeout or timeouts.call,
            options.adjust_command,
            run_dir=self.recorder.run_dir,
            stall=options.stall_timeout or timeouts.stall,
            extra_env=extra_env,
            env_pass=config.env.pass_,
            retries=config.retries.attempts,
            backoff=config.retries.backoff,
            stop=self._stop,
            observer=options.call_observer,
            spend=SpendMeter.for_config(config, shared / "spend.json" if shared else None),
            sandbox=Sandbox.named(config.sandbox, extra_env.get("PATH", source_env.get("PATH"))),
            remote=options.cluster,
        )
        self.cluster = options.cluster
        # Checks every agent call for writes outside its worktree and branches it moved.
        self.guard = Guard(self.repo, self.swarm_id, self.recorder.run_dir)
        # What each worker is doing, for the live views; shared through files when the workers
        # run in other processes (pytest-xdist nodes) than the view (the controller).
        self.activity = ActivityBoard(shared / "activity" if shared is not None else None)
        self.tracker = RunTracker(
            runs_dir, self.swarm_id, config, self.repo.root, options.heartbeat_interval
        )
        self._thread: threading.Thread | None = None
        self.live_report: LiveReport | None = None  # report.html kept current while tracked
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.result = SwarmResult(self.swarm_id, self.recorder.run_dir, self.repo.root, utc_now())

    @property
    def run_dir(self) -> Path:
        return self.recorder.run_dir

    def _harness_env(self) -> tuple[dict[str, str], dict[str, str]]:
        """(the environment harness variables are picked from, the variables always given)."""
        source = dict(os.environ)
        extra: dict[str, str] = {}
        if self.config.use_fake_harnesses:
            source["PATH"] = f"{paths.fake_bin_dir()}{os.pathsep}{source.get('PATH', '')}"
            if self.config.fake_scenario:
                extra["OOMPA_FAKE_SCENARIO"] = str(self.config.fake_scenario)
        # Names the run in every call's processes: a resume finds a dead run's orphans by it.
        extra[SWARM_VAR] = self.swarm_id
        extra.update(self.config.env.set)
        extra.update(self.options.env or {})
        if self.config.use_fake_harnesses and "OOMPA_FAKE_STATE" not in {**source, **extra}:
            # Fake sessions live with the run's temporary state, never in the user's HOME.
            # Found again by a resume of the run, as a real CLI's sessions are in its HOME.
            extra["OOMPA_FAKE_STATE"] = str(paths.named_scratch_dir(f"oompa-fake-{self.swarm_id}"))
        return source, extra

    # -- phases --------------------------------------------------------------------------------

    def workers_to_run(self) -> list[WorkerRunner]:
        limits = self.options.limits
        states = self.options.resume.states if self.options.resume else {}
        return [
            WorkerRunner(
                spec,
                self._context(),
                limits[spec.id] if limits is not None else None,
                states.get(spec.id),
            )
            for spec in self.config.workers
            if limits is None or spec.id in limits
        ]

    def _after_a_kill(self, plan: ResumePlan) -> None:
        """What a kill -9 leaves in the repository, put right before the preflight looks: the
        dead run's agents still running (found by the swarm id their calls carry; they write
        into worktrees this attempt reuses), git's lock files, a merge cut in the middle."""
        if plan.meta.get("host") == socket.gethostname():
            for orphan in kill_orphans_of(plan.swarm_id):
                self.result.notes.append(f"killed an agent the earlier attempt left: {orphan}")
            for lock in self.repo.drop_stale_locks():
                self.result.notes.append(f"removed {lock}, left by a git the kill cut short")
        heads = [s.merging[1] for s in plan.states.values() if s.merging]
        if heads:
            for path in self.repo.undo_cut_merge(heads):
                self.result.notes.append(f"restored {path}: a merge into main was cut short")

    def _merged_before(self, plan: ResumePlan, spec: WorkerSpec) -> None:
        """A unit the earlier attempt merged into main but died before recording (its resume
        point says it was merging, and main contains the branch head it merged): recorded
        now, as merged, instead of run and merged a second time."""
        state = plan.states.get(spec.id)
        if state is None or state.merging is None or state.status != "running":
            return
        n, head = state.merging
        if n != state.finished + 1 or not self.repo.is_ancestor(head, "main"):
            return
        label = f"{spec.unit}{n}"
        forget_unfinished(self.run_dir, spec.id, label)
        if state.worktree:
            self.repo.remove_worktree(self.repo.worktree_named(state.worktree))
        done = self.queue.complete(
            state.held, {"completed-by": spec.id, "completed-at": utc_now(), "review-rounds": 0}
        )
        counters = WorkerMetrics.from_dict(state.metrics)
        counters.merges += 1
        counters.completed += 1
        now = utc_now()
        result = IterationResult(
            worker_id=spec.id,
            iteration=n,
            outcome=Outcome.MERGED,
            started_at=now,
            finished_at=now,
            duration_ms=0,
            task_ids=state.held,
            completed_tasks=tuple(done.completed),
            merged_commit=head,
            metrics=counters.contract(),
            notes=[
                f"merged into main ({head[:10]}) before the earlier attempt died; recorded "
                "when the run was resumed, not run again"
            ],
            cycle=spec.cycles_mode,
            resumed=True,
        )
        result.artifact = self.recorder.iteration(result)
        plan.states[spec.id] = dataclasses.replace(
            state,
            finished=n,
            session_id=None,
            worktree=None,
            held=(),
            next_prompt=None,
            metrics={**counters.__dict__},
            last_merge=head,
            merging=None,
        )

    def _resume(self, plan: ResumePlan) -> None:
        """Take the run up where its earlier attempt left it: its start, its end files gone
        (started.json is written again with this pid, stopped.json and summary.json when this
        attempt ends), the tasks nobody holds any more back to pending, what a unit cut off
        in flight left cleared (it runs again, recorded once), the finished ones loaded to be
        reported again."""
        self.result.started_at = plan.meta["started-at"]
        self.result.main_before = plan.meta.get("main-before") or self.result.main_before
        for name in ("started.json", "stopped.json", "summary.json"):
            (self.run_dir / name).unlink(missing_ok=True)
        self.queue.ensure_dirs()
        held = {t for s in plan.states.values() if s.status == "running" for t in s.held}
        orphans = [t for t in self.queue.ids("current") if t not in held]
        self.queue.recycle_unowned(orphans)
        for spec in self.config.workers:
            self._merged_before(plan, spec)
            done = plan.finished(spec.id)
            state = plan.states.get(spec.id)
            self.result.iterations += finished_results(
                self.run_dir, spec.id, spec.cycles_mode, done
            )
            if state is None or state.status == "running":
                forget_unfinished(self.run_dir, spec.id, f"{spec.unit}{done + 1}")

    def _context(self) -> SwarmContext:
        return SwarmContext(
            swarm_id=self.swarm_id,
            repo=self.repo,
            queue=self.queue,
            caller=self.caller,
            stop=self._stop,
            reviewer=self.config.reviewer,
            executor_wait=self.config.executor_wait,
            iteration_timeout=self.config.timeouts.iteration,
            on_review=self.recorder.review,
            on_iteration_start=self.recorder.cycle_started,
            on_attempt=self.recorder.attempt,
            on_state=self.recorder.worker_state,
            on_iteration=self._iteration_finished,
            guard=self.guard,
            activity=self.activity,
        )

    def prepare(self) -> None:
        """Preflight, then ``run.json``. Raises PreflightError listing every problem.

        Problems found before any harness runs (the repo, missing binaries) leave no run
        folder. From the probes on, the run is tracked: a failed probe leaves its logs and
        the run's entry in the index (status failed) for whoever debugs the nightly job.
        """
        repo = self.repo
        if self.options.attached:  # the process that runs the whole swarm checked all this
            repo.use_fallback_identity_if_needed()
            self.queue.ensure_dirs()
            self.guard.start(keep=True)
            return
        if not repo.is_repo():
            raise PreflightError(check_repo(repo))
        # Our own litter must never make the project look dirty, now or on the next run.
        patterns = list(WORKTREE_PATTERNS)
        runs = Path(self.options.runs_dir).resolve()
        if runs.is_relative_to(repo.root) and runs != repo.root:
            patterns.append(f"/{runs.relative_to(repo.root).as_posix()}/")
        repo.exclude(*patterns)
        resume = self.options.resume
        if resume is not None:
            self._after_a_kill(resume)
        # A run cut off by kill -9 never committed its task queue: tasks/ may differ from main.
        ignored = ("tasks/",) if resume else ()
        problems = check_repo(repo, ignored) + check_harnesses(self.config, self.caller)
        if not problems and self.cluster is not None:
            problems = self._start_cluster()
        if problems:
            self._close_cluster()
            raise PreflightError(problems)
        self.result.main_before = repo.head("main")
        self.guard.start()
        if resume is None:
            self.tracker.start(self.result.started_at, self.result.main_before)
        else:
            self.tracker.resume(resume.meta, resume_event(resume))
        try:
            if resume is not None:
                self._resume(resume)
            # From now on dashboards list the run, live while this process is (its pid).
            self.recorder.started()
            self._prepare_tracked()
            self.live_report = LiveReport(self.run_dir)
            self.live_report.start()
        except PreflightError:
            raise  # recorded by whoever ends the session, with its exit status
        except BaseException as exc:
            # The run is tracked from here on: anything else still closes it (heartbeat
            # stopped, index entry failed or interrupted) before it propagates.
            if isinstance(exc, KeyboardInterrupt):
                self.result.interrupted = True
            else:
                self._engine_error("preparing the run", exc)
            self.finalize()
            raise

    def _start_cluster(self) -> list[str]:
        """Connect to the cluster and check its nodes. The keys the harnesses read here go
        to the nodes in the actors' runtime environment, not with each call."""
        assert self.cluster is not None
        remote = {w.agent.harness for w in self.config.workers}
        remote |= {self.config.reviewer.harness} if self.config.reviewer else set()
        secrets = {
            k: v
            for harness in sorted(remote)
            for k, v in self.caller.env_for(harness).items()
            if not env_matches(k, BASE_ENV) and k not in self.caller.extra_env
        }
        self.repo.use_fallback_identity_if_needed()
        name, _, rest = self.repo.git("var", "GIT_AUTHOR_IDENT").partition(" <")
        return self.cluster.start(
            swarm_id=self.swarm_id,
            repo_root=self.repo.root,
            resources={w.id: w.ray for w in self.config.workers},
            max_agents=self.config.ray.max_concurrent_agents,
            binaries=sorted(self.registry.get(h).binary for h in remote),
            secrets=secrets,
            identity={"user.name": name.strip(), "user.email": rest.partition(">")[0]},
            fakes=self.config.use_fake_harnesses,
        )

    def _close_cluster(self) -> None:
        """Every remote agent stopped, every node's workspace and actor gone; what the
        cluster noted (placements, lost nodes) goes to the run's notes."""
        if self.cluster is None:
            return
        try:
            self.cluster.close()
        except Exception as exc:
            self._engine_error("closing the cluster", exc)
        self.result.notes += self.cluster.notes
        self.cluster.notes = []

    def _prepare_tracked(self) -> None:
        """The preflight steps that run harnesses (probes, versions), then run.json."""
        repo = self.repo
        probe = self.config.probe if self.options.probe is None else self.options.probe
        records: list[CallRecord] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            versions = pool.submit(harness_versions, self.config, self.caller)
            problems = probe_models(self.config, self.caller, repo, records) if probe else []
            self.tracker.record_versions(versions.result())
        if records:
            self.recorder.calls("preflight", None, records)
        if problems:
            self.result.preflight_problems = problems
            raise PreflightError(problems)
        repo.use_fallback_identity_if_needed()
        self.queue.ensure_dirs()
        if self.options.resume is None:  # a resumed run has its run.json
            self.recorder.run_started(self.result.started_at)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"oompa-{self.swarm_id}")
        self._thread.start()
        limit = self.config.timeouts.swarm
        if limit and not self.options.attached:
            self._timer = threading.Timer(limit, self._swarm_timeout, args=(limit,))
            self._timer.daemon = True
            self._timer.start()

    def _swarm_timeout(self, limit: float) -> None:
        """The whole run overran: stop it like an interruption, but it is a failure."""
        if self.running:
            self.result.timed_out = f"swarm timeout after {limit:g} s"
            self.stop()

    def stop(self) -> None:
        """Stop everything: running agents' process groups are terminated, each worker recycles
        its tasks and removes its worktree, and the run still ends with its summary."""
        self._stop.set()
        self.supervisor.stop_all()
        if self.cluster is not None:
            self.cluster.stop_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        assert self._thread is not None, "start() first"
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finalize(self, exit_status: int | None = None) -> None:
        """Record how the run ended: oompa-run.json, the index entry, the metrics line.

        ``exit_status`` is pytest's when pytest drove the swarm; without it the status is
        derived from what happened. Does nothing for a run that never started."""
        r = self.result
        if self._timer is not None:
            self._timer.cancel()
        self._close_cluster()
        if exit_status is not None:
            status = status_for_exit(exit_status)
        elif r.interrupted:
            status = "interrupted"
        elif (
            r.timed_out
            or not gate_passed(r.gate)
            or r.errors
            or r.preflight_problems
            or r.spend_limits_reached
            or any(i.outcome in (Outcome.ERROR, Outcome.REJECTED) for i in r.iterations)
        ):
            status = "failed"
        else:
            status = "completed"
        r.status, r.exit_status = status, exit_status
        reports = r.workers.values()
        counts = Counts(
            workers=len(self.config.workers),
            iterations=len(r.iterations),
            merges=sum(w.metrics.merges for w in reports),
            errors=sum(w.metrics.errors for w in reports),
            rejections=sum(w.metrics.rejections for w in reports),
        )
        ended = self.tracker.finish(
            status=status,
            exit_status=exit_status,
            main_after=r.main_after or None,
            counts=counts,
            errors=r.preflight_problems + r.errors,
            gate=r.gate,
        )
        if ended:  # once, with the index: dashboards see the run end when the index does
            self._record_stop(status, exit_status)
        if self.live_report is not None:
            self.live_report.stop()  # before the last write: that one is the finished run's
        if self.tracker.started:
            try:  # after finish(), so the report shows the final status
                write_report(self.run_dir)
            except Exception as exc:
                self._engine_error("writing report.html", exc)

    def _record_stop(self, status: str, exit_status: int | None) -> None:
        """``stopped.json``: how the run ended, in oompa 0.7.3's three words."""
        r = self.result
        causes = [*r.preflight_problems, *r.errors, *r.spend_limits_reached]
        if r.timed_out:
            causes.append(r.timed_out)
        elif r.interrupted and status != "interrupted":  # -x, --maxfail, a failing session
            causes.append("the swarm was stopped before its workers finished")
        reason, error = stop_reason(status, exit_status, causes)
        try:
            self.recorder.stopped(reason, error)
        except Exception as exc:
            self._engine_error("writing stopped.json", exc)

    def run(self) -> SwarmResult:
        """prepare + start + wait + finalize; Ctrl-C stops the swarm cleanly, then propagates."""
        try:
            self.prepare()
        except PreflightError:
            self.finalize()
            raise
        self.start()
        try:
            while not self.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.wait()
            self.finalize()
            raise
        self.finalize()
        return self.result

    # -- the coordinator thread ----------------------------------------------------------------

    def run_planner(self) -> PlannerResult | None:
        """The planner's call, synchronously, if there is one to run (not when attached)."""
        planner = self.config.planner
        if (
            not planner
            or not self.options.run_planner
            or self.options.attached
            or self.options.resume is not None  # it ran when the run started
            or self._stop.is_set()
        ):
            return None
        result = run_planner(self._context(), planner)
        self.result.planner = result
        if result.call is not None:
            self.recorder.calls("planner", None, [result.call])
        self.listener.planner_finished(result)
        return result

    def conclude(
        self,
        reports: Iterable[WorkerReport],
        iterations: Iterable[IterationResult],
        errors: Iterable[str] = (),
    ) -> None:
        """End a run whose workers ran in other (attached) processes, from what they reported:
        commit the task queue, write summary.json, evaluate the gate, announce the end.
        ``stop()`` first if the run was stopped."""
        with self._lock:
            for report in reports:
                self.result.workers[report.worker_id] = report
            self.result.iterations.extend(iterations)
            self.result.errors.extend(errors)
        self._finish()

    def _main(self) -> None:
        try:
            self.run_planner()
            threads = [
                threading.Thread(target=self._run_worker, args=(runner,), name=runner.id)
                for runner in self.workers_to_run()
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except Exception as exc:  # the coordinator must still write the summary
            self._engine_error("the swarm coordinator", exc)
            self.stop()
        finally:
            self._finish()

    def _engine_error(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.result.errors.append(f"{where} failed: {type(exc).__name__}: {exc}")

    def _run_worker(self, runner: WorkerRunner) -> None:
        try:
            report = runner.run()
        except Exception as exc:  # a bug, or a failing artifact write: lose the worker, not the run
            self._engine_error(f"worker {runner.id}", exc)
            runner.status = WorkerStatus.ERROR
            runner.stop_reason = f"worker {runner.id} crashed: {type(exc).__name__}: {exc}"
            report = runner.report()
        try:
            self.recorder.worker_stopped(report)
        except Exception as exc:  # the worker's end must still be reported
            self._engine_error(f"recording the end of worker {runner.id}", exc)
        with self._lock:
            self.result.workers[runner.id] = report
        self.listener.worker_finished(report)

    def _iteration_finished(self, result: IterationResult) -> None:
        result.artifact = self.recorder.iteration(result)
        with self._lock:
            self.result.iterations.append(result)
        self.listener.iteration_finished(result)

    def _finish(self) -> None:
        """Each step on its own: one failing must not cost the others, and the end of the
        swarm is always announced (the plugin waits for it)."""
        # A swarm timeout also stops the workers, but it is a failure, not an interruption.
        self.result.interrupted = self._stop.is_set() and not self.result.timed_out
        if self.options.attached:  # the process that prepared the run ends it
            self.result.finished_at = utc_now()
            self.listener.swarm_finished(self.result)
            return
        order = [w.id for w in self.config.workers]
        reports = sorted(self.result.workers.values(), key=lambda r: order.index(r.worker_id))
        steps = [
            ("committing the task queue", self._commit_task_queue),
            ("reading main", lambda: setattr(self.result, "main_after", self.repo.head("main"))),
            ("writing summary.json", lambda: self.recorder.summary(reports)),
            ("reading the spend", self._read_spend),
            ("evaluating the gate", lambda: self._evaluate_gate(reports)),
        ]
        try:
            for what, step in steps:
                try:
                    step()
                except Exception as exc:
                    self._engine_error(what, exc)
        finally:
            self.result.finished_at = utc_now()
            self.listener.swarm_finished(self.result)

    def _evaluate_gate(self, reports: list[WorkerReport]) -> None:
        gate = self.options.gate or self.config.gate
        if gate is None or not gate.active or self.result.interrupted:
            return
        counts = self.queue.counts()
        r = self.result
        facts = GateFacts(
            merges=sum(w.metrics.merges for w in reports),
            completed=sum(w.metrics.completed for w in reports),
            errors=sum(w.metrics.errors for w in reports),
            rejections=sum(w.metrics.rejections for w in reports),
            tasks_left=counts.pending + counts.current,
            workers_in_error=tuple(w.worker_id for w in reports if w.status is WorkerStatus.ERROR),
            wall_time_s=seconds_between(r.started_at, utc_now()),
            cost_usd=(spent := sum(r.spend.values(), Spend())).cost_usd,
            tokens=spent.tokens,
            calls_without_cost=spent.calls_without_cost,
        )
        r.gate = evaluate_gate(gate, facts)

    def _read_spend(self) -> None:
        """The spend limits: what each account spent, and every limit that was reached."""
        meter = self.caller.spend
        self.result.spend = meter.accounts()
        self.result.spend_limits_reached = meter.reached()

    def _commit_task_queue(self) -> None:
        """Claims and completions moved task files in the root tree; record the queue's end
        state on main so the project is clean for the next run."""
        self.repo.commit_paths(f"oompa: task queue after swarm {self.swarm_id}", "tasks")


# -- a run several processes share ------------------------------------------------------------


class _TaskOwners(MutableMapping[str, str]):
    """Task id -> the worker holding it, one file per task in a folder every process of the
    run shares (read and written under the queue's cross-process lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def __getitem__(self, task_id: str) -> str:
        try:
            return (self.folder / task_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyError(task_id) from None

    def __setitem__(self, task_id: str, worker_id: str) -> None:
        (self.folder / task_id).write_text(worker_id, encoding="utf-8")

    def __delitem__(self, task_id: str) -> None:
        try:
            (self.folder / task_id).unlink()
        except FileNotFoundError:
            raise KeyError(task_id) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(n for n in os.listdir(self.folder) if valid_task_id(n)))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class SharedTaskQueue(TaskQueue):
    """The task queue of a swarm whose workers run in several processes (pytest-xdist).

    Claims are already safe across processes (a rename picks one winner); what this adds is
    that who holds which task is shared too, under a cross-process lock, so a worker never
    adopts (as moved by its agent) a task a worker of another process claimed.
    """

    def __init__(self, project_root: Path, shared_dir: Path) -> None:
        super().__init__(project_root)
        self._lock = SharedLock(shared_dir / "tasks.lock")  # type: ignore[assignment]
        self._owners = _TaskOwners(shared_dir / "task-owners")  # type: ignore[assignment]
