"""Feature-store faults on the lab's online store (SQLite or Redis): stale, missing, out-of-order rows.

These are the failures a feature pipeline causes in production without any
service going down: a materialisation job stops and rows outlive their TTL
(``stale-features``), a backfill forgets some entities (``missing-entities``),
or a late, older write lands over a newer one (``out-of-order-writes``).  The
feature service stays fast and green; only the features (and so the
predictions) are wrong, which is exactly what ML probes must catch.

Each fault picks its entities with the engine's blast-radius rules
(``count`` or ``fraction`` of the accounts in the store, drawn with ``seed``,
or an explicit ``entities`` list) and records the chosen rows exactly as they
were before touching anything: inline in the undo record for small blast
radii, in a JSON backup file (path in the undo record) for large ones, so a
journal line stays small.  ``remove`` and the classmethod ``revert`` (a
watchdog after ``kill -9`` of the runner) write those rows back, or delete
rows that did not exist, through the same store interface the feature
service reads: floats survive JSON and Redis as their shortest ``repr``, so
the restored rows are bit-for-bit the originals.

The store is found from the lab (``state.json`` records ``feature_store``:
the Redis URL or the SQLite path), or given directly with ``store``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Duration, Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.lab.featurestore import FeatureStore, Row

__all__ = ["MissingEntities", "OutOfOrderWrites", "StaleFeatures"]

#: Above this many chosen entities the original rows go to a backup file instead of the undo record.
INLINE_ROWS = 256


class _StoreFaultSpec(FaultSpec):
    entities: list[int] | None = Field(None, description="Account ids to hit (default: chosen by count/fraction).")
    count: int | None = Field(None, ge=1, description="How many entities to hit.")
    fraction: Percent | None = Field(None, description="Share of the store's entities to hit: '10%' or 0.1.")
    seed: int = Field(0, ge=0, description="Seed of the entity draw; the same seed hits the same entities.")
    lab_dir: str | None = Field(None, description="Lab directory (default: the target's, else $MLCHAOS_LAB_DIR).")
    store: str | None = Field(
        None, description="The online store itself: a redis:// URL or a SQLite path (default: the lab's)."
    )


def _store_location(spec: _StoreFaultSpec, ctx: Any) -> tuple[str, str | None]:
    """(store URL or SQLite path, lab dir) from the spec, else the target's lab, else the default lab."""
    if spec.store:
        return spec.store, spec.lab_dir
    from mlchaos.lab import Lab

    lab = None
    if spec.lab_dir is None:
        try:
            lab = ctx.target(spec.target).lab
        except Exception:  # not a lab target (or none): fall back to the default lab directory
            lab = None
    if lab is None:
        lab = Lab(spec.lab_dir)
    info = _lab_state(lab).get("feature_store") or {}
    return str(info.get("url") or lab.paths.feature_db), str(lab.paths.root)


def _lab_state(lab: Any) -> dict[str, Any]:
    """The lab's state, with no side effect: live from its supervisor when it runs, else its last
    ``state.json``.  ``Lab.state()`` on a dead lab would first stop what it left running, which a
    preflight (this runs in it) must not do."""
    from mlchaos.lab import lifetime

    try:
        st = json.loads(lab.paths.state.read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(st, dict) and lifetime.supervisor_runs(st.get("supervisor") or {}):
        return dict(lab.state() or {})
    return st if isinstance(st, dict) else {}


def _open(location: str) -> FeatureStore:
    from mlchaos.lab.featurestore import FeatureStoreError, open_store

    try:
        return open_store(location)
    except FeatureStoreError as exc:
        raise FaultError(str(exc)) from None


class _ReadOnlySqlite:
    """The SQLite online table opened read-only (``mode=ro`` URI): what preflight may look at.

    It answers ``ids`` only; a missing file, a missing table or wrong columns are a
    :class:`FaultError` naming the file, and nothing is created on the way.  ``mode=ro`` alone is
    not enough for a WAL database (the lab's): SQLite still creates its ``-wal``/``-shm`` files
    beside it.  When the header says WAL and no ``-wal`` file exists, no writer has it open and
    nothing waits in a log, so the file is read as ``immutable`` (no side files, no locks); a
    writer that opens it during these few reads can at worst fail this preflight, never be harmed.
    """

    backend = "sqlite"

    def __init__(self, path: str) -> None:
        import sqlite3

        if not Path(path).is_file():
            raise FaultError(f"SQLite feature store {path} does not exist (is the lab built?)")
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        if _wal_header(path) and not Path(path + "-wal").exists():
            uri += "&immutable=1"
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(account_features)")}
        except sqlite3.Error as exc:
            raise FaultError(f"cannot read the SQLite feature store {path}: {exc}") from None
        from mlchaos.lab.featurestore import ROW_FIELDS

        need = {"account_id", *ROW_FIELDS}
        if not need <= cols:
            self._conn.close()
            what = "has no table account_features" if not cols else f"lacks columns {sorted(need - cols)}"
            raise FaultError(f"SQLite feature store {path} {what} (not an mlchaos lab feature store)")

    def ids(self) -> list[int]:
        import sqlite3

        from mlchaos.lab.featurestore import FeatureStoreError

        try:
            return [int(r[0]) for r in self._conn.execute("SELECT account_id FROM account_features ORDER BY 1")]
        except sqlite3.Error as exc:
            raise FeatureStoreError(f"cannot read the SQLite feature store: {exc}") from None

    def close(self) -> None:
        self._conn.close()


def _wal_header(path: str) -> bool:
    """True when the SQLite file's header says WAL mode (bytes 18 and 19 are 2)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def _open_readonly(location: str) -> Any:
    """The store for preflight: Redis as is (reading ids writes nothing), SQLite through a read-only URI."""
    from mlchaos.lab.featurestore import is_redis_url

    if is_redis_url(location):
        return _open(location)
    return _ReadOnlySqlite(location)


def _choose(spec: _StoreFaultSpec, store: FeatureStore | _ReadOnlySqlite) -> tuple[list[int], int]:
    """The entities to hit (sorted) and how many the store holds; raise before touching anything."""
    import numpy as np

    from mlchaos.contract.blast import BlastRadiusError, select_count
    from mlchaos.lab.featurestore import FeatureStoreError

    try:
        ids = store.ids()
    except FeatureStoreError as exc:
        raise FaultError(str(exc)) from None
    if spec.entities:
        present = set(ids)
        missing = sorted(set(spec.entities) - present)
        if missing:
            raise FaultError(f"entities not in the feature store: {missing[:10]}")
        return sorted(set(spec.entities)), len(ids)
    try:
        n = select_count(len(ids), count=spec.count, percent=spec.fraction)
    except BlastRadiusError as exc:
        raise FaultError(str(exc)) from None
    rng = np.random.default_rng(spec.seed)
    picked = rng.choice(np.asarray(ids, dtype=np.int64), size=n, replace=False)
    return sorted(int(i) for i in picked), len(ids)


def _save_originals(rows: dict[int, Row | None], lab_dir: str | None, location: str, tag: str) -> dict[str, Any]:
    """The undo payload: rows inline when few, else a backup file beside the lab's data (or the SQLite file)."""
    payload = {str(k): v for k, v in rows.items()}
    if len(rows) <= INLINE_ROWS:
        return {"rows": payload}
    base = Path(lab_dir) / "data" if lab_dir else Path(location).parent
    if not base.is_dir():
        base = Path(os.environ.get("MLCHAOS_STATE_DIR") or Path.home() / ".local/state/mlchaos")
    backup = base / f"feature-store-backup-{tag}.json"
    backup.parent.mkdir(parents=True, exist_ok=True)
    from mlchaos.atomic import write_json_atomic

    # part of the write-ahead record: it must outlive a crash (0600 like the engine's own records)
    write_json_atomic(backup, payload, durable=True, mode=0o600)
    return {"backup": str(backup)}


def _load_originals(undo: dict[str, Any]) -> dict[int, Row | None] | None:
    if "rows" in undo:
        return {int(k): v for k, v in undo["rows"].items()}
    path = undo.get("backup")
    if not path or not Path(path).exists():
        return None  # already restored (the backup is removed last): nothing to do
    return {int(k): v for k, v in json.loads(Path(path).read_text()).items()}


class _StoreFault(Fault):
    """Shared life cycle: choose, record originals, change, and restore from the record alone."""

    action: ClassVar[str] = ""
    spec: _StoreFaultSpec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None

    def _change(self, store: FeatureStore, rows: dict[int, Row | None], lab_dir: str | None) -> dict[str, Any]:
        """Apply the fault to the chosen rows (all present); return facts for ``Applied.actual``."""
        raise NotImplementedError

    def _preflight_sync(self) -> dict[str, Any]:
        """Open the store read-only and check the entity choice: preflight changes nothing.

        Opening it the way inject does would switch a SQLite file to WAL and create the table in a
        database mlchaos does not own; a read-only URI can neither (tests/test_preflight_readonly.py).
        """
        location, _ = _store_location(self.spec, self.ctx)
        store = _open_readonly(location)
        try:
            chosen, total = _choose(self.spec, store)
            return {"store": store.backend, "location": location, "entities": len(chosen), "of": total,
                    "sample": chosen[:10], "action": self.action}
        finally:
            store.close()

    async def preflight(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._preflight_sync)

    def _plan_sync(self, tag: str) -> dict[str, Any]:
        """Choose the entities and save their rows as they are: the undo record, before any change."""
        location, lab_dir = _store_location(self.spec, self.ctx)
        store = _open(location)
        try:
            chosen, total = _choose(self.spec, store)
            rows = store.read_rows(chosen)
            undo = {"location": location, "entities": chosen, **_save_originals(rows, lab_dir, location, tag)}
        finally:
            store.close()
        self._plan = (lab_dir, total, rows, undo)
        return undo

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The originals of the chosen rows, saved before the change: ``revert`` writes them back, which is
        a no-op for rows never changed, so it is right at any point of the injection."""
        return await asyncio.to_thread(self._plan_sync, lease.id)

    def _inject_sync(self, tag: str) -> tuple[list[int], dict[str, Any], dict[str, Any]]:
        from mlchaos.lab.featurestore import FeatureStoreError

        plan = getattr(self, "_plan", None)
        if plan is None:
            self._plan_sync(tag)
            plan = self._plan
        lab_dir, total, rows, undo = plan
        chosen = list(undo["entities"])
        store = _open(undo["location"])
        try:
            self._undo = undo  # recorded before the change: a failure half-way is still undone
            try:
                actual = self._change(store, rows, lab_dir)
            except FeatureStoreError as exc:
                self.revert(undo)
                raise FaultError(str(exc)) from None
            return chosen, {**actual, "of": total, "store": store.backend}, undo
        finally:
            store.close()

    async def inject(self, lease: Lease) -> Applied:
        chosen, actual, undo = await asyncio.to_thread(self._inject_sync, lease.id)
        return Applied(targets=[f"account:{i}" for i in chosen],
                       planned={"action": self.action, "entities": len(chosen)}, actual=actual, undo=undo)

    async def remove(self) -> None:
        if self._undo is not None:
            await asyncio.to_thread(self.revert, self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Write the original rows back (delete those that did not exist); idempotent, needs no runner."""
        if not undo.get("location"):
            return
        originals = _load_originals(undo)
        if originals is None:
            return
        from mlchaos.lab.featurestore import open_store

        store = open_store(undo["location"])
        try:
            present = {k: v for k, v in originals.items() if v is not None}
            absent = [k for k, v in originals.items() if v is None]
            if present:
                store.write_rows(present)
            if absent:
                store.delete(absent)
        finally:
            store.close()
        if undo.get("backup"):
            Path(undo["backup"]).unlink(missing_ok=True)


class StaleFeatures(_StoreFault):
    """Serve rows older than their TTL: shift the chosen entities' ``event_ts`` back by ``age``."""

    class Spec(_StoreFaultSpec):
        fault: Literal["stale-features"] = "stale-features"
        age: Duration = Field(7200.0, gt=0, description="How much older the rows become, e.g. '2h'.")

    spec: Spec
    action = "stale"

    def _change(self, store: FeatureStore, rows: dict[int, Row | None], lab_dir: str | None) -> dict[str, Any]:
        new = {k: {**v, "event_ts": v["event_ts"] - self.spec.age} for k, v in rows.items() if v is not None}
        store.write_rows(new)
        return {"entities": len(new), "age_s": self.spec.age}


class MissingEntities(_StoreFault):
    """Delete the chosen entities' rows: the feature service answers 404 for them until removal."""

    class Spec(_StoreFaultSpec):
        fault: Literal["missing-entities"] = "missing-entities"

    spec: Spec
    action = "delete"

    def _change(self, store: FeatureStore, rows: dict[int, Row | None], lab_dir: str | None) -> dict[str, Any]:
        return {"entities": store.delete(list(rows))}


class OutOfOrderWrites(_StoreFault):
    """A late write of an older version lands over the newer row: the latest ``event_ts`` goes backwards.

    The older version of an account is its earliest row in the lab's offline
    store (what a replayed backfill would write); accounts the offline store
    does not hold keep their values.  Either way the event time becomes the
    current one minus ``age``, so the store's latest timestamp moves back.
    """

    class Spec(_StoreFaultSpec):
        fault: Literal["out-of-order-writes"] = "out-of-order-writes"
        age: Duration = Field(3600.0, gt=0, description="How much older the late write is, e.g. '1h'.")

    spec: Spec
    action = "older-version"

    def _older_values(self, current: dict[int, Row], lab_dir: str | None) -> dict[int, dict[str, float]]:
        """Per account, its earliest offline row whose feature values differ from the current ones."""
        if not lab_dir or not current:
            return {}
        import pandas as pd

        from mlchaos.lab import data as labdata
        from mlchaos.lab.featurestore import offline_dates, read_offline

        root = Path(lab_dir) / "data" / "offline"
        dates = offline_dates(root) if root.is_dir() else []
        if not dates:
            return {}
        cols = list(labdata.ACCOUNT_FEATURES)
        frame = pd.concat([read_offline(root, d)[["account_id", "ts", *cols]] for d in dates], ignore_index=True)
        frame = frame[frame["account_id"].isin(list(current))]
        now = pd.DataFrame.from_dict({k: {c: v[c] for c in cols} for k, v in current.items()}, orient="index")
        same = (frame[cols].to_numpy() == now.loc[frame["account_id"], cols].to_numpy()).all(axis=1)
        frame = frame[~same].sort_values("ts", kind="stable").groupby("account_id").head(1)
        return {int(r.account_id): {c: float(getattr(r, c)) for c in cols} for r in frame.itertuples(index=False)}

    def _change(self, store: FeatureStore, rows: dict[int, Row | None], lab_dir: str | None) -> dict[str, Any]:
        older = self._older_values({k: v for k, v in rows.items() if v is not None}, lab_dir)
        new = {k: {**v, **older.get(k, {}), "event_ts": v["event_ts"] - self.spec.age}
               for k, v in rows.items() if v is not None}
        store.write_rows(new)
        return {"entities": len(new), "older_values": len(older), "age_s": self.spec.age}
