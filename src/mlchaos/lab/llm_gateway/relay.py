"""One request through the gateway: admission, the attempts before the first token, the relay after it.

A streamed answer can only be moved to another backend for free before its
first token reaches the client: the response status is not sent until then.
So :meth:`Gateway.open` tries backends until one streams a token (or, naive,
until one answers 200) and :meth:`Gateway.relay` then passes the events on as
they come.  After that point a broken stream (no event within the chunk
timeout, a cut, an in-band error or a malformed event) is **resumed** by the
mitigated variant: the next backend is asked again with the text generated so
far appended (an assistant message for chat, the prompt's continuation for
completions) and ``max_tokens`` reduced by the tokens already sent, and its
events continue the client's stream.  The naive variant relays whatever the
backend does, a stall included, for ever.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from mlchaos.lab.llm_gateway import metrics, sse
from mlchaos.lab.llm_gateway.canary import Backend
from mlchaos.lab.llm_gateway.policy import Policy

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Failure:
    """Why an attempt gave no stream: ``reason`` names it in metrics; a backend's own answer is kept."""

    reason: str
    backend: str
    status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Attempt:
    """A backend stream the gateway has committed to, with the events read before committing."""

    backend: Backend
    response: aiohttp.ClientResponse
    pending: list[sse.Event]


@dataclass
class Call:
    """One client request across its attempts."""

    path: str
    body: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    text: str = ""
    tokens: int = 0
    first_backend: str | None = None
    resumed: bool = False

    def request_for(self, b: Backend) -> dict[str, Any]:
        """The body sent to ``b``: streamed, with usage, and continuing the text already sent to the client."""
        body = {**self.body, "model": b.name, "stream": True, "stream_options": {"include_usage": True}}
        if self.text:
            if "messages" in body:
                body["messages"] = [*body["messages"], {"role": "assistant", "content": self.text}]
            elif isinstance(body.get("prompt"), str):
                body["prompt"] = body["prompt"] + self.text
            if isinstance(body.get("max_tokens"), int):
                body["max_tokens"] = max(1, body["max_tokens"] - self.tokens)
        return body


def error_body(message: str, kind: str, code: str) -> bytes:
    """An error in OpenAI's shape."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class Gateway:
    """The backends, the policy in force and the admission queue; one per process."""

    def __init__(self, backends: list[Backend], policy: Policy, log: Callable[..., None]) -> None:
        self.backends = backends
        self.policy = policy
        self.log = log
        self.inflight = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30, enable_cleanup_closed=True),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0),
                auto_decompress=False,
            )
        return self._session

    # --- admission control ---------------------------------------------------------------------
    async def admit(self) -> str | None:
        """Take a slot; None when taken, else why the request is refused (``queue_full``, ``queue_timeout``)."""
        p = self.policy
        if p.max_inflight is None or (self.inflight < p.max_inflight and not self.waiters):
            self.inflight += 1
            return None
        if p.max_queue is not None and len(self.waiters) >= p.max_queue:
            return "queue_full"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        metrics.QUEUE_DEPTH.set(len(self.waiters))
        try:
            await asyncio.wait_for(fut, p.queue_timeout)
            return None  # release() handed its slot over (inflight already counts it)
        except TimeoutError:
            return "queue_timeout"
        finally:
            if fut in self.waiters:
                self.waiters.remove(fut)
            metrics.QUEUE_DEPTH.set(len(self.waiters))

    def release(self) -> None:
        """Give the slot back, or hand it to the longest-waiting request."""
        self.inflight -= 1
        limit = self.policy.max_inflight
        while self.waiters and (limit is None or self.inflight < limit):
            fut = self.waiters.popleft()
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)
        metrics.QUEUE_DEPTH.set(len(self.waiters))
        metrics.IN_FLIGHT.set(self.inflight)

    # --- before the first token ----------------------------------------------------------------
    def plan(self) -> list[Backend]:
        """The backends to try, in order, for a new request."""
        p = self.policy
        if not p.canary_gates:  # naive: the primary, blind retries on it, then the others
            first, rest = self.backends[0], self.backends[1:]
            return ([first] * (1 + p.blind_retries) + rest)[: p.max_attempts]
        ready = [b for b in self.backends if b.ready]
        order = ready or list(self.backends)  # none ready: canaries may be stale, so try them all
        return order[: p.max_attempts]

    def remaining(self, call: Call, limit: float | None) -> float | None:
        """``limit`` capped by what is left of the request's deadline (None: no bound)."""
        d = self.policy.deadline
        if d is None:
            return limit
        left = max(0.0, d - (time.monotonic() - call.started))
        return left if limit is None else min(limit, left)

    async def start(self, b: Backend, call: Call) -> Attempt | Failure:
        """Send ``call`` to ``b``; an Attempt once it streams (mitigated: once it sent a token)."""
        p = self.policy
        call.attempts += 1
        metrics.ATTEMPTS.labels(b.name).inc()
        budget = self.remaining(call, p.ttft_timeout)
        t0 = time.monotonic()
        r: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(budget):
                r = await self.session().post(b.url + call.path, json=call.request_for(b))
                if r.status != 200:
                    body = await r.content.read(64 * 1024)
                    keep = {k: v for k, v in r.headers.items() if k.lower() in ("retry-after", "content-type")}
                    r.close()
                    return Failure("status", b.name, r.status, body, keep)
                pending: list[sse.Event] = []
                while p.ttft_timeout is not None:  # mitigated: commit only to a stream that produces text
                    ev = await sse.next_event(r.content)
                    if ev is None or ev.kind in ("done", "error", "malformed"):
                        r.close()
                        return Failure("cut" if ev is None else ev.kind.replace("done", "cut"), b.name)
                    pending.append(ev)
                    if ev.kind == "token":
                        break
                return Attempt(b, r, pending)
        except TimeoutError:
            if r is not None:
                r.close()
            kind = "ttft" if budget == p.ttft_timeout else "deadline"
            metrics.TIMEOUTS.labels(b.name, kind).inc()
            self.log("timeout", level="warning", backend=b.name, kind=kind, after_s=round(time.monotonic() - t0, 3))
            return Failure("ttft_timeout" if kind == "ttft" else "deadline", b.name)
        except aiohttp.ClientError as exc:
            if r is not None:
                r.close()
            return Failure("connect" if isinstance(exc, aiohttp.ClientConnectionError) else "protocol", b.name)

    async def open(self, call: Call, plan: list[Backend]) -> Attempt | Failure:
        """Try ``plan`` in order until a backend streams; the last failure when none does."""
        last: Failure | None = None
        previous: Backend | None = None
        for b in plan:
            if self.remaining(call, None) == 0.0:
                break
            if last is not None:
                if last.status is not None and last.status not in RETRYABLE and not self.policy.retry_client_errors:
                    return last  # the request itself is wrong (400, 413, ...): asking again cannot help
                if previous is b:
                    metrics.RETRIES.labels(b.name).inc()
                else:
                    metrics.FALLBACKS.labels(last.backend, b.name, last.reason).inc()
            got = await self.start(b, call)
            if isinstance(got, Attempt):
                if call.first_backend is None:
                    call.first_backend = plan[0].name
                return got
            last, previous = got, b
        return last or Failure("deadline", "none")

    # --- after the first token -----------------------------------------------------------------
    async def relay(self, call: Call, attempt: Attempt) -> AsyncIterator[bytes]:
        """The client's stream: the committed backend's events, resumed elsewhere if it breaks (mitigated)."""
        p = self.policy
        outcome = "broken"
        try:
            while True:
                why = None
                async for raw in self._events(call, attempt):
                    if isinstance(raw, str):
                        why = raw
                        break
                    yield raw
                attempt.response.close()
                if why is None:
                    outcome = "resumed" if call.resumed else ("ok" if call.first_backend == attempt.backend.name
                                                               else "fallback")
                    return
                self.log("stream_broken", level="warning", backend=attempt.backend.name, reason=why,
                         tokens=call.tokens)
                nxt = await self.resume(call, attempt.backend, why) if p.fallback_after_start else None
                if nxt is None:
                    if p.fallback_after_start:  # the mitigated client learns why its stream ends early
                        yield b"data: " + error_body(f"stream broken ({why}) and no backend could resume it",
                                                     "server_error", "stream_broken") + b"\n\n"
                    return
                attempt = nxt
        finally:
            attempt.response.close()
            metrics.REQUESTS.labels(attempt.backend.name, outcome).inc()

    async def _events(self, call: Call, attempt: Attempt) -> AsyncIterator[bytes | str]:
        """Raw events to relay; a final ``str`` names how the stream broke (nothing after ``[DONE]``)."""
        p = self.policy
        pending = list(attempt.pending)
        while True:
            if pending:
                ev: sse.Event | None = pending.pop(0)
            else:
                try:
                    async with asyncio.timeout(self.remaining(call, p.chunk_timeout)):
                        ev = await sse.next_event(attempt.response.content)
                except TimeoutError:
                    metrics.TIMEOUTS.labels(attempt.backend.name, "chunk").inc()
                    yield "stalled"
                    return
                except aiohttp.ClientError:
                    yield "cut"
                    return
            if ev is None:
                yield "cut"
                return
            if ev.kind in ("error", "malformed") and p.fallback_after_start:
                yield f"{ev.kind}_event" if ev.kind == "error" else "malformed"
                return
            if ev.kind == "token":
                call.text += ev.text
                call.tokens += 1
            yield ev.raw
            if ev.kind == "done":
                return

    async def resume(self, call: Call, broken: Backend, why: str) -> Attempt | None:
        """Continue a broken stream on another backend (the same one if it is the only one ready)."""
        if call.attempts >= self.policy.max_attempts:
            return None
        others = [b for b in self.backends if b is not broken and (b.ready or not self.policy.canary_gates)]
        plan = (others + ([broken] if broken.ready else []))[: self.policy.max_attempts - call.attempts]
        if not plan:
            return None
        call.resumed = True
        metrics.FALLBACKS.labels(broken.name, plan[0].name, why).inc()
        metrics.RESUMES.labels(plan[0].name).inc()
        got = await self.open(call, plan)
        return got if isinstance(got, Attempt) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
