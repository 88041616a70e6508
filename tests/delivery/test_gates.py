"""The gate decisions: naive fails open, strict fails closed."""

from __future__ import annotations

import math

import pytest

from mlchaos.lab.delivery.gates import Thresholds, is_validated, naive_gate, strict_gate

GOOD = {"metrics": {"auc": 0.95, "recall": 0.5, "accuracy": 0.98}, "champion": {"metrics": {"auc": 0.956}}}


@pytest.mark.parametrize("status", ["failed", "timeout"])
def test_step_failure(status: str) -> None:
    assert naive_gate(status, None, Thresholds())["passed"] is True
    strict = strict_gate(status, None, Thresholds())
    assert strict["passed"] is False and strict["status"] == status
    assert not is_validated(naive_gate(status, None, Thresholds()))


@pytest.mark.parametrize("metrics", [{k: math.nan for k in GOOD["metrics"]}, {}])
def test_nan_or_missing_metrics(metrics: dict[str, float]) -> None:
    naive = naive_gate("succeeded", {"metrics": metrics}, Thresholds())
    assert naive["passed"] is True  # NaN < threshold is False: the classic slip
    assert not is_validated(naive)  # ... but the record does not prove validation
    strict = strict_gate("succeeded", {"metrics": metrics}, Thresholds())
    assert strict["passed"] is False and strict["status"] == "invalid-metrics"


def test_thresholds_and_champion() -> None:
    assert strict_gate("succeeded", GOOD, Thresholds())["passed"] is True
    assert is_validated(strict_gate("succeeded", GOOD, Thresholds()))
    poisoned = {"metrics": {"auc": 0.82, "recall": 0.1, "accuracy": 0.974}}
    assert naive_gate("succeeded", poisoned, Thresholds())["passed"] is True  # accuracy-only blind spot
    assert strict_gate("succeeded", poisoned, Thresholds())["passed"] is False
    worse = {"metrics": {"auc": 0.91, "recall": 0.5}, "champion": {"metrics": {"auc": 0.96}}}
    out = strict_gate("succeeded", worse, Thresholds())
    assert out["passed"] is False and "champion" in out["reason"]
