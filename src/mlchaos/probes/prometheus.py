"""Prometheus probe: one PromQL instant query against a real Prometheus server.

The tolerance (``max``/``min``/``between``) is applied by the engine to the
single number the query yields.  A query that returns several series must say
how to reduce them (``reduce: sum|max|min|mean``), so a probe never checks
an arbitrary series by accident; a query with no series is "insufficient
data" (the metric may not be scraped yet), never a pass.

Failures are explicit :class:`~mlchaos.plugin.ProbeError` messages: the
server unreachable (with its URL), an HTTP error, or Prometheus' own
``bad_data`` message for an invalid query.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.spec.types import Duration

__all__ = ["PrometheusProbe", "PrometheusProbeSpec"]


class PrometheusProbeSpec(ProbeSpec):
    probe: Literal["prometheus"] = "prometheus"
    query: str = Field(description="PromQL expression, e.g. 'sum(rate(http_requests_total{code=~\"5..\"}[1m]))'.")
    server: str = Field("http://127.0.0.1:9090", description="Base URL of the Prometheus server.")
    reduce: Literal["single", "sum", "max", "min", "mean"] = Field(
        "single", description="How to turn several series into one value ('single': exactly one expected)."
    )
    timeout: Duration = Field(5.0, description="HTTP timeout of the query.")


def _reduce(values: list[float], how: str) -> float:
    if how == "sum":
        return math.fsum(values)
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    if how == "mean":
        return math.fsum(values) / len(values)
    return values[0]


class PrometheusProbe(Probe):
    """Value of a PromQL instant query (unitless: whatever the query computes)."""

    Spec = PrometheusProbeSpec

    async def measure(self) -> Measurement:
        import httpx

        spec: PrometheusProbeSpec = self.spec  # type: ignore[assignment]
        url = spec.server.rstrip("/") + "/api/v1/query"
        try:
            async with httpx.AsyncClient(timeout=spec.timeout) as client:
                resp = await client.get(url, params={"query": spec.query})
        except httpx.TimeoutException:
            raise ProbeError(f"Prometheus at {spec.server} did not answer within {spec.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProbeError(f"Prometheus at {spec.server} is unreachable: {exc or type(exc).__name__}") from None
        try:
            doc: dict[str, Any] = resp.json()
        except ValueError:
            raise ProbeError(
                f"{url} answered HTTP {resp.status_code} with a non-JSON body: is it a Prometheus server?"
            ) from None
        if doc.get("status") != "success":
            kind = doc.get("errorType", f"HTTP {resp.status_code}")
            msg = doc.get("error", resp.text[:200])
            if kind == "bad_data":
                raise ProbeError(f"invalid PromQL query {spec.query!r}: {msg}")
            raise ProbeError(f"Prometheus query {spec.query!r} failed ({kind}): {msg}")
        data = doc.get("data") or {}
        rtype = data.get("resultType")
        result: Any = data.get("result") or []
        if rtype == "scalar":
            values = [float(result[1])]
            labels: list[dict[str, str]] = [{}]
        elif rtype == "vector":
            values = [float(s["value"][1]) for s in result]
            labels = [s.get("metric", {}) for s in result]
        else:
            raise ProbeError(f"query {spec.query!r} returned a {rtype}; an instant vector or scalar is needed")
        detail: dict[str, Any] = {"query": spec.query, "series": len(values), "labels": labels[:10]}
        if not values:
            return Measurement(value=None, samples=0, detail=detail,
                               insufficient=f"query {spec.query!r} returned no series")
        if len(values) > 1 and spec.reduce == "single":
            raise ProbeError(
                f"query {spec.query!r} returned {len(values)} series; aggregate it in PromQL "
                "or set reduce: sum|max|min|mean"
            )
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return Measurement(value=None, samples=0, detail=detail, insufficient="query value is NaN")
        return Measurement(value=_reduce(finite, spec.reduce), samples=len(finite), detail=detail)
