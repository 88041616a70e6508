"""Process-wide data-path counters (exported by ``/metrics``)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Stats:
    connections_total: int = 0
    connections_active: int = 0
    requests_total: int = 0
    requests_faulted: int = 0
    upstream_connects: int = 0
    upstream_errors: int = 0
    upstream_retries: int = 0
    """Requests written again on a fresh connection: a reused one was closed by the upstream before answering."""
    bad_requests: int = 0
    """Requests refused: malformed, or over a header/body limit."""
    timeouts: int = 0
    """Client connections closed by the header, idle or body timeout."""
    connections_refused: int = 0
    """Client connections refused because --max-connections were open."""
    upstream_idle: int = 0
    """Pooled idle upstream connections (a gauge)."""

    def add(self, other: dict[str, int]) -> None:
        for k, v in other.items():
            if hasattr(self, k):
                setattr(self, k, getattr(self, k) + v)
