"""Payload probes against an Open Inference Protocol (KServe v2) endpoint.

The endpoint is tests/stacks/oip_server.py, a small real server that speaks the protocol's REST
shapes: Triton, KServe and MLServer need images, a cluster or GPUs that the test machines lack.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from mlchaos.engine.runner import run_experiment
from mlchaos.spec.loader import load_dict
from tests.conftest import wait_until

# 5 rows, 3 of class 1 (first feature above 0.5): the true class-1 share is 0.6
BATCH = [[0.9, 1.0], [0.1, 2.0], [0.8, 3.0], [0.2, 4.0], [0.7, 5.0]]
BODY = {"inputs": [{"name": "input-0", "shape": [5, 2], "datatype": "FP64",
                    "data": [x for r in BATCH for x in r]}]}


@pytest.fixture(scope="module")
def oip() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = psutil.Popen([sys.executable, "-m", "tests.stacks.oip_server", "--port", str(port), "--model", "fraud",
                         "--version", "1"], cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(url + "/v2/health/ready", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, 15), "OIP test server did not start"
        yield url
    finally:
        proc.kill()
        proc.wait(5)


def run(exp: dict[str, Any], journal: Path) -> Any:
    """Run it; once more if the load generator could not keep up (a starved CI runner: no verdict either way)."""
    res = run_experiment(load_dict(exp), journal_path=journal)
    if res.status.value == "inconclusive":
        res = run_experiment(load_dict(exp), journal_path=journal.with_suffix(".rerun.jsonl"))
    return res


def _exp(url: str, probes: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "title": "oip",
        "target": {"platform": "http", "url": url, "health": "/v2/health/ready"},
        "load": {"rate": "20/s", "request": {"path": "/v2/models/fraud/infer", "body": BODY}, "sample": 1.0},
        "steady_state": probes,
        "phases": {"baseline": "1s", "fault": "300ms", "recovery": "200ms"},
        **kw,
    }


def test_predictions_and_version_read_an_oip_server(tmp_path: Path, oip: str) -> None:
    w = {"window": "1s", "min_samples": 20}
    probes = [
        {"name": "label share", "probe": "predictions", "protocol": "oip", "output": "label", "stat": "rate",
         "label": 1, **w, "between": [0.6, 0.6]},
        {"name": "argmax share", "probe": "predictions", "field": "outputs[name=probabilities].data",
         "reduce": "argmax", "stat": "rate", "label": 1, **w, "between": [0.6, 0.6]},
        {"name": "p1 mean", "probe": "predictions", "protocol": "kserve-v2", "output": "probabilities", "column": 1,
         "stat": "mean", **w, "between": [0.4, 0.8]},
        {"name": "version", "probe": "model-version", "protocol": "oip", "model": "fraud", "expect": "1"},
        {"name": "platform", "probe": "model-version", "protocol": "oip", "model": "fraud", "field": "platform",
         "stat": "changed"},
        {"name": "canary", "probe": "model-fingerprint", "protocol": "oip", "model": "fraud", "output": "probabilities",
         "rows": BATCH, "stat": "equal", "equals": 1},
    ]
    res = run(_exp(oip, probes), tmp_path / "j.jsonl")
    assert res.status.value == "passed", res.reason
    got = {p["name"]: p["before"]["value"] for p in res.summary["probes"]}
    assert got["label share"] == 0.6 and got["argmax share"] == 0.6  # rows, not responses: 3 of 5 per answer
    assert got["version"] == "1" and got["platform"] == 0 and got["canary"] == 1


def test_an_unexpected_version_and_a_path_without_rows_stop_the_run_before_any_fault(tmp_path: Path,
                                                                                     oip: str) -> None:
    probes = [{"name": "version", "probe": "model-version", "url": "/v2/models/fraud", "field": "versions[0]",
               "expect": 2},
              {"name": "whole outputs", "probe": "predictions", "field": "outputs", "stat": "rate", "label": 1,
               "window": "500ms", "min_samples": 1, "min": 0.5}]
    exp = _exp(oip, probes, phases={"baseline": "600ms", "recovery": "100ms"})
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value in ("not-run", "inconclusive"), res.reason
    by = {p["name"]: p for p in res.summary["probes"]}
    assert "expected '2', got '1'" in by["version"]["before"]["reason"]
    # one list per answer is not a row: the probe says how to read the rows instead of counting 1 wrong row
    assert "write a wildcard for every row" in by["whole outputs"]["before"]["reason"]
