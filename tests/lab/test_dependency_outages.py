"""Realtime and recommender: the model service's dependency stops answering.

"Stopped" here is SIGSTOP on the dependency's processes: the sockets stay
open and nothing answers, the worst case for a caller (a refused connection
fails fast by itself).  Processes are continued in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from mlchaos.lab import Lab
from mlchaos.lab import data as labdata
from mlchaos.lab.featurestore import OnlineStore
from mlchaos.lab.models import load_fraud_model


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def _req(account_id: int) -> dict[str, object]:
    return {"account_id": account_id, "amount": 180.0, "merchant_category": "gift_cards", "hour": 2}


def _timed(c: httpx.Client, url: str, body: dict[str, object]) -> tuple[httpx.Response | None, float]:
    t = time.monotonic()
    try:
        r: httpx.Response | None = c.post(url, json=body)
    except httpx.HTTPError:
        r = None
    return r, time.monotonic() - t


@pytest.mark.slow
def test_realtime_feature_service_stopped(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    lab.up(["realtime"], variant="naive")
    url = lab.endpoints()["realtime"] + "/predict"
    feature_pids = [s.pid for s in lab.status() if s.name.startswith("features") and s.pid]
    model = load_fraud_model(lab.paths.models, "current")
    store = OnlineStore(lab.paths.feature_db)
    accounts = list(range(10, 30))
    truth = {}
    for a in accounts:
        acct = store.get(a)
        assert acct is not None
        truth[a] = float(
            model.predict_proba([{**_req(a), **{k: acct[k] for k in labdata.ACCOUNT_FEATURES}}])[0]
        )
    store.close()

    with httpx.Client(timeout=10) as c:
        # warm the mitigated cache for half of the accounts while the feature service is healthy
        lab.set_variant("mitigated", ["realtime"])
        for a in accounts[:10]:
            body = c.post(url, json=_req(a)).json()
            assert body["fallback"] is False and body["score"] == pytest.approx(truth[a], abs=1e-9)

        with paused(feature_pids):
            # naive: hangs until its generous timeout, then errors
            lab.set_variant("naive", ["realtime"])
            for a in accounts[:2]:
                r, dt = _timed(c, url, _req(a))
                assert r is not None and r.status_code == 503
                assert r.json()["fallback"] is False
                assert dt >= 1.8, f"naive should wait for its 2 s timeout, took {dt:.2f}s"

            # silent-zeros: fast, 200, claims no fallback, and the prediction is wrong
            lab.set_variant("silent-zeros", ["realtime"])
            wrong = 0
            for a in accounts:
                r, dt = _timed(c, url, _req(a))
                assert r is not None and r.status_code == 200
                body = r.json()
                assert body["fallback"] is False
                assert dt < 0.5
                wrong += body["score"] != pytest.approx(truth[a], abs=1e-6)
            assert wrong == len(accounts), "zero-filled features must change the predictions"

            # mitigated: fast, every response marked; cached accounts keep their last known features
            lab.set_variant("mitigated", ["realtime"])
            times = []
            for a in accounts:
                r, dt = _timed(c, url, _req(a))
                assert r is not None and r.status_code == 200
                body = r.json()
                times.append(dt)
                assert body["fallback"] is True
                assert body["fallback_reason"] in ("timeout", "open")
                if a in accounts[:10]:
                    assert body["feature_source"] == "cache"
                    assert body["score"] == pytest.approx(truth[a], abs=1e-9)
                else:
                    assert body["feature_source"] == "default"
            assert max(times) < 0.5
            assert sorted(times)[len(times) // 2] < 0.05, "open circuit should answer without waiting"
            info = c.get(lab.endpoints()["realtime"] + "/info").json()
            assert info["breaker"] == "opened"
            assert (
                'mlchaos_fallbacks_total{reason="open",service="fraud"}'
                in c.get(lab.endpoints()["realtime"] + "/metrics").text
            )

        # recovery: after the breaker's reset time, live features again
        time.sleep(2.5)
        for _ in range(20):
            body = c.post(url, json=_req(accounts[0])).json()
            if body["fallback"] is False:
                break
            time.sleep(0.2)
        assert body["fallback"] is False and body["feature_source"] == "live"


@pytest.mark.slow
def test_recommender_embedding_down(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    lab.up(["recommender"], variant="naive")
    ep = lab.endpoints()
    emb_pid = {s.name: s.pid for s in lab.status()}["embedding"]
    assert emb_pid
    popular = None
    with httpx.Client(timeout=10) as c:
        assert c.get(ep["recommender"] + "/recommend/3").json()["source"] == "personalized"
        with paused([emb_pid]):
            r = c.get(ep["recommender"] + "/recommend/3")
            assert r.status_code == 503 and r.json()["fallback"] is False

            lab.set_variant("mitigated", ["recommender"])
            for u in range(10):
                t = time.monotonic()
                r = c.get(ep["recommender"] + f"/recommend/{u}", params={"k": 5})
                assert time.monotonic() - t < 0.5
                assert r.status_code == 200
                body = r.json()
                assert body["fallback"] is True and body["source"] == "popular"
                popular = popular or body["items"]
                assert body["items"] == popular  # the same precomputed list for everyone
    import json

    meta = json.loads((lab.paths.models / "recs" / "recs-v1" / "meta.json").read_text())
    assert popular == meta["popular_items"][:5]
