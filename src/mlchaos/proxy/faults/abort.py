"""Abort mid-response: deliver part of the response, then reset the connection."""

from __future__ import annotations

import random

from pydantic import Field

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault


class AbortParams(Params):
    fraction: float = Field(0.5, ge=0.0, lt=1.0, description="Share of the response body sent before the RST.")


class Abort(ProxyFault[AbortParams]):
    """Send the status line, headers and ``fraction`` of the body, then RST: a truncated response."""

    kind = "abort"
    fixed_effect = True
    params_model = AbortParams
    http_only = True
    directions = ("response",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.abort_fraction = self.params.fraction
