"""Recommendation service: scores items against the user's embedding from the embedding service.

- ``naive``: calls the embedding service with a generous timeout, no
  fallback: when it is down or slow, so is this service (HTTP 503).
- ``mitigated``: tight timeout and a circuit breaker that serves the
  precomputed popular items (``fallback: true``, ``source: "popular"``).

The embedding service URL is a start-up argument and can be changed at run
time with ``POST /admin/dependency`` (the fault-proxy hook).
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Body, FastAPI
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.lab.models import RECS_VERSION, recommend
from mlchaos.lab.services import scaffold
from mlchaos.lab.upstream import ERRORS, Upstream
from mlchaos.mitigations import CircuitBreaker, Outcome

VARIANTS = ("naive", "mitigated")


class EmbeddingUnavailable(Exception):
    pass


FETCH_ERRORS: tuple[type[BaseException], ...] = (*ERRORS, EmbeddingUnavailable)


def create_app(
    name: str,
    models_dir: Path,
    variant: str,
    embedding_url: str,
    naive_timeout: float = 2.0,
    mitigated_timeout: float = 0.05,
) -> FastAPI:
    d = models_dir / "recs" / RECS_VERSION
    items = np.load(d / "item_embeddings.npy")
    meta = json.loads((d / "meta.json").read_text())
    popular: list[int] = [int(i) for i in meta["popular_items"]]
    version = str(meta["version"])
    cfg: dict[str, Any] = {"variant": variant, "url": embedding_url.rstrip("/")}
    log = obs.JsonLog(name)

    def on_state(dep: str, state: str) -> None:
        obs.BREAKER_OPEN.labels(name, "embedding").set(1 if state == "opened" else 0)
        log("circuit", level="warning" if state == "opened" else "info", dependency="embedding", state=state)

    breaker = CircuitBreaker(
        "embedding", threshold=5, reset_after=2.0, timeout=mitigated_timeout, on_state_change=on_state
    )
    client = Upstream()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        obs.set_model_version(name, version)
        obs.READY.labels(name).set(1)
        log("starting", version=version, variant=cfg["variant"], embedding_url=cfg["url"], pid=os.getpid())
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    async def fetch(user_id: int, timeout: float) -> np.ndarray:
        status, body = await client.get_json(f"{cfg['url']}/embedding/{user_id}", timeout)
        if status != 200 or not isinstance(body, dict):
            raise EmbeddingUnavailable(f"embedding service answered {status}")
        return np.asarray(body["embedding"], dtype=np.float32)

    scaffold.add_probe_routes(app, name)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "service": name,
            "variant": cfg["variant"],
            "embedding_url": cfg["url"],
            "model": meta,
            "breaker": breaker.state,
        }

    @app.get("/recommend/{user_id}")
    async def rec(user_id: int, k: int = 10) -> Response:
        k = max(1, min(k, 50))
        if cfg["variant"] == "mitigated":

            async def call() -> np.ndarray:
                return await fetch(user_id, mitigated_timeout + 0.05)

            out: Outcome[np.ndarray | None] = await breaker.call(call, lambda exc: None)
            if out.fallback or out.value is None:
                obs.FALLBACKS.labels(name, out.reason or "unknown").inc()
                obs.PREDICTIONS.labels(name, "popular").inc()
                return obs.FastJSON(
                    {
                        "user_id": user_id,
                        "items": popular[:k],
                        "model_version": version,
                        "fallback": True,
                        "fallback_reason": out.reason,
                        "source": "popular",
                        "variant": cfg["variant"],
                    }
                )
            emb = out.value
        else:
            try:
                emb = await fetch(user_id, naive_timeout)
            except FETCH_ERRORS as exc:
                log("embedding_error", level="error", user_id=user_id, error=type(exc).__name__)
                return obs.FastJSON(
                    {
                        "error": "embedding service unavailable",
                        "detail": type(exc).__name__,
                        "model_version": version,
                        "fallback": False,
                    },
                    status_code=503,
                )
        obs.PREDICTIONS.labels(name, "personalized").inc()
        return obs.FastJSON(
            {
                "user_id": user_id,
                "items": recommend(items, emb, k),
                "model_version": version,
                "fallback": False,
                "fallback_reason": None,
                "source": "personalized",
                "variant": cfg["variant"],
            }
        )

    @app.post("/admin/variant")
    async def set_variant(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        v = str(body["variant"])
        cfg["variant"] = v if v in VARIANTS else "naive"
        log("variant", variant=cfg["variant"])
        return {"variant": cfg["variant"]}

    @app.post("/admin/dependency")
    async def set_dependency(body: dict[str, Any] = Body(...)) -> Any:
        url = body.get("url")
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return obs.FastJSON({"error": f"url: expected an http(s) URL, got {url!r}"}, status_code=422)
        cfg["url"] = url.rstrip("/")
        log("dependency", embedding_url=cfg["url"])
        return {"embedding_url": cfg["url"]}

    obs.BREAKER_OPEN.labels(name, "embedding").set(0)
    return app


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "recommender")
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--embedding-url", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="naive")
    p.add_argument("--naive-timeout", type=float, default=2.0)
    p.add_argument("--mitigated-timeout", type=float, default=0.05)
    a = p.parse_args(argv)
    app = create_app(a.name, a.models, a.variant, a.embedding_url, a.naive_timeout, a.mitigated_timeout)
    scaffold.serve(app, a.name, a.port)


if __name__ == "__main__":
    main()
