"""Feast-aware response faults: named features of ``/get-online-features`` answers go stale, null or missing.

A Feast feature server answers column-wise: ``metadata.feature_names[i]`` names
``results[i]``, whose ``values[j]``, ``statuses[j]`` and ``event_timestamps[j]``
belong to the ``j``-th entity of the request.  The order of the columns is the
server's (not the request's: Feast groups features by view), and the entity key
columns come first with ``PRESENT`` and a 1970 timestamp.  ``json-corrupt`` can
only rewrite fixed paths (``results[2].values[0]``), which break as soon as the
feature list changes; this kind finds the columns by feature name instead and
changes what a feature-store failure changes:

* ``stale``: the value is replaced by ``value``, or by the value this fault
  first saw for that feature and entity (a store that stopped being
  materialised); status and timestamp still look fresh, which is the silent case;
* ``null``: the value becomes null with status ``NULL_VALUE``;
* ``not-found``: null with status ``NOT_FOUND`` and a 1970 timestamp (what Feast
  answers for a key it does not hold);
* ``old-timestamp``: the event timestamps move back by ``age`` (values kept);
* ``missing-entity``: every feature column of the chosen entities is
  ``NOT_FOUND`` (``features`` is ignored), as when a backfill skipped them.

Blast radius: ``probability`` (the share of requests, the proxy's own),
``entity_share`` (the share of entity rows of a hit answer, drawn per row) and
``feature_share`` (the share of the named feature columns, drawn per column),
both drawn with the rule's seeded generator; features are chosen by name
(``view:feature``, ``view__feature`` or the bare ``feature``; ``*`` for all).  The body is parsed
and written again with orjson (floats round-trip exactly); a body that is not a
Feast answer passes untouched.
"""

from __future__ import annotations

import datetime as _dt
import random
import threading
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration, Percent

EPOCH = "1970-01-01T00:00:00Z"
"""The timestamp Feast gives entity key columns and keys it does not hold."""


def matches(name: str, wanted: str) -> bool:
    """Is the answer's column ``name`` the feature ``wanted``?

    ``wanted`` is how a user writes a feature: ``driver_hourly_stats:conv_rate`` (a feature
    reference), ``driver_hourly_stats__conv_rate`` (Feast's full name) or ``conv_rate``; the
    answer names it ``conv_rate`` or, with ``full_feature_names``, ``driver_hourly_stats__conv_rate``.
    """
    if wanted == "*" or name == wanted:
        return True
    view, sep, feat = wanted.replace("__", ":", 1).partition(":")
    if sep:
        return name in (feat, f"{view}__{feat}")
    return name.rpartition("__")[2] == wanted


def columns(doc: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """``(feature name, result column)`` pairs of a Feast answer, or None when ``doc`` is not one."""
    if not isinstance(doc, dict):
        return None
    meta, results = doc.get("metadata"), doc.get("results")
    names = meta.get("feature_names") if isinstance(meta, dict) else None
    if isinstance(names, dict):  # the protobuf JSON shape: {"val": [...]}
        names = names.get("val")
    if not isinstance(names, list) or not isinstance(results, list) or len(names) != len(results):
        return None
    if not all(isinstance(n, str) and isinstance(r, dict) and isinstance(r.get("values"), list)
               for n, r in zip(names, results, strict=True)):
        return None
    return list(zip(names, results, strict=True))


def is_key_column(col: dict[str, Any]) -> bool:
    """An entity key column: every row PRESENT with the 1970 timestamp (a feature has real event times)."""
    statuses = col.get("statuses") or []
    stamps = col.get("event_timestamps") or []
    return bool(statuses) and all(s == "PRESENT" for s in statuses) and all(t == EPOCH for t in stamps)


def parse_timestamp(raw: Any) -> float | None:
    """Seconds since the epoch of a Feast event timestamp (RFC 3339 text); None when it is not one."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        t = _dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.timestamp()


def format_timestamp(seconds: float) -> str:
    """A Feast-style UTC timestamp (``2026-12-04T18:11:08Z``, fractions kept when there are any)."""
    t = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    text = t.isoformat().replace("+00:00", "")
    return text + "Z"


class FeastResponseParams(Params):
    action: Literal["stale", "null", "not-found", "old-timestamp", "missing-entity"] = "null"
    """What happens to the chosen features of the chosen entities (see the module's docstring)."""
    features: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Features by name: 'view:feature', 'view__feature' or 'feature'; '*' for every feature column."""
    entity_share: Percent = Field(1.0, gt=0, le=1)
    """Share of the entity rows of a hit answer that are changed (drawn per row), e.g. '20%'."""
    feature_share: Percent = Field(1.0, gt=0, le=1)
    """Share of the named feature columns of a hit answer that are changed (drawn per column), e.g. '50%'."""
    value: float | int | str | bool | None = None
    """action stale: the value served instead (default: the first value this fault saw per feature and entity)."""
    age: Duration = Field(7200.0, gt=0)
    """action old-timestamp: how far the event timestamps move back, e.g. '2h'."""

    @model_validator(mode="after")
    def _check(self) -> FeastResponseParams:
        for f in self.features:
            if not f.strip() or f.startswith(":") or f.endswith(":") or f.count(":") > 1:
                raise ValueError(f"invalid feature name {f!r}: write 'view:feature' or 'feature'")
        if self.age > 100 * 365 * 86400:
            raise ValueError("age must be at most 100 years")
        return self


class FeastResponse(ProxyFault[FeastResponseParams]):
    """Rewrite named features of Feast ``/get-online-features`` answers (HTTP mode, responses)."""

    kind = "feast-response"
    params_model = FeastResponseParams
    http_only = True
    directions = ("response",)

    def __init__(self, params: FeastResponseParams, direction: Literal["request", "response", "both"]) -> None:
        super().__init__(params, direction)
        self._first: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def apply(self, plan: Plan, rng: random.Random) -> None:
        # one rewrite per request, with its own generator drawn from the rule's (seeded runs repeat)
        plan.corrupt.append(_Rewrite(self, random.Random(rng.getrandbits(64))))

    def _stale(self, feature: str, entity: str, current: Any) -> Any:
        p = self.params
        assert isinstance(p, FeastResponseParams)
        if p.value is not None:
            return p.value
        with self._lock:
            return self._first.setdefault((feature, entity), current)

    def rewrite(self, doc: Any, rng: random.Random) -> bool:
        """Change ``doc`` (a parsed Feast answer) in place; True when anything changed."""
        p = self.params
        assert isinstance(p, FeastResponseParams)
        cols = columns(doc)
        if not cols:
            return False
        rows = max((len(c["values"]) for _, c in cols), default=0)
        chosen = [j for j in range(rows) if p.entity_share >= 1 or rng.random() < p.entity_share]
        if not chosen:
            return False
        keys = [c for _, c in cols if is_key_column(c)]
        features = [(n, c) for n, c in cols if not is_key_column(c)
                    and (p.action == "missing-entity" or any(matches(n, w) for w in p.features))]
        if p.action != "missing-entity" and p.feature_share < 1:  # an absent entity lacks every feature
            features = [f for f in features if rng.random() < p.feature_share]
        changed = False
        for j in chosen:
            entity = orjson.dumps([k["values"][j] for k in keys if j < len(k["values"])]).decode()
            for name, col in features:
                if j >= len(col["values"]):
                    continue
                changed |= self._cell(name, col, j, entity)
        return changed

    def _cell(self, name: str, col: dict[str, Any], j: int, entity: str) -> bool:
        p = self.params
        assert isinstance(p, FeastResponseParams)
        values = col["values"]
        statuses = col.get("statuses") if isinstance(col.get("statuses"), list) else None
        stamps = col.get("event_timestamps") if isinstance(col.get("event_timestamps"), list) else None
        before = (values[j], statuses[j] if statuses and j < len(statuses) else None,
                  stamps[j] if stamps and j < len(stamps) else None)

        def status(s: str) -> None:
            if statuses is not None and j < len(statuses):
                statuses[j] = s

        def stamp(t: str) -> None:
            if stamps is not None and j < len(stamps):
                stamps[j] = t

        if before[1] == "NOT_FOUND" and p.action != "missing-entity":
            return False  # a key the store does not hold stays missing: there is no value to age or null
        match p.action:
            case "stale":
                values[j] = self._stale(name, entity, values[j])
            case "null":
                values[j] = None
                status("NULL_VALUE")
            case "not-found" | "missing-entity":
                values[j] = None
                status("NOT_FOUND")
                stamp(EPOCH)
            case "old-timestamp":
                t = parse_timestamp(before[2])
                if t is not None and before[2] != EPOCH:
                    stamp(format_timestamp(t - p.age))
        after = (values[j], statuses[j] if statuses and j < len(statuses) else None,
                 stamps[j] if stamps and j < len(stamps) else None)
        return after != before


class _Rewrite:
    """One request's rewrite: what the data path's response corruption calls (``corrupt(body)``).

    ``needles``/``constant`` are None: this is never the C fast path's single constant splice.
    """

    __slots__ = ("constant", "fault", "needles", "rng")

    def __init__(self, fault: FeastResponse, rng: random.Random) -> None:
        self.fault = fault
        self.rng = rng
        self.needles: tuple[bytes, ...] | None = None
        self.constant: bytes | None = None

    def corrupt(self, body: bytes) -> bytes | None:
        """The rewritten body, or None when it is not a Feast answer or nothing changed."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not self.fault.rewrite(doc, self.rng):
            return None
        return orjson.dumps(doc)
