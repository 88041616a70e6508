"""What every proxy fault is: parameters, a direction, and one ``apply`` onto a :class:`Plan`.

Faults do not touch sockets.  The data path decides, per HTTP request or per
TCP connection, which rules hit; each hitting fault writes its effect into a
:class:`Plan`, and the data path carries the plan out.  That keeps a fault
class to a parameter model and a few lines, keeps the decision separate from
the I/O (so pass-through stays a byte copy), and lets several faults combine
(e.g. 200 ms latency *and* a corrupted field) without special cases.
"""

from __future__ import annotations

import abc
import dataclasses
import http
import random
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

Direction = Literal["request", "response", "both"]


class Params(BaseModel):
    """Base of fault parameter models: unknown keys are errors (typos must not pass silently).

    A field's docstring is its description (``GET /kinds``, and ``mlchaos schema`` for the
    experiment side built from these models by ``mlchaos.faults.network``).
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclasses.dataclass(slots=True)
class LocalResponse:
    """An HTTP response the proxy writes itself; the upstream never sees the request."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    _wire: dict[bool, bytes] = dataclasses.field(default_factory=dict, repr=False)

    def wire(self, keep_alive: bool) -> bytes:
        """The full response bytes, built once per fault (not per request)."""
        cached = self._wire.get(keep_alive)
        if cached is None:
            try:
                reason = http.HTTPStatus(self.status).phrase
            except ValueError:
                reason = "Injected"
            lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Length: {len(self.body)}"]
            lines += [f"{k}: {v}" for k, v in self.headers]
            lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
            cached = self._wire[keep_alive] = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body
        return cached


class BodyRewrite(Protocol):
    """What the data path calls to rewrite a buffered response body (``http_wire.corrupt_response``).

    ``corrupt`` returns the new body or None (unchanged); ``needles``/``constant``, when both set,
    let the C fast path splice one constant at one plain path (``json-corrupt``'s usual case).
    """

    needles: tuple[bytes, ...] | None
    constant: bytes | None

    def corrupt(self, body: bytes) -> bytes | None: ...


@dataclasses.dataclass(slots=True)
class Plan:
    """Effects decided for one request (HTTP) or one connection (TCP); the data path executes them.

    Durations are seconds, rates bytes per second (0 = unlimited).
    """

    delay_request: float = 0.0
    delay_response: float = 0.0
    rate_request: float = 0.0
    rate_response: float = 0.0
    hold: bool = False
    hold_for: float | None = None
    reset: bool = False
    reset_after: float = 0.0
    refuse: bool = False
    close_delay: float = 0.0
    local: LocalResponse | None = None
    abort_fraction: float | None = None
    corrupt: list[BodyRewrite] = dataclasses.field(default_factory=list)
    rules: list[Any] = dataclasses.field(default_factory=list)

    @property
    def touches_response(self) -> bool:
        """True when the response cannot be relayed byte for byte as it arrives."""
        return bool(
            self.delay_response or self.rate_response or self.abort_fraction is not None
            or self.corrupt or self.close_delay
        )


P = TypeVar("P", bound=Params)


class ProxyFault(abc.ABC, Generic[P]):
    """A fault the proxy can apply.  Subclasses set ``kind``, ``params_model`` and implement :meth:`apply`."""

    kind: ClassVar[str]
    params_model: ClassVar[type[Params]] = Params
    http_only: ClassVar[bool] = False
    directions: ClassVar[tuple[Direction, ...]] = ("response",)
    """Allowed directions; the first is the default."""
    fixed_effect: ClassVar[bool] = False
    """True when :meth:`apply` writes the same effect every time (no random draw): the rule then
    builds its plan once and shares it, read-only, among all requests it alone hits."""

    def __init__(self, params: P, direction: Direction) -> None:
        self.params = params
        self.direction = direction

    @abc.abstractmethod
    def apply(self, plan: Plan, rng: random.Random) -> None:
        """Write this fault's effect into ``plan`` (called only when the fault hits)."""

    def describe(self) -> dict[str, Any]:
        """Parameters as JSON (durations in seconds) for the control API's listings."""
        return self.params.model_dump(mode="json")
