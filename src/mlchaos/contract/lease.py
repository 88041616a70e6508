"""The lease a fault is held under, and the kill points of write-ahead injection.

Every injected fault expires by itself unless its runner keeps renewing it:
the runner renews the lease from its heartbeat, the watchdog reverts a
lease whose time ran out, and holders that enforce leases themselves (the
fault proxy, failpoints) apply the same TTL, so there are two independent
clocks on every fault.  The *files* that record leases are the engine's
(:class:`mlchaos.engine.lease.LeaseStore`); the lease itself is part of the
plugin contract because :meth:`mlchaos.plugin.Fault.inject` receives it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

__all__ = ["KILL_AT_ENV", "Lease", "kill_point"]


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


KILL_AT_ENV = "MLCHAOS_TEST_KILL_AT"
"""Names the kill point at which :func:`kill_point` SIGKILLs the process; crash tests only."""


def kill_point(site: str) -> None:
    """A crash test's failpoint: SIGKILL this process here when ``$MLCHAOS_TEST_KILL_AT`` names ``site``.

    It lets tests/engine/test_writeahead.py kill a runner at exact points of
    an injection (after the intent, between two PIDs, before the confirm)
    instead of at random times; unset, it costs one environment lookup.
    Faults call it too (between two processes they pause), which is why it
    is part of the contract.
    """
    if os.environ.get(KILL_AT_ENV) == site:
        os.kill(os.getpid(), signal.SIGKILL)
