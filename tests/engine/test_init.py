"""mlchaos init: the scaffold validates and runs against a real service on its first run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.helpers import summary


@pytest.mark.slow
def test_init_scaffold_runs_first_time(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    exp = tmp_path / "exp.yaml"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "--out", str(exp), "--url", url, "--path", "/predict",
                        "--method", "POST", "--body", '{"amount": 120}', "--rate", "250", "--p99", "500ms",
                        "--error-rate", "1%", "--fault", "errors"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    j = tmp_path / "j.jsonl"
    run = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(exp), "-j", str(j), "-q"], capture_output=True,
                         text=True, timeout=180)
    s = summary(j)
    # 10 % of requests answered 503 by the proxy: the error-rate SLO of 1 % must break, visibly
    assert s["status"] == "failed", s["reason"]
    assert "error rate" in s["decided_by"]
    assert s["faults"][0]["observed"]["affected"] > 0
    assert run.returncode == 1


def test_init_rejects_bad_answers(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "--out", str(tmp_path / "e.yaml"), "--url", "http://x",
                        "--path", "/", "--method", "GET", "--body", "", "--rate", "10", "--p99", "soon",
                        "--error-rate", "1%", "--fault", "latency"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "invalid duration" in r.stderr
    assert not (tmp_path / "e.yaml").exists()
