"""HTTP error: answer with a status and body instead of the upstream, optionally an LLM API's error by name."""

from __future__ import annotations

import json
import math
import random
from typing import Literal

from pydantic import Field, field_validator

from mlchaos.proxy import headertext
from mlchaos.proxy.faults.base import Direction, LocalResponse, Params, Plan, ProxyFault
from mlchaos.spec.types import Duration

DEFAULT_STATUS = 503
DEFAULT_BODY = '{"error": "injected by mlchaos"}'


def _openai(message: str, etype: str, code: str | None, param: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": etype, "param": param, "code": code}})


PRESETS: dict[str, tuple[int, str]] = {
    # status, body: OpenAI's error shape, as OpenAI-compatible servers (vLLM, LiteLLM) answer
    "rate-limited": (429, _openai("Rate limit reached; please retry after the time in Retry-After "
                                  "(injected by mlchaos).", "requests", "rate_limit_exceeded")),
    "overloaded": (503, _openai("The server is overloaded or not ready yet; please try again later "
                                "(injected by mlchaos).", "server_error", "overloaded")),
    "context-length": (400, _openai("This model's maximum context length is exceeded by your messages; please "
                                    "reduce the length of the messages (injected by mlchaos).",
                                    "invalid_request_error", "context_length_exceeded", "messages")),
}
"""The LLM API errors a client must handle, by name: 429 (with ``Retry-After``), 503, 400 context length."""


class HttpErrorParams(Params):
    preset: Literal["rate-limited", "overloaded", "context-length"] | None = None
    """An LLM API error by name (OpenAI's error body): 'rate-limited' 429 with Retry-After, 'overloaded' 503,
    'context-length' 400 context_length_exceeded.  Fields given as well override the preset's."""
    status: int | None = Field(None, ge=200, le=599)
    """Status code; default: the preset's, else 503."""
    body: str | None = None
    """Response body; default: the preset's, else '{"error": "injected by mlchaos"}'."""
    content_type: str = "application/json"
    headers: dict[str, str] = Field(default_factory=dict)
    retry_after: Duration | None = Field(None, ge=0, le=86400)
    """A ``Retry-After`` header (whole seconds, rounded up); default 1s with preset 'rate-limited'."""

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
        status, body = PRESETS.get(p.preset or "", (DEFAULT_STATUS, DEFAULT_BODY))
        retry = p.retry_after if p.retry_after is not None else (1.0 if p.preset == "rate-limited" else None)
        headers = [("Content-Type", p.content_type)]
        if retry is not None and not any(k.lower() == "retry-after" for k in p.headers):
            headers.append(("Retry-After", str(math.ceil(retry))))
        headers += p.headers.items()
        self._response = LocalResponse(p.status or status, (p.body if p.body is not None else body).encode(), headers)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.local = self._response
