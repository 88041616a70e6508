"""Probes on the running load: latency quantile, error rate, throughput over an explicit window.

They read the load generator the engine started (``ctx.services["load"]``,
a :class:`mlchaos.load.LoadRunner`) and never send traffic themselves, so a
steady-state check judges exactly the requests of the simulated peak.

Windows are explicit (``window: 10s``; 10 s when omitted).  A window with too
few finished requests says "insufficient data" instead of a value: a p99 of
40 requests is the maximum of 40 requests, not a p99.  The default minimum
is ``10 / (1 - q)`` samples for a quantile q (1 000 for p99, the point where
ten requests lie beyond it), 20 for an error rate, and half the window
covered for throughput.

Latencies are measured from the intended send time (no coordinated
omission), in seconds, so ``max: 100ms`` reads naturally.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec

__all__ = ["ErrorRateProbe", "LatencyProbe", "ThroughputProbe"]

DEFAULT_WINDOW = 10.0
ErrorKind = Literal["status", "timeout", "connection"]
_ALL_KINDS: tuple[ErrorKind, ...] = ("status", "timeout", "connection")


def _runner(probe: Probe) -> Any:
    load = probe.ctx.services.get("load")
    if load is None:
        raise ProbeError(f"probe {probe.spec.probe!r} reads the running load, but this experiment has no 'load:'")
    return load


def _window(probe: Probe) -> float:
    w = probe.spec.window
    return DEFAULT_WINDOW if w is None else float(w)


def _instrument(runner: Any, w: Any) -> dict[str, Any]:
    """The generator's schedule lag over this window: the engine judges what it means for the value.

    Latency is measured from the intended send time, so a late send adds its lag to the latency
    measured: a p99 can be inflated by up to the window's worst lag, never deflated.  ``achieved``
    is the share of the window's scheduled requests the generator dispatched.
    """
    return {"lag_p99": w.lag.quantile(0.99) if w.lag.count else None,
            "lag_max": w.lag.max if w.lag.count else None,
            "lag_budget": getattr(runner, "lag_budget", None),
            "achieved": round(w.dispatched / w.scheduled, 4) if getattr(w, "scheduled", 0) else None}


class LatencyProbeSpec(ProbeSpec):
    probe: Literal["latency"] = "latency"
    percentile: float = Field(99.0, gt=0, le=100, description="Quantile in percent: 50, 99, 99.9; 100 = max.")
    min_samples: int | None = Field(
        None, ge=1, description="Fewer finished requests in the window → insufficient data (default 10/(1-q))."
    )
    measure_from: Literal["intended", "sent"] = Field(
        "intended",
        description="'intended': latency a user sees (from the plan; default); 'sent': service time only.",
    )


class LatencyProbe(Probe):
    """Latency quantile of the requests that finished in the window (seconds)."""

    Spec = LatencyProbeSpec
    unit = "s"

    async def measure(self) -> Measurement:
        spec: LatencyProbeSpec = self.spec  # type: ignore[assignment]
        seconds = _window(self)
        runner = _runner(self)
        w = runner.window(seconds)
        q = spec.percentile / 100.0
        need = spec.min_samples or (max(20, math.ceil(10 / (1 - q))) if q < 1 else 20)
        hist = w.latency if spec.measure_from == "intended" else w.service
        n = hist.count
        detail = {"window": seconds, "percentile": spec.percentile, "count": n, "errors": w.errors}
        if n < need:
            return Measurement(
                value=None,
                samples=n,
                detail=detail,
                window=seconds,
                insufficient=f"{n} requests finished in the last {seconds:g}s; p{spec.percentile:g} needs ≥ {need}",
            )
        value = hist.max if q >= 1 else hist.quantile(q)
        detail["p50"] = hist.quantile(0.5)
        detail["max"] = hist.max
        return Measurement(value=value, samples=n, detail=detail, window=seconds, instrument=_instrument(runner, w))


class ErrorRateProbeSpec(ProbeSpec):
    probe: Literal["error-rate"] = "error-rate"
    kinds: list[ErrorKind] = Field(
        default_factory=lambda: list(_ALL_KINDS),
        description="Which failures count: 'status' (HTTP ≥ 400), 'timeout', 'connection'.",
    )
    min_samples: int = Field(20, ge=1, description="Fewer finished requests in the window → insufficient data.")


class ErrorRateProbe(Probe):
    """Failed / finished requests in the window (a fraction; ``max: 1%`` works)."""

    Spec = ErrorRateProbeSpec
    unit = "ratio"

    async def measure(self) -> Measurement:
        spec: ErrorRateProbeSpec = self.spec  # type: ignore[assignment]
        seconds = _window(self)
        runner = _runner(self)
        w = runner.window(seconds)
        failed = sum(w.errors.get(k, 0) for k in spec.kinds)
        detail = {"window": seconds, "count": w.count, "errors": w.errors,
                  "codes": {str(k): v for k, v in w.codes.items()}}
        if w.count < spec.min_samples:
            return Measurement(
                value=None, samples=w.count, detail=detail,
                window=seconds,
                insufficient=f"{w.count} requests finished in the last {seconds:g}s; need ≥ {spec.min_samples}",
            )
        return Measurement.share(failed, w.count, detail, window=seconds, instrument=_instrument(runner, w))


class ThroughputProbeSpec(ProbeSpec):
    probe: Literal["throughput"] = "throughput"
    successful: bool = Field(False, description="Count only successful responses (HTTP < 400).")
    min_coverage: float = Field(
        0.5, gt=0, le=1, description="Fraction of the window the load must have run for (else insufficient)."
    )


class ThroughputProbe(Probe):
    """Finished (or successful) requests per second over the window."""

    Spec = ThroughputProbeSpec
    unit = "1/s"

    async def measure(self) -> Measurement:
        spec: ThroughputProbeSpec = self.spec  # type: ignore[assignment]
        seconds = _window(self)
        runner = _runner(self)
        w = runner.window(seconds)
        n = w.count - w.error_count if spec.successful else w.count
        detail = {"window": seconds, "covered": w.covered, "count": w.count, "errors": w.errors}
        if w.covered < spec.min_coverage * seconds:
            return Measurement(
                value=None, samples=n, detail=detail,
                window=seconds,
                insufficient=f"load ran {w.covered:.2g}s of the {seconds:g}s window",
            )
        return Measurement(value=n / w.covered, samples=n, detail=detail, window=seconds, instrument=_instrument(runner, w))
