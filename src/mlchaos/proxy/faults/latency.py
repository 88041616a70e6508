"""Latency: fixed, jittered or drawn from a distribution, on the request or the response path."""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import model_validator

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration

Z99 = 2.3263478740408408  # standard normal quantile at 0.99


class LatencyParams(Params):
    delay: Duration
    """Fixed delay, the mean (uniform/normal), or the median (lognormal)."""
    jitter: Duration = 0.0
    """Half-width of the uniform band, or the standard deviation (normal)."""
    distribution: Literal["fixed", "uniform", "normal", "exponential", "lognormal"] | None = None
    """Default: 'fixed' without jitter, 'uniform' with it.  'exponential' adds Exp(mean=jitter) to delay."""
    p99: Duration | None = None
    """Lognormal only: the 99th percentile (with ``delay`` as the median)."""

    @model_validator(mode="after")
    def _check(self) -> LatencyParams:
        dist = self.distribution or ("uniform" if self.jitter else "fixed")
        if dist == "lognormal" and (self.p99 is None or self.p99 <= self.delay or self.delay <= 0):
            raise ValueError("lognormal needs delay > 0 (the median) and p99 > delay")
        if dist in ("uniform", "normal", "exponential") and not self.jitter:
            raise ValueError(f"distribution {dist!r} needs a jitter > 0")
        if self.delay > 3600:
            raise ValueError("delay must be at most 1h")
        self.distribution = dist
        return self


class Latency(ProxyFault[LatencyParams]):
    """Delay the request before it is forwarded, or the response before it is delivered.

    Delays are sampled per request (HTTP) or per connection (TCP) and never
    negative; the data path's timers never fire early (see ``clock``).
    """

    kind = "latency"
    params_model = LatencyParams
    directions = ("request", "response", "both")

    def sample(self, rng: random.Random) -> float:
        p = self.params
        assert isinstance(p, LatencyParams)
        match p.distribution:
            case "uniform":
                d = p.delay + rng.uniform(-p.jitter, p.jitter)
            case "normal":
                d = rng.gauss(p.delay, p.jitter)
            case "exponential":
                d = p.delay + rng.expovariate(1.0 / p.jitter)
            case "lognormal":
                assert p.p99 is not None
                d = p.delay * math.exp(rng.gauss(0.0, math.log(p.p99 / p.delay) / Z99))
            case _:
                d = p.delay
        return max(0.0, d)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        d = self.sample(rng)
        if self.direction in ("request", "both"):
            plan.delay_request += d
        if self.direction in ("response", "both"):
            plan.delay_response += d
