"""The lab's feature store: an online store (SQLite or Redis) and an offline parquet store.

Every online row carries ``event_ts`` (when the feature values were computed)
so feature age is visible to services and probes, and a stale-feature fault is
a plain rewrite of that column.  The offline store holds daily parquet
partitions that the batch pipeline extracts from.

The online store has one small interface (:class:`FeatureStore`) with two
implementations, because production teams run both shapes: SQLite
(:class:`OnlineStore`, the default: in the standard library, indexed reads in
microseconds, nothing to run; see the research notes on why the lab does not
depend on Feast) and Redis (:class:`RedisStore`, what most online stores are
in production; a network hop and a server that can be down).  Set-up always
builds the SQLite file; a lab configured with a Redis URL copies those rows
into Redis when its supervisor starts, so both backends answer the same
features and the same ``event_ts`` (floats are stored as their shortest
round-trip ``repr``, so no value changes on the way).

Choose the backend with :func:`open_store`: ``None``/``"sqlite"`` or a path →
SQLite, ``redis://…`` → Redis (the ``redis`` client is an optional
dependency, imported only then).  A Redis URL that does not answer is a
:class:`FeatureStoreError` with the URL in the message, never a silent fallback
to SQLite: an experiment must know which store it is breaking.
"""

from __future__ import annotations

import abc
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mlchaos.lab import data

#: Environment variable naming the lab's Redis online store (``redis://127.0.0.1:6379/0``).
ENV_REDIS_URL = "MLCHAOS_LAB_REDIS_URL"
#: Key of one account's hash in Redis: ``<prefix><account_id>``.
REDIS_PREFIX = "mlchaos:features:account:"
#: Column order of a row: the account features, then ``event_ts``.
ROW_FIELDS: tuple[str, ...] = (*data.ACCOUNT_FEATURES, "event_ts")

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

Row = dict[str, float]


class FeatureStoreError(RuntimeError):
    """The online store cannot be opened or reached (the message names the store)."""


class FeatureStore(abc.ABC):
    """The online store as services and faults see it: rows of floats by account id, with ``event_ts``.

    ``get`` is the serving path; ``write`` is the bulk load at build time;
    ``read_rows``/``write_rows``/``delete``/``ids`` are what feature-store
    faults need to record exact originals and put them back.
    """

    #: ``"sqlite"`` or ``"redis"``.
    backend: str = ""
    #: What :func:`open_store` needs to open the same store again (a path or a URL).
    location: str = ""

    @abc.abstractmethod
    def get(self, account_id: int) -> dict[str, Any] | None:
        """Features of one account with their ``event_ts``, or None if unknown."""

    @abc.abstractmethod
    def read_rows(self, ids: Iterable[int]) -> dict[int, Row | None]:
        """Exact stored rows (features and ``event_ts``) of ``ids``; None for a missing account."""

    @abc.abstractmethod
    def write_rows(self, rows: Mapping[int, Row]) -> None:
        """Upsert exact rows (last write wins, like most online stores)."""

    @abc.abstractmethod
    def delete(self, ids: Iterable[int]) -> int:
        """Delete accounts' rows; return how many existed."""

    @abc.abstractmethod
    def ids(self) -> list[int]:
        """Every account id in the store, sorted."""

    def ping(self) -> None:  # noqa: B027 - SQLite needs no check beyond opening
        """Raise :class:`FeatureStoreError` when the store does not answer."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def write(self, frame: pd.DataFrame, event_ts: float | None = None) -> None:
        """Bulk upsert of account rows from a frame (build time); ``event_ts`` column or argument, else now."""
        ts = time.time() if event_ts is None else event_ts
        rows: dict[int, Row] = {}
        for r in frame.itertuples(index=False):
            row = {f: float(getattr(r, f)) for f in data.ACCOUNT_FEATURES}
            row["event_ts"] = float(getattr(r, "event_ts", ts))
            rows[int(r.account_id)] = row
        self.write_rows(rows)

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnlineStore(FeatureStore):
    """The SQLite online table (the default backend); one connection per process."""

    backend = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.location = self.path
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise FeatureStoreError(f"cannot open the SQLite feature store {self.path}: {exc}") from None

    def get(self, account_id: int) -> dict[str, Any] | None:
        cur = self._conn.execute(
            "SELECT account_age_days, txn_count_1h, txn_count_24h, amount_avg_7d, event_ts "
            "FROM account_features WHERE account_id = ?",
            (int(account_id),),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip(ROW_FIELDS, row, strict=True))

    def read_rows(self, ids: Iterable[int]) -> dict[int, Row | None]:
        return {int(i): self.get(int(i)) for i in ids}

    def write_rows(self, rows: Mapping[int, Row]) -> None:
        values = [(int(k), *(float(v[f]) for f in ROW_FIELDS)) for k, v in rows.items()]
        self._conn.execute("BEGIN")
        self._conn.executemany("INSERT OR REPLACE INTO account_features VALUES (?, ?, ?, ?, ?, ?)", values)
        self._conn.execute("COMMIT")

    def delete(self, ids: Iterable[int]) -> int:
        self._conn.execute("BEGIN")
        n = 0
        for i in ids:
            n += self._conn.execute("DELETE FROM account_features WHERE account_id = ?", (int(i),)).rowcount
        self._conn.execute("COMMIT")
        return n

    def ids(self) -> list[int]:
        return [int(r[0]) for r in self._conn.execute("SELECT account_id FROM account_features ORDER BY 1")]

    def close(self) -> None:
        self._conn.close()


SqliteStore = OnlineStore


class RedisStore(FeatureStore):
    """Accounts as Redis hashes ``<prefix><id>`` with one field per feature and ``event_ts``.

    Values are the floats' ``repr`` (shortest round-trip), so a row read back
    is bit-for-bit the row written.  The client has short socket timeouts:
    a dead Redis must surface as an error in milliseconds, not hang the
    feature service (its callers have their own, tighter budgets).
    """

    backend = "redis"

    def __init__(self, url: str, prefix: str = REDIS_PREFIX, timeout: float = 1.0) -> None:
        try:
            import redis
        except ImportError:
            raise FeatureStoreError(
                "the Redis feature store needs the 'redis' package: pip install 'mlchaos[redis]' (or redis)"
            ) from None
        self.url = self.location = url
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self._r = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except ValueError as exc:
            raise FeatureStoreError(f"bad Redis URL {url!r}: {exc}") from None

    def _key(self, account_id: int) -> str:
        return f"{self.prefix}{int(account_id)}"

    def _fail(self, exc: BaseException) -> FeatureStoreError:
        return FeatureStoreError(f"Redis feature store {self.url} unreachable: {type(exc).__name__}: {exc}")

    def ping(self) -> None:
        try:
            self._r.ping()
        except self._errors as exc:
            raise self._fail(exc) from None

    @staticmethod
    def _parse(values: list[Any]) -> Row | None:
        if values[-1] is None:  # event_ts is NOT NULL: no event_ts means no row
            return None
        return {f: float(v) for f, v in zip(ROW_FIELDS, values, strict=True)}

    def get(self, account_id: int) -> dict[str, Any] | None:
        try:
            values = self._r.hmget(self._key(account_id), list(ROW_FIELDS))
        except self._errors as exc:
            raise self._fail(exc) from None
        return self._parse(list(values))

    def read_rows(self, ids: Iterable[int]) -> dict[int, Row | None]:
        keys = [int(i) for i in ids]
        try:
            pipe = self._r.pipeline(transaction=False)
            for i in keys:
                pipe.hmget(self._key(i), list(ROW_FIELDS))
            got = pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from None
        return {i: self._parse(list(v)) for i, v in zip(keys, got, strict=True)}

    def write_rows(self, rows: Mapping[int, Row]) -> None:
        try:
            pipe = self._r.pipeline(transaction=True)  # MULTI/EXEC: readers see all rows or none
            for k, row in rows.items():
                pipe.hset(self._key(k), mapping={f: repr(float(row[f])) for f in ROW_FIELDS})
            pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from None

    def delete(self, ids: Iterable[int]) -> int:
        keys = [self._key(i) for i in ids]
        if not keys:
            return 0
        try:
            return int(self._r.delete(*keys))
        except self._errors as exc:
            raise self._fail(exc) from None

    def ids(self) -> list[int]:
        try:
            keys = list(self._r.scan_iter(match=self.prefix + "*", count=1000))
        except self._errors as exc:
            raise self._fail(exc) from None
        n = len(self.prefix)
        return sorted(int((k.decode() if isinstance(k, bytes) else str(k))[n:]) for k in keys)

    def clear(self) -> int:
        """Delete every account row under this store's prefix (before a fresh load)."""
        return self.delete(self.ids())

    def raw(self, account_id: int) -> dict[bytes, bytes]:
        """The hash exactly as Redis holds it (for byte-level comparisons in tests and faults)."""
        try:
            out: dict[bytes, bytes] = self._r.hgetall(self._key(account_id))  # type: ignore[assignment]
        except self._errors as exc:
            raise self._fail(exc) from None
        return out

    def close(self) -> None:
        self._r.close()


def is_redis_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "unix://"))


def configured_url(explicit: str | None = None) -> str | None:
    """The Redis URL a lab should use: ``explicit``, else ``$MLCHAOS_LAB_REDIS_URL``; None means SQLite.

    ``"sqlite"`` (or an empty string) chooses SQLite even when the variable is set.
    """
    value = explicit if explicit is not None else os.environ.get(ENV_REDIS_URL)
    if not value or value == "sqlite":
        return None
    if not is_redis_url(value):
        raise FeatureStoreError(f"feature store {value!r}: expected 'sqlite' or a redis://HOST:PORT/DB URL")
    return value


def open_store(location: str | Path | None, sqlite_path: Path | str | None = None) -> FeatureStore:
    """Open the online store at ``location``: a ``redis://`` URL, a SQLite path, or None/``"sqlite"``
    (then ``sqlite_path``).  A Redis store is pinged first: unreachable is a :class:`FeatureStoreError`."""
    if location is not None and is_redis_url(str(location)):
        store = RedisStore(str(location))
        try:
            store.ping()
        except FeatureStoreError:
            store.close()
            raise
        return store
    path = sqlite_path if location in (None, "", "sqlite") else location
    if path is None:
        raise FeatureStoreError("no feature store given (neither a Redis URL nor a SQLite path)")
    if not Path(path).exists():
        raise FeatureStoreError(f"SQLite feature store {path} does not exist (is the lab built?)")
    return OnlineStore(path)


def load_redis(url: str, sqlite_path: Path | str) -> int:
    """Copy every row of the built SQLite store into Redis (replacing what is there); return the count.

    The SQLite file is the build's record, so Redis answers exactly the same
    features and event timestamps.
    """
    src = OnlineStore(sqlite_path)
    try:
        rows = src.read_rows(src.ids())
    finally:
        src.close()
    dst = open_store(url)
    assert isinstance(dst, RedisStore)
    try:
        dst.clear()
        dst.write_rows({k: v for k, v in rows.items() if v is not None})
    finally:
        dst.close()
    return len(rows)


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
