"""Canary analysis: the same labeled shadow requests to the canary and to a baseline replica.

Why a paired comparison: the canary and the baseline answer the *same*
rows at the same time, so a difference in their prediction distribution is
the model's doing, not the traffic's.  Used by the mitigated deploy step
(automatic rollback) and by the ``canary-drift`` / ``shadow-accuracy``
probes, so the experiment and the pipeline judge with one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np


@dataclass
class Band:
    """How far the canary may sit from the baseline before it is rolled back."""

    max_flag_rate_diff: float = 0.01
    max_mean_score_diff: float = 0.01
    max_error_rate: float = 0.0


def predict(client: httpx.Client, url: str, rows: list[dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
    """Scores of one replica for ``rows`` (one batched request); ``(None, error)`` on failure."""
    try:
        r = client.post(url.rstrip("/") + "/predict", json={"instances": rows})
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return None, f"HTTP {r.status_code}"
    body = r.json()
    return np.asarray(body["scores"], dtype=float), str(body.get("model_version"))


def compare(canary: np.ndarray, baseline: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Differences between two score vectors over the same rows."""
    from mlchaos.drift import psi

    return {
        "flag_rate_canary": float((canary >= threshold).mean()),
        "flag_rate_baseline": float((baseline >= threshold).mean()),
        "flag_rate_diff": float(abs((canary >= threshold).mean() - (baseline >= threshold).mean())),
        "mean_score_diff": float(abs(canary.mean() - baseline.mean())),
        "psi": float(psi(baseline, canary)),
    }


def accuracy(scores: np.ndarray, labels: list[int], threshold: float = 0.5) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=int)
    pred = (scores >= threshold).astype(int)
    out = {"accuracy": float((pred == y).mean()), "recall": float(pred[y == 1].mean()) if y.any() else 0.0}
    out["auc"] = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else float("nan")
    return out


def outside(diff: dict[str, float], errors: int, requests: int, band: Band) -> str | None:
    """Why the canary left its band, or None."""
    if requests and errors / requests > band.max_error_rate:
        return f"canary error rate {errors}/{requests} above {band.max_error_rate:g}"
    if diff.get("flag_rate_diff", 0.0) > band.max_flag_rate_diff:
        return f"flag rate {diff['flag_rate_canary']:.4f} vs baseline {diff['flag_rate_baseline']:.4f}"
    if diff.get("mean_score_diff", 0.0) > band.max_mean_score_diff:
        return f"mean score differs by {diff['mean_score_diff']:.4f}"
    return None
