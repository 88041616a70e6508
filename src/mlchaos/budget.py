"""How late an instrument may be before its measurement stops being evidence: one rule, used by all.

A measurement instrument (the load generator's pacer, the runner's own event
loop) that runs late shifts what it measures.  How much lateness matters
depends on what the measurement is for: a 5 ms lag is noise next to
``p99 < 100 ms`` and decisive next to ``p99 < 20 ms``.  So the budget is a
fraction of the tightest latency bound of the hypothesis, never below 1 ms
(the pacer's own resolution on a quiet machine).  A hypothesis that bounds no
latency (an error rate, a prediction share) only needs arrivals near their
schedule: 100 ms keeps an error rate honest, and the load generator checks
separately that it dispatched the requests it scheduled.

Used by the load generator (its VALID/INVALID rule) and by the engine (which
evaluations are trustworthy, :mod:`mlchaos.engine.instruments`).
"""

from __future__ import annotations

from collections.abc import Iterable

BUDGET_DIVISOR = 10
"""The budget is a tenth of the tightest bound (divided, not multiplied by 0.1: 0.1 s / 10 is 10 ms exactly)."""
MIN_BUDGET = 1e-3
NO_LATENCY_BOUND = 0.1
MIN_ACHIEVED = 0.99
"""Share of its scheduled requests a generator must dispatch (over the run, and over a probe's window)
for its numbers to describe the system rather than a starved generator (MLPerf LoadGen's rule)."""


def lag_budget(latency_bounds: Iterable[float]) -> float:
    """Seconds of instrument lag allowed given the hypothesis's latency bounds (seconds)."""
    bounds = [float(b) for b in latency_bounds]
    if not bounds:
        return NO_LATENCY_BOUND
    return max(MIN_BUDGET, min(bounds) / BUDGET_DIVISOR)
