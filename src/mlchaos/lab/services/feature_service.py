"""Real-time feature service: account features from the online store, with their event time.

``GET /features/{account_id}`` answers the account's features, ``event_ts``
and ``feature_age_seconds``; 404 for an unknown account; 503 when the store
itself does not answer (a Redis outage is the store's failure, not an unknown
account, and callers must be able to tell the two apart).  ``/stats`` gives the
cumulative request counters the autoscaler turns into average concurrency.
Run: ``python -m mlchaos.lab.services.feature_service --port P --db features.sqlite
[--store redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.lab.featurestore import FeatureStoreError, open_store
from mlchaos.lab.services import scaffold


def create_app(name: str, db: Path, stats: obs.RequestStats, store_url: str | None = None) -> FastAPI:
    """``store_url``: a ``redis://`` URL to read from Redis; None reads the SQLite file ``db``."""
    store = open_store(store_url, db)
    log = obs.JsonLog(name)
    app = FastAPI()
    obs.READY.labels(name).set(1)
    log("starting", db=str(db), store=store.backend, location=store.location, pid=os.getpid())

    scaffold.add_probe_routes(app, name)

    @app.get("/stats")
    async def get_stats() -> dict[str, float]:
        return stats.as_dict()

    @app.get("/features/{account_id}")
    async def features(account_id: int) -> Response:
        try:
            row = store.get(account_id)
        except FeatureStoreError as exc:
            log("store_error", level="error", account_id=account_id, error=str(exc))
            return obs.FastJSON({"error": "feature store unavailable", "account_id": account_id}, status_code=503)
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

    return app


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "features-0")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--store", default=None, help="Redis URL of the online store (default: the SQLite --db)")
    a = p.parse_args(argv)
    stats = obs.RequestStats()
    app = create_app(a.name, a.db, stats, a.store)
    scaffold.serve(app, a.name, a.port, stats)


if __name__ == "__main__":
    main()
