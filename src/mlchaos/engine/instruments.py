"""The run judges its own instruments: is a measurement trustworthy enough to count as evidence?

A latency measured by a starved process measures the process.  On a shared
2-core machine the runner's event loop can stall for tens of milliseconds and
the load generator can fall behind its schedule; a verdict built on such
readings would blame (or clear) the system for what the machine did.  So every
evaluation carries the health of the instruments that took it, and an
evaluation whose instrument was not trustworthy is evidence of nothing: the
verdict (:mod:`mlchaos.engine.verdict`) neither passes nor fails on it.

What is checked, and why only where it matters:

* **the load generator's schedule lag** over a load probe's window (the probe
  reports it, against the load's lag budget): a generator that sends late
  offers less load than planned and times requests from the wrong instant;
* **the runner's event-loop stalls** during a point probe's request, for
  probes whose value is a latency: the runner times those requests itself;
* **CPU steal** during that request, where the OS reports it (``/proc/stat``);
* **how late an evaluation fired** is recorded for every evaluation (it shows a
  starved runner in the report) but does not by itself distrust a value: the
  value is attributed to the time it was really measured.

The budget for a latency-valued probe is 10 % of its own bound, never below
1 ms: a 5 ms stall does not matter to ``p99 < 100 ms`` and decides
``p99 < 20 ms``.  The load generator's budget follows the same rule from the
tightest latency bound of the hypothesis (:func:`mlchaos.budget.lag_budget`).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import time
from typing import Any

from mlchaos.budget import lag_budget

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
           stall: float, steal: float | None, delay: float) -> tuple[bool, dict[str, Any]]:
    """Is one evaluation trustworthy?  Returns (trusted, readings with ``why`` when not)."""
    info: dict[str, Any] = {"delay": round(delay, 6), "stall": round(stall, 6)}
    if steal is not None:
        info["steal"] = round(steal, 4)
    whys: list[str] = []
    if probe_instrument:
        info.update({k: v for k, v in probe_instrument.items() if k not in ("ok", "why")})
        if probe_instrument.get("ok") is False:
            whys.append(str(probe_instrument.get("why") or "the probe's instrument was not trustworthy"))
    if latency_bound is not None and not windowed:
        budget = lag_budget([latency_bound])
        info["budget"] = budget
        if stall > budget:
            whys.append(f"the runner stalled {stall * 1e3:.3g} ms while timing the request "
                        f"(budget {budget * 1e3:.3g} ms, 10 % of the {latency_bound * 1e3:.3g} ms bound)")
        if steal is not None and steal > MAX_STEAL:
            whys.append(f"{steal:.0%} of CPU time was stolen while timing the request")
    if whys:
        info["why"] = "; ".join(whys)
    return not whys, info
