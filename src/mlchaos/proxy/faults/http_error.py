"""HTTP error: answer with a status and body instead of the upstream."""

from __future__ import annotations

import random

from pydantic import Field, field_validator

from mlchaos.proxy import headertext
from mlchaos.proxy.faults.base import Direction, LocalResponse, Params, Plan, ProxyFault


class HttpErrorParams(Params):
    status: int = Field(503, ge=200, le=599)
    body: str = '{"error": "injected by mlchaos"}'
    content_type: str = "application/json"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("content_type")
    @classmethod
    def _ctype(cls, v: str) -> str:
        return headertext.check_value(v, "content_type")

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        return headertext.check_headers(v)


class HttpError(ProxyFault[HttpErrorParams]):
    """Reply locally (e.g. 503); the request never reaches the upstream, as in Envoy's ``abort``."""

    kind = "http-error"
    fixed_effect = True
    params_model = HttpErrorParams
    http_only = True
    directions = ("request",)

    def __init__(self, params: HttpErrorParams, direction: Direction) -> None:
        super().__init__(params, direction)
        p = params
        assert isinstance(p, HttpErrorParams)
        headers = [("Content-Type", p.content_type), *p.headers.items()]
        self._response = LocalResponse(p.status, p.body.encode(), headers)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.local = self._response
