"""Set-up of a lab directory: generate data, fill the feature stores, train the models (and the LLMs).

Runs once per lab directory (the data is seeded, so a rebuild gives the same
data and models); ``ensure_built`` skips the work when the marker is present.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlchaos.lab import data, featurestore, models
from mlchaos.lab.paths import LabPaths

BUILD_FORMAT = 3
"""2: the LLM system's two language models (``models/llm/``); 3: their readout in int8."""


def ensure_built(paths: LabPaths, force: bool = False) -> dict[str, Any]:
    """Build data and models under ``paths`` unless already built; return the build record."""
    marker = paths.root / "build.json"
    if marker.exists() and not force:
        rec: dict[str, Any] = json.loads(marker.read_text())
        if rec.get("format") == BUILD_FORMAT:
            return rec
    paths.ensure()
    t0 = time.monotonic()
    tx = data.transactions()
    history = tx[tx["day"] < data.DAYS - 1]
    featurestore.build_online(paths.feature_db, history)
    dates = featurestore.build_offline(paths.offline, tx)
    meta = models.build_models(paths.models, tx)
    from mlchaos.lab.llm.train import build_models as build_llms  # numpy only; imported when a lab is built

    llms = build_llms(paths.models / "llm")
    rec = {
        "format": BUILD_FORMAT,
        "seed": data.SEED,
        "built_at": time.time(),
        "seconds": round(time.monotonic() - t0, 3),
        "offline_dates": dates,
        "models": {v: {k: m[k] for k in ("version", "trained_at") if k in m} for v, m in meta.items()},
        "llm": llms,
    }
    marker.write_text(json.dumps(rec, indent=2))
    return rec
