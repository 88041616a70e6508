"""A scripted OpenAI-compatible SSE backend: each request does what the test's script says, on a real socket.

Written here (aiohttp, in a thread of the test process) rather than taken
from the lab engine because a gateway test needs exact, repeatable
misbehaviour: a stall before the first token, after the third, a cut, an
error status, an in-band error event, a slow stream that holds a slot.  The
gateway under test is a real process that talks to it over 127.0.0.1.

A behaviour is a string: ``ok``, ``slow:SECONDS`` (per token), ``stall_before``,
``stall_after:K``, ``cut_after:K``, ``error_event_after:K``, ``malformed_after:K``,
``status:CODE``.  Requests pop behaviours from :attr:`Scripted.plan` (``ok``
when it is empty); canary generations (header ``x-mlchaos-canary``) do
:attr:`Scripted.canary` instead and are counted apart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

TOKENS = 8
STALL = 60.0


class Scripted:
    def __init__(self, name: str) -> None:
        self.name = name
        self.plan: list[str] = []
        self.canary = "ok"
        self.requests: list[dict[str, Any]] = []
        self.canaries = 0
        self.url = ""

    def reset(self) -> None:
        self.plan, self.canary, self.requests = [], "ok", []

    def chunk(self, i: int, text: str | None = None, finish: str | None = None) -> bytes:
        delta = {} if text is None else {"content": text}
        body = {"id": f"{self.name}-{i}", "object": "chat.completion.chunk", "created": 0, "model": self.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except (ConnectionResetError, asyncio.CancelledError):  # the gateway let go of a stream: expected
            return web.StreamResponse()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if request.headers.get("x-mlchaos-canary"):
            self.canaries += 1
            how = self.canary
        else:
            self.requests.append(body)
            how = self.plan.pop(0) if self.plan else "ok"
        verb, _, arg = how.partition(":")
        if verb == "status":
            code = int(arg)
            return web.json_response({"error": {"message": f"scripted {code}", "type": "x", "param": None,
                                                "code": code}}, status=code,
                                     headers={"Retry-After": "3"} if code == 429 else None)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if verb == "stall_before":
            await asyncio.sleep(STALL)
            return resp
        n = min(int(body.get("max_tokens") or TOKENS), TOKENS)
        stop_at = int(arg) if verb in ("stall_after", "cut_after", "error_event_after", "malformed_after") else None
        await resp.write(self.chunk(0, None))  # the role chunk, no text
        for i in range(n):
            if stop_at is not None and i == stop_at:
                if verb == "stall_after":
                    await asyncio.sleep(STALL)
                elif verb == "cut_after":
                    assert request.transport is not None
                    request.transport.abort()
                elif verb == "error_event_after":
                    await resp.write(b'data: {"error": {"message": "scripted", "type": "server_error"}}\n\n')
                    await asyncio.sleep(STALL)
                else:
                    await resp.write(b"data: {broken json\n\n")
                    await asyncio.sleep(STALL)
                return resp
            await resp.write(self.chunk(i + 1, f" {self.name}{i}"))
            await asyncio.sleep(float(arg) if verb == "slow" else 0.005)
        await resp.write(self.chunk(n + 1, None, "length"))
        usage = {"id": "u", "object": "chat.completion.chunk", "created": 0, "model": self.name, "choices": [],
                 "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@contextmanager
def serve(*backends: Scripted) -> Iterator[None]:
    """Run the backends on ephemeral 127.0.0.1 ports in one thread's event loop; stop them on exit."""
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ready = threading.Event()

    async def start() -> None:
        for b in backends:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", b.handle)
            app.router.add_post("/v1/completions", b.handle)
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            b.url = f"http://127.0.0.1:{port}"
            runners.append(runner)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10), "scripted backends did not start"
    try:
        yield
    finally:
        async def stop() -> None:
            for r in runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        time.sleep(0)
