"""A small open-loop pacer for lab tests: steady request rate, every outcome recorded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Result:
    sent_at: float
    status: int | None  # None: the request failed (connection error or timeout)
    latency: float
    body: dict[str, Any] | None = None


@dataclass
class Traffic:
    """Send ``make_request(i) -> (method, url, json)`` at ``rate``/s for ``duration`` s in a background thread."""

    make_request: Callable[[int], tuple[str, str, Any]]
    rate: float
    duration: float
    timeout: float = 5.0
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def join(self) -> list[Result]:
        self._thread.join(self.duration + self.timeout + 10)
        return self.results

    async def _run(self) -> None:
        async with httpx.AsyncClient(
            timeout=self.timeout, limits=httpx.Limits(max_connections=100)
        ) as client:
            start = time.monotonic()
            tasks = []
            i = 0
            while True:
                at = start + i / self.rate
                if at - start >= self.duration:
                    break
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._one(client, i, at)))
                i += 1
            await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, i: int, at: float) -> None:
        method, url, body = self.make_request(i)
        try:
            r = await client.request(method, url, json=body)
            try:
                payload = r.json()
            except ValueError:
                payload = None
            self.results.append(Result(at, r.status_code, time.monotonic() - at, payload))
        except httpx.HTTPError:
            self.results.append(Result(at, None, time.monotonic() - at))


def error_rate(results: list[Result]) -> float:
    bad = sum(1 for r in results if r.status is None or r.status >= 500)
    return bad / max(len(results), 1)
