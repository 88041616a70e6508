"""Connection reset: the client sees ECONNRESET (an RST), optionally after a delay."""

from __future__ import annotations

import random

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration


class ResetParams(Params):
    after: Duration = 0.0
    """Wait this long after the request (HTTP) or the first byte (TCP) before resetting."""


class Reset(ProxyFault[ResetParams]):
    """Abort the client connection with SO_LINGER 0, so the peer gets an RST, not a clean FIN.

    Unlike Toxiproxy (#603) linger is set only on a connection this fault hits.
    """

    kind = "reset"
    fixed_effect = True
    params_model = ResetParams
    directions = ("request",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.reset = True
        plan.reset_after = self.params.after
