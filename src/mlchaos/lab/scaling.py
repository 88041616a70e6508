"""Applies the autoscaler's decisions to an autoscaled replica set (the HPA half of the supervisor).

:mod:`mlchaos.lab.autoscaler` decides, from the replicas' cumulative
``/stats`` counters; this module gathers those counters, starts or drains
replicas, and tells the group's balancer the new rotation.  A replica scaled
down is first taken out of the balancer, then stopped (so no request is cut).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from mlchaos.lab.autoscaler import Decision

if TYPE_CHECKING:
    from mlchaos.lab.supervisor import Supervisor
    from mlchaos.lab.topology import Entry

AS_REPLICAS = Gauge("mlchaos_autoscaler_replicas", "Replicas of the autoscaled service.", ["service", "kind"])
AS_DECISIONS = Counter(
    "mlchaos_autoscaler_decisions_total", "Scaling decisions applied.", ["service", "direction"]
)
AS_CONCURRENCY = Gauge(
    "mlchaos_autoscaler_concurrency", "Average in-flight requests (Little's law).", ["service"]
)
DRAIN_S = 0.5
"""How long the balancer gets to stop sending to a replica before it is stopped."""


async def autoscale(sup: Supervisor, entry: Entry) -> None:
    """One autoscaler tick for ``entry``'s replica set."""
    group = entry.group or entry.name
    reps = sup.group(group)
    reqs = lat = 0.0
    for p in reps:
        if p.pid is None:
            continue
        try:
            _, s = await sup.probe.get_json(p.url + "/stats", 0.5)
            reqs += s["requests"]
            lat += s["latency_sum_s"]
        except Exception:  # a replica that cannot answer its stats counts as no data
            continue
    d: Decision = sup.autoscaler.observe(time.monotonic(), len(reps), reqs, lat)
    AS_CONCURRENCY.labels(entry.name).set(d.concurrency)
    AS_REPLICAS.labels(entry.name, "current").set(len(reps))
    AS_REPLICAS.labels(entry.name, "desired").set(d.desired)
    if d.direction == "hold":
        return
    AS_DECISIONS.labels(entry.name, d.direction).inc()
    rec: dict[str, Any] = {
        "at": time.time(),
        "service": entry.name,
        "from": d.current,
        "to": d.desired,
        "direction": d.direction,
        "reason": d.reason,
        "concurrency": round(d.concurrency, 3),
        "latency_ms": round(d.latency_ms, 3),
        "rate": round(d.rate, 1),
    }
    sup.decisions = [*sup.decisions[-49:], rec]
    sup.log("autoscale", **rec)
    lb = sup.balancer_of(group)
    if d.desired > d.current:
        for _ in range(d.desired - d.current):
            p = sup.new_replica(entry)
            sup.procs[p.name] = p
            sup.spawn(p)
    else:
        victims = sorted(reps, key=lambda q: q.started_at)[d.desired :]
        for v in victims:
            v.desired = False
    if lb is not None:
        await sup.post(
            lb,
            "/lb/backends",
            [{"name": q.name, "url": q.url} for q in sup.group(group)],
            method="PUT",
        )
    if d.desired < d.current:
        await asyncio.sleep(DRAIN_S)  # let the balancer drain them first
        gone = [q for q in reps if not q.desired]
        await sup.reap(gone)
        for q in gone:
            sup.procs.pop(q.name, None)
