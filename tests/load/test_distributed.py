"""Locust master + 2 workers on loopback, carrying the mlchaos open-loop generator."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mlchaos.load import LOCUSTFILE


@pytest.mark.slow
def test_locust_master_and_two_workers(http_server: Callable[..., str], free_port: int, tmp_path: Path) -> None:
    locust = shutil.which("locust")
    if locust is None:
        pytest.skip("locust is not installed (optional extra)")
    url = http_server()
    report = tmp_path / "report.json"
    spec = {"rate": "1000/s", "duration": "3s", "arrivals": "poisson", "seed": 5, "lag_budget": "50ms"}
    common = ["-f", LOCUSTFILE]
    procs = [subprocess.Popen(
        [locust, *common, "--headless", "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(free_port), "--expect-workers", "2", "-u", "2", "-r", "2",
         "--mlchaos-url", url, "--mlchaos-spec", json.dumps(spec), "--mlchaos-report", str(report)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    for _ in range(2):
        procs.append(subprocess.Popen(
            [locust, *common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(free_port)],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        out, _ = procs[0].communicate(timeout=90)
        for p in procs[1:]:
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert report.exists(), out[-3000:]
    doc = json.loads(report.read_text())
    assert doc["processes"] == 2
    assert abs(doc["scheduled"] - 3000) < 4 * 3000**0.5
    assert doc["sent"] == doc["scheduled"] == doc["completed"]
    assert doc["errors"] == {"status": 0, "timeout": 0, "connection": 0}
    assert doc["latency"]["p99"] is not None
    assert doc["validity"]["achieved"] == 1.0
