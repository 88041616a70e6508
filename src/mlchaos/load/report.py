"""The report of a whole load run (``LoadReport``): totals, quantiles, series, errors, the verdict.

Split from :mod:`mlchaos.load.stats` (which builds it from the workers' intervals and re-exports it) so
that each module holds one concept.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from mlchaos.load.histogram import LogHistogram

if TYPE_CHECKING:
    from mlchaos.load.stats import Validity

__all__ = ["LoadReport"]


@dataclasses.dataclass
class LoadReport:
    """The whole run: totals, latency quantiles, per-second series, errors and the validity verdict."""

    url: str
    target_rate: float
    arrivals: str
    profile: str
    processes: int
    duration: float
    scheduled: int
    dispatched: int
    sent: int
    completed: int
    errors: dict[str, int]
    codes: dict[int, int]
    latency: LogHistogram
    service: LogHistogram
    lag: LogHistogram
    series: list[dict[str, Any]]
    validity: Validity
    peak_connections: int
    abandoned: int
    loop: str
    connection_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    """Connect failures by errno name (ECONNREFUSED, …), for diagnosis."""
    llm: dict[str, Any] | None = None
    """An LLM load's token-level summary (:meth:`mlchaos.load.llmstats.LLMStats.to_dict`, milliseconds)."""

    @property
    def valid(self) -> bool:
        """Shortcut for ``validity.valid`` (the engine refuses a ``passed`` verdict when False)."""
        return self.validity.valid

    @property
    def invalid_reason(self) -> str:
        return "; ".join(self.validity.reasons)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.duration if self.duration > 0 else 0.0

    @property
    def completed_rate(self) -> float:
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def scheduled_rate(self) -> float:
        return self.scheduled / self.duration if self.duration > 0 else 0.0

    @property
    def error_rate(self) -> float | None:
        return sum(self.errors.values()) / self.completed if self.completed else None

    def to_dict(self) -> dict[str, Any]:
        qs = [0.5, 0.9, 0.95, 0.99, 0.999]
        names = ["p50", "p90", "p95", "p99", "p999"]

        def quant(h: LogHistogram) -> dict[str, float | None]:
            d: dict[str, float | None] = dict(zip(names, h.quantiles(qs), strict=True))
            d["max"] = h.max
            d["mean"] = h.mean
            return d

        return {
            "url": self.url,
            "target_rate": self.target_rate,
            "arrivals": self.arrivals,
            "profile": self.profile,
            "processes": self.processes,
            "loop": self.loop,
            "duration": self.duration,
            "scheduled": self.scheduled,
            "dispatched": self.dispatched,
            "sent": self.sent,
            "completed": self.completed,
            "scheduled_rate": self.scheduled_rate,
            "achieved_rate": self.achieved_rate,
            "completed_rate": self.completed_rate,
            "errors": dict(self.errors),
            "error_rate": self.error_rate,
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "latency": quant(self.latency),
            "service_time": quant(self.service),
            "lag": quant(self.lag),
            "peak_connections": self.peak_connections,
            "connection_errors": dict(self.connection_errors),
            "abandoned": self.abandoned,
            "validity": self.validity.to_dict(),
            "series": self.series,
            **({"llm": self.llm} if self.llm is not None else {}),
        }
