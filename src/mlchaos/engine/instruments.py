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
import time
from typing import Any

from mlchaos.budget import MIN_ACHIEVED, NO_LATENCY_BOUND, lag_budget

MAX_STEAL = 0.10
"""Share of CPU time stolen by the hypervisor above which a timed request is not trusted."""
_PERIOD = 0.02


class LoopMonitor:
    """Samples the runner's own event-loop stalls every 20 ms; answers "the worst stall in [a, b]"."""

    def __init__(self, keep: int = 30_000) -> None:
        self._t: collections.deque[float] = collections.deque(maxlen=keep)
        self._lag: collections.deque[float] = collections.deque(maxlen=keep)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(_PERIOD)
            self._t.append(time.time())
            self._lag.append(max(0.0, loop.time() - t0 - _PERIOD))

    def worst(self, a: float, b: float) -> float:
        """The longest stall seen by a sample that ended in [a, b + one period] (a stall ends a sample)."""
        ts = list(self._t)
        i = bisect.bisect_left(ts, a)
        j = bisect.bisect_right(ts, b + _PERIOD)
        lags = list(self._lag)[i:j]
        return max(lags, default=0.0)


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies from /proc/stat, or None where the OS does not report them."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != b"cpu":
        return None
    nums = [int(x) for x in fields[1:]]
    return nums[7], sum(nums[:8])


def steal_share(a: tuple[int, int] | None, b: tuple[int, int] | None) -> float | None:
    if a is None or b is None or b[1] <= a[1]:
        return None
    return (b[0] - a[0]) / (b[1] - a[1])


def assess(*, probe_instrument: dict[str, Any] | None, latency_bound: float | None, windowed: bool,
           value: Any, ok: bool | None, stall: float, steal: float | None, delay: float) -> tuple[bool, dict[str, Any]]:
    """Is one evaluation trustworthy?  Returns (trusted, readings with ``why`` when not)."""
    info: dict[str, Any] = {"delay": round(delay, 6), "stall": round(stall, 6)}
    if steal is not None:
        info["steal"] = round(steal, 4)
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
    if whys:
        info["why"] = "; ".join(whys)
    return not whys, info
