"""User-embedding service: the real-time dependency of the recommender.

``GET /embedding/{user_id}`` answers the user's vector from the factorisation
trained at set-up (``recs-v1``).  Kill it or slow it down to see whether the
recommender degrades to popular items or fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from fastapi import FastAPI
from fastapi.responses import Response

from mlchaos.lab import observability as obs
from mlchaos.lab.models import RECS_VERSION
from mlchaos.lab.services import scaffold


def create_app(name: str, models_dir: Path) -> FastAPI:
    d = models_dir / "recs" / RECS_VERSION
    users = np.load(d / "user_embeddings.npy")
    meta = json.loads((d / "meta.json").read_text())
    obs.set_model_version(name, meta["version"])
    obs.READY.labels(name).set(1)
    obs.JsonLog(name)("starting", version=meta["version"], users=len(users), pid=os.getpid())
    app = FastAPI()

    scaffold.add_probe_routes(app, name)

    @app.get("/embedding/{user_id}")
    async def embedding(user_id: int) -> Response:
        if not 0 <= user_id < len(users):
            return obs.FastJSON({"error": "unknown user", "user_id": user_id}, status_code=404)
        return obs.FastJSON(
            {"user_id": user_id, "embedding": users[user_id].tolist(), "model_version": meta["version"]}
        )

    return app


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "embedding")
    p.add_argument("--models", type=Path, required=True)
    a = p.parse_args(argv)
    scaffold.serve(create_app(a.name, a.models), a.name, a.port)


if __name__ == "__main__":
    main()
