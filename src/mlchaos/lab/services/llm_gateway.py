"""LLM gateway: the OpenAI API in front of a primary and a fallback engine, naive or mitigated.

What teams put in front of their model servers (LiteLLM, Envoy AI Gateway,
KServe's router), reduced to the decisions that matter when a stream goes
wrong; the behaviour is in :mod:`mlchaos.lab.llm_gateway`, the variants in
:mod:`mlchaos.lab.llm_gateway.policy`:

- *naive*: no time-to-first-token or inter-chunk timeout, no fallback once a
  stream has started, no admission limit, blind immediate retries on any error;
- *mitigated*: TTFT and inter-chunk timeouts, fallback before the first token,
  resume of a broken stream on another backend within a budget, admission
  control (429 with ``Retry-After`` when its queue is full) and readiness by
  canary generation.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streamed
or not: a non-streamed request is streamed from the backend and assembled,
so the same timeouts apply), ``GET /v1/models``, ``GET /gateway/status``,
``POST /admin/variant`` (🔒), and the lab's ``/health``, ``/ready``
(200 while a backend is in rotation), ``/metrics``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from mlchaos.lab import observability as obs
from mlchaos.lab.llm_gateway import canary, metrics, policy
from mlchaos.lab.llm_gateway.canary import Backend
from mlchaos.lab.llm_gateway.relay import Attempt, Call, Failure, Gateway, error_body
from mlchaos.lab.llm_gateway.sse import parse
from mlchaos.lab.services import scaffold

_STATUS_FOR = {"ttft_timeout": 504, "deadline": 504, "connect": 502, "protocol": 502, "cut": 502,
               "error": 502, "malformed": 502}


def _error(status: int, message: str, kind: str, code: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message, kind, code), status_code=status, media_type="application/json",
                    headers=headers)


def failure_response(f: Failure) -> Response:
    """What the client gets when no backend streamed: the backend's own answer, else a gateway error."""
    if f.status is not None:
        metrics.REQUESTS.labels(f.backend, "client_error" if f.status < 500 and f.status != 429 else "error").inc()
        return Response(f.body, status_code=f.status, headers=f.headers)
    outcome = "timeout" if f.status is None and _STATUS_FOR.get(f.reason) == 504 else "error"
    metrics.REQUESTS.labels("none", outcome).inc()
    return _error(_STATUS_FOR.get(f.reason, 502), f"no backend produced a token ({f.reason}, last tried {f.backend})",
                  "server_error", f.reason)


async def assemble(gw: Gateway, call: Call, attempt: Attempt) -> Response:
    """A non-streamed answer: the relayed events gathered into one ``chat.completion`` / ``text_completion``."""
    text, finish, usage, last_body, done = [], None, None, None, False
    async for raw in gw.relay(call, attempt):
        ev = parse(raw)
        if ev.kind == "done":
            done = True
        elif ev.kind == "error":
            break
        text.append(ev.text)
        finish = ev.finish_reason or finish
        usage = ev.usage or usage
        last_body = ev.body or last_body
    if not done:
        return _error(502, "the backend's stream broke before it finished", "server_error", "stream_broken")
    chat = call.path.endswith("chat/completions")
    content = "".join(text)
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        if chat else {"index": 0, "text": content, "finish_reason": finish}
    )
    return obs.FastJSON({
        "id": (last_body or {}).get("id", f"gw-{time.time_ns()}"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": call.body.get("model"),
        "choices": [choice],
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": call.tokens, "total_tokens": call.tokens},
    })


class _Stream(StreamingResponse):
    """The client's event stream; its slot and backend connection are let go however the response ends.

    A generator's ``finally`` is not enough: a client gone before the first byte is sent cancels the
    response before the generator ever starts, and its ``finally`` would never run.
    """

    def __init__(self, gw: Gateway, attempt: Attempt, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.gw, self.attempt, self.events = gw, attempt, events

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(Exception):
                await self.events.aclose()  # type: ignore[attr-defined]
            self.attempt.response.close()
            self.gw.release()


def create_app(name: str, gw: Gateway, canary_interval: float, canary_timeout: float) -> FastAPI:
    log = gw.log

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        tasks = [asyncio.create_task(canary.watch(gw.session(), b, canary_interval, canary_timeout, log))
                 for b in gw.backends]
        obs.READY.labels(name).set(1)
        log("starting", variant=gw.policy.variant, backends={b.name: b.url for b in gw.backends}, pid=os.getpid())
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gw.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"alive": True, "replica": name}

    @app.get("/ready")
    async def ready() -> Response:
        """Naive: ready as soon as it listens.  Mitigated: while a canary generation succeeds on some backend."""
        in_rotation = [b.name for b in gw.backends if b.ready]
        ok = bool(in_rotation) or not gw.policy.canary_gates
        body = {"ready": ok, "replica": name, "variant": gw.policy.variant, "in_rotation": in_rotation,
                "backends": {b.name: b.view() for b in gw.backends}}
        return obs.FastJSON(body, status_code=200 if ok else 503)

    obs.add_metrics_route(app)

    @app.get("/gateway/status")
    async def status() -> Response:
        return obs.FastJSON({"variant": gw.policy.variant, "policy": gw.policy.__dict__, "in_flight": gw.inflight,
                             "queued": len(gw.waiters), "backends": {b.name: b.view() for b in gw.backends},
                             "ejections": {b.name: b.changes for b in gw.backends}})

    @app.get("/v1/models")
    async def models() -> Response:
        return obs.FastJSON({"object": "list", "data": [
            {"id": b.name, "object": "model", "created": 0, "owned_by": "mlchaos-lab"} for b in gw.backends]})

    @app.post("/admin/variant")
    async def variant(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        v = body.get("variant") if isinstance(body, dict) else None
        if v == "silent-zeros":
            v = "naive"
        if v not in policy.VARIANTS:
            return obs.FastJSON({"error": f"variant must be one of {policy.VARIANTS}"}, status_code=422)
        gw.policy = policy.for_variant(v, **OVERRIDES)
        log("variant", variant=v)
        return obs.FastJSON({"variant": v})

    async def generate(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not JSON: {exc}", "invalid_request_error", "invalid_json")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error", "invalid_body")
        reason = await gw.admit()
        if reason is not None:
            metrics.REJECTED.labels(reason).inc()
            metrics.REQUESTS.labels("none", "rejected").inc()
            after = str(gw.policy.retry_after)
            return _error(429, f"gateway at capacity ({reason}): retry after {after}s", "rate_limit_error",
                          "rate_limited", headers={"Retry-After": after})
        metrics.IN_FLIGHT.set(gw.inflight)
        handed = False
        try:
            call = Call(request.url.path, body)
            got = await gw.open(call, gw.plan())
            if isinstance(got, Failure):
                return failure_response(got)
            if not body.get("stream"):
                return await assemble(gw, call, got)

            handed = True
            return _Stream(gw, got, gw.relay(call, got))
        finally:
            if not handed:
                gw.release()

    app.add_api_route("/v1/chat/completions", generate, methods=["POST"])
    app.add_api_route("/v1/completions", generate, methods=["POST"])
    return app


OVERRIDES: dict[str, Any] = {}
"""The mitigated policy's values given as flags (kept for a variant switch at run time)."""


def _backend(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected NAME=http://host:port, got {text!r}")
    return name, url.rstrip("/")


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "llm-gateway")
    p.add_argument("--backend", type=_backend, action="append", required=True,
                   help="NAME=URL of an engine, in priority order (first: the primary); repeatable")
    p.add_argument("--variant", choices=policy.VARIANTS, default="naive")
    p.add_argument("--ttft-timeout", type=float, help="mitigated: seconds to the first token before falling back")
    p.add_argument("--chunk-timeout", type=float, help="mitigated: seconds between events before a stream is broken")
    p.add_argument("--max-attempts", type=int, help="mitigated: backend attempts per request (fallbacks, resumes)")
    p.add_argument("--max-inflight", type=int, help="mitigated: requests sent to the backends at once")
    p.add_argument("--max-queue", type=int, help="mitigated: requests waiting for a slot before 429")
    p.add_argument("--queue-timeout", type=float, help="mitigated: seconds a request waits for a slot before 429")
    p.add_argument("--retry-after", type=int, help="mitigated: the Retry-After seconds of a 429")
    p.add_argument("--deadline", type=float, help="mitigated: seconds a request may take across its attempts")
    p.add_argument("--canary-interval", type=float, default=1.0, help="seconds between canary generations")
    p.add_argument("--canary-timeout", type=float, default=1.0, help="seconds a canary waits for its first token")
    a = p.parse_args(argv)
    names = [n for n, _ in a.backend]
    if len(set(names)) != len(names):
        p.error(f"--backend: duplicate backend names {names}")
    for flag in ("ttft_timeout", "chunk_timeout", "queue_timeout", "deadline", "canary_interval", "canary_timeout"):
        if getattr(a, flag) is not None and getattr(a, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')}: must be > 0, got {getattr(a, flag)}")
    for flag in ("max_attempts", "max_inflight", "max_queue"):
        if getattr(a, flag) is not None and getattr(a, flag) < 1:
            p.error(f"--{flag.replace('_', '-')}: must be >= 1, got {getattr(a, flag)}")
    OVERRIDES.update({k: getattr(a, k) for k in ("ttft_timeout", "chunk_timeout", "max_attempts", "max_inflight",
                                                  "max_queue", "queue_timeout", "retry_after", "deadline")})
    gw = Gateway([Backend(n, u) for n, u in a.backend], policy.for_variant(a.variant, **OVERRIDES),
                 obs.JsonLog(a.name))
    scaffold.serve(create_app(a.name, gw, a.canary_interval, a.canary_timeout), a.name, a.port)


if __name__ == "__main__":
    main()
