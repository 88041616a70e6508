"""Leases: every injected fault expires by itself unless its runner keeps renewing it."""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass
class Lease:
    """A time-limited right to keep a fault in place.

    ``ttl`` is what a holder (fault proxy, watchdog, failpoint channel) should
    apply each time the lease is renewed; ``expires_at`` is wall-clock
    (``time.time()``) so separate processes agree on it.
    """

    id: str
    ttl: float
    expires_at: float

    @classmethod
    def new(cls, lease_id: str, ttl: float) -> Lease:
        return cls(lease_id, ttl, time.time() + ttl)

    def renew(self) -> None:
        self.expires_at = time.time() + self.ttl

    @property
    def remaining(self) -> float:
        return self.expires_at - time.time()
