"""Imports done once in the fork server (see :mod:`mlchaos.lab.procs`), inherited by every service."""

from __future__ import annotations

import importlib

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
from mlchaos.lab.topology import TABLE

for _entry in TABLE:  # every lab service of the topology table (a job runs in its own process: not here)
    if _entry.module.startswith("mlchaos.lab.services."):
        importlib.import_module(_entry.module)

try:  # optional speed-ups uvicorn picks when present
    import httptools  # noqa: F401
    import uvloop  # noqa: F401
except ImportError:  # pragma: no cover
    pass
