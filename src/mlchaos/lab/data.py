"""Seeded synthetic data for the lab: fraud-like transactions and recommender interactions.

The data is generated, not downloaded, so the lab works offline and every run
of ``lab up`` trains the same models.  The fraud set drifts over its 60 days
(old fraud: electronics at night; recent fraud: gift cards, new accounts, high
velocity), which is what makes a model trained on an old window measurably
*stale* against today's traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEED = 20261126
DAYS = 61  # days 0..59 are history, day 60 is "today" (the batch date)
TX_PER_DAY = 700
N_ACCOUNTS = 2000
N_USERS = 1000
N_ITEMS = 400

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurants",
    "travel",
    "electronics",
    "gift_cards",
    "fuel",
    "fashion",
    "online_services",
)
_CATEGORY_P = np.array([0.25, 0.18, 0.07, 0.1, 0.05, 0.15, 0.12, 0.08])

#: Account-level features served by the real-time feature service.
ACCOUNT_FEATURES: tuple[str, ...] = ("account_age_days", "txn_count_1h", "txn_count_24h", "amount_avg_7d")
#: Request-level features a caller sends with each transaction.
REQUEST_FEATURES: tuple[str, ...] = ("amount", "merchant_category", "hour")
FRAUD_FEATURES: tuple[str, ...] = (*REQUEST_FEATURES, *ACCOUNT_FEATURES)

EPOCH = pd.Timestamp("2026-09-27T00:00:00Z")


def accounts(seed: int = SEED) -> pd.DataFrame:
    """Accounts with their slowly changing profile (age, typical spend)."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.exponential(420.0, N_ACCOUNTS), 1, 4000).round()
    base = rng.lognormal(mean=3.6, sigma=0.7, size=N_ACCOUNTS)
    return pd.DataFrame(
        {"account_id": np.arange(N_ACCOUNTS, dtype=np.int64), "account_age_days": age, "base_spend": base}
    )


def transactions(seed: int = SEED) -> pd.DataFrame:
    """All transactions of days 0..60 with a fraud label whose pattern drifts over time."""
    rng = np.random.default_rng(seed + 1)
    acc = accounts(seed)
    n = DAYS * TX_PER_DAY
    day = np.repeat(np.arange(DAYS), TX_PER_DAY)
    account_id = rng.integers(0, N_ACCOUNTS, n)
    base = acc["base_spend"].to_numpy()[account_id]
    age = acc["account_age_days"].to_numpy()[account_id] + day  # accounts age with the calendar
    cat_idx = rng.choice(len(MERCHANT_CATEGORIES), n, p=_CATEGORY_P)
    hour = np.where(rng.random(n) < 0.12, rng.integers(0, 6, n), rng.integers(6, 24, n))
    amount = np.round(base * rng.lognormal(0.0, 0.6, n), 2)
    txn_1h = rng.poisson(0.4, n)
    avg_7d = np.round(base * rng.lognormal(0.0, 0.15, n), 2)

    w = day / (DAYS - 1)  # 0 at the oldest day, 1 today
    cat = np.asarray(MERCHANT_CATEGORIES)[cat_idx]
    night = hour < 6
    ratio = np.log(amount / avg_7d)
    logit = (
        -4.6
        + (1 - w) * (2.2 * (cat == "electronics") + 1.6 * night + 0.5 * ratio)
        + w * (2.4 * (cat == "gift_cards") + 0.9 * txn_1h + 1.8 * (age < 60) + 0.9 * ratio)
    )
    is_fraud = rng.random(n) < 1 / (1 + np.exp(-logit))
    # Fraudulent activity shows up in velocity too (bursts of card testing).
    txn_1h = txn_1h + (is_fraud & (rng.random(n) < w)) * rng.poisson(2.0, n)
    txn_24h = txn_1h + rng.poisson(2.5, n)
    ts = EPOCH + pd.to_timedelta(day, unit="D") + pd.to_timedelta(hour, unit="h")
    ts = ts + pd.to_timedelta(rng.integers(0, 3600, n), unit="s")
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype=np.int64),
            "ts": ts,
            "day": day,
            "account_id": account_id.astype(np.int64),
            "amount": amount,
            "merchant_category": cat,
            "hour": hour.astype(np.int64),
            "account_age_days": age.astype(float),
            "txn_count_1h": txn_1h.astype(float),
            "txn_count_24h": txn_24h.astype(float),
            "amount_avg_7d": avg_7d,
            "is_fraud": is_fraud.astype(np.int64),
        }
    )


def interactions(seed: int = SEED) -> pd.DataFrame:
    """User-item interactions from latent tastes plus a popularity bias."""
    rng = np.random.default_rng(seed + 2)
    k = 6
    users = rng.normal(size=(N_USERS, k))
    items = rng.normal(size=(N_ITEMS, k))
    popularity = rng.zipf(1.6, N_ITEMS).clip(1, 60).astype(float)
    scores = users @ items.T / np.sqrt(k) + 0.6 * np.log(popularity)[None, :]
    rows: list[np.ndarray] = []
    for u in range(N_USERS):
        p = np.exp(scores[u] - scores[u].max())
        p /= p.sum()
        chosen = rng.choice(N_ITEMS, size=25, replace=False, p=p)
        rows.append(np.stack([np.full(25, u), chosen], axis=1))
    pairs = np.concatenate(rows)
    return pd.DataFrame({"user_id": pairs[:, 0].astype(np.int64), "item_id": pairs[:, 1].astype(np.int64)})
