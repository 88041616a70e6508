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
  measured at the end of the baseline and recovery phases); "during" is every
  evaluation that started while a fault was in place.
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
from mlchaos.engine.journal import Journal
from mlchaos.engine.lease import Lease, LeaseStore
from mlchaos.engine.state import is_stopped, state_dir, write_json_atomic
from mlchaos.engine.verdict import Status
from mlchaos.plugin import (
    Applied,
    Context,
    Fault,
    Measurement,
    PluginError,
    Probe,
    ProbeError,
    Target,
    TargetError,
)
from mlchaos.spec.loader import ValidatedExperiment

INJECT_TIMEOUT = 15.0
REMOVE_TIMEOUT = 10.0
DEFAULT_PROBE_TIMEOUT = 5.0


@dataclasses.dataclass
class Observation:
    t: float
    phase: str
    during: bool
    value: Any
    ok: bool | None  # None: insufficient data
    reason: str = ""
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ProbeRun:
    spec: Any
    probe: Probe
    label: str
    role: str  # "steady" | "abort"
    observations: list[Observation] = dataclasses.field(default_factory=list)
    before: Observation | None = None
    after: Observation | None = None

    def during(self) -> list[Observation]:
        return [o for o in self.observations if o.during]


@dataclasses.dataclass
class FaultRun:
    spec: Any
    fault: Fault
    label: str
    plugin: str
    lease: Lease | None = None
    applied: Applied | None = None
    injected_at: float | None = None
    removed_at: float | None = None
    observed: dict[str, Any] = dataclasses.field(default_factory=dict)
    planned: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    removal: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return self.injected_at is not None and self.removed_at is None


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
        self.lease_ttl = runner.v.experiment.lease_ttl
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


class _Stop(Exception):
    pass


class Runner:
    """Runs one validated experiment.  Use :func:`run_experiment` for the common case."""

    def __init__(
        self,
        v: ValidatedExperiment,
        *,
        journal_path: Path | str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        base: Path | None = None,
        watchdog: bool = True,
    ) -> None:
        self.v = v
        self.exp = v.experiment
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
        self._removal_started: float | None = None
        self._load: Any = None
        self._load_report: Any = None
        self.decided_by: list[str] = []
        self._owned: list[list[float]] = []

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
        self.log("run-start", run_id=self.run_id, title=self.exp.title, source=self.v.source,
                 version=__version__, pid=os.getpid(), host=socket.gethostname(),
                 config=self.effective_config(), planned_length=self.v.planned_length())
        if is_stopped(self.base):
            return self._finish(Status.ERRORED,
                                "refused: 'mlchaos stop' is in force on this machine (release it with 'mlchaos stop --release')",
                                t_start)
        write_json_atomic(run_file, {"run_id": self.run_id, "pid": os.getpid(), "started": t_start,
                                     "source": self.v.source})
        status: Status | None = None
        reason = ""
        try:
            with self._signal_handlers():
                try:
                    deadline = asyncio.get_running_loop().call_later(
                        max(0.0, self.exp.max_duration), self.request_stop, Status.ABORTED,
                        f"max_duration ({self.exp.max_duration:g}s) reached")
                    try:
                        status, reason = await self._phases()
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
        final_status, final_reason = self._decide(status, reason)
        return self._finish(final_status, final_reason, t_start)

    async def _phases(self) -> tuple[Status, str]:
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
        await self._sleep(self.exp.phases.baseline)
        ok, why = await self._checkpoint("before")
        if not ok and self.exp.phases.settle > 0:
            ok, why = await self._settle(why)
        if not ok:
            self.decided_by = [p.label for p in self.probes if p.before is not None and p.before.ok is not True]
            return Status.NOT_RUN, f"baseline steady state not met: {why}; no fault was injected"
        # faults
        self._set_phase("fault")
        self._tasks += [asyncio.create_task(self._probe_loop(pr)) for pr in self.probes if pr.role == "abort"]
        phase_start = time.monotonic()
        fault_tasks = [asyncio.create_task(self._fault_task(fr, phase_start)) for fr in self.faults]
        await self._sleep(self.v.fault_phase_length())
        await self._remove_all("end of fault phase")
        for t in fault_tasks:
            t.cancel()
        await asyncio.gather(*fault_tasks, return_exceptions=True)
        # recovery
        self._set_phase("recovery")
        await self._sleep(self.exp.phases.recovery)
        ok_after, why_after = await self._checkpoint("after")
        return self._judge(ok_after, why_after)

    def _judge(self, ok_after: bool, why_after: str) -> tuple[Status, str]:
        for fr in self.faults:
            if fr.injected_at is None:
                return Status.ERRORED, f"fault {fr.label} was never injected"
            if not fr.applied or not fr.applied.targets:
                return Status.ERRORED, f"fault {fr.label} hit no target"
            affected = fr.observed.get("affected")
            if isinstance(affected, int | float) and affected <= 0:
                seen = fr.observed.get("seen", "?")
                return Status.ERRORED, f"fault {fr.label} affected nothing ({affected} of {seen}): no evidence"
        for pr in self.probes:
            if pr.role != "steady":
                continue
            breaches = [o for o in pr.during() if o.ok is False]
            if breaches:
                self.decided_by = [p.label for p in self.probes
                                   if p.role == "steady" and any(o.ok is False for o in p.during())]
                first = breaches[0]
                at = first.t - self.phase_times.get("fault", [first.t])[0]
                return Status.FAILED, (f"{pr.label} deviated during the fault window "
                                       f"({len(breaches)} of {len(pr.during())} evaluations; first at +{at:.2f}s: {first.reason})")
        if not ok_after:
            self.decided_by = [p.label for p in self.probes if p.after is not None and p.after.ok is not True]
            return Status.FAILED, f"hypothesis did not hold after recovery: {why_after}"
        for pr in self.probes:
            if pr.role == "steady" and self.faults and not any(o.ok is not None for o in pr.during()):
                return Status.ERRORED, f"{pr.label} produced no evidence during the fault window (insufficient data)"
        validity = self._load_validity()
        if validity is not None and not validity[0]:
            return Status.ERRORED, f"load was INVALID ({validity[1]}): the measurements cannot be trusted"
        return Status.PASSED, "hypothesis held before, during and after the faults"

    def _decide(self, status: Status | None, reason: str) -> tuple[Status, str]:
        if self._errors:
            return Status.ERRORED, "; ".join(self._errors)
        if status is Status.NOT_RUN:
            return status, reason
        if self._stop_reason is not None:
            return self._stop_reason
        if status is None:
            return Status.ERRORED, "run ended without a verdict"
        return status, reason

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
        for name, tspec in self.v.targets.items():
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
        for i, fspec in enumerate(self.v.faults):
            cls = registry.get("fault", fspec.fault)
            label = fspec.name or f"{fspec.fault}#{i}"
            fr = FaultRun(fspec, cls(fspec, self.ctx), label, fspec.fault)
            self.faults.append(fr)
        for fr in self.faults:
            try:
                fr.planned = await asyncio.wait_for(fr.fault.preflight(), INJECT_TIMEOUT) or {}
            except (PluginError, ValueError) as exc:
                self._error(f"fault {fr.label} cannot be injected: {exc}")
                raise _Stop from None
            except TimeoutError:
                self._error(f"fault {fr.label}: preflight timed out")
                raise _Stop from None
            self.log("fault-preflight", fault=fr.label, plugin=fr.plugin, planned=fr.planned)
        for role, specs in (("steady", self.v.steady_state), ("abort", self.v.abort)):
            for i, pspec in enumerate(specs):
                cls = registry.get("probe", pspec.probe)
                label = pspec.name or f"{pspec.probe}#{i}" + (" (abort)" if role == "abort" else "")
                self.probes.append(ProbeRun(pspec, cls(pspec, self.ctx), label, role))

    # -- load ---------------------------------------------------------------------------------
    def _load_spec(self) -> Any:
        return self.v.load

    async def _start_load(self) -> None:
        from mlchaos.load import LoadRunner

        spec = self.v.load
        assert spec is not None
        here = Path(self.v.source).resolve().parent if Path(self.v.source).exists() else None

        def beside(name: str | None) -> str | None:
            """Files named next to the experiment file (bodies, a CA bundle) are found wherever the run starts."""
            if here is None or not name or Path(name).is_absolute() or not (here / name).exists():
                return None
            return str(here / name)

        req = getattr(spec, "request", None)
        if req is not None and (body := beside(getattr(req, "body_file", None))):
            spec = spec.model_copy(update={"request": req.model_copy(update={"body_file": body})})
        if ca := beside(getattr(spec, "ca_file", None)):
            spec = spec.model_copy(update={"ca_file": ca})
        base_url = None
        tname = getattr(spec, "target", None) or "default"
        if tname in self.targets:
            with contextlib.suppress(PluginError):
                base_url = self.targets[tname].url()
        # the tightest latency bound sets the generator's own schedule-lag budget
        bounds = [p.max for p in self.v.steady_state if p.probe == "latency" and p.max is not None]
        self._load = LoadRunner(spec, base_url=base_url, latency_tolerance=min(bounds) if bounds else None)
        try:
            await self._load.start()
        except Exception as exc:
            self._error(f"load generator could not start: {exc}")
            raise _Stop from None
        self.ctx.services["load"] = self._load
        self.log("load-start", target_rate=getattr(spec, "rate", None), url=self._load.url)
        self._tasks.append(asyncio.create_task(self._load_ticks()))

    async def _load_ticks(self) -> None:
        """One journal line per second of load: the report's throughput/latency/error charts."""
        load = self._load
        while True:
            await asyncio.sleep(1.0)
            try:
                w = load.window(1.0)
            except Exception:
                continue
            self.log("load-tick", count=w.count, throughput=w.throughput, p50=w.p50, p99=w.p99,
                     error_rate=w.error_rate, errors=dict(w.errors))

    def _load_validity(self) -> tuple[bool, str] | None:
        rep = self._load_report
        if rep is None:
            return None
        valid = getattr(rep, "valid", None)
        if valid is None:
            return None
        return bool(valid), str(getattr(rep, "invalid_reason", "") or "")

    # -- probes -------------------------------------------------------------------------------
    async def _measure(self, pr: ProbeRun) -> Measurement:
        timeout = getattr(pr.spec, "timeout", None) or DEFAULT_PROBE_TIMEOUT
        try:
            return await asyncio.wait_for(pr.probe.measure(), timeout=timeout + 0.5)
        except TimeoutError:
            raise ProbeError(f"probe did not answer within {timeout:g}s") from None

    async def _evaluate(self, pr: ProbeRun) -> Observation:
        t = time.time()
        # a windowed probe at time t summarises [t - window, t]: it is "during" if that overlaps a fault
        window = float(getattr(pr.spec, "window", None) or 0.0)
        during = any(fr.injected_at is not None and fr.injected_at <= t
                     and (fr.removed_at is None or fr.removed_at >= t - window) for fr in self.faults)
        try:
            m = await self._measure(pr)
        except (ProbeError, PluginError) as exc:
            return Observation(t, self.phase, during, None, False, f"probe error: {exc}")
        if m.insufficient:
            return Observation(t, self.phase, during, m.value, None, f"insufficient data: {m.insufficient}", m.detail)
        if pr.role == "abort":
            trip, why = verdict.tripped(pr.spec, m.value)
            return Observation(t, self.phase, during, m.value, not trip, why, m.detail)
        ok, why = verdict.within(pr.spec, m.value)
        return Observation(t, self.phase, during, m.value, ok, why, m.detail)

    def _record(self, pr: ProbeRun, obs: Observation, checkpoint: str | None = None) -> None:
        pr.observations.append(obs)
        # what the probe saw (which expectation failed, which rows changed) goes with every
        # evaluation that did not hold, and with the checkpoints: the report's "why"
        detail = obs.detail if (obs.ok is not True or checkpoint) and obs.detail else None
        self.log("probe", probe=pr.label, role=pr.role, phase=obs.phase, during=obs.during,
                 value=obs.value, ok=obs.ok, reason=obs.reason or None, checkpoint=checkpoint, detail=detail)

    async def _probe_loop(self, pr: ProbeRun) -> None:
        interval = self.exp.interval
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                if self._removal_started is not None and pr.role == "abort":
                    return
                obs = await self._evaluate(pr)
                self._record(pr, obs)
                if pr.role == "abort" and obs.ok is False:
                    if self._stop_reason is None:
                        self.decided_by = [pr.label]
                    self.request_stop(Status.ABORTED, f"abort condition {pr.label} tripped: {obs.reason}")
                    return
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(f"probe {pr.label} raised {type(exc).__name__}: {exc}")

    async def _settle(self, why: str) -> tuple[bool, str]:
        """Re-check the baseline every second until it holds or phases.settle runs out."""
        settle = self.exp.phases.settle
        t0 = time.monotonic()
        attempt = 1
        while True:
            self.log("baseline-unsettled", attempt=attempt, reason=why,
                     waited=round(time.monotonic() - t0, 3), settle=settle)
            left = settle - (time.monotonic() - t0)
            if left <= 0:
                return False, f"{why} (still after {settle:g}s of settling, {attempt} checks)"
            await self._sleep(min(1.0, left))
            attempt += 1
            ok, why = await self._checkpoint("before")
            if ok:
                self.log("baseline-settled", attempts=attempt, waited=round(time.monotonic() - t0, 3))
                return True, ""

    async def _checkpoint(self, which: str) -> tuple[bool, str]:
        steady = [pr for pr in self.probes if pr.role == "steady"]
        if not steady:
            return True, ""
        try:
            results = await asyncio.gather(*(self._evaluate(pr) for pr in steady))
        except Exception as exc:
            self._error(f"probe raised {type(exc).__name__}: {exc}")
            raise _Stop from None
        bad = []
        for pr, obs in zip(steady, results, strict=True):
            obs.during = False
            self._record(pr, obs, checkpoint=which)
            setattr(pr, which, obs)
            if obs.ok is not True:
                bad.append(f"{pr.label}: {obs.reason or 'not met'}")
        return (not bad), "; ".join(bad)

    # -- faults -------------------------------------------------------------------------------
    async def _fault_task(self, fr: FaultRun, phase_start: float) -> None:
        delay = fr.spec.at - (time.monotonic() - phase_start)
        if delay > 0:
            await asyncio.sleep(delay)
        if self._stop.is_set() or self._removal_started is not None:
            return
        await self._inject(fr)
        if fr.spec.duration is not None and fr.active:
            await asyncio.sleep(fr.spec.duration)
            await self._remove(fr)

    async def _inject(self, fr: FaultRun) -> None:
        """Write ahead, inject, confirm: at every instant some record on disk says how to undo the fault.

        Before the plugin touches anything, the intent (the undo record its
        ``intent`` planned) is written and fsynced, with the run's watchdog
        known to be alive; it is renewed while ``inject`` runs and replaced by
        the lease once ``inject`` returned.  A failed or cancelled injection
        is reverted from the intent at once.  ``kill_point`` marks where
        tests/engine/test_writeahead.py kills the runner (issue #16).
        """
        from mlchaos.engine.lease import kill_point

        lease = Lease.new(f"{len(self.faults)}-{uuid.uuid4().hex[:8]}", self.exp.lease_ttl)
        fr.lease = lease
        intent: dict[str, Any] | None = None
        written = False

        async def keep_intent() -> None:  # the heartbeat renews only confirmed faults
            while True:
                await asyncio.sleep(max(0.05, min(1.0, lease.ttl / 3)))
                self.leases.renew(self.run_id, lease)

        def undo_intent() -> None:
            if intent is not None:
                type(fr.fault).revert(dict(intent))
            self.leases.release(self.run_id, lease.id)

        keep: asyncio.Task[None] | None = None
        try:
            if self.use_watchdog:
                from mlchaos.engine.watchdog import ensure

                await asyncio.to_thread(ensure, self.base, self.run_id)
            intent = await asyncio.wait_for(fr.fault.intent(lease), INJECT_TIMEOUT)
            lease.renew()
            self.leases.intend(lease, run_id=self.run_id, plugin=fr.plugin, undo=intent, runner_pid=os.getpid())
            written = True
            self.log("fault-intent", fault=fr.label, plugin=fr.plugin, lease=lease.id, planned_undo=intent is not None)
            kill_point("intent-written")
            keep = asyncio.create_task(keep_intent())
            applied = await asyncio.wait_for(fr.fault.inject(lease), INJECT_TIMEOUT)
        except TimeoutError:
            fr.error = f"injection did not finish within {INJECT_TIMEOUT:g}s"
        except (PluginError, ValueError, OSError) as exc:
            fr.error = str(exc)
        except asyncio.CancelledError:
            if written:  # the run is ending while the fault went in: take it out now, not at the TTL
                with contextlib.suppress(Exception):
                    undo_intent()
            raise
        except Exception as exc:
            fr.error = f"{type(exc).__name__}: {exc}"
        else:
            kill_point("inject-returned")
            fr.applied = applied
            fr.injected_at = time.time()
            self.leases.record(lease, run_id=self.run_id, plugin=fr.plugin, undo=applied.undo,
                               runner_pid=os.getpid())
            self.log("fault-inject", fault=fr.label, plugin=fr.plugin, targets=applied.targets,
                     planned=applied.planned or fr.planned, actual=applied.actual,
                     lease={"id": lease.id, "ttl": lease.ttl, "expires_at": lease.expires_at})
            return
        finally:
            if keep is not None:
                keep.cancel()
        self.log("fault-inject-failed", fault=fr.label, plugin=fr.plugin, error=fr.error)
        if written:  # it may have half happened: undo what the intent names (the watchdog retries if this fails)
            try:
                await asyncio.to_thread(undo_intent)
            except Exception as exc:
                self.log("fault-revert-failed", fault=fr.label, error=f"{type(exc).__name__}: {exc}",
                         lease_expires_at=lease.expires_at)
        self._error(f"fault {fr.label} could not be injected: {fr.error}")

    async def _remove(self, fr: FaultRun) -> None:
        """Remove one fault; concurrent callers (its own timer, an abort) share one removal."""
        if fr.removal is None:
            if not fr.active:
                return
            fr.removal = asyncio.ensure_future(self._do_remove(fr))
        await asyncio.shield(fr.removal)

    async def _do_remove(self, fr: FaultRun) -> None:
        with contextlib.suppress(Exception):
            fr.observed = await asyncio.wait_for(fr.fault.observed(), 2.0) or {}
        try:
            await asyncio.wait_for(fr.fault.remove(), REMOVE_TIMEOUT)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                msg = f"removal did not finish within {REMOVE_TIMEOUT:g}s"
            fr.error = msg
            exp_at = fr.lease.expires_at if fr.lease else None
            self.log("fault-remove-failed", fault=fr.label, error=msg, lease_expires_at=exp_at)
            self._errors.append(f"fault {fr.label} could not be removed: {msg} (its lease expires by itself)")
            fr.removed_at = time.time()
            return
        fr.removed_at = time.time()
        assert fr.lease is not None
        self.leases.release(self.run_id, fr.lease.id)
        self.log("fault-remove", fault=fr.label, observed=fr.observed,
                 active_s=round(fr.removed_at - (fr.injected_at or fr.removed_at), 6))

    async def _remove_all(self, why: str) -> None:
        active = [fr for fr in self.faults if fr.active]
        if self._removal_started is None:
            self._removal_started = time.time()
        if not active:
            return
        self.log("remove-all", reason=why, faults=[fr.label for fr in active])
        await asyncio.gather(*(self._remove(fr) for fr in active), return_exceptions=True)
        self.log("removed-all", faults=[fr.label for fr in active])

    def _record_owned(self) -> None:
        """Keep the run file's list of target-owned processes current (restarts change PIDs)."""
        owned = [po for t in self.targets.values() for po in t.owned()]
        if owned != self._owned:
            self._owned = owned
            write_json_atomic(self.base / "runs" / f"{self.run_id}.json",
                              {"run_id": self.run_id, "pid": os.getpid(), "started": self.journal.t0,
                               "source": self.v.source, "owned": owned})

    async def _heartbeat(self) -> None:
        period = max(0.05, min(1.0, self.exp.lease_ttl / 3))
        while True:
            await asyncio.sleep(period)
            self._record_owned()
            if is_stopped(self.base):
                self.request_stop(Status.ABORTED, "stopped by 'mlchaos stop'")
            for fr in self.faults:
                if fr.active and fr.lease is not None:
                    try:
                        self.leases.renew(self.run_id, fr.lease)
                        await asyncio.wait_for(fr.fault.renew(fr.lease), period)
                    except Exception as exc:
                        self.log("lease-renew-failed", fault=fr.label, error=str(exc))

    # -- teardown -----------------------------------------------------------------------------
    async def _teardown(self) -> None:
        self._stop.set()
        removal_reason = self._stop_reason[1] if self._stop_reason else "end of run"
        await self._remove_all(removal_reason)
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
                self.log("load-report", report=_as_dict(self._load_report))
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
            "experiment": self.exp.model_dump(mode="json", exclude={"target"}),
            "targets": {k: t.model_dump(mode="json") for k, t in self.v.targets.items()},
            "method": [f.model_dump(mode="json") for f in self.v.faults],
            "steady_state": [p.model_dump(mode="json") for p in self.v.steady_state],
            "abort": [p.model_dump(mode="json") for p in self.v.abort],
            "load": self.v.load.model_dump(mode="json") if self.v.load is not None else None,
        }

    def _probe_summary(self, pr: ProbeRun) -> dict[str, Any]:
        def obs(o: Observation | None) -> dict[str, Any] | None:
            return None if o is None else {"value": o.value, "ok": o.ok, "reason": o.reason or None}

        during = pr.during()
        nums = [o.value for o in during if isinstance(o.value, int | float) and not isinstance(o.value, bool)]
        tol = {k: getattr(pr.spec, k) for k in ("max", "min", "between", "equals", "above", "below")
               if getattr(pr.spec, k) is not None}
        return {
            "name": pr.label, "role": pr.role, "probe": pr.spec.probe, "tolerance": tol,
            "before": obs(pr.before), "after": obs(pr.after),
            "during": {
                "evaluations": len(during),
                "breaches": sum(1 for o in during if o.ok is False),
                "insufficient": sum(1 for o in during if o.ok is None),
                "min": min(nums) if nums else None, "max": max(nums) if nums else None,
            },
        }

    def _finish(self, status: Status, reason: str, t_start: float) -> RunResult:
        t_end = time.time()
        summary = {
            "run_id": self.run_id, "title": self.exp.title, "source": self.v.source,
            "status": status.value, "exit_code": status.exit_code, "reason": reason,
            "decided_by": self.decided_by, "weight": self.exp.weight,
            "version": __version__,
            "timing": {"start": t_start, "end": t_end, "duration_s": round(t_end - t_start, 6),
                       "phases": {k: v for k, v in self.phase_times.items()}},
            "probes": [self._probe_summary(pr) for pr in self.probes],
            "faults": [{
                "name": fr.label, "plugin": fr.plugin, "injected_at": fr.injected_at, "removed_at": fr.removed_at,
                "targets": fr.applied.targets if fr.applied else [],
                "planned": (fr.applied.planned if fr.applied and fr.applied.planned else fr.planned),
                "actual": fr.applied.actual if fr.applied else {}, "observed": fr.observed, "error": fr.error,
            } for fr in self.faults],
            "removal_latency_s": None,
            "config": self.effective_config(),
            "load": _as_dict(self._load_report),
        }
        unsettled = [e for e in self.journal.events if e.get("event") == "baseline-unsettled"]
        if unsettled:
            settled = next((e for e in self.journal.events if e.get("event") == "baseline-settled"), None)
            summary["settle"] = {"failed_checks": len(unsettled), "settled": settled is not None,
                                 "waited_s": settled["waited"] if settled else unsettled[-1]["waited"]}
        aborted = next((e for e in self.journal.events if e.get("event") == "aborted"), None)
        if aborted:
            summary["removal_latency_s"] = aborted.get("removal_latency_s")
        self.log("summary", **summary)
        self.journal.close()
        return RunResult(status, reason, self.run_id, self.journal.path, summary)


def _as_dict(obj: Any) -> Any:
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def run_experiment(
    v: ValidatedExperiment,
    *,
    journal_path: Path | str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run an experiment to its verdict (blocking).  Faults are removed on every exit path.

    The standard asyncio loop is enough: the runner's own work is a few probes
    per second.  The load generator picks its own (uvloop) loop.
    """
    runner = Runner(v, journal_path=journal_path, on_event=on_event)
    with asyncio.Runner() as r:
        return r.run(runner.run())
