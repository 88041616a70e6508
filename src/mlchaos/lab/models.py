"""Versioned model files: training at set-up, metadata, loading.

A model version is a pickle plus a JSON metadata file (version, alias,
trained-at, training data window, feature list, threshold).  Services and tests
load models through :func:`load_fraud_model` so a prediction checked "against
the model loaded directly" uses exactly the encoding the services use.

``current`` is trained on the most recent 20 days and ``stale`` on the oldest
20; the fraud pattern drifts between them, so their predictions differ.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlchaos.lab import data
from mlchaos.lab.auth import check_name, inside

FRAUD_ALIASES: dict[str, str] = {"current": "fraud-v2", "stale": "fraud-v1"}
FRAUD_WINDOWS: dict[str, tuple[int, int]] = {"fraud-v2": (40, 59), "fraud-v1": (0, 19)}
RECS_VERSION = "recs-v1"
NUMERIC = ("amount", "hour", "account_age_days", "txn_count_1h", "txn_count_24h", "amount_avg_7d")


def _num(v: Any) -> float:
    if v is None:
        return np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan  # malformed → missing, as pd.to_numeric(errors="coerce") does


def encode_fraud(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> np.ndarray:
    """Turn transaction records into the model's numeric matrix.

    Numeric features pass through (missing or malformed → NaN, imputed by the
    model's own imputer, as most sklearn pipelines do), plus a night flag, a
    log amount ratio and a one-hot merchant category.  A DataFrame (batch) is
    encoded column-wise with pandas; a few dicts (one request) without pandas,
    which keeps a single prediction well under a millisecond.  Both paths give
    the same matrix.
    """
    if isinstance(rows, pd.DataFrame):
        n = len(rows)
        num = (
            np.column_stack([pd.to_numeric(rows[c], errors="coerce").to_numpy(dtype=float) for c in NUMERIC])
            if n
            else np.zeros((0, len(NUMERIC)))
        )
        cats = rows["merchant_category"].astype(object).to_numpy() if n else np.array([], dtype=object)
    else:
        recs = list(rows)
        num = np.array([[_num(r.get(c)) for c in NUMERIC] for r in recs], dtype=float).reshape(
            len(recs), len(NUMERIC)
        )
        cats = np.array([r.get("merchant_category") for r in recs], dtype=object)
    amount, hour, avg = num[:, 0], num[:, 1], num[:, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(np.clip(amount, 0.01, None) / np.clip(avg, 0.01, None))
    night = np.where(np.isnan(hour), np.nan, (hour < 6).astype(float))
    onehot = np.zeros((len(cats), len(data.MERCHANT_CATEGORIES)))
    for j, c in enumerate(data.MERCHANT_CATEGORIES):
        onehot[:, j] = cats == c
    return np.column_stack([num, night, ratio, onehot])


@dataclass
class FraudModel:
    """A loaded fraud model: the sklearn estimator plus its metadata."""

    version: str
    alias: str
    estimator: Any
    metadata: dict[str, Any]

    @property
    def threshold(self) -> float:
        return float(self.metadata.get("threshold", 0.5))

    def predict_proba(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Probability of fraud for each row."""
        x = encode_fraud(rows)
        if len(x) == 0:
            return np.zeros(0)
        import sklearn

        # The matrix is ours (NaN allowed, imputed by the pipeline): skip sklearn's per-call re-checks.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=float)

    def label(self, proba: np.ndarray) -> list[str]:
        return ["fraud" if p >= self.threshold else "legit" for p in proba]


def _train_fraud(frame: pd.DataFrame) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=500)
    )
    model.fit(encode_fraud(frame), frame["is_fraud"].to_numpy())
    return model


def build_models(models_dir: Path, tx: pd.DataFrame | None = None) -> dict[str, dict[str, Any]]:
    """Train every model version and write it with its metadata; return the metadata by version."""
    tx = data.transactions() if tx is None else tx
    out: dict[str, dict[str, Any]] = {}
    fraud_dir = models_dir / "fraud"
    fraud_dir.mkdir(parents=True, exist_ok=True)
    for alias, version in FRAUD_ALIASES.items():
        lo, hi = FRAUD_WINDOWS[version]
        window = tx[(tx["day"] >= lo) & (tx["day"] <= hi)]
        est = _train_fraud(window)
        meta = {
            "name": "fraud",
            "version": version,
            "alias": alias,
            "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "training_window": {
                "start": str(window["ts"].min().date()),
                "end": str(window["ts"].max().date()),
                "rows": len(window),
                "fraud_rate": float(window["is_fraud"].mean()),
            },
            "features": list(data.FRAUD_FEATURES),
            "encoded_columns": [
                *NUMERIC,
                "night",
                "amount_ratio",
                *(f"mc_{c}" for c in data.MERCHANT_CATEGORIES),
            ],
            "threshold": 0.5,
            "estimator": "SimpleImputer(median) → StandardScaler → LogisticRegression",
            "seed": data.SEED,
        }
        with open(fraud_dir / f"{version}.pkl", "wb") as fh:
            pickle.dump(est, fh)
        (fraud_dir / f"{version}.json").write_text(json.dumps(meta, indent=2))
        out[version] = meta
    (fraud_dir / "aliases.json").write_text(json.dumps(FRAUD_ALIASES, indent=2))
    out[RECS_VERSION] = build_recommender(models_dir)
    return out


def resolve_fraud_version(models_dir: Path, version_or_alias: str) -> str:
    """The version id an alias stands for (``current`` → ``fraud-v2``); a plain name, else :class:`BadName`.

    Both the name asked for and what the alias file maps it to are checked: a
    version is a file name under ``models/fraud``, never a path.
    """
    check_name(version_or_alias, "model version")
    aliases = json.loads((models_dir / "fraud" / "aliases.json").read_text())
    return check_name(str(aliases.get(version_or_alias, version_or_alias)), "model version")


def load_fraud_model(models_dir: Path, version_or_alias: str = "current") -> FraudModel:
    """Load a fraud model version (or alias ``current``/``stale``) from its files.

    Only files inside ``models/fraud`` named by a plain version id are read
    (:class:`BadName` otherwise): unpickling runs code, so no caller, least of
    all an HTTP request, may point it at a file of its choice.
    """
    version = resolve_fraud_version(models_dir, version_or_alias)
    fraud_dir = models_dir / "fraud"
    meta = json.loads(inside(fraud_dir, version, ".json", "model version").read_text())
    with open(inside(fraud_dir, version, ".pkl", "model version"), "rb") as fh:
        est = pickle.load(fh)  # the lab's own files, written by build_models
    return FraudModel(version=version, alias=str(meta.get("alias", "")), estimator=est, metadata=meta)


def build_recommender(models_dir: Path) -> dict[str, Any]:
    """Factorise the interaction matrix (TruncatedSVD) into user and item embeddings."""
    from sklearn.decomposition import TruncatedSVD

    inter = data.interactions()
    mat = np.zeros((data.N_USERS, data.N_ITEMS))
    mat[inter["user_id"].to_numpy(), inter["item_id"].to_numpy()] = 1.0
    svd = TruncatedSVD(n_components=16, random_state=data.SEED)
    user_f = svd.fit_transform(mat)
    item_f = svd.components_.T
    popular = inter["item_id"].value_counts().head(50).index.tolist()
    d = models_dir / "recs" / RECS_VERSION
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "user_embeddings.npy", user_f.astype(np.float32))
    np.save(d / "item_embeddings.npy", item_f.astype(np.float32))
    meta = {
        "name": "recs",
        "version": RECS_VERSION,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training_window": {"rows": len(inter), "users": data.N_USERS, "items": data.N_ITEMS},
        "features": ["user_embedding(16)"],
        "estimator": "TruncatedSVD(16) on the user×item interaction matrix",
        "popular_items": [int(i) for i in popular],
        "seed": data.SEED,
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def recommend(item_embeddings: np.ndarray, user_embedding: np.ndarray, k: int) -> list[int]:
    """Top-k items by dot product: the recommender's scoring, shared with tests."""
    scores = item_embeddings @ user_embedding
    top = np.argpartition(-scores, k)[:k]
    return [int(i) for i in top[np.argsort(-scores[top])]]
