"""Real-time fraud model service: per request, fetch account features over HTTP, then predict.

Variants (switchable at run time with ``POST /admin/variant``):

- ``naive``: a generous timeout (2 s) and no fallback: a dead feature service
  is an error, a slow one is a slow answer.
- ``silent-zeros``: a short timeout, and on any failure the account features
  become zeros *without saying so* (``fallback: false``) — the silent failure
  of the lab's scenario 6: latency stays green, predictions are wrong.
- ``mitigated``: a tight timeout and a circuit breaker
  (:class:`mlchaos.mitigations.CircuitBreaker`) that fails fast to the
  account's last known features (bounded staleness) or a default vector, and
  marks the response ``fallback: true``.

The feature service URL is a start-up argument and can be changed at run time
with ``POST /admin/dependency`` — the hook the engine uses to put a fault
proxy between this service and its dependency.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import Body, FastAPI, Request
from fastapi.responses import Response

from mlchaos.lab import data
from mlchaos.lab import observability as obs
from mlchaos.lab.auth import BadName, check_name
from mlchaos.lab.models import FraudModel, load_fraud_model
from mlchaos.lab.services import scaffold
from mlchaos.lab.upstream import ERRORS, Upstream
from mlchaos.mitigations import CircuitBreaker, FeatureCache, Outcome, ReadinessGate

#: Default account features (typical values of the training data) for the mitigated fallback.
DEFAULT_FEATURES: dict[str, float] = {
    "account_age_days": 420.0,
    "txn_count_1h": 0.0,
    "txn_count_24h": 3.0,
    "amount_avg_7d": 37.0,
}
ZEROS: dict[str, float] = dict.fromkeys(data.ACCOUNT_FEATURES, 0.0)
VARIANTS = ("naive", "silent-zeros", "mitigated")


@dataclass
class Settings:
    variant: str
    feature_url: str
    naive_timeout: float = 2.0
    silent_timeout: float = 0.05
    mitigated_timeout: float = 0.03
    breaker_threshold: int = 5
    breaker_reset: float = 2.0
    cache_max_age: float = 300.0


class FeatureUnavailable(Exception):
    pass


FETCH_ERRORS: tuple[type[BaseException], ...] = (*ERRORS, FeatureUnavailable)


def create_app(name: str, models_dir: Path, version: str, settings: Settings) -> FastAPI:
    log = obs.JsonLog(name)
    gate = ReadinessGate()
    holder: dict[str, FraudModel] = {}
    cache = FeatureCache(DEFAULT_FEATURES, max_age=settings.cache_max_age)

    def on_state(dep: str, state: str) -> None:
        obs.BREAKER_OPEN.labels(name, "features").set(1 if state == "opened" else 0)
        log("circuit", level="warning" if state == "opened" else "info", dependency="features", state=state)

    breaker = CircuitBreaker(
        "features",
        threshold=settings.breaker_threshold,
        reset_after=settings.breaker_reset,
        timeout=settings.mitigated_timeout,
        on_state_change=on_state,
    )
    client = Upstream()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        m = load_fraud_model(models_dir, version)
        holder["model"] = m
        obs.set_model_version(name, m.version)
        gate.mark_ready()
        obs.READY.labels(name).set(1)
        log(
            "starting",
            version=m.version,
            variant=settings.variant,
            feature_url=settings.feature_url,
            pid=os.getpid(),
        )
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    async def fetch(account_id: int, timeout: float) -> dict[str, Any]:
        status, body = await client.get_json(f"{settings.feature_url}/features/{account_id}", timeout)
        if status != 200 or not isinstance(body, dict):
            raise FeatureUnavailable(f"feature service answered {status}")
        return body

    scaffold.add_probe_routes(app, name, gate)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        m = holder["model"]
        return {
            "service": name,
            "variant": settings.variant,
            "feature_url": settings.feature_url,
            "model": m.metadata,
            "breaker": breaker.state,
            "cached_accounts": len(cache),
        }

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        # Raw body + orjson rather than a pydantic model: this is the hot path.
        try:
            body = orjson.loads(await request.body())
            account_id = int(body["account_id"])
        except (ValueError, KeyError, TypeError) as exc:
            return obs.FastJSON({"error": f"bad request: {exc!r}"}, status_code=400)
        m = holder["model"]
        fallback, reason, source, age = False, None, "live", None
        if settings.variant == "mitigated":

            async def call() -> dict[str, Any]:
                return await fetch(account_id, settings.mitigated_timeout + 0.05)

            def fb(exc: BaseException) -> dict[str, Any]:
                feats, src, cache_age = cache.get(account_id)
                return {"features": feats, "source": src, "cache_age": cache_age}

            out: Outcome[dict[str, Any]] = await breaker.call(call, fb)
            if out.fallback:
                feats = out.value["features"]
                fallback, reason, source = True, out.reason, out.value["source"]
                obs.FALLBACKS.labels(name, out.reason or "unknown").inc()
            else:
                feats = out.value["features"]
                age = out.value["feature_age_seconds"]
                cache.put(account_id, feats)
        elif settings.variant == "silent-zeros":
            try:
                got = await fetch(account_id, settings.silent_timeout)
                feats, age = got["features"], got["feature_age_seconds"]
            except FETCH_ERRORS:
                feats = dict(ZEROS)  # the silent failure: nobody is told
        else:
            try:
                got = await fetch(account_id, settings.naive_timeout)
            except FETCH_ERRORS as exc:
                log(
                    "feature_error",
                    level="error",
                    account_id=account_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return obs.FastJSON(
                    {
                        "error": "feature service unavailable",
                        "detail": type(exc).__name__,
                        "model_version": m.version,
                        "fallback": False,
                    },
                    status_code=503,
                )
            feats, age = got["features"], got["feature_age_seconds"]
        if age is not None:
            obs.FEATURE_AGE.labels(name).observe(age)
        row = {k: body.get(k) for k in data.REQUEST_FEATURES} | feats
        proba = float(m.predict_proba([row])[0])
        label = "fraud" if proba >= m.threshold else "legit"
        obs.PREDICTIONS.labels(name, label).inc()
        return obs.FastJSON(
            {
                "prediction": label,
                "score": proba,
                "model_version": m.version,
                "fallback": fallback,
                "fallback_reason": reason,
                "feature_source": source,
                "feature_age_seconds": age,
                "variant": settings.variant,
            }
        )

    @app.post("/admin/variant")
    async def set_variant(body: dict[str, Any] = Body(...)) -> Any:
        v = body.get("variant")
        if v not in VARIANTS:
            return obs.FastJSON({"error": f"variant: unknown variant {v!r}", "variants": list(VARIANTS)},
                                status_code=422)
        settings.variant = str(v)
        log("variant", variant=v)
        return {"variant": v}

    @app.post("/admin/dependency")
    async def set_dependency(body: dict[str, Any] = Body(...)) -> Any:
        url = body.get("url")
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return obs.FastJSON({"error": f"url: expected an http(s) URL, got {url!r}"}, status_code=422)
        settings.feature_url = url.rstrip("/")
        log("dependency", feature_url=settings.feature_url)
        return {"feature_url": settings.feature_url}

    @app.post("/admin/model")
    async def switch_model(body: dict[str, Any] = Body(...)) -> Any:
        try:  # a version is a name under models/fraud, never a path: unpickling a file runs its code
            m = await asyncio.to_thread(load_fraud_model, models_dir, check_name(body.get("version"), "version"))
        except Exception as exc:  # a bad name, a missing or corrupt artifact: keep serving the loaded model
            log("model_rejected", level="error", error=f"{type(exc).__name__}: {exc}")
            return obs.FastJSON({"error": f"cannot load model: {exc}" if isinstance(exc, BadName)
                                 else f"cannot load model: {type(exc).__name__}"}, status_code=422)
        holder["model"] = m
        obs.set_model_version(name, m.version)
        log("model_switched", version=m.version)
        return {"model_version": m.version}

    obs.BREAKER_OPEN.labels(name, "features").set(0)
    return app


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "fraud")
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--version", default="current")
    p.add_argument("--feature-url", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="naive")
    p.add_argument("--naive-timeout", type=float, default=2.0)
    p.add_argument("--silent-timeout", type=float, default=0.05)
    p.add_argument("--mitigated-timeout", type=float, default=0.03)
    a = p.parse_args(argv)
    s = Settings(a.variant, a.feature_url.rstrip("/"), a.naive_timeout, a.silent_timeout, a.mitigated_timeout)
    scaffold.serve(create_app(a.name, a.models, a.version, s), a.name, a.port)


if __name__ == "__main__":
    main()
