"""What every lab service has in common: probe routes, the argument parser, and how it is served.

Written once so that a service module holds only its own behaviour, and so
that every service answers the supervisor's readiness polls, exposes its
Prometheus metrics and guards its admin endpoints with the lab's token
(:mod:`mlchaos.lab.auth`) the same way.  A raw ASGI service (the balancer)
answers its probes itself, on its hot path, but still uses :func:`parser` and
:func:`serve`.
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.mitigations import ReadinessGate


def add_probe_routes(app: FastAPI, name: str, gate: ReadinessGate | None = None) -> None:
    """``GET /health`` (alive), ``GET /ready`` and ``GET /metrics``.

    ``gate``: readiness for a service that loads something first (503 until
    ``gate.mark_ready()``); None: ready as soon as it listens.
    """

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"alive": True, "replica": name}

    @app.get("/ready")
    async def ready() -> Response:
        if gate is None:
            return obs.FastJSON({"ready": True, "replica": name})
        code, body = gate.status()
        return obs.FastJSON(body, status_code=code)

    obs.add_metrics_route(app)


def parser(doc: str | None, default_name: str) -> argparse.ArgumentParser:
    """An argument parser with the options the supervisor passes every service: ``--name``, ``--port``."""
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--name", default=default_name, help="the process's name in logs, metrics and the lab state")
    p.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    return p


def serve(app: obs.ASGIApp, name: str, port: int, stats: obs.RequestStats | None = None) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with request metrics (and ``stats`` for the autoscaler).

    :func:`mlchaos.lab.observability.serve` wraps it in the admin-token guard and ties the
    process's life to the supervisor's.
    """
    obs.serve(obs.MetricsMiddleware(app, name, stats), port)
