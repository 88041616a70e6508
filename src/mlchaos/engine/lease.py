"""Leases: every injected fault expires by itself unless its runner keeps renewing it.

A lease is a JSON file under ``<state>/leases/``.  It names the fault plugin,
carries the plugin's ``undo`` record and an ``expires_at`` (wall clock, so
separate processes agree).  The runner renews it from its heartbeat; the
watchdog (:mod:`mlchaos.engine.watchdog`) reverts any lease whose time ran
out, which is what makes ``kill -9`` of a runner safe.  Holders that enforce
leases themselves (the fault proxy, failpoints) get the same TTL, so there
are two independent clocks on every fault.

The record is written *ahead* of the fault (issue #16): before ``inject``
touches anything, the runner writes an **intent** (``state: "intent"``) with
the undo record the plugin planned (:meth:`mlchaos.plugin.Fault.intent`),
fsynced with its directory; when ``inject`` returns, the same file is
replaced by the **lease** (``state: "active"``) with the final undo record.
One file per fault, replaced atomically, so at every instant of an injection
some record on disk says how to undo it, and a runner killed at any point
leaves a record the watchdog and ``mlchaos stop`` act on.

The :class:`~mlchaos.contract.lease.Lease` itself (and the crash tests'
``kill_point``) belongs to the plugin contract, :mod:`mlchaos.contract.lease`:
faults receive it; this module only keeps its files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlchaos.contract.lease import Lease
from mlchaos.contract.proc import process_start_time
from mlchaos.engine.state import read_json, write_json_atomic

if TYPE_CHECKING:
    from mlchaos.engine.steps import Outcome

INTENT = "intent"
"""A fault about to be injected (or half injected): the undo record is the plugin's plan."""
ACTIVE = "active"
"""A fault ``inject`` confirmed: the undo record is what it returned."""


class LeaseStore:
    """The lease files of one state directory."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "leases"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, run_id: str, lease_id: str) -> Path:
        return self.dir / f"{run_id}--{lease_id}.json"

    def intend(self, lease: Lease, *, run_id: str, plugin: str, undo: dict[str, Any] | None,
               runner_pid: int, action: dict[str, Any] | None = None) -> Path:
        """Write ahead, durably, what a fault about to be injected will need to be undone.

        ``undo`` None means the plugin planned nothing (no :meth:`Fault.intent`):
        the record still makes the half-injected fault visible to the watchdog
        and ``mlchaos stop``, which report it instead of reverting it.
        """
        return self._write(lease, state=INTENT, run_id=run_id, plugin=plugin, undo=undo, runner_pid=runner_pid,
                           action=action)

    def record(self, lease: Lease, *, run_id: str, plugin: str, undo: dict[str, Any], runner_pid: int,
               action: dict[str, Any] | None = None) -> Path:
        """Confirm the fault: replace its intent by the lease with the undo record ``inject`` returned."""
        return self._write(lease, state=ACTIVE, run_id=run_id, plugin=plugin, undo=undo, runner_pid=runner_pid,
                           action=action)

    def _write(self, lease: Lease, *, state: str, run_id: str, plugin: str, undo: dict[str, Any] | None,
               runner_pid: int, action: dict[str, Any] | None) -> Path:
        p = self.path(run_id, lease.id)
        write_json_atomic(p, {
            "state": state, "run_id": run_id, "lease_id": lease.id, "plugin": plugin, "undo": undo,
            "revert_action": action,
            "ttl": lease.ttl, "expires_at": lease.expires_at, "runner_pid": runner_pid,
            "runner_started": process_start_time(runner_pid), "created": time.time(),
        }, durable=True)
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


class Unplanned(Exception):
    """An intent whose plugin planned no undo record: it may be half injected and cannot be reverted."""


def revert_record(data: dict[str, Any]) -> Outcome | None:
    """Undo one lease's or intent's fault through its plugin's ``revert`` (no runner state needed).

    Then run the fault's ``revert:`` command, if the record names one, and
    return its outcome (None when there is none).  A failed command does not
    raise: the fault itself is undone, and running a restart again every poll
    would only repeat the failure, so the caller logs the outcome and drops
    the record.  A failed plugin ``revert`` raises, and the caller retries.

    Raises :class:`Unplanned` for an intent without an undo record (a plugin
    with no ``intent``): there is nothing to act on, and the caller says so.
    """
    from mlchaos import registry
    from mlchaos.engine.steps import run_sync

    undo = data.get("undo")
    if undo is None:
        if data.get("state") == INTENT:
            raise Unplanned(f"fault plugin {data.get('plugin')!r} planned no undo record: if its injection "
                            f"had begun (lease {data.get('lease_id')}, run {data.get('run_id')}), check its "
                            "target by hand")
        undo = {}
    cls = registry.get("fault", str(data["plugin"]))
    cls.revert(dict(undo))
    action = data.get("revert_action")
    return run_sync(action) if isinstance(action, dict) and action.get("argv") else None


def recover_stale(base: Path, own_run: str, log: Callable[..., None]) -> None:
    """Revert faults left by runs whose runner and watchdog are both dead (a reboot, a killed session).

    A run calls this before its preflight.  Such a fault's watchdog would have
    reverted it; with none alive, nothing else would until ``mlchaos stop``.  A
    record whose runner or watchdog still lives is left to them, so a fault's
    revert command never runs twice at once.  Each record handled is one
    ``stale-lease`` event in the new run's journal.
    """
    from mlchaos.contract.proc import process_alive
    from mlchaos.engine.watchdog import ready_file

    for path, data in LeaseStore(base).all():
        run_id = str(data.get("run_id"))
        if run_id == own_run or process_alive(int(data.get("runner_pid") or 0), data.get("runner_started")):
            continue
        dog = read_json(ready_file(base, run_id)) or {}
        if dog.get("pid") and process_alive(int(dog["pid"]), dog.get("started")):
            continue
        fields = {"lease": data.get("lease_id"), "run": run_id, "plugin": data.get("plugin")}
        try:
            outcome = revert_record(data)
        except Unplanned as exc:
            log("stale-lease", **fields, reverted=False, error=str(exc))
        except Exception as exc:  # left for 'mlchaos stop'; the new run's own faults are unaffected
            log("stale-lease", **fields, reverted=False, error=f"{type(exc).__name__}: {exc}")
            continue
        else:
            log("stale-lease", **fields, reverted=True,
                revert_action=outcome.fields() if outcome is not None else None)
        path.unlink(missing_ok=True)
