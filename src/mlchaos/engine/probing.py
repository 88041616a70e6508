"""The probe side of a run: evaluations on a schedule, checkpoints, and what each one is evidence of.

Each steady-state probe and each abort condition runs in its own task at the
run's interval, so a slow probe never delays an abort check.  An evaluation
records the span it measured and the readings of its instruments
(:mod:`mlchaos.engine.instruments`); its tolerance is compared exactly
(:mod:`mlchaos.engine.tolerance`).  Mixed into :class:`mlchaos.engine.runner.Runner`,
whose state it reads (the fault windows, the phase, the stop event).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from mlchaos import registry
from mlchaos.engine import verdict
from mlchaos.engine.instruments import LoopMonitor, assess
from mlchaos.engine.records import Evaluation, FaultRecord, ProbeRecord, RunRecords, relation
from mlchaos.engine.verdict import Status
from mlchaos.plugin import Context, Measurement, PluginError, Probe, ProbeError

if TYPE_CHECKING:
    from mlchaos.engine.faultlife import FaultRun
    from mlchaos.spec.model import ExperimentSpec

DEFAULT_PROBE_TIMEOUT = 5.0


@dataclasses.dataclass
class ProbeRun:
    spec: Any
    probe: Probe
    rec: ProbeRecord

    @property
    def label(self) -> str:
        return self.rec.label

    @property
    def role(self) -> str:
        return self.rec.role


class _Stop(Exception):
    """Unwinds the phases at once (a stop was requested, or preflight failed); teardown still runs."""


class ProbeLoops:
    """Evaluations, continuous and at checkpoints (a mixin of the runner)."""

    spec: ExperimentSpec
    phase: str
    probes: list[ProbeRun]
    faults: list[FaultRun]
    _loop_monitor: LoopMonitor
    _stop: asyncio.Event
    _removal_started: float | None

    if TYPE_CHECKING:  # provided by the runner
        def log(self, event: str, **fields: Any) -> None: ...
        def request_stop(self, status: Status, reason: str) -> None: ...
        def _error(self, msg: str) -> None: ...
        async def _sleep(self, seconds: float) -> None: ...

    def _plan_probes(self, steady: list[Any], abort: list[Any], ctx: Context) -> None:
        """One probe object and one record per steady-state probe and abort condition, labelled for the report."""
        for role, specs in (("steady", steady), ("abort", abort)):
            for i, pspec in enumerate(specs):
                cls = registry.get("probe", pspec.probe)
                label = pspec.name or f"{pspec.probe}#{i}" + (" (abort)" if role == "abort" else "")
                probe = cls(pspec, ctx)
                tol = {k: getattr(pspec, k) for k in ("max", "min", "between", "equals", "above", "below")
                       if getattr(pspec, k, None) is not None}
                self.probes.append(ProbeRun(pspec, probe, ProbeRecord(label, role, pspec.probe, tol,
                                                                      probe.latency_bound())))

    async def _measure(self, pr: ProbeRun) -> Measurement:
        timeout = getattr(pr.spec, "timeout", None) or DEFAULT_PROBE_TIMEOUT
        try:
            return await asyncio.wait_for(pr.probe.measure(), timeout=timeout + 0.5)
        except TimeoutError:
            raise ProbeError(f"probe did not answer within {timeout:g}s") from None

    async def _evaluate(self, pr: ProbeRun, scheduled: float | None = None) -> Evaluation:
        """Measure once; record the span measured and whether the instruments could be trusted."""
        t = time.time()
        phase = self.phase
        m: Measurement | None = None
        error = ""
        try:
            m = await self._measure(pr)
        except (ProbeError, PluginError) as exc:
            error = f"probe error: {exc}"
        t_end = time.time()
        window = float(m.window if m is not None and m.window is not None else (pr.spec.window or 0.0))
        ev = Evaluation(t, t_end, window, phase, None, False, error)
        if m is not None:
            ev.value, ev.detail, ev.exact = m.value, m.detail, m.fraction
            unit = pr.probe.value_unit()
            if m.insufficient:
                ev.ok, ev.reason = None, f"insufficient data: {m.insufficient}"
            elif pr.role == "abort":
                trip, ev.reason = verdict.tripped(pr.spec, m.value, unit, m.fraction)
                ev.ok = not trip
            else:
                ev.ok, ev.reason = verdict.within(pr.spec, m.value, unit, m.fraction)
        steal, idle, foreign = self._loop_monitor.cpu(*ev.span)
        ev.trusted, ev.instrument = assess(
            probe_instrument=m.instrument if m is not None else None, latency_bound=pr.rec.latency_bound,
            windowed=window > 0, value=ev.value, ok=ev.ok, stall=self._loop_monitor.worst(t, t_end),
            steal=steal, idle=idle, foreign=foreign, delay=max(0.0, t - scheduled) if scheduled is not None else 0.0)
        return ev

    def _record(self, pr: ProbeRun, ev: Evaluation, checkpoint: str | None = None) -> None:
        ev.checkpoint = checkpoint
        pr.rec.evaluations.append(ev)
        rel = "checkpoint" if checkpoint else relation(ev, self._fault_windows())
        # what the probe saw (which expectation failed, which rows changed) goes with every
        # evaluation that did not hold, and with the checkpoints: the report's "why"
        detail = ev.detail if (ev.ok is not True or checkpoint) and ev.detail else None
        self.log("probe", probe=pr.label, role=pr.role, phase=ev.phase,
                 during=rel in ("during", "straddles-removal"), relation=rel, started=ev.t, window=ev.window,
                 value=ev.value, ok=ev.ok, reason=ev.reason or None, checkpoint=checkpoint, detail=detail,
                 trusted=ev.trusted, instrument=ev.instrument if (not ev.trusted or checkpoint) else None)

    def _fault_windows(self) -> list[tuple[float, float]]:
        return RunRecords(0.0, faults=[FaultRecord(fr.label, fr.plugin, fr.injected_at, fr.removed_at)
                                       for fr in self.faults]).fault_windows()

    async def _probe_loop(self, pr: ProbeRun) -> None:
        interval = self.spec.interval
        try:
            scheduled = time.time()
            while not self._stop.is_set():
                if self._removal_started is not None and pr.role == "abort":
                    return
                ev = await self._evaluate(pr, scheduled)
                self._record(pr, ev)
                if pr.role == "abort" and ev.ok is False:
                    self.request_stop(Status.ABORTED, f"abort condition {pr.label} tripped: {ev.reason}")
                    return
                scheduled = max(scheduled + interval, time.time())
                await asyncio.sleep(max(0.0, scheduled - time.time()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(f"probe {pr.label} raised {type(exc).__name__}: {exc}")

    async def _settle(self, state: str | None, why: str) -> tuple[str | None, str]:
        """Re-check the baseline every second until it holds or phases.settle runs out."""
        settle = self.spec.phases.settle
        t0 = time.monotonic()
        attempt = 1
        while True:
            self.log("baseline-unsettled", attempt=attempt, reason=why,
                     waited=round(time.monotonic() - t0, 3), settle=settle)
            left = settle - (time.monotonic() - t0)
            if left <= 0:
                return state, f"{why} (still after {settle:g}s of settling, {attempt} checks)"
            await self._sleep(min(1.0, left))
            attempt += 1
            state, why = await self._checkpoint("before")
            if state is None:
                self.log("baseline-settled", attempts=attempt, waited=round(time.monotonic() - t0, 3))
                return None, ""

    async def _checkpoint(self, which: str) -> tuple[str | None, str]:
        """Measure every steady probe once.  Returns (None, "") when all were met by trustworthy
        instruments, else ("breached" | "untrusted", why): "untrusted" only when every shortfall was
        an instrument's, not the system's."""
        steady = [pr for pr in self.probes if pr.role == "steady"]
        if not steady:
            return None, ""
        try:
            results = await asyncio.gather(*(self._evaluate(pr) for pr in steady))
        except Exception as exc:
            self._error(f"probe raised {type(exc).__name__}: {exc}")
            raise _Stop from None
        bad, untrusted = [], []
        for pr, ev in zip(steady, results, strict=True):
            self._record(pr, ev, checkpoint=which)
            setattr(pr.rec, which, ev)
            if not ev.trusted:
                untrusted.append(f"{pr.label}: {ev.instrument.get('why')}")
            elif ev.ok is not True:
                bad.append(f"{pr.label}: {ev.reason or 'not met'}")
        if bad:
            return "breached", "; ".join(bad)
        if untrusted:
            return "untrusted", "; ".join(untrusted)
        return None, ""

