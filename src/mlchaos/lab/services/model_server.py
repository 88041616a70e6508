"""Serving replica: the fraud model behind a REST API (one process per replica).

It listens at once but answers ``/ready`` only after the model is loaded (a
configurable load delay stands for the time a real model takes to load), which
is what makes the difference between a naive and a readiness-gated load
balancer observable.  ``/predict`` before that answers 503.

Run: ``python -m mlchaos.lab.services.model_server --port P --models DIR --version current``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import Body, FastAPI, Request
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.lab.auth import BadName, check_name
from mlchaos.lab.models import FraudModel, load_fraud_model
from mlchaos.lab.services import scaffold
from mlchaos.mitigations import ReadinessGate


def create_app(name: str, models_dir: Path, version: str, load_delay: float) -> FastAPI:
    gate = ReadinessGate()
    log = obs.JsonLog(name)
    holder: dict[str, FraudModel] = {}

    async def load(v: str, delay: float) -> None:
        gate.mark_not_ready(f"loading model {v}")
        await asyncio.sleep(delay)
        model = await asyncio.to_thread(load_fraud_model, models_dir, v)
        holder["model"] = model
        obs.set_model_version(name, model.version)
        gate.mark_ready()
        obs.READY.labels(name).set(1)
        log("model_loaded", version=model.version, alias=model.alias, delay_s=delay, pid=os.getpid())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        task = asyncio.create_task(load(version, load_delay))
        log("starting", version=version, load_delay_s=load_delay, pid=os.getpid())
        yield
        task.cancel()
        log("stopping")

    app = FastAPI(lifespan=lifespan)

    scaffold.add_probe_routes(app, name, gate)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        m = holder.get("model")
        return {"replica": name, "ready": gate.ready, "model": m.metadata if m else None}

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        # Raw body + orjson rather than a pydantic model: this is the hot path, and the
        # model's encoder already treats missing or malformed fields as missing values.
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return obs.FastJSON({"error": f"bad request: {exc}"}, status_code=400)
        m = holder.get("model")
        if m is None or not gate.ready:
            log("not_ready", level="warning", reason=gate.reason)
            return obs.FastJSON({"error": "model not loaded", "replica": name}, status_code=503)
        rows = body.get("instances", [body])
        proba = m.predict_proba(rows)
        labels = m.label(proba)
        for lab in labels:
            obs.PREDICTIONS.labels(name, lab).inc()
        common = {"model_version": m.version, "fallback": False, "replica": name}
        if "instances" in body:
            return obs.FastJSON({"predictions": labels, "scores": proba.tolist(), **common})
        return obs.FastJSON({"prediction": labels[0], "score": float(proba[0]), **common})

    @app.post("/admin/model")
    async def switch_model(body: dict[str, Any] = Body(...)) -> Any:
        """Swap the served model version in place (a bad deploy, or its rollback).

        ``version`` is a name under ``models/fraud``, never a path (unpickling a file runs its code).
        """
        try:
            v = check_name(body.get("version"), "version")
        except BadName as exc:
            log("model_rejected", level="error", version=repr(body.get("version"))[:200], error=str(exc))
            return obs.FastJSON({"error": str(exc)}, status_code=422)
        try:
            model = await asyncio.to_thread(load_fraud_model, models_dir, v)
        except Exception as exc:  # a truncated or corrupt artifact: refuse it, keep serving the loaded model
            log("model_rejected", level="error", version=v, error=f"{type(exc).__name__}: {exc}")
            current = holder.get("model")
            return obs.FastJSON({"error": f"cannot load model {v!r}: {type(exc).__name__}",
                                 "model_version": current.version if current else None}, status_code=422)
        holder["model"] = model
        obs.set_model_version(name, model.version)
        log("model_switched", version=model.version, alias=model.alias)
        return {"replica": name, "model_version": model.version}

    obs.READY.labels(name).set(0)
    return app


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "serving-0")
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--version", default="current")
    p.add_argument("--load-delay", type=float, default=1.5)
    a = p.parse_args(argv)
    app = create_app(a.name, a.models, a.version, a.load_delay)
    scaffold.serve(app, a.name, a.port)


if __name__ == "__main__":
    main()
