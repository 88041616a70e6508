"""A truncated model artifact is refused: the replica keeps serving the model it has, and loads the file once restored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from mlchaos.contract.lease import Lease
from mlchaos.faults.models import ModelTruncate
from mlchaos.lab.auth import bearer, read_token
from mlchaos.lab.models import resolve_fraud_version
from tests.data.standalone import Ctx


def _versions(lab: Any) -> dict[str, str]:
    return {s.name: str(s.model_version) for s in lab.status() if s.role == "replica"}


def test_truncated_model_is_refused_and_restored(make_lab: Callable[..., Any]) -> None:
    lab = make_lab(load_delay=0.2)
    lab.up(["serving"], variant="mitigated")
    models = lab.paths.models
    stale = resolve_fraud_version(models, "stale")
    current = resolve_fraud_version(models, "current")
    url = {s.name: s.url for s in lab.status()}["serving-0"]
    admin = bearer(read_token(lab.paths.token))
    fault = ModelTruncate(ModelTruncate.Spec(fault="model-truncate", path=str(models / "fraud" / f"{stale}.pkl"),
                                             keep="40%"), Ctx())
    asyncio.run(fault.inject(Lease.new("t", 30.0)))
    try:
        r = httpx.post(url + "/admin/model", json={"version": "stale"}, headers=admin, timeout=10)
        assert r.status_code == 422 and "cannot load model" in r.json()["error"]
        info = httpx.get(url + "/info", timeout=5).json()
        assert info["model"]["version"] == current and info["ready"] is True
    finally:
        asyncio.run(fault.remove())
    r = httpx.post(url + "/admin/model", json={"version": "stale"}, headers=admin, timeout=10)
    assert r.status_code == 200 and r.json()["model_version"] == stale
