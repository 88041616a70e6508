"""Timeout: hold the request and never answer (a black hole), optionally closing after a while."""

from __future__ import annotations

import random

from pydantic import Field

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration


class TimeoutParams(Params):
    close_after: Duration | None = Field(
        None, description="Close the client connection after this long; default: hold until the client gives up."
    )


class Timeout(ProxyFault[TimeoutParams]):
    """Swallow the request: nothing reaches the upstream and no byte comes back.

    This is what a client's own timeout must handle (Toxiproxy's ``timeout``
    with its confusing name, #121, is ``close_after``).
    """

    kind = "timeout"
    fixed_effect = True
    params_model = TimeoutParams
    directions = ("request",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.hold = True
        plan.hold_for = self.params.close_after
