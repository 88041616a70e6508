"""Training data windows, the holdout set and the metrics the validation gate judges.

Reuses the lab's seeded data and estimator (:mod:`mlchaos.lab.data`,
:mod:`mlchaos.lab.models`) so a delivered model is the same kind of model the
serving replicas already load.  The newest window is days 41–59 (the lab's
``current`` model saw 40–59); the holdout is "today" (day 60), which no
training window contains, and also serves as labeled shadow traffic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlchaos.lab import data

TRAIN_DAYS = (41, 59)
HOLDOUT_DAY = data.DAYS - 1


def training_frame() -> pd.DataFrame:
    tx = data.transactions()
    lo, hi = TRAIN_DAYS
    return tx[(tx["day"] >= lo) & (tx["day"] <= hi)].reset_index(drop=True)


def holdout_frame() -> pd.DataFrame:
    tx = data.transactions()
    return tx[tx["day"] == HOLDOUT_DAY].reset_index(drop=True)


def shadow_records(n: int = 200, seed: int = 0) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` labeled holdout rows as request bodies (JSON-able) and their labels."""
    h = holdout_frame().sample(n=min(n, len(holdout_frame())), random_state=seed)
    rows = [{c: (v.item() if hasattr(v, "item") else v) for c, v in r.items()}
            for r in h[list(data.FRAUD_FEATURES)].to_dict("records")]
    return rows, [int(x) for x in h["is_fraud"].to_numpy()]


def metrics(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, precision/recall at the threshold, and the flagged share against the true rate."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    pred = (proba >= threshold).astype(int)
    return {
        "auc": float(roc_auc_score(y, proba)),
        "accuracy": float((pred == y).mean()),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "flag_rate": float(pred.mean()),
        "fraud_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def evaluate(model: Any, frame: pd.DataFrame) -> dict[str, float]:
    """Holdout metrics of a :class:`mlchaos.lab.models.FraudModel` on ``frame``."""
    proba = model.predict_proba(frame)
    return metrics(frame["is_fraud"].to_numpy().astype(int), proba, model.threshold)


def finite(values: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Every key present and a finite number."""
    for k in keys:
        v = values.get(k)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(float(v)):
            return False
    return True
