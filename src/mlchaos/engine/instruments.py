"""The run judges its own instruments: is a measurement trustworthy enough to count as evidence?

A latency measured by a starved process measures the process.  On a shared
2-core machine the runner's event loop can stall for tens of milliseconds and
the load generator can fall behind its schedule; a verdict built on such
readings would blame (or clear) the system for what the machine did.  So every
evaluation carries the readings of the instruments that took it, and an
evaluation whose instrument was not trustworthy is evidence of nothing: the
verdict (:mod:`mlchaos.engine.verdict`) neither passes nor fails on it.

The rule follows what an instrument's lateness can do to a value:

* **A latency** (a probe whose value is in seconds: load quantiles, an http
  probe's ``value: latency``) is measured from when the request *should* have
  gone out, so a late instrument can only add to it: the load generator's
  worst schedule lag in the window, the runner's worst event-loop stall while
  it timed the request.  Within the budget (10 % of the probe's bound, never
  below 1 ms: :func:`mlchaos.budget.lag_budget`) the reading is trusted.  Past
  it, a value that still met its bound is trusted (the instrument can only
  have inflated it), and so is a breach larger than anything the instrument
  could have added (``value - lag > bound``); any other breach is not
  evidence.  CPU steal above 10 % during a timed request counts the same way,
  with no bound on what it added.
* **Anything else the load measures** (error rate, throughput) needs arrivals
  near their schedule: a window whose lag p99 exceeds 100 ms is not evidence.
* **A starved generator**: a load window in which the generator dispatched less
  than 99 % of what it scheduled is evidence of nothing, either way (less load
  than planned can pass a system; a starved host can fail it).
* **A saturated host**: a timing breach (a latency, or any load window's) measured
  while the host's CPU had less than 3 % idle time (in the worst second of the
  span measured: a tail quantile is made by its slowest moments) *and* either an
  instrument of the run was late beyond its budget (the generator's worst lag in
  the window, the runner's stall) or processes other than the system under test
  and mlchaos used at least 25 % of the host's CPU in a saturated second
  (:mod:`mlchaos.engine.cpushare`) is evidence of nothing: the system, the
  generator and every hog were queueing for a CPU, and the breach may be the
  host's.  A system under test that saturates the host by itself (the lab
  shares it) keeps the instruments on time and is the one using the CPU, and
  its breach stays evidence.  A pass measured then still counts.
* **How late an evaluation fired** is recorded for every evaluation (it shows
  a starved runner in the report) but does not by itself distrust a value:
  the value is attributed to the time it was really measured.
* A third-party probe may judge its own instrument: ``{"ok": False, "why": ...}``.

Whether the load as a whole was VALID is the generator's own verdict
(:mod:`mlchaos.load.stats`), with the same budget; an INVALID load never
supports ``passed``.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from mlchaos.budget import MIN_ACHIEVED, NO_LATENCY_BOUND, lag_budget
from mlchaos.engine.cpushare import Sampler, contention, cpu_times

MIN_IDLE = 0.03
"""Below this idle share of the host's CPU, a timing breach (a latency, a load window's errors) may be the
host's doing: the system under test, the generator and everything else were queueing for a CPU."""
MIN_FOREIGN = 0.25
"""Share of the host's CPU that processes other than the system under test and mlchaos used in a saturated
second, from which a timing breach measured then may be theirs (:mod:`mlchaos.engine.cpushare`)."""
MAX_STEAL = 0.10
"""Share of CPU time stolen by the hypervisor above which a timed request is not trusted."""
_PERIOD = 0.02


class LoopMonitor:
    """The runner's own event-loop stalls (sampled every 20 ms) and the host's CPU (every 200 ms).

    ``worst(a, b)`` is the longest stall in a span; ``cpu(a, b)`` the shares of CPU time that were
    stolen by a hypervisor and that were idle over it.  A span shorter than the CPU sampling period
    is read over the samples that enclose it.
    """

    def __init__(self, keep: int = 30_000, footprint: Callable[[], Iterable[int]] | None = None) -> None:
        self.sampler = Sampler(footprint)
        self._t: collections.deque[float] = collections.deque(maxlen=keep)
        self._lag: collections.deque[float] = collections.deque(maxlen=keep)
        self._cpu: collections.deque[tuple[float, int, int, int]] = collections.deque(maxlen=keep // 10)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sampler = asyncio.create_task(self.sampler.run())  # whose CPU it was: a process of its own
        tick = 0
        try:
            while True:
                if tick % 10 == 0 and (c := cpu_times()) is not None:
                    self._cpu.append((time.time(), *c))
                tick += 1
                t0 = loop.time()
                await asyncio.sleep(_PERIOD)
                self._t.append(time.time())
                self._lag.append(max(0.0, loop.time() - t0 - _PERIOD))
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    def worst(self, a: float, b: float) -> float:
        """The longest stall seen by a sample that ended in [a, b + one period] (a stall ends a sample).

        Spans asked about are recent: walk back from the newest sample instead of copying the ring.
        """
        worst = 0.0
        for t, lag in zip(reversed(self._t), reversed(self._lag), strict=False):
            if t < a:
                break
            if t <= b + _PERIOD:
                worst = max(worst, lag)
        return worst

    def cpu(self, a: float, b: float) -> tuple[float | None, float | None, float | None]:
        """(stolen share, idle share, foreign share) of the host's CPU time over [a, b]; None where unknown.

        The stolen share is the span's average.  The idle share is its *worst second's*: a window's
        p99 is made by its slowest moments, and a host saturated for one second of a five-second
        window (its average idle well above :data:`MIN_IDLE`) delayed exactly the answers that set
        that p99.  Averaged, a window read after the host had idle time again became evidence made
        of answers timed while it had none (CI, 2026-12-04: a mitigated scenario ``failed`` under
        CPU hogs, 1.5 s after the fault's removal, on samples from inside the fault).  The foreign
        share is the largest share of the host's CPU that neither the system under test nor mlchaos
        used in a saturated second of the span (:mod:`mlchaos.engine.cpushare`).
        """
        contended = contention(self.sampler.seconds, a, b, MIN_IDLE)
        foreign = contended[1] if contended is not None else None
        now = cpu_times()
        samples = [*self._cpu, (time.time(), *now)] if now is not None else list(self._cpu)
        ts = [x[0] for x in samples]
        i = max(0, bisect.bisect_right(ts, a) - 1)
        j = min(len(samples) - 1, bisect.bisect_left(ts, b))
        if j <= i:
            return None, None, foreign
        (_, s0, _, t0), (_, s1, _, t1) = samples[i], samples[j]
        if t1 <= t0:
            return None, None, foreign
        return (s1 - s0) / (t1 - t0), worst_idle(samples[i:j + 1]), foreign


def worst_idle(samples: list[tuple[float, int, int, int]], second: float = 1.0) -> float | None:
    """The lowest idle share over consecutive stretches of at least ``second`` covering the samples
    (time, steal, idle, total; in time order); a short last stretch is read as the span's last second."""
    n = len(samples)
    if n < 2:
        return None
    ts = [x[0] for x in samples]
    worst: float | None = None
    k = 0
    while k < n - 1:
        m = min(n - 1, bisect.bisect_left(ts, ts[k] + second, lo=k + 1))
        if ts[m] - ts[k] < second and k > 0:  # a short tail: the last second of the span instead
            k = max(0, bisect.bisect_right(ts, ts[m] - second) - 1)
        total = samples[m][3] - samples[k][3]
        if total > 0:
            share = (samples[m][2] - samples[k][2]) / total
            worst = share if worst is None else min(worst, share)
        k = m
    return worst


def assess(*, probe_instrument: dict[str, Any] | None, latency_bound: float | None, windowed: bool,
           value: Any, ok: bool | None, stall: float, steal: float | None, delay: float,
           idle: float | None = None, foreign: float | None = None) -> tuple[bool, dict[str, Any]]:
    """Is one evaluation trustworthy?  Returns (trusted, readings with ``why`` when not)."""
    info: dict[str, Any] = {"delay": round(delay, 6), "stall": round(stall, 6)}
    if steal is not None:
        info["steal"] = round(steal, 4)
    if idle is not None:
        info["idle"] = round(idle, 4)
    if foreign is not None:
        info["foreign"] = round(foreign, 4)
    readings = dict(probe_instrument or {})
    info.update({k: v for k, v in readings.items() if k not in ("ok", "why")})
    whys: list[str] = []
    achieved = readings.get("achieved")
    if isinstance(achieved, int | float) and achieved < MIN_ACHIEVED:
        whys.append(f"the load generator dispatched {achieved:.1%} of the requests it scheduled in this window: "
                    "the host starved it, the numbers describe the host")
    if readings.get("ok") is False:
        whys.append(str(readings.get("why") or "the probe's instrument was not trustworthy"))
    if latency_bound is not None:
        budget = lag_budget([latency_bound])
        info["budget"] = budget
        if windowed and isinstance(readings.get("lag_max"), int | float):
            added, what = float(readings["lag_max"]), "the load generator sent up to {} late in this window"
        elif not windowed:
            added, what = stall, "the runner stalled {} while timing the request"
        else:
            added, what = 0.0, ""
        stolen = not windowed and steal is not None and steal > MAX_STEAL
        if (added > budget or stolen) and ok is False:
            exceeds = isinstance(value, int | float) and not stolen and float(value) - added > latency_bound
            if not exceeds:
                why = what.format(f"{added * 1e3:.3g} ms") if added > budget else ""
                if stolen:
                    why = "; ".join(w for w in (why, f"{steal:.0%} of CPU time was stolen while timing it") if w)
                whys.append(f"{why} (budget {budget * 1e3:.3g} ms, 10 % of the {latency_bound * 1e3:.3g} ms "
                            "bound): the breach may be the instrument's")
    elif windowed and isinstance(readings.get("lag_p99"), int | float) and readings["lag_p99"] > NO_LATENCY_BOUND:
        whys.append(f"the load generator's schedule lag p99 was {readings['lag_p99'] * 1e3:.3g} ms in this window "
                    f"(over {NO_LATENCY_BOUND * 1e3:.0f} ms, arrivals no longer follow the schedule)")
    # A saturated host matters when it reached the measurement (an instrument of ours was late too) or
    # when others saturated it (the system under test queued behind them). A system under test that
    # saturates the host by itself (it shares it, as the lab does) keeps its instruments on time and
    # uses the CPU itself, and its breach stays evidence.
    strain = _strain(readings, windowed, stall, latency_bound)
    if foreign is not None and foreign >= MIN_FOREIGN:
        strain = "; ".join(x for x in (strain, f"{foreign:.0%} of it went to processes other than the system "
                                       "under test and mlchaos") if x)
    timing = latency_bound is not None or "lag_p99" in readings
    if timing and ok is False and idle is not None and idle < MIN_IDLE and strain:
        whys.append(f"the host's CPU was saturated while this was measured ({idle:.0%} idle) and {strain}: "
                    "a slow or failed answer may be the host's, not the system's")
    if whys:
        info["why"] = "; ".join(whys)
    return not whys, info


def _strain(readings: dict[str, Any], windowed: bool, stall: float, latency_bound: float | None) -> str:
    """How an instrument of the run was late, in words ("" when none was): the host reached the measurement."""
    if windowed:
        lag, budget = readings.get("lag_max"), readings.get("lag_budget")
        if latency_bound is not None:
            budget = lag_budget([latency_bound])
        if isinstance(lag, int | float) and isinstance(budget, int | float) and lag > budget:
            return f"the load generator was up to {lag * 1e3:.3g} ms late (budget {budget * 1e3:.3g} ms)"
        achieved = readings.get("achieved")
        if isinstance(achieved, int | float) and achieved < MIN_ACHIEVED:
            return f"the load generator dispatched {achieved:.1%} of its schedule"
        return ""
    budget = lag_budget([latency_bound] if latency_bound is not None else [])
    return f"the runner stalled {stall * 1e3:.3g} ms (budget {budget * 1e3:.3g} ms)" if stall > budget else ""
