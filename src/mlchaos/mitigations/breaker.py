"""Circuit breaker with a fallback, on top of ``purgatory``'s asyncio breaker.

``purgatory`` (PyPI, MIT) keeps the breaker state machine: closed → opened
after ``threshold`` consecutive failures → half-opened after ``reset_after``
seconds → closed on the next success.  What ML services need on top is the
*fallback*: instead of an error, answer with something safe and say so.  This
module adds that, plus a per-call timeout counted as a failure, and
:class:`FeatureCache`, which serves the last known features of an entity while
they are younger than a staleness bound, else a default vector.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

T = TypeVar("T")


class CircuitOpen(Exception):
    """Raised by :meth:`CircuitBreaker.call` when the circuit is open and no fallback was given."""


@dataclass
class Outcome(Generic[T]):
    """A call's value and whether it came from the fallback (and why)."""

    value: T
    fallback: bool
    reason: str | None = None  # "open", "timeout", "error: <type>"


class CircuitBreaker:
    """An asyncio circuit breaker with timeout and fallback.

    >>> breaker = CircuitBreaker("features", threshold=5, reset_after=2.0, timeout=0.03)
    >>> out = await breaker.call(lambda: fetch(account), fallback=lambda exc: defaults)
    >>> out.value, out.fallback

    ``timeout`` bounds each call (an ``asyncio.TimeoutError`` counts as a
    failure), so a slow dependency opens the circuit as surely as a dead one.
    ``on_state_change(name, state)`` lets a service export the state as a metric.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        reset_after: float = 2.0,
        timeout: float | None = None,
        on_state_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_after = reset_after
        self.timeout = timeout
        self._factory = AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=reset_after)
        self._on_state_change = on_state_change
        if on_state_change is not None:
            self._factory.add_listener(self._hook)
        self.state = "closed"

    def _hook(self, name: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            self.state = str(getattr(event, "state", self.state))
            if self._on_state_change is not None:
                self._on_state_change(name, self.state)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        fallback: Callable[[BaseException], T] | None = None,
    ) -> Outcome[T]:
        """Run ``fn`` through the breaker; on open circuit, timeout or error use ``fallback``.

        Without a fallback the exception propagates (:class:`CircuitOpen` when
        the circuit is open), which is what a plain breaker does.
        """
        try:
            brk = await self._factory.get_breaker(self.name)
            async with brk:
                if self.timeout is None:
                    value = await fn()
                else:
                    async with asyncio.timeout(self.timeout):
                        value = await fn()
            return Outcome(value, False)
        except OpenedState as exc:
            if fallback is None:
                raise CircuitOpen(str(exc)) from exc
            return Outcome(fallback(exc), True, "open")
        except TimeoutError as exc:
            if fallback is None:
                raise
            return Outcome(fallback(exc), True, "timeout")
        except Exception as exc:
            if fallback is None:
                raise
            return Outcome(fallback(exc), True, f"error: {type(exc).__name__}")


class FeatureCache:
    """Last known feature vectors per entity, with a staleness bound and a default.

    ``put`` after every successful fetch; ``get`` in the fallback returns the
    cached vector while it is younger than ``max_age`` seconds (by the time it
    was cached), else ``default`` (e.g. training medians).  The answer says
    which one it was and how old it is, so the response and the metrics can
    show it.  Bounded LRU so memory stays flat under many entities.
    """

    def __init__(
        self, default: Mapping[str, float], max_age: float = 300.0, max_entries: int = 100_000
    ) -> None:
        self.default = dict(default)
        self.max_age = max_age
        self.max_entries = max_entries
        self._items: OrderedDict[Any, tuple[float, dict[str, Any]]] = OrderedDict()

    def put(self, key: Any, features: Mapping[str, Any]) -> None:
        self._items[key] = (time.monotonic(), dict(features))
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def get(self, key: Any) -> tuple[dict[str, Any], str, float | None]:
        """``(features, source, age_seconds)`` with source ``"cache"`` or ``"default"``."""
        hit = self._items.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age <= self.max_age:
                return dict(hit[1]), "cache", age
        return dict(self.default), "default", None

    def __len__(self) -> int:
        return len(self._items)
