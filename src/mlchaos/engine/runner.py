"""The runner: preflight → baseline → faults under watch → removal → recovery → verdict.

Design choices that make the verdict trustworthy and the rollback fast:

* Every probe and every abort condition runs in its own task at the run's
  interval, so a slow probe never delays an abort check; an abort sets one
  event that the main loop waits on, and removal starts at once.
* Removal is a ``finally`` for every exit path (normal end, abort, probe or
  fault exception, SIGINT, SIGTERM, ``mlchaos stop``).  Signals only set a
  flag: a second Ctrl-C prints a notice and does not skip removal.
* Every injected fault has a lease file, renewed by a heartbeat; a detached
  watchdog reverts any lease that lapses, so ``kill -9`` of this process
  leaves no fault behind for longer than the TTL.
* "before" and "after" are explicit checkpoints (every steady-state probe
  measured at the end of the baseline and recovery phases).  Every evaluation
  records the span of time it measured and the health of its instruments
  (:mod:`mlchaos.engine.instruments`); what it is evidence of is decided from
  those alone (:mod:`mlchaos.engine.records`).
* The runner only orchestrates: the verdict is :func:`mlchaos.engine.verdict.judge`
  over the run's records, called after teardown, when everything (the load
  generator's own validity included) is known; the summary is built in
  :mod:`mlchaos.engine.summary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlchaos import __version__, registry
from mlchaos.engine import verdict
from mlchaos.engine.faultlife import FaultLifecycle, FaultRun
from mlchaos.engine.instruments import LoopMonitor
from mlchaos.engine.journal import Journal
from mlchaos.engine.lease import LeaseStore, recover_stale
from mlchaos.engine.loadservice import RunLoad
from mlchaos.engine.probing import ProbeLoops, ProbeRun, _Stop
from mlchaos.engine.records import FaultRecord, RunRecords
from mlchaos.engine.state import is_stopped, state_dir, write_json_atomic
from mlchaos.engine.steps import StepLifecycle
from mlchaos.engine.summary import as_dict, build_summary
from mlchaos.engine.verdict import Status, Verdict
from mlchaos.plugin import Context, PluginError, Target, TargetError
from mlchaos.spec.experiment import Experiment


@dataclasses.dataclass
class RunResult:
    status: Status
    reason: str
    run_id: str
    journal: Path | None
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


class _Ctx(Context):
    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.run_id = runner.run_id
        self.state_dir = runner.base
        self.lease_ttl = runner.spec.lease_ttl
        self._services: dict[str, Any] = {}

    def target(self, name: str) -> Target:
        try:
            return self._runner.targets[name]
        except KeyError:
            raise TargetError(f"no target named {name!r} in this experiment") from None

    def log(self, event: str, **fields: Any) -> None:
        self._runner.journal.log(event, **fields)

    @property
    def services(self) -> dict[str, Any]:
        return self._services

    @property
    def phase(self) -> str:
        return self._runner.phase


class Runner(ProbeLoops, RunLoad, FaultLifecycle, StepLifecycle):
    """Runs one validated experiment.  Use :func:`run_experiment` for the common case."""

    def __init__(
        self,
        experiment: Experiment,
        *,
        journal_path: Path | str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        base: Path | None = None,
        watchdog: bool = True,
    ) -> None:
        self.experiment = experiment  # what the user handed in: every part validated
        self.spec = experiment.spec  # its frame: title, phases, timings
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.base = base or state_dir()
        self.leases = LeaseStore(self.base)
        self.journal = Journal(journal_path)
        self._on_event = on_event
        self.use_watchdog = watchdog
        self.ctx = _Ctx(self)
        self.targets: dict[str, Target] = {}
        self.faults: list[FaultRun] = []
        self.probes: list[ProbeRun] = []
        self.phase = "init"
        self.phase_times: dict[str, list[float]] = {}
        self._stop = asyncio.Event()
        self._stop_reason: tuple[Status, str] | None = None
        self._errors: list[str] = []
        self._signals = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._step_tasks: list[asyncio.Task[None]] = []
        self._removal_started: float | None = None
        self._load: Any = None
        self._load_report: Any = None
        self._owned: list[list[float]] = []
        self._baseline: tuple[str | None, str] = (None, "")
        self._reached_faults = False
        self._refused: str | None = None
        self._loop_monitor = LoopMonitor(footprint=lambda: [p for t in list(self.targets.values())
                                                            for p in t.footprint()])

    # -- events -------------------------------------------------------------------------------
    def log(self, event: str, **fields: Any) -> None:
        rec = self.journal.log(event, **fields)
        if self._on_event is not None:
            with contextlib.suppress(Exception):
                self._on_event(rec)

    def _set_phase(self, name: str) -> None:
        now = time.time()
        if self.phase in self.phase_times and len(self.phase_times[self.phase]) == 1:
            self.phase_times[self.phase].append(now)
        self.phase = name
        self.phase_times[name] = [now]
        self.log("phase", phase=name)

    def request_stop(self, status: Status, reason: str) -> None:
        """Ask the run to end now; the first reason wins."""
        if self._stop_reason is None:
            self._stop_reason = (status, reason)
            self.log("stop-requested", status=status.value, reason=reason)
        self._stop.set()

    def _error(self, msg: str) -> None:
        self._errors.append(msg)
        self.log("error", message=msg)
        self.request_stop(Status.ERRORED, msg)

    # -- signals ------------------------------------------------------------------------------
    def _on_signal(self, signame: str) -> None:
        self._signals += 1
        if self._signals == 1:
            self.request_stop(Status.ABORTED, f"interrupted by {signame}")
        else:
            self.log("signal-ignored", signal=signame,
                     message="fault removal in progress; it will not be skipped")

    @contextlib.contextmanager
    def _signal_handlers(self) -> Any:
        loop = asyncio.get_running_loop()
        installed = []
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
                # asyncio resets to the default handler; put back what the caller had
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])

    # -- main ---------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        t_start = time.time()
        run_file = self.base / "runs" / f"{self.run_id}.json"
        self.log("run-start", run_id=self.run_id, title=self.spec.title, source=self.experiment.source,
                 version=__version__, pid=os.getpid(), host=socket.gethostname(),
                 config=self.effective_config(), planned_length=self.experiment.planned_length())
        if is_stopped(self.base):
            # nothing was started or touched: say exactly that, under a status of its own (exit 7)
            self._refused = ("refused: 'mlchaos stop' is in force on this machine; nothing was started or "
                             "touched (release it with 'mlchaos stop --release')")
            self.log("run-refused", reason=self._refused)
            return self._finish(verdict.judge(self.records()), t_start)
        write_json_atomic(run_file, {"run_id": self.run_id, "pid": os.getpid(), "started": t_start,
                                     "source": self.experiment.source})
        await asyncio.to_thread(recover_stale, self.base, self.run_id, self.log)
        try:
            with self._signal_handlers():
                self._tasks.append(asyncio.create_task(self._loop_monitor.run()))
                try:
                    deadline = asyncio.get_running_loop().call_later(
                        max(0.0, self.spec.max_duration), self.request_stop, Status.ABORTED,
                        f"max_duration ({self.spec.max_duration:g}s) reached")
                    try:
                        await self._phases()
                    finally:
                        deadline.cancel()
                except _Stop:
                    pass
                except Exception as exc:  # internal error: still remove everything
                    self._error(f"internal error: {type(exc).__name__}: {exc}")
                finally:
                    await self._teardown()
        finally:
            run_file.unlink(missing_ok=True)
        # judged after teardown: the load generator's own verdict on its load is known only now
        return self._finish(verdict.judge(self.records()), t_start)

    async def _phases(self) -> None:
        # preflight: targets reachable, faults injectable, nothing touched
        self._set_phase("preflight")
        await self._preflight()
        self._record_owned()
        if self.use_watchdog and (self.faults or self._owned):
            from mlchaos.engine.watchdog import spawn

            self.log("watchdog", pid=spawn(self.base, self.run_id))
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        self._check_stop()
        if self._load_spec() is not None:
            await self._start_load()
        for pr in self.probes:
            await pr.probe.start()
        self._tasks += [asyncio.create_task(self._probe_loop(pr)) for pr in self.probes if pr.role == "steady"]
        # baseline
        self._set_phase("baseline")
        await self._sleep(self.spec.phases.baseline)
        state, why = await self._checkpoint("before")
        if state is not None and self.spec.phases.settle > 0:
            state, why = await self._settle(state, why)
        if state is not None:
            self._baseline = (state, why)
            return
        # faults
        self._set_phase("fault")
        self._reached_faults = True
        self._tasks += [asyncio.create_task(self._probe_loop(pr)) for pr in self.probes if pr.role == "abort"]
        phase_start = time.monotonic()
        fault_tasks = [asyncio.create_task(self._fault_task(fr, phase_start)) for fr in self.faults]
        self._start_timed_steps(phase_start)
        await self._sleep(self.experiment.fault_phase_length())
        await self._remove_all("end of fault phase")
        for t in fault_tasks:
            t.cancel()
        await asyncio.gather(*fault_tasks, return_exceptions=True)
        # steps still running (an 'at' step, one after a named fault's removal) finish, bounded by their timeouts
        await self._wait_steps()
        self._check_stop()
        await self._run_steps_on("fault-removed")
        self._check_stop()
        # recovery
        self._set_phase("recovery")
        await self._run_steps_on("recovery")
        await self._sleep(self.spec.phases.recovery)
        await self._checkpoint("after")

    def records(self) -> RunRecords:
        """What the verdict may be judged on, and nothing else."""
        faults = [FaultRecord(fr.label, fr.plugin, fr.injected_at, fr.removed_at,
                              list(fr.applied.targets) if fr.applied else [], dict(fr.observed), fr.error)
                  for fr in self.faults]
        state, why = self._baseline
        return RunRecords(
            t0=self.journal.t0, probes=[pr.rec for pr in self.probes], faults=faults,
            phase_times=dict(self.phase_times), errors=list(self._errors),
            stop=(self._stop_reason[0].value, self._stop_reason[1]) if self._stop_reason else None,
            baseline=state, baseline_reason=why, reached_faults=self._reached_faults,
            load_validity=self._load_validity(), refused=self._refused,
        )

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stop

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        self._check_stop()

    # -- preflight ----------------------------------------------------------------------------
    async def _preflight(self) -> None:
        for name, tspec in self.experiment.targets.items():
            cls = registry.get("target", tspec.platform)
            self.targets[name] = cls(tspec, self.ctx)
        for name, target in self.targets.items():
            try:
                await target.start()
                facts = await target.preflight()
            except PluginError as exc:
                self._error(f"target {name!r} unreachable: {exc}")
                raise _Stop from None
            self.log("target-ready", target=name, platform=target.spec.platform, facts=facts)
        for i, fspec in enumerate(self.experiment.faults):
            cls = registry.get("fault", fspec.fault)
            label = fspec.name or f"{fspec.fault}#{i}"
            fr = FaultRun(fspec, cls(fspec, self.ctx), label, fspec.fault)
            self.faults.append(fr)
        for fr in self.faults:
            try:
                fr.planned = await asyncio.wait_for(fr.fault.preflight(), fr.fault.preflight_timeout) or {}
            except (PluginError, ValueError) as exc:
                self._error(f"fault {fr.label} cannot be injected: {exc}")
                raise _Stop from None
            except TimeoutError:
                self._error(f"fault {fr.label}: preflight did not finish within {fr.fault.preflight_timeout:g}s")
                raise _Stop from None
            self.log("fault-preflight", fault=fr.label, plugin=fr.plugin, planned=fr.planned)
        self._plan_probes(self.experiment.steady_state, self.experiment.abort, self.ctx)

    # -- teardown -----------------------------------------------------------------------------
    async def _teardown(self) -> None:
        self._stop.set()
        removal_reason = self._stop_reason[1] if self._stop_reason else "end of run"
        await self._remove_all(removal_reason)
        await self._cancel_steps()  # a step still running is part of a run that is over: its group is killed
        if self._stop_reason is not None and self._stop_reason[0] is Status.ABORTED:
            self.log("aborted", reason=self._stop_reason[1],
                     removal_latency_s=round(time.time() - (self._removal_started or time.time()), 6))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pr in self.probes:
            with contextlib.suppress(Exception):
                await pr.probe.stop()
        if self._load is not None:
            try:
                self._load_report = await self._load.stop()
                self.log("load-report", report=as_dict(self._load_report))
            except Exception as exc:
                self.log("error", message=f"load generator: {exc}")
        for name, target in self.targets.items():
            try:
                await target.stop()
            except Exception as exc:
                self.log("error", message=f"target {name!r} stop: {exc}")
        # any lease of ours still on disk belongs to a fault we could not remove: leave it to the watchdog
        left = self.leases.for_run(self.run_id)
        if left:
            self.log("leases-left", leases=[d.get("lease_id") for _, d in left])
        if self.phase in self.phase_times and len(self.phase_times[self.phase]) == 1:
            self.phase_times[self.phase].append(time.time())

    # -- summary ------------------------------------------------------------------------------
    def effective_config(self) -> dict[str, Any]:
        return {
            "experiment": self.spec.model_dump(mode="json", exclude={"target"}),
            "targets": {k: t.model_dump(mode="json") for k, t in self.experiment.targets.items()},
            "method": [f.model_dump(mode="json") for f in self.experiment.faults],
            "steps": [s.model_dump(mode="json") for s in self.experiment.steps],
            "steady_state": [p.model_dump(mode="json") for p in self.experiment.steady_state],
            "abort": [p.model_dump(mode="json") for p in self.experiment.abort],
            "load": self.experiment.load.model_dump(mode="json") if self.experiment.load is not None else None,
        }

    def _finish(self, v: Verdict, t_start: float) -> RunResult:
        summary = build_summary(self, v, t_start, time.time())
        self.log("summary", **summary)
        self.journal.close()
        return RunResult(v.status, v.reason, self.run_id, self.journal.path, summary)


def run_experiment(
    experiment: Experiment,
    *,
    journal_path: Path | str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run an experiment to its verdict (blocking).  Faults are removed on every exit path.

    The standard asyncio loop is enough: the runner's own work is a few probes
    per second.  The load generator picks its own (uvloop) loop.
    """
    runner = Runner(experiment, journal_path=journal_path, on_event=on_event)
    with asyncio.Runner() as r:
        return r.run(runner.run())
