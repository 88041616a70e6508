"""Imports done once in the fork server (see :mod:`mlchaos.lab.procs`), inherited by every service."""

from __future__ import annotations

import aiohttp  # noqa: F401
import fastapi  # noqa: F401
import httpx  # noqa: F401
import numpy  # noqa: F401
import orjson  # noqa: F401
import pandas  # noqa: F401
import prometheus_client  # noqa: F401
import sklearn.decomposition
import sklearn.impute
import sklearn.linear_model
import sklearn.pipeline
import sklearn.preprocessing  # noqa: F401
import uvicorn
import uvicorn.lifespan.on
import uvicorn.loops.auto
import uvicorn.protocols.http.auto  # noqa: F401

from mlchaos import mitigations  # noqa: F401
from mlchaos.lab.services import (  # noqa: F401
    balancer,
    embedding_service,
    feature_service,
    fraud_service,
    model_server,
    recommender_service,
)

try:  # optional speed-ups uvicorn picks when present
    import httptools  # noqa: F401
    import uvloop  # noqa: F401
except ImportError:  # pragma: no cover
    pass
