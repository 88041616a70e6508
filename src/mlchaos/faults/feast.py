"""Feast online-store faults through Feast's own SDK: stale rows, deleted entities, exactly undone.

What a broken feature pipeline leaves in a real Feast deployment is not a
slow server but wrong rows: a materialisation that stopped (rows keep an old
event timestamp, or an old value), a backfill that skipped keys (entities
absent).  These faults write that state into the user's online store with the
SDK the feature server itself reads through (``FeatureStore(repo_path)``, its
provider's ``online_read`` / ``online_write_batch``), so whatever store the
repository configures sees the change exactly as a pipeline would make it:

* ``feast-stale-rows``: the chosen entities' rows of one feature view get an
  event timestamp older by ``age`` and, if ``values`` is given, those values
  (``{conv_rate: 0.0}``); rows that do not exist are left absent;
* ``feast-delete-entities``: the chosen entities' rows of the view are deleted
  (SQLite online store: Feast's generic SDK has no per-key delete, so the
  fault deletes them from the store's own table, found with Feast's own table
  naming and key serialisation; other stores are refused at preflight).

Exact undo.  ``intent`` reads the chosen rows through ``online_read`` before
anything changes and records them in the undo record: every feature value as
its serialised protobuf (base64) and the event timestamp to the microsecond,
or "absent".  ``remove`` and ``revert`` (the watchdog, from the record alone)
write those protobufs back with ``online_write_batch`` and delete rows that
were absent, so an online read after the revert returns the same bytes and
timestamps as before (tests/feast/test_sdk_faults.py).  Blast radius: the
entities listed, at most :data:`MAX_ENTITIES` (the record stays inline).

Preflight reads only: the repository, the view, the join keys, and (SQLite)
that the online file exists, without opening it for writing.  Needs the
``feast`` extra (``pip install 'mlchaos[feast]'``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Duration

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["FeastDeleteEntities", "FeastStaleRows"]

#: The most entities one step may hit: their original rows are kept inline in the undo record.
MAX_ENTITIES = 1000


class _FeastSpec(FaultSpec):
    repo_path: str = Field(description="Feast feature repository (the directory holding feature_store.yaml).")
    feature_view: str = Field(description="Feature view whose online rows are hit, e.g. 'driver_hourly_stats'.")
    entities: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_ENTITIES,
        description="Entity keys to hit, one mapping per entity, e.g. [{driver_id: 1001}, {driver_id: 1002}].")

    @field_validator("entities")
    @classmethod
    def _same_keys(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = {tuple(sorted(e)) for e in v}
        if len(keys) != 1 or not next(iter(keys)):
            raise ValueError("every entity needs the same non-empty join keys, e.g. {driver_id: 1001}")
        return v


def _feast() -> Any:
    try:
        import feast
    except ImportError:
        raise FaultError("the Feast faults need the Feast SDK: pip install 'mlchaos[feast]'") from None
    return feast


class _Session:
    """One repository opened through the SDK: the store, the view and its provider."""

    def __init__(self, repo_path: str, view: str) -> None:
        feast = _feast()
        root = Path(repo_path)
        if not (root / "feature_store.yaml").is_file():
            raise FaultError(f"{repo_path}: no feature_store.yaml (repo_path must be a Feast feature repository)")
        try:
            self.store = feast.FeatureStore(repo_path=str(root))
            self.view = self.store.get_feature_view(view)
        except FaultError:
            raise
        except Exception as exc:  # the SDK raises its own errors (FeatureViewNotFoundException, config errors)
            raise FaultError(f"{repo_path}: {type(exc).__name__}: {exc}") from None
        self.config = self.store.config
        self.provider = self.store._get_provider()  # the SDK's online read/write path, as feast serve uses it
        self.join_keys = {c.name: c.dtype.to_value_type() for c in self.view.entity_columns}

    def key(self, entity: dict[str, Any]) -> Any:
        """The entity key protobuf of one entity mapping (join keys in the view's order, typed like the view)."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        if set(entity) != set(self.join_keys):
            raise FaultError(f"entity {entity} does not match the join keys of view {self.view.name!r}: "
                             f"{sorted(self.join_keys)}")
        names = list(self.join_keys)
        values = [python_values_to_proto_values([entity[n]], self.join_keys[n])[0] for n in names]
        return EntityKey(join_keys=names, entity_values=values)

    def read(self, entities: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Each entity's row as recorded for undo: ``{"event_ts": iso, "values": {name: base64 proto}}`` or None."""
        got = self.provider.online_read(config=self.config, table=self.view,
                                        entity_keys=[self.key(e) for e in entities])
        out: list[dict[str, Any] | None] = []
        for ts, values in got:
            if not values:
                out.append(None)
                continue
            out.append({"event_ts": ts.isoformat() if ts is not None else None,
                        "values": {k: base64.b64encode(v.SerializeToString()).decode() for k, v in values.items()}})
        return out

    def write(self, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Write recorded rows back (values as protobufs, the event timestamp as recorded)."""
        from feast.protos.feast.types.Value_pb2 import Value

        data = []
        for entity, row in rows:
            values = {}
            for name, raw in row["values"].items():
                v = Value()
                v.ParseFromString(base64.b64decode(raw))
                values[name] = v
            ts = _dt.datetime.fromisoformat(row["event_ts"]) if row.get("event_ts") else _dt.datetime.now(_dt.UTC)
            data.append((self.key(entity), values, ts, None))
        if data:
            self.provider.online_write_batch(config=self.config, table=self.view, data=data, progress=None)

    def sqlite_table(self) -> tuple[str, str]:
        """(database path, table) of the view in a SQLite online store; FaultError for any other store."""
        online = self.config.online_store
        if getattr(online, "type", "") != "sqlite":
            raise FaultError(f"deleting entities needs the sqlite online store (Feast's SDK has no per-key "
                             f"delete); this repository uses {getattr(online, 'type', '?')!r}")
        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

        path = SqliteOnlineStore._get_db_path(self.config)
        versioned = bool(getattr(self.config.registry, "enable_online_feature_view_versioning", False))
        return path, _table_id(self.config.project, self.view, versioned)

    def delete(self, entities: list[dict[str, Any]]) -> int:
        """Delete the entities' rows of the view (SQLite online store); return how many rows went."""
        import sqlite3

        from feast.infra.key_encoding_utils import serialize_entity_key

        path, table = self.sqlite_table()
        version = self.config.entity_key_serialization_version
        keys = [serialize_entity_key(self.key(e), entity_key_serialization_version=version) for e in entities]
        conn = sqlite3.connect(path)
        try:
            with conn:
                quoted = '"' + table.replace('"', '""') + '"'
                return sum(conn.execute(f"DELETE FROM {quoted} WHERE entity_key = ?", (k,)).rowcount for k in keys)
        finally:
            conn.close()


def _restore(undo: dict[str, Any]) -> None:
    """Write the recorded rows back as they were.  Rows recorded absent are left alone: neither fault
    ever creates one (stale rows skip them, a delete only removes), so there is nothing to take away."""
    session = _Session(undo["repo_path"], undo["feature_view"])
    session.write([(r["entity"], r["row"]) for r in undo.get("rows") or [] if r.get("row") is not None])


class _FeastFault(Fault):
    """Shared life cycle: preflight reads, intent records the rows, inject changes them, revert writes them back."""

    preflight_timeout: ClassVar[float] = 90.0  # the first import of feast is ~5 s of CPU; much more on a busy host

    action: ClassVar[str] = ""
    spec: _FeastSpec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None
        self._plan: tuple[_Session, dict[str, Any]] | None = None

    def _check(self, session: _Session) -> dict[str, Any]:
        """Fault-specific preflight checks on an open session; facts for the journal."""
        return {}

    def _preflight_sync(self) -> dict[str, Any]:
        s = self.spec
        session = _Session(s.repo_path, s.feature_view)
        for e in s.entities:
            session.key(e)  # join keys and value types, without reading the store
        online = session.config.online_store
        if getattr(online, "type", "") == "sqlite":
            from feast.infra.online_stores.sqlite import SqliteOnlineStore

            path = SqliteOnlineStore._get_db_path(session.config)
            if not Path(path).is_file():  # opening it would create it: say so instead
                raise FaultError(f"the sqlite online store {path} does not exist (run feast apply / materialize)")
        return {"repo_path": s.repo_path, "feature_view": s.feature_view, "entities": len(s.entities),
                "online_store": getattr(online, "type", "?"), "action": self.action, **self._check(session)}

    async def preflight(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._preflight_sync)

    def _intent_sync(self) -> dict[str, Any]:
        s = self.spec
        session = _Session(s.repo_path, s.feature_view)
        self._check(session)
        before = session.read(s.entities)
        undo = {"repo_path": str(Path(s.repo_path).absolute()), "feature_view": s.feature_view,
                "rows": [{"entity": e, "row": r} for e, r in zip(s.entities, before, strict=True)]}
        self._plan = (session, undo)
        return undo

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The chosen rows exactly as they are (or absent), before any change: revert writes them back."""
        return await asyncio.to_thread(self._intent_sync)

    def _change(self, session: _Session, undo: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _inject_sync(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._plan is None:
            self._intent_sync()
        assert self._plan is not None
        session, undo = self._plan
        self._undo = undo  # kept before the change: a failure half-way is still undone
        try:
            actual = self._change(session, undo)
        except Exception as exc:
            _restore(undo)
            raise FaultError(f"{self.spec.fault}: {type(exc).__name__}: {exc}") from None
        return actual, undo

    async def inject(self, lease: Lease) -> Applied:
        actual, undo = await asyncio.to_thread(self._inject_sync)
        targets = [f"{self.spec.feature_view}:{e}" for e in self.spec.entities]
        return Applied(targets=targets, planned={"action": self.action, "entities": len(self.spec.entities)},
                       actual=actual, undo=undo)

    async def remove(self) -> None:
        if self._undo is not None:
            await asyncio.to_thread(_restore, self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Write the recorded rows back through the SDK; idempotent (the same bytes any number of times)."""
        if undo.get("repo_path") and undo.get("feature_view"):
            _restore(undo)


class FeastStaleRows(_FeastFault):
    """Make the chosen entities' online rows stale: event timestamps older by ``age``, optionally old values."""

    class Spec(_FeastSpec):
        fault: Literal["feast-stale-rows"] = "feast-stale-rows"
        age: Duration = Field(7200.0, gt=0, description="How much older the rows' event timestamps become, e.g. "
                                                        "'2h'.")
        values: dict[str, Any] | None = Field(
            None, description="Feature values written instead (the stale value), e.g. {conv_rate: 0.0}.")

    spec: Spec
    action = "stale"

    def _check(self, session: _Session) -> dict[str, Any]:
        names = {f.name: f for f in session.view.features}
        unknown = sorted(set(self.spec.values or {}) - set(names))
        if unknown:
            raise FaultError(f"values: {unknown} are not features of view {session.view.name!r} "
                             f"(it has {sorted(names)})")
        return {"age_s": self.spec.age, "values": sorted(self.spec.values or {})}

    def _change(self, session: _Session, undo: dict[str, Any]) -> dict[str, Any]:
        from feast.type_map import python_values_to_proto_values

        types = {f.name: f.dtype.to_value_type() for f in session.view.features}
        given = {k: base64.b64encode(python_values_to_proto_values([v], types[k])[0].SerializeToString()).decode()
                 for k, v in (self.spec.values or {}).items()}
        stale = []
        for r in undo["rows"]:
            row = r["row"]
            if row is None or not row.get("event_ts"):
                continue  # an absent row stays absent: there is nothing to age
            ts = _dt.datetime.fromisoformat(row["event_ts"]) - _dt.timedelta(seconds=self.spec.age)
            stale.append((r["entity"], {"event_ts": ts.isoformat(), "values": {**row["values"], **given}}))
        session.write(stale)
        return {"rows": len(stale), "absent": len(undo["rows"]) - len(stale), "age_s": self.spec.age,
                "values": sorted(given)}


class FeastDeleteEntities(_FeastFault):
    """Delete the chosen entities' online rows of a view: the feature server answers NOT_FOUND for them."""

    class Spec(_FeastSpec):
        fault: Literal["feast-delete-entities"] = "feast-delete-entities"

    spec: Spec
    action = "delete"

    def _check(self, session: _Session) -> dict[str, Any]:
        path, table = session.sqlite_table()
        return {"database": path, "table": table}

    def _change(self, session: _Session, undo: dict[str, Any]) -> dict[str, Any]:
        return {"rows_deleted": session.delete(self.spec.entities)}
