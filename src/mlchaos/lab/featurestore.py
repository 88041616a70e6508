"""The lab's feature store: an online SQLite table and an offline parquet store.

Every online row carries ``event_ts`` (when the feature values were computed)
so feature age is visible to services and probes, and a stale-feature fault is
a plain UPDATE of that column.  The offline store holds daily parquet
partitions that the batch pipeline extracts from.  SQLite is in the standard
library and answers indexed reads in microseconds (see the research notes on
why the lab does not depend on Feast).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mlchaos.lab import data

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account_features (
    account_id INTEGER PRIMARY KEY,
    account_age_days REAL,
    txn_count_1h REAL,
    txn_count_24h REAL,
    amount_avg_7d REAL,
    event_ts REAL NOT NULL
)
"""


class OnlineStore:
    """Read-mostly access to the online table; one connection per process."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def get(self, account_id: int) -> dict[str, Any] | None:
        """Features of one account with their ``event_ts``, or None if unknown."""
        cur = self._conn.execute(
            "SELECT account_age_days, txn_count_1h, txn_count_24h, amount_avg_7d, event_ts "
            "FROM account_features WHERE account_id = ?",
            (int(account_id),),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip((*data.ACCOUNT_FEATURES, "event_ts"), row, strict=True))

    def write(self, frame: pd.DataFrame, event_ts: float | None = None) -> None:
        """Upsert account rows (last write wins, like most online stores)."""
        ts = time.time() if event_ts is None else event_ts
        rows = [
            (
                int(r.account_id),
                float(r.account_age_days),
                float(r.txn_count_1h),
                float(r.txn_count_24h),
                float(r.amount_avg_7d),
                float(getattr(r, "event_ts", ts)),
            )
            for r in frame.itertuples(index=False)
        ]
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT OR REPLACE INTO account_features VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


def build_online(path: Path, tx: pd.DataFrame) -> None:
    """Materialise each account's latest features (as of the end of history) into SQLite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    latest = tx.sort_values("ts").groupby("account_id").tail(1)
    acc = data.accounts()[["account_id"]].merge(
        latest[["account_id", *data.ACCOUNT_FEATURES]], on="account_id", how="left"
    )
    acc = acc.fillna(
        {"account_age_days": 365.0, "txn_count_1h": 0.0, "txn_count_24h": 2.0, "amount_avg_7d": 40.0}
    )
    store = OnlineStore(path)
    store.write(acc, event_ts=time.time())
    store.close()


def build_offline(root: Path, tx: pd.DataFrame, days: int = 7) -> list[str]:
    """Write the last ``days`` days as ``date=YYYY-MM-DD/part-0.parquet``; return the dates."""
    dates: list[str] = []
    last = int(tx["day"].max())
    for day in range(last - days + 1, last + 1):
        part = tx[tx["day"] == day].drop(columns=["is_fraud"])
        date = str((data.EPOCH + pd.Timedelta(days=day)).date())
        d = root / f"date={date}"
        d.mkdir(parents=True, exist_ok=True)
        part.to_parquet(d / "part-0.parquet", index=False)
        dates.append(date)
    return dates


def offline_dates(root: Path) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in root.glob("date=*") if p.is_dir())


def read_offline(root: Path, date: str) -> pd.DataFrame:
    """Extract one day's feature rows from the offline store."""
    return pd.read_parquet(root / f"date={date}" / "part-0.parquet")
