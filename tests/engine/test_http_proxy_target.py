"""An HTTP target with 'proxy: true': the run puts a fault proxy in front of any service and drives it."""

from __future__ import annotations

from pathlib import Path

from mlchaos.engine.runner import run_experiment
from mlchaos.spec.loader import load_dict


def test_latency_through_a_proxy_the_run_starts(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    exp = {
        "title": "latency via proxy",
        "target": {"platform": "http", "url": url, "health": "/health", "proxy": True},
        "steady_state": [{"name": "latency", "probe": "http", "url": "/health", "value": "latency", "max": "100ms"}],
        "method": [{"name": "slow", "fault": "latency", "delay": "300ms", "at": "200ms", "duration": "1s"}],
        "phases": {"baseline": "300ms", "recovery": "300ms"},
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value == "failed", res.reason
    fault = res.summary["faults"][0]
    assert fault["observed"]["affected"] >= 1 and fault["observed"]["seen"] >= fault["observed"]["affected"]
    worst = res.summary["probes"][0]["during"]["max"]
    assert worst >= 0.3  # the injected delay was really paid by the probe going through the proxy
    assert res.summary["probes"][0]["after"]["ok"] is True
