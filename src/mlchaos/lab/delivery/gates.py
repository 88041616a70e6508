"""The validation gate, in its two variants: the one teams write first, and the one that fails closed.

Kept apart from the steps because the gate is the *decision* the pipeline
makes from a step's outcome (exit code, timeout, metrics file), and the
difference between the variants is exactly that decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlchaos.lab.delivery.training import finite

REQUIRED = ("auc", "recall")


@dataclass
class Thresholds:
    """Minimum holdout metrics, and how much worse than the champion a candidate may be."""

    min_metrics: dict[str, float] = field(default_factory=lambda: {"auc": 0.90, "recall": 0.30})
    """Strict gate: ranking quality and the share of fraud caught."""
    champion_tolerance: float = 0.03
    """Strict gate: candidate AUC must be at least champion AUC minus this."""
    naive_min_metrics: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.90})
    """Naive gate: accuracy only — on data with ~3 % fraud, a model that flags almost nothing still scores
    0.97, the imbalance blind spot a first pipeline usually has."""


def naive_gate(step_status: str, validation: dict[str, Any] | None, t: Thresholds) -> dict[str, Any]:
    """Fail-open: a crashed or timed-out validation is logged and waved through; a metric only fails when it
    is *less than* its threshold, so NaN (every comparison False) and missing metrics pass."""
    if step_status != "succeeded" or validation is None:
        return {"gate": "naive", "passed": True, "status": step_status if step_status != "succeeded" else "error",
                "reason": f"validation step {step_status}; continuing (fail-open)"}
    m = validation.get("metrics") or {}
    low = [k for k, lim in t.naive_min_metrics.items() if k in m and m[k] < lim]
    return {"gate": "naive", "passed": not low, "status": "passed" if not low else "failed",
            "metrics": m, "reason": f"below threshold: {low}" if low else "metrics not below thresholds"}


def strict_gate(step_status: str, validation: dict[str, Any] | None, t: Thresholds) -> dict[str, Any]:
    """Fail-closed: anything but a finished step with finite metrics above every threshold and no worse than
    the champion blocks the release."""
    base = {"gate": "strict", "passed": False}
    if step_status != "succeeded" or validation is None:
        return {**base, "status": step_status if step_status != "succeeded" else "error",
                "reason": f"validation step {step_status}: fail closed"}
    m = validation.get("metrics") or {}
    keys = tuple(dict.fromkeys([*REQUIRED, *t.min_metrics]))
    if not finite(m, keys):
        return {**base, "status": "invalid-metrics", "metrics": m,
                "reason": f"metrics missing or not finite: {[k for k in keys if not finite(m, (k,))]}"}
    low = [f"{k}={m[k]:.3f}<{lim}" for k, lim in t.min_metrics.items() if not m[k] >= lim]
    if low:
        return {**base, "status": "failed", "metrics": m, "reason": f"below threshold: {', '.join(low)}"}
    champ = (validation.get("champion") or {}).get("metrics") or {}
    if champ and finite(champ, ("auc",)) and m["auc"] < champ["auc"] - t.champion_tolerance:
        return {**base, "status": "failed", "metrics": m,
                "reason": f"auc {m['auc']:.3f} worse than champion {champ['auc']:.3f} - {t.champion_tolerance}"}
    return {"gate": "strict", "passed": True, "status": "passed", "metrics": m, "reason": "all checks passed"}


def is_validated(record: dict[str, Any] | None) -> bool:
    """Does a registry validation record prove the version was validated?  (What the probe asks.)"""
    if not record or record.get("status") != "passed" or not record.get("passed"):
        return False
    m = record.get("metrics") or {}
    return finite(m, REQUIRED)
