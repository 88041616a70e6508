"""The public mitigations, without processes: breaker, feature cache, readiness, validation, timeouts."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from mlchaos.lab.autoscaler import Autoscaler, AutoscalerPolicy
from mlchaos.mitigations import (
    CircuitBreaker,
    CircuitOpen,
    Deadline,
    FeatureCache,
    NotReady,
    ReadinessGate,
    ValidationFailed,
    ValidationGate,
    with_timeout,
)


def test_breaker_opens_on_timeouts_falls_back_and_recovers() -> None:
    states: list[str] = []

    async def main() -> None:
        b = CircuitBreaker(
            "dep", threshold=3, reset_after=0.2, timeout=0.02, on_state_change=lambda n, s: states.append(s)
        )

        async def slow() -> int:
            await asyncio.sleep(1)
            return 1

        async def ok() -> int:
            return 2

        reasons = [(await b.call(slow, lambda e: -1)).reason for _ in range(3)]
        assert reasons == ["timeout"] * 3
        t = time.monotonic()
        out = await b.call(slow, lambda e: -1)
        assert out.fallback and out.reason == "open" and out.value == -1
        assert time.monotonic() - t < 0.01, "an open circuit must not wait"
        with pytest.raises(CircuitOpen):
            await b.call(slow)
        await asyncio.sleep(0.25)
        out = await b.call(ok, lambda e: -1)
        assert not out.fallback and out.value == 2

    asyncio.run(main())
    assert states[:1] == ["opened"] and states[-1] == "closed"


def test_breaker_errors_count_and_propagate_without_fallback() -> None:
    async def main() -> None:
        b = CircuitBreaker("dep", threshold=2, reset_after=10)

        async def boom() -> int:
            raise ConnectionError("refused")

        out = await b.call(boom, lambda e: 0)
        assert out.fallback and out.reason == "error: ConnectionError"
        with pytest.raises(ConnectionError):
            await b.call(boom)
        with pytest.raises(CircuitOpen):
            await b.call(boom)

    asyncio.run(main())


def test_feature_cache_staleness_bound_and_default() -> None:
    cache = FeatureCache({"a": 1.0}, max_age=0.05, max_entries=2)
    cache.put("x", {"a": 5.0})
    feats, src, age = cache.get("x")
    assert feats == {"a": 5.0} and src == "cache" and age is not None
    assert cache.get("unknown")[1] == "default"
    time.sleep(0.06)
    assert cache.get("x") == ({"a": 1.0}, "default", None), "too old: default, not stale features"
    cache.put("y", {"a": 1})
    cache.put("z", {"a": 2})
    cache.put("w", {"a": 3})
    assert len(cache) == 2


def test_readiness_gate() -> None:
    g = ReadinessGate()
    assert g.status()[0] == 503
    with pytest.raises(NotReady):
        g.require()
    g.mark_ready()
    assert g.status() == (200, {"ready": True, "reason": "ready", "since": g.since})
    g.mark_not_ready("draining")
    assert g.status()[1]["reason"] == "draining"


def test_validation_gate_reports_every_failure() -> None:
    import pandera.pandas as pa

    schema = pa.DataFrameSchema(
        {
            "amount": pa.Column(float, pa.Check.in_range(0, 100), nullable=False),
            "cat": pa.Column(str, pa.Check.isin(["a", "b"])),
        }
    )
    gate = ValidationGate(schema)
    good = pd.DataFrame({"amount": [1.0, 2.0], "cat": ["a", "b"]})
    assert gate.check(good) is good
    bad = pd.DataFrame({"amount": [np.nan, 500.0, 3.0], "cat": ["a", "zzz", "b"]})
    rep = gate.report(bad)
    assert not rep.ok and rep.rows == 3
    cols = {(f["column"], f["check"]) for f in rep.failures}
    assert ("amount", "not_nullable") in cols
    assert any(c == "amount" and "in_range" in k for c, k in cols)
    assert any(c == "cat" and "isin" in k for c, k in cols)
    with pytest.raises(ValidationFailed) as exc:
        gate.check(bad)
    assert "amount" in str(exc.value)


def test_timeouts_and_deadline() -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await with_timeout(asyncio.sleep(1), 0.01)
        d = Deadline(0.05)
        assert await d.run(asyncio.sleep(0, result=3)) == 3
        await asyncio.sleep(0.06)
        assert d.expired
        with pytest.raises(TimeoutError):
            await d.run(asyncio.sleep(0))

    asyncio.run(main())


def test_autoscaler_scales_on_concurrency_with_cooldowns() -> None:
    a = Autoscaler(
        AutoscalerPolicy(
            min_replicas=1,
            max_replicas=3,
            target_concurrency=2,
            target_latency_ms=1000,
            up_cooldown=5,
            down_cooldown=20,
        )
    )
    assert a.observe(0, 1, 0, 0).direction == "hold"  # warming up
    # 1 s tick with 5 s of summed request time: 5 in flight on average -> 3 replicas (capped)
    d = a.observe(1, 1, 500, 5.0)
    assert d.direction == "up" and d.desired == 3 and d.concurrency == pytest.approx(5.0)
    # still busy but in cooldown
    assert a.observe(2, 2, 1000, 20.0).reason == "scale-up cooldown"
    # idle: scale down only after the down cooldown
    assert a.observe(3, 3, 1001, 20.0).reason == "scale-down cooldown"
    d = a.observe(30, 3, 1002, 20.001)
    assert d.direction == "down" and d.desired == 2
    # a replica restart resets its counters: no decision on that tick
    assert a.observe(31, 2, 10, 0.1).reason == "counters reset"
