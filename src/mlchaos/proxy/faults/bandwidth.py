"""Bandwidth limit: pace bytes in one direction to a rate."""

from __future__ import annotations

import random

from pydantic import Field

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Size


class BandwidthParams(Params):
    rate: Size = Field(gt=0, le=10**12, description="Bytes per second, e.g. '10KB' (per second) or 10000; "
                       "more than 0, at most 1 TB/s.")


class Bandwidth(ProxyFault[BandwidthParams]):
    """Throttle the response (default) or the request to ``rate`` bytes per second.

    Pacing writes slices every 10 ms, which models a thin pipe: time to last
    byte grows with the payload, as for a congested link.
    """

    kind = "bandwidth"
    fixed_effect = True
    params_model = BandwidthParams
    directions = ("response", "request", "both")

    def apply(self, plan: Plan, rng: random.Random) -> None:
        rate = float(self.params.rate)  # > 0: a zero rate would trickle nothing, forever
        if self.direction in ("request", "both"):
            plan.rate_request = rate if not plan.rate_request else min(plan.rate_request, rate)
        if self.direction in ("response", "both"):
            plan.rate_response = rate if not plan.rate_response else min(plan.rate_response, rate)
