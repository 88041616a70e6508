"""Each system starts, serves the predictions of its model files, switches versions, stops cleanly."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from mlchaos.lab import Lab
from mlchaos.lab import data as labdata
from mlchaos.lab.featurestore import OnlineStore, offline_dates, read_offline
from mlchaos.lab.models import RECS_VERSION, load_fraud_model, recommend


def _rows(lab: Lab, n: int = 20) -> pd.DataFrame:
    day = offline_dates(lab.paths.offline)[-1]
    return read_offline(lab.paths.offline, day).head(n)


def test_all_systems_start_predict_and_stop(
    make_lab: Callable[..., Lab], check_stopped: Callable[..., None]
) -> None:
    lab = make_lab()
    status = lab.up(variant="naive", timeout=90)
    names = {s.name for s in status}
    assert {
        "serving-0",
        "serving-1",
        "serving-2",
        "serving-lb",
        "features-0",
        "features-lb",
        "fraud",
        "embedding",
        "recommender",
        "batch",
    } <= names
    assert all(s.ready for s in status)
    ep = lab.endpoints()
    current = load_fraud_model(lab.paths.models, "current")
    rows = _rows(lab)
    feats = list(labdata.FRAUD_FEATURES)

    with httpx.Client(timeout=5) as c:
        # serving: the load balancer's answers are the model file's predictions
        expected = current.predict_proba(rows[feats])
        for (_, row), p in zip(rows.iterrows(), expected, strict=True):
            r = c.post(
                ep["serving"] + "/predict",
                json={k: row[k].item() if hasattr(row[k], "item") else row[k] for k in feats},
            )
            assert r.status_code == 200
            body = r.json()
            assert body["model_version"] == "fraud-v2" and body["fallback"] is False
            assert body["score"] == pytest.approx(p, abs=1e-9)
            assert body["prediction"] == ("fraud" if p >= 0.5 else "legit")
        view = c.get(ep["serving"] + "/lb/status").json()
        assert sorted(view["in_rotation"]) == ["serving-0", "serving-1", "serving-2"]

        # realtime: request fields + the store's account features through the model file
        store = OnlineStore(lab.paths.feature_db)
        for _, row in rows.head(10).iterrows():
            acct = store.get(int(row["account_id"]))
            assert acct is not None
            req = {
                "account_id": int(row["account_id"]),
                "amount": float(row["amount"]),
                "merchant_category": str(row["merchant_category"]),
                "hour": int(row["hour"]),
            }
            full = {**req, **{k: acct[k] for k in labdata.ACCOUNT_FEATURES}}
            body = c.post(ep["realtime"] + "/predict", json=req).json()
            assert body["fallback"] is False and body["feature_source"] == "live"
            assert body["model_version"] == "fraud-v2"
            assert body["score"] == pytest.approx(float(current.predict_proba([full])[0]), abs=1e-9)
            assert body["feature_age_seconds"] >= 0
        store.close()

        # recommender: top-k of the embedding dot products
        d = lab.paths.models / "recs" / RECS_VERSION
        users, items = np.load(d / "user_embeddings.npy"), np.load(d / "item_embeddings.npy")
        for u in (0, 7, 123):
            body = c.get(ep["recommender"] + f"/recommend/{u}", params={"k": 5}).json()
            assert body["items"] == recommend(items, users[u], 5)
            assert body["fallback"] is False and body["model_version"] == RECS_VERSION

        # every service exports the shared metrics
        for name in ("serving-0", "fraud", "recommender", "features-0"):
            text = c.get(ep[name] + "/metrics").text
            assert "mlchaos_request_latency_seconds" in text
        assert (
            'mlchaos_model_info{service="fraud",version="fraud-v2"} 1.0'
            in c.get(ep["fraud"] + "/metrics").text
        )
        assert "mlchaos_autoscaler_replicas" in c.get(ep["supervisor"] + "/metrics").text

    # batch: predictions file equals the model on the extracted day
    res = lab.run_batch("naive")
    assert res["status"] == "ok" and res["exit_code"] == 0
    out = pd.read_parquet(res["output"])
    day = read_offline(lab.paths.offline, res["date"])
    np.testing.assert_allclose(out["score"].to_numpy(), current.predict_proba(day[feats]), atol=1e-12)
    assert (out["model_version"] == "fraud-v2").all()

    from tests.lab.conftest import supervisor_lost

    assert lab.is_up(), supervisor_lost(lab)
    pids = list(lab.pids().values())
    pids += [c.pid for c in psutil.Process(lab.pids()["supervisor"]).children(recursive=True)]
    ports = [s.port for s in lab.status() if s.port]
    down_at = time.time()
    lab.down()
    assert not lab.is_up()
    check_stopped(pids, ports, down_at)


def test_stale_model_switch_and_restart_keeps_it(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(load_delay=0.3)
    lab.up(["serving"], variant="mitigated")
    ep = lab.endpoints()
    row = _rows(lab, 1)[list(labdata.FRAUD_FEATURES)].iloc[0].to_dict()
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    stale = load_fraud_model(lab.paths.models, "stale")
    assert lab.set_model_version("stale", ["serving-1"]) == ["serving-1"]
    with httpx.Client(timeout=5) as c:
        b1 = c.post(ep["serving-1"] + "/predict", json=row).json()
        b0 = c.post(ep["serving-0"] + "/predict", json=row).json()
    assert b1["model_version"] == "fraud-v1" and b0["model_version"] == "fraud-v2"
    assert b1["score"] == pytest.approx(float(stale.predict_proba([row])[0]), abs=1e-9)
    assert b1["score"] != pytest.approx(b0["score"], abs=1e-6)
    st = {s.name: s for s in lab.status()}
    assert st["serving-1"].model_version == "fraud-v1"
    # a restarted replica comes back with the version the supervisor was told
    old = st["serving-1"].pid
    assert old
    os.kill(old, signal.SIGKILL)
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s1 = {s.name: s for s in lab.status()}["serving-1"]
        if s1.pid not in (None, old) and s1.ready:
            break
        time.sleep(0.1)
    else:
        pytest.fail("serving-1 was not restarted")
    assert s1.restarts == 1
    with httpx.Client(timeout=5) as c:
        assert c.post(ep["serving-1"] + "/predict", json=row).json()["model_version"] == "fraud-v1"
