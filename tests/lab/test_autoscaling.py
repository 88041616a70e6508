"""Practice project 3 needs to see the feature service autoscale under peak load, and back down."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from mlchaos.lab import Lab
from tests.lab.traffic import Traffic, error_rate


@pytest.mark.slow
def test_feature_service_scales_up_under_load_and_down_after(make_lab: Callable[..., Lab]) -> None:
    # Targets scaled down so a test-sized load (60 req/s) counts as a peak on a shared 2-core machine.
    lab = make_lab(
        autoscale={
            "target_concurrency": 0.02,
            "target_latency_ms": 1000,
            "up_cooldown": 1,
            "down_cooldown": 4,
            "max_replicas": 3,
        }
    )
    lab.up(["realtime"], variant="mitigated")
    url = lab.endpoints()["realtime"] + "/predict"
    body = {"account_id": 5, "amount": 20.0, "merchant_category": "fuel", "hour": 9}
    traffic = Traffic(lambda i: ("POST", url, {**body, "account_id": i % 500}), rate=60, duration=6).start()
    results = traffic.join()
    assert error_rate(results) == 0
    decisions = lab.state()["autoscaler"]["decisions"]
    ups = [d for d in decisions if d["direction"] == "up"]
    assert ups, decisions
    replicas = [s for s in lab.status() if s.name.startswith("features-") and s.role == "replica"]
    assert len(replicas) >= 2
    with httpx.Client() as c:
        view = c.get(lab.endpoints()["features"] + "/lb/status").json()
        assert len(view["backends"]) >= 2  # the balancer knows the new replicas
        assert "mlchaos_autoscaler_decisions_total" in c.get(lab.endpoints()["supervisor"] + "/metrics").text
    # idle: back to the minimum after the down cooldown
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len([s for s in lab.status() if s.role == "replica" and s.system == "realtime"]) == 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"did not scale down: {lab.state()['autoscaler']['decisions']}")
    assert any(d["direction"] == "down" for d in lab.state()["autoscaler"]["decisions"])
