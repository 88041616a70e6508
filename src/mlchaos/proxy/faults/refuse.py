"""Refuse: the dependency is down or partitioned away; nothing is forwarded."""

from __future__ import annotations

import random

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault


class Refuse(ProxyFault[Params]):
    """Reset a new connection at once (TCP) or a request's connection (HTTP), never contacting the upstream.

    A listening socket cannot refuse a share of SYNs, so "refused" is modelled
    as an immediate RST after accept: clients see a connection error at once,
    the upstream sees nothing.
    """

    kind = "refuse"
    fixed_effect = True
    params_model = Params
    directions = ("request",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.refuse = True
