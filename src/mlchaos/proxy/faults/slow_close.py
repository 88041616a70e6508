"""Slow close: the end of the exchange reaches the client late."""

from __future__ import annotations

import random

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration


class SlowCloseParams(Params):
    delay: Duration


class SlowClose(ProxyFault[SlowCloseParams]):
    """Delay EOF (TCP) or, in HTTP mode, deliver the response and close the connection ``delay`` later.

    Models a peer that lingers before closing: clients that wait for EOF, or
    keep a pooled connection that is about to die, stall.
    """

    kind = "slow-close"
    fixed_effect = True
    params_model = SlowCloseParams
    directions = ("response",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.close_delay = max(plan.close_delay, self.params.delay)
