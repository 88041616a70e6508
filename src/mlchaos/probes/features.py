"""Feast features: NOT_FOUND / OUTSIDE_MAX_AGE / null shares, feature age, a feature's mean value.

A feature store fails quietly: the feature server stays fast and answers 200
while a materialisation job has stopped (values age), a backfill skipped some
keys (``NOT_FOUND``) or a column arrives null.  Latency and error rate see
none of it; this probe reads the answer of Feast's ``/get-online-features``
the way Feast writes it (column-wise: ``metadata.feature_names[i]`` names
``results[i]``, whose ``values``/``statuses``/``event_timestamps`` are per
entity, in the server's column order, not the request's) and addresses
features by name.

Two sources: ``request`` (default) sends its own request with the
``entities`` and ``features`` of the spec each time it measures; ``load``
reads the answers the load generator sampled over the probe's window (the
load must post to ``/get-online-features`` with ``sample`` above 0).  The
``stat`` is computed over the cells (entity × addressed feature):

* ``not-found``, ``outside-max-age``, ``null``: the share of cells with that
  status (``null``: ``NULL_VALUE``, or a PRESENT cell whose value is null);
* ``age``: now − event timestamp in seconds, at ``percentile`` (50, 99, or
  ``max``), over cells that have a timestamp (not the 1970 one Feast gives
  keys it does not hold), so ``max: 2h`` reads as a Duration like the latency
  probes; for ``source: load`` "now" is the measurement's time, so ages carry
  up to ``window`` of sampling delay;
* ``value``: the mean of one feature's numeric values (PRESENT cells).

Fewer than ``min_cells`` usable cells is "insufficient data", never a pass.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec, TargetError
from mlchaos.proxy.faults.feast_response import EPOCH, columns, matches, parse_timestamp
from mlchaos.spec.types import Duration

_STATUS = {"not-found": "NOT_FOUND", "outside-max-age": "OUTSIDE_MAX_AGE"}


class FeaturesSpec(ProbeSpec):
    probe: Literal["features"] = "features"
    source: Literal["request", "load"] = Field(
        "request", description="request: send its own request; load: the load generator's sampled answers.")
    url: str = Field("/get-online-features",
                     description="Feature server endpoint: absolute, or a path relative to the target's URL.")
    features: list[str] = Field(min_length=1, description="Features by name, e.g. 'driver_hourly_stats:conv_rate' "
                                                          "(sent as such with source: request).")
    entities: dict[str, list[Any]] | None = Field(
        None, description="source: request: entity keys to ask for, e.g. {driver_id: [1001, 1002]}.")
    full_feature_names: bool = Field(False, description="source: request: ask for 'view__feature' names.")
    stat: Literal["not-found", "outside-max-age", "null", "age", "value"] = Field(
        "not-found", description="Share of cells with a status, feature age (s), or a feature's mean value.")
    feature: str | None = Field(None, description="The one feature 'stat' reads (default: every feature in "
                                                   "'features'; stat: value needs exactly one).")
    percentile: float | Literal["max"] = Field(99, description="stat: age: the percentile (e.g. 50, 99) or 'max'.")
    min_cells: int = Field(1, ge=1, description="Fewer usable cells (entity x feature) is 'insufficient data'.")
    timeout: Duration = Field(2.0, gt=0, description="source: request: request timeout (a failed observation).")
    headers: dict[str, str] = Field(default_factory=dict, description="source: request: extra request headers.")

    @model_validator(mode="after")
    def _check(self) -> FeaturesSpec:
        if self.source == "request" and not self.entities:
            raise ValueError("source: request needs 'entities', e.g. {driver_id: [1001, 1002]}")
        if self.entities is not None:
            sizes = {len(v) for v in self.entities.values()}
            if not self.entities or len(sizes) != 1 or 0 in sizes:
                raise ValueError("'entities' needs one non-empty list per join key, all of the same length")
        if self.stat == "value" and self.feature is None and len(self.features) != 1:
            raise ValueError("stat: value reads one feature: set 'feature' (or list one in 'features')")
        if isinstance(self.percentile, float | int) and not 0 < self.percentile <= 100:
            raise ValueError("percentile must be in (0, 100] or 'max'")
        return self


def cells(doc: Any, wanted: list[str]) -> list[tuple[str, Any, Any, Any]]:
    """``(feature, value, status, event timestamp)`` of every entity of the named features in a Feast answer.

    Raises :class:`ProbeError` when ``doc`` is not a Feast answer or a named feature is absent from it.
    """
    cols = columns(doc)
    if cols is None:
        raise ProbeError("not a Feast /get-online-features answer (no metadata.feature_names matching results)")
    out: list[tuple[str, Any, Any, Any]] = []
    for w in wanted:
        found = [(n, c) for n, c in cols if matches(n, w)]
        if not found:
            raise ProbeError(f"feature {w!r} is not in the answer (it has {[n for n, _ in cols]})")
        for name, col in found:
            statuses = col.get("statuses") or []
            stamps = col.get("event_timestamps") or []
            for j, v in enumerate(col["values"]):
                out.append((name, v, statuses[j] if j < len(statuses) else None,
                            stamps[j] if j < len(stamps) else None))
    return out


def percentile(values: list[float], p: float | str) -> float:
    """Nearest-rank percentile (``'max'`` for the largest), the rule the latency probes use."""
    ordered = sorted(values)
    if p == "max":
        return ordered[-1]
    rank = max(1, math.ceil(float(p) / 100 * len(ordered)))
    return ordered[rank - 1]


class FeaturesProbe(Probe):
    """Status shares, age or a mean of named Feast features (its own request, or sampled load answers)."""

    Spec = FeaturesSpec
    spec: FeaturesSpec
    unit: ClassVar[str] = "ratio"
    _client: Any = None  # an httpx.AsyncClient while started (httpx is imported only then)

    def value_unit(self) -> str:
        return {"age": "s", "value": ""}.get(self.spec.stat, "ratio")

    def latency_bound(self) -> float | None:
        return None  # an age bound (hours) is not a latency the instruments must keep up with

    async def start(self) -> None:
        if self.spec.source == "request":
            import httpx

            self._client = httpx.AsyncClient(timeout=self.spec.timeout)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _url(self) -> str:
        if self.spec.url.startswith(("http://", "https://")):
            return self.spec.url
        try:
            return self.ctx.target(self.spec.target).url(self.spec.url)
        except TargetError as exc:
            raise ProbeError(f"cannot resolve {self.spec.url!r}: {exc}") from None

    async def _ask(self) -> list[Any]:
        import httpx

        if self._client is None:
            await self.start()
        s = self.spec
        url = self._url()
        body = {"features": s.features, "entities": s.entities, "full_feature_names": s.full_feature_names}
        try:
            r = await self._client.post(url, json=body, headers=s.headers)
        except httpx.TimeoutException:
            raise ProbeError(f"POST {url} timed out after {s.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProbeError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code >= 400:
            raise ProbeError(f"POST {url} answered {r.status_code}: {r.text[:200]}")
        try:
            return [r.json()]
        except ValueError:
            raise ProbeError(f"{url} did not answer JSON") from None

    def _sampled(self) -> list[Any]:
        load = self.ctx.services.get("load")
        if load is None:
            raise ProbeError("source: load needs a 'load' section in the experiment (with 'sample' above 0)")
        window = load.window(self.spec.window or 5.0)
        return [s["json"] for s in window.samples if s.get("json") is not None]

    async def measure(self) -> Measurement:
        s = self.spec
        docs = await self._ask() if s.source == "request" else self._sampled()
        now = time.time()
        wanted = [s.feature] if s.feature else s.features
        rows: list[tuple[str, Any, Any, Any]] = []
        answers = 0
        for doc in docs:
            try:
                rows += cells(doc, wanted)
                answers += 1
            except ProbeError:
                if s.source == "request":
                    raise
                # a sampled error body or another endpoint's answer: not a Feast answer, not counted
        m = self._stat(rows, now, answers)
        if s.source == "load":
            m.window = float(s.window or 5.0)
        return m

    def _stat(self, rows: list[tuple[str, Any, Any, Any]], now: float, answers: int) -> Measurement:
        s = self.spec
        detail: dict[str, Any] = {"answers": answers, "cells": len(rows)}
        if s.stat in _STATUS or s.stat == "null":
            if len(rows) < s.min_cells:
                return self._short(len(rows))
            if s.stat == "null":
                hit = sum(1 for _, v, st, _ in rows if st == "NULL_VALUE" or (st == "PRESENT" and v is None))
            else:
                hit = sum(1 for _, _, st, _ in rows if st == _STATUS[s.stat])
            return Measurement.share(hit, len(rows), {**detail, "count": hit})
        if s.stat == "age":
            ages = [now - t for _, _, st, raw in rows
                    if raw != EPOCH and st != "NOT_FOUND" and (t := parse_timestamp(raw)) is not None]
            if len(ages) < s.min_cells:
                return self._short(len(ages))
            detail.update(p50_s=round(percentile(ages, 50), 3), max_s=round(max(ages), 3))
            return Measurement(percentile(ages, s.percentile), detail, samples=len(ages))
        nums = [float(v) for _, v, st, _ in rows
                if st in (None, "PRESENT") and isinstance(v, int | float) and not isinstance(v, bool)]
        if len(nums) < s.min_cells:
            return self._short(len(nums))
        return Measurement(math.fsum(nums) / len(nums), detail, samples=len(nums))

    def _short(self, n: int) -> Measurement:
        return Measurement(None, samples=n,
                           insufficient=f"{n} usable feature cells; {self.spec.stat} needs ≥ {self.spec.min_cells}")
