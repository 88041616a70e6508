"""Leases: every injected fault expires by itself unless its runner keeps renewing it.

A lease is a JSON file under ``<state>/leases/``.  It names the fault plugin,
carries the plugin's ``undo`` record and an ``expires_at`` (wall clock, so
separate processes agree).  The runner renews it from its heartbeat; the
watchdog (:mod:`mlchaos.engine.watchdog`) reverts any lease whose time ran
out, which is what makes ``kill -9`` of a runner safe.  Holders that enforce
leases themselves (the fault proxy, failpoints) get the same TTL, so there
are two independent clocks on every fault.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from mlchaos.engine.state import read_json, write_json_atomic


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


class LeaseStore:
    """The lease files of one state directory."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "leases"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str, lease_id: str) -> Path:
        return self.dir / f"{run_id}--{lease_id}.json"

    def record(self, lease: Lease, *, run_id: str, plugin: str, undo: dict[str, Any], runner_pid: int) -> Path:
        """Write the lease with the undo record.  Written *before* the holder can need it."""
        p = self.path(run_id, lease.id)
        write_json_atomic(p, {
            "run_id": run_id, "lease_id": lease.id, "plugin": plugin, "undo": undo,
            "ttl": lease.ttl, "expires_at": lease.expires_at, "runner_pid": runner_pid,
            "created": time.time(),
        })
        return p

    def renew(self, run_id: str, lease: Lease) -> None:
        p = self.path(run_id, lease.id)
        data = read_json(p)
        if data is None:
            return
        lease.renew()
        data["expires_at"] = lease.expires_at
        write_json_atomic(p, data)

    def release(self, run_id: str, lease_id: str) -> None:
        self.path(run_id, lease_id).unlink(missing_ok=True)

    def all(self) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            data = read_json(p)
            if data is not None:
                out.append((p, data))
        return out

    def for_run(self, run_id: str) -> list[tuple[Path, dict[str, Any]]]:
        return [(p, d) for p, d in self.all() if d.get("run_id") == run_id]


def revert_record(data: dict[str, Any]) -> None:
    """Undo one lease's fault through its plugin's ``revert`` (no runner state needed)."""
    from mlchaos import registry

    cls = registry.get("fault", str(data["plugin"]))
    cls.revert(dict(data.get("undo") or {}))
