"""Autoscaling policy for the feature service (like a Kubernetes HPA, on concurrency and latency).

Pure decision logic, so it is testable without processes: the supervisor feeds
it the replicas' cumulative ``/stats`` counters once per tick and applies the
decision.  Average concurrency over a tick is Little's law on those counters:
(sum of request durations in the tick) / (tick length).  Scale up when the
per-replica concurrency or the mean latency exceeds its target; scale down
when both are well below; never more often than the cooldowns allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class AutoscalerPolicy:
    min_replicas: int = 1
    max_replicas: int = 3
    target_concurrency: float = 2.0  # average in-flight requests per replica
    target_latency_ms: float = 15.0
    up_cooldown: float = 5.0
    down_cooldown: float = 20.0


@dataclass
class Decision:
    at: float
    current: int
    desired: int
    concurrency: float
    latency_ms: float
    rate: float
    reason: str

    @property
    def direction(self) -> str:
        return "up" if self.desired > self.current else "down" if self.desired < self.current else "hold"


@dataclass
class Autoscaler:
    policy: AutoscalerPolicy = field(default_factory=AutoscalerPolicy)
    last_change: float = -math.inf
    _prev: tuple[float, float, float] | None = None  # (time, requests, latency_sum)

    def observe(self, now: float, current: int, requests: float, latency_sum: float) -> Decision:
        """Feed cumulative counters summed over replicas; return the decision for this tick.

        Counter resets (a replica replaced) show up as negative deltas and are treated as no data.
        """
        p = self.policy
        prev, self._prev = self._prev, (now, requests, latency_sum)
        if prev is None or now <= prev[0]:
            return Decision(now, current, current, 0.0, 0.0, 0.0, "warming up")
        dt = now - prev[0]
        dreq, dlat = requests - prev[1], latency_sum - prev[2]
        if dreq < 0 or dlat < 0:
            return Decision(now, current, current, 0.0, 0.0, 0.0, "counters reset")
        conc = dlat / dt
        rate = dreq / dt
        lat_ms = 1000 * dlat / dreq if dreq else 0.0
        per = conc / max(current, 1)
        desired = current
        reason = "within targets"
        if per > p.target_concurrency or lat_ms > p.target_latency_ms:
            desired = max(current + 1, math.ceil(conc / p.target_concurrency))
            reason = f"concurrency/replica {per:.2f} > {p.target_concurrency} or latency {lat_ms:.1f} ms > {p.target_latency_ms}"
        elif per < p.target_concurrency / 4 and lat_ms < p.target_latency_ms / 2:
            desired = max(math.ceil(conc / p.target_concurrency), current - 1)
            reason = f"concurrency/replica {per:.2f} and latency {lat_ms:.1f} ms well under targets"
        desired = min(max(desired, p.min_replicas), p.max_replicas)
        if desired > current and now - self.last_change < p.up_cooldown:
            return Decision(now, current, current, conc, lat_ms, rate, "scale-up cooldown")
        if desired < current and now - self.last_change < p.down_cooldown:
            return Decision(now, current, current, conc, lat_ms, rate, "scale-down cooldown")
        if desired != current:
            self.last_change = now
        return Decision(now, current, desired, conc, lat_ms, rate, reason)
