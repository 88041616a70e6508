"""Timeouts: one bounded wait per dependency call, and a request-level deadline.

A generous timeout (seconds) turns a slow dependency into a slow service; the
mitigation is a tight per-call timeout derived from the caller's own latency
budget.  :class:`Deadline` carries that budget through a request so each call
gets only what is left of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def with_timeout(aw: Awaitable[T], seconds: float) -> T:
    """Await ``aw`` for at most ``seconds``; raise ``TimeoutError`` after."""
    async with asyncio.timeout(seconds):
        return await aw


class Deadline:
    """A request's latency budget: ``remaining()`` shrinks as time passes."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._start = time.monotonic()

    def remaining(self, floor: float = 0.0) -> float:
        return max(floor, self.budget - (time.monotonic() - self._start))

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    async def run(self, aw: Awaitable[T], cap: float | None = None) -> T:
        """Await ``aw`` within what is left of the budget (and at most ``cap``)."""
        left = self.remaining()
        if cap is not None:
            left = min(left, cap)
        if left <= 0:
            if asyncio.iscoroutine(aw):
                aw.close()  # never started: close it so it is not reported as never awaited
            raise TimeoutError("deadline expired")
        return await with_timeout(aw, left)
