"""What every lab service shares: Prometheus metrics, JSON logs, process hygiene, the uvicorn runner.

One module so that every service exports the same metric names (probes and
dashboards then work on any of them) and logs the same JSON shape.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

LATENCY = Histogram(
    "mlchaos_request_latency_seconds",
    "Request latency by endpoint.",
    ["service", "endpoint"],
    buckets=_BUCKETS,
)
REQUESTS = Counter(
    "mlchaos_requests_total", "Requests by endpoint and status code.", ["service", "endpoint", "code"]
)
ERRORS = Counter("mlchaos_request_errors_total", "Requests answered with a 5xx.", ["service", "endpoint"])
IN_FLIGHT = Gauge("mlchaos_in_flight_requests", "Requests being served now.", ["service"])
PREDICTIONS = Counter("mlchaos_predictions_total", "Predictions by class.", ["service", "class"])
FALLBACKS = Counter(
    "mlchaos_fallbacks_total", "Responses served from a fallback, by reason.", ["service", "reason"]
)
MODEL_INFO = Gauge("mlchaos_model_info", "1 for the model version being served.", ["service", "version"])
FEATURE_AGE = Histogram(
    "mlchaos_feature_age_seconds",
    "Age of the features used (now - event_ts).",
    ["service"],
    buckets=(1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)
BREAKER_OPEN = Gauge("mlchaos_circuit_open", "1 while a circuit breaker is open.", ["service", "dependency"])
READY = Gauge("mlchaos_ready", "1 when the service is ready.", ["service"])


class FastJSON(Response):
    """JSON response rendered with orjson (FastAPI's ORJSONResponse is deprecated)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class JsonLog:
    """One JSON object per line on stdout (the supervisor sends stdout to the service's log file)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        rec = {"ts": round(time.time(), 3), "level": level, "service": self.service, "event": event, **fields}
        sys.stdout.buffer.write(orjson.dumps(rec, default=str) + b"\n")
        sys.stdout.flush()


def set_model_version(service: str, version: str) -> None:
    """Export ``mlchaos_model_info{version=...} 1`` for exactly one version."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(service, version).set(1)


def metrics_response() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


def add_metrics_route(app: Any) -> None:
    """Every lab service exposes the same Prometheus ``/metrics``: one route, written once."""
    from fastapi import Response

    @app.get("/metrics")
    async def metrics() -> Response:
        payload, ctype = metrics_response()
        return Response(payload, media_type=ctype)


class MetricsMiddleware:
    """Pure-ASGI middleware: latency histogram, request/error counters, in-flight gauge.

    Written against ASGI directly (not Starlette's BaseHTTPMiddleware) to keep
    per-request overhead in the tens of microseconds.
    """

    def __init__(self, app: ASGIApp, service: str, stats: RequestStats | None = None) -> None:
        self.app = app
        self.service = service
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/metrics", "/ready", "/health", "/stats"):
            await self.app(scope, receive, send)
            return
        endpoint = _endpoint(scope["path"])
        code = 500
        start = time.perf_counter()
        IN_FLIGHT.labels(self.service).inc()
        if self.stats is not None:
            self.stats.in_flight += 1

        async def _send(msg: Message) -> None:
            nonlocal code
            if msg["type"] == "http.response.start":
                code = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - start
            IN_FLIGHT.labels(self.service).dec()
            LATENCY.labels(self.service, endpoint).observe(elapsed)
            REQUESTS.labels(self.service, endpoint, str(code)).inc()
            if code >= 500:
                ERRORS.labels(self.service, endpoint).inc()
            if self.stats is not None:
                self.stats.in_flight -= 1
                self.stats.requests += 1
                self.stats.latency_sum += elapsed


class RequestStats:
    """Cumulative counters the autoscaler reads from ``/stats`` (Little's law needs only these)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests = 0
        self.latency_sum = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "in_flight": self.in_flight,
            "requests": self.requests,
            "latency_sum_s": self.latency_sum,
            "time": time.monotonic(),
        }


def _endpoint(path: str) -> str:
    # /features/123 -> /features, /recommend/7 -> /recommend: bounded label cardinality.
    parts = path.split("/")
    return "/" + parts[1] if len(parts) > 1 else path


def die_with_parent() -> None:
    """Exit when the supervisor dies, so a crashed supervisor leaves no orphan service.

    Linux ``PR_SET_PDEATHSIG`` delivers SIGTERM on parent death; the ppid check
    closes the race where the parent died before the call.
    """
    expected = os.environ.get("MLCHAOS_LAB_PARENT")
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if expected and str(os.getppid()) != expected:
        sys.exit(0)


def serve(app: ASGIApp, port: int, host: str = "127.0.0.1") -> None:
    """Run ``app`` on uvicorn (uvloop + httptools when available), quiet, graceful on SIGTERM.

    Admin endpoints (``/admin/*``, ``/lb/*`` writes) need the lab's token: see :mod:`mlchaos.lab.auth`.
    """
    import uvicorn

    from mlchaos.lab.auth import guard_from_env

    die_with_parent()
    config = uvicorn.Config(
        guard_from_env(app),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
