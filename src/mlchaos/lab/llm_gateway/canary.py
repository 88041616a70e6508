"""Readiness by canary generation: a backend is in rotation only while it streams a token when asked.

An engine whose generation loop died still answers ``GET /health`` with 200
(the gray failure); only asking it to generate shows that it cannot.  So the
gateway sends each backend, every ``interval`` seconds, a short streamed
generation; a backend that produces no token within ``timeout`` is out of
rotation until a later canary gets one.  The canaries run in both variants
(``/ready`` reports them either way); only the mitigated variant routes by
them (:attr:`~mlchaos.lab.llm_gateway.policy.Policy.canary_gates`).  They go
through the same path as the traffic (the fault proxy included) and carry the
header ``x-mlchaos-canary: 1``, so a fault can include or spare them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mlchaos.lab.llm_gateway import metrics, sse

CANARY_HEADER = "x-mlchaos-canary"


@dataclass
class Backend:
    """One engine behind the gateway, and what its canaries last said."""

    name: str
    url: str
    ready: bool = False
    checked_at: float | None = None
    last_ttft: float | None = None
    last_error: str | None = None
    checks: int = 0
    failures: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ready": self.ready,
            "checked_at": self.checked_at,
            "last_ttft_s": self.last_ttft,
            "last_error": self.last_error,
            "checks": self.checks,
            "failures": self.failures,
        }


async def probe(session: aiohttp.ClientSession, b: Backend, timeout: float) -> tuple[float | None, str | None]:
    """One canary generation: ``(seconds to its first token, None)`` or ``(None, why not)``."""
    # ignore_eos (vLLM's extension, which the lab engines take): a model that ends at once is not dead
    body = {"model": b.name, "messages": [{"role": "user", "content": "def"}], "max_tokens": 2,
            "temperature": 0, "stream": True, "ignore_eos": True}
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            async with session.post(b.url + "/v1/chat/completions", json=body,
                                    headers={CANARY_HEADER: "1"}) as r:
                if r.status != 200:
                    return None, f"status {r.status}"
                while (ev := await sse.next_event(r.content)) is not None:
                    if ev.kind == "token":
                        return time.monotonic() - t0, None
                    if ev.kind in ("error", "malformed", "done"):
                        return None, f"{ev.kind} before a token"
                return None, "stream ended before a token"
    except TimeoutError:
        return None, f"no token within {timeout:g}s"
    except aiohttp.ClientError as exc:
        return None, type(exc).__name__


async def watch(
    session: aiohttp.ClientSession,
    b: Backend,
    interval: float,
    timeout: float,
    log: Callable[..., None],
) -> None:
    """Check ``b`` for ever: a canary every ``interval`` seconds (its own duration included)."""
    while True:
        started = time.monotonic()
        ttft, error = await probe(session, b, timeout)
        b.checks += 1
        b.checked_at = time.time()
        b.last_ttft, b.last_error = ttft, error
        ok = ttft is not None
        if ttft is not None:
            metrics.CANARY_SECONDS.labels(b.name).observe(ttft)
        else:
            b.failures += 1
        if ok != b.ready:
            b.ready = ok
            change = {"at": b.checked_at, "ready": ok, "error": error}
            b.changes = [*b.changes[-19:], change]
            log("backend_ready" if ok else "backend_ejected", level="info" if ok else "warning",
                backend=b.name, error=error, ttft_s=ttft)
        metrics.BACKEND_READY.labels(b.name).set(1 if ok else 0)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
