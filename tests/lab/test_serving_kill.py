"""Practice project 1: kill a serving replica under steady traffic, naive vs mitigated."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from mlchaos.lab import Lab
from tests.lab.traffic import Traffic, error_rate

REQ = {
    "amount": 42.0,
    "merchant_category": "grocery",
    "hour": 14,
    "account_age_days": 300.0,
    "txn_count_1h": 0.0,
    "txn_count_24h": 3.0,
    "amount_avg_7d": 40.0,
}


def _kill_under_traffic(lab: Lab, victim: str) -> tuple[float, int]:
    url = lab.endpoints()["serving"] + "/predict"
    pid = {s.name: s.pid for s in lab.status()}[victim]
    assert pid
    traffic = Traffic(lambda i: ("POST", url, REQ), rate=40, duration=6.0).start()
    time.sleep(1.5)
    os.kill(pid, signal.SIGKILL)
    results = traffic.join()
    assert len(results) >= 200
    # the supervisor brings the replica back: three ready replicas again, with a restart counted
    lab.wait_ready(20, names=["serving-0", "serving-1", "serving-2", "serving-lb"])
    st = {s.name: s for s in lab.status()}
    assert st[victim].pid not in (None, pid)
    assert sum(st[f"serving-{i}"].ready for i in range(3)) == 3
    return error_rate(results), st[victim].restarts


@pytest.mark.slow
def test_replica_kill_naive_errors_mitigated_holds(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(load_delay=1.0)
    lab.up(["serving"], variant="naive")

    naive_rate, restarts = _kill_under_traffic(lab, "serving-1")
    assert restarts == 1
    assert naive_rate > 0.02, f"naive round-robin should send traffic to the dead replica ({naive_rate:.3f})"

    lab.set_variant("mitigated", ["serving"])
    assert {s.name: s.variant for s in lab.status()}["serving-lb"] == "mitigated"
    mitigated_rate, restarts = _kill_under_traffic(lab, "serving-2")
    assert restarts == 1
    assert mitigated_rate <= 0.01, f"readiness gate + ejection + retry should hold ({mitigated_rate:.3f})"
