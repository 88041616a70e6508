"""Real-time feature service: account features from the online store, with their event time.

``GET /features/{account_id}`` answers the account's features, ``event_ts``
and ``feature_age_seconds``; 404 for an unknown account.  ``/stats`` gives the
cumulative request counters the autoscaler turns into average concurrency.
Run: ``python -m mlchaos.lab.feature_service --port P --db features.sqlite``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.lab.featurestore import OnlineStore


def create_app(name: str, db: Path, stats: obs.RequestStats) -> FastAPI:
    store = OnlineStore(db)
    log = obs.JsonLog(name)
    app = FastAPI()
    obs.READY.labels(name).set(1)
    log("starting", db=str(db), pid=os.getpid())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"alive": True, "replica": name}

    @app.get("/ready")
    async def ready() -> dict[str, Any]:
        return {"ready": True, "replica": name}

    @app.get("/stats")
    async def get_stats() -> dict[str, float]:
        return stats.as_dict()

    @app.get("/features/{account_id}")
    async def features(account_id: int) -> Response:
        row = store.get(account_id)
        if row is None:
            return obs.FastJSON({"error": "unknown account", "account_id": account_id}, status_code=404)
        event_ts = float(row.pop("event_ts"))
        age = max(0.0, time.time() - event_ts)
        obs.FEATURE_AGE.labels(name).observe(age)
        return obs.FastJSON(
            {
                "account_id": account_id,
                "features": row,
                "event_ts": event_ts,
                "feature_age_seconds": age,
                "replica": name,
            }
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        payload, ctype = obs.metrics_response()
        return Response(payload, media_type=ctype)

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", default="features-0")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", type=Path, required=True)
    a = p.parse_args(argv)
    stats = obs.RequestStats()
    obs.serve(obs.MetricsMiddleware(create_app(a.name, a.db, stats), a.name, stats), a.port)


if __name__ == "__main__":
    main()
