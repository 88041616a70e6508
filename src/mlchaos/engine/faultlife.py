"""The fault side of a run: inject on schedule, write ahead, confirm, renew, remove on every path.

Why each step is where it is:

* **Write ahead.**  Before a plugin touches anything, its undo record (from
  :meth:`Fault.intent`) is written and fsynced with the run's watchdog known to
  be alive; ``inject`` then runs and its lease replaces the intent.  A runner
  killed at any instant leaves a record the watchdog or ``mlchaos stop`` can
  revert (:mod:`mlchaos.engine.lease`).
* **One removal per fault.**  Its own timer and an abort may both ask to
  remove a fault; they share one removal, and every removal is bounded in time.
* **Heartbeat.**  Leases are renewed at a third of their TTL; the same beat
  keeps the run record's list of owned processes current and notices
  ``mlchaos stop``.

Mixed into :class:`mlchaos.engine.runner.Runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlchaos.contract.lease import Lease
from mlchaos.engine.lease import LeaseStore
from mlchaos.engine.state import is_stopped, write_json_atomic
from mlchaos.engine.verdict import Status
from mlchaos.plugin import Applied, Fault, PluginError, Target

if TYPE_CHECKING:
    from mlchaos.spec.experiment import Experiment
    from mlchaos.spec.model import ExperimentSpec

INJECT_TIMEOUT = 15.0
REMOVE_TIMEOUT = 10.0


@dataclasses.dataclass
class FaultRun:
    spec: Any
    fault: Fault
    label: str
    plugin: str
    lease: Lease | None = None
    applied: Applied | None = None
    injected_at: float | None = None
    removed_at: float | None = None
    observed: dict[str, Any] = dataclasses.field(default_factory=dict)
    planned: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    removal: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return self.injected_at is not None and self.removed_at is None


def _revert_action(fr: FaultRun) -> dict[str, Any] | None:
    """The fault's ``revert:`` command as leases keep it (None: it has none)."""
    from mlchaos.engine.steps import action_of

    spec = getattr(fr.spec, "revert", None)
    return action_of(spec) if spec is not None else None


class FaultLifecycle:
    """Inject, confirm, renew and remove the run's faults (a mixin of the runner)."""

    experiment: Experiment
    spec: ExperimentSpec
    run_id: str
    base: Path
    leases: LeaseStore
    journal: Any
    use_watchdog: bool
    targets: dict[str, Target]
    faults: list[FaultRun]
    _owned: list[list[float]]
    _errors: list[str]
    _stop: asyncio.Event
    _removal_started: float | None

    if TYPE_CHECKING:  # provided by the runner
        def log(self, event: str, **fields: Any) -> None: ...
        def request_stop(self, status: Status, reason: str) -> None: ...
        def _error(self, msg: str) -> None: ...
        def _on_fault_removed(self, fault_label: str) -> None: ...

    async def _fault_task(self, fr: FaultRun, phase_start: float) -> None:
        delay = fr.spec.at - (time.monotonic() - phase_start)
        if delay > 0:
            await asyncio.sleep(delay)
        if self._stop.is_set() or self._removal_started is not None:
            return
        await self._inject(fr)
        if fr.spec.duration is not None and fr.active:
            await asyncio.sleep(fr.spec.duration)
            await self._remove(fr)

    async def _inject(self, fr: FaultRun) -> None:
        """Write ahead, inject, confirm: at every instant some record on disk says how to undo the fault.

        Before the plugin touches anything, the intent (the undo record its
        ``intent`` planned) is written and fsynced, with the run's watchdog
        known to be alive; it is renewed while ``inject`` runs and replaced by
        the lease once ``inject`` returned.  A failed or cancelled injection
        is reverted from the intent at once.  ``kill_point`` marks where
        tests/engine/test_writeahead.py kills the runner (issue #16).
        """
        from mlchaos.contract.lease import kill_point

        lease = Lease.new(f"{len(self.faults)}-{uuid.uuid4().hex[:8]}", self.spec.lease_ttl)
        fr.lease = lease
        intent: dict[str, Any] | None = None
        written = False

        async def keep_intent() -> None:  # the heartbeat renews only confirmed faults
            while True:
                await asyncio.sleep(max(0.05, min(1.0, lease.ttl / 3)))
                self.leases.renew(self.run_id, lease)

        def undo_intent() -> None:
            if intent is not None:
                type(fr.fault).revert(dict(intent))
                self._revert_action_sync(fr)  # it may have half happened: what follows a removal follows this one
            self.leases.release(self.run_id, lease.id)

        keep: asyncio.Task[None] | None = None
        try:
            if self.use_watchdog:
                from mlchaos.engine.watchdog import ensure

                await asyncio.to_thread(ensure, self.base, self.run_id)
            intent = await asyncio.wait_for(fr.fault.intent(lease), INJECT_TIMEOUT)
            lease.renew()
            # fsync off the event loop: a stalled loop would delay the probes that judge the run
            await asyncio.to_thread(self.leases.intend, lease, run_id=self.run_id, plugin=fr.plugin, undo=intent,
                                    runner_pid=os.getpid(), action=_revert_action(fr))
            written = True
            self.log("fault-intent", fault=fr.label, plugin=fr.plugin, lease=lease.id, planned_undo=intent is not None)
            kill_point("intent-written")
            keep = asyncio.create_task(keep_intent())
            applied = await asyncio.wait_for(fr.fault.inject(lease), INJECT_TIMEOUT)
        except TimeoutError:
            fr.error = f"injection did not finish within {INJECT_TIMEOUT:g}s"
        except (PluginError, ValueError, OSError) as exc:
            fr.error = str(exc)
        except asyncio.CancelledError:
            if written:  # the run is ending while the fault went in: take it out now, not at the TTL
                with contextlib.suppress(Exception):
                    undo_intent()
            raise
        except Exception as exc:
            fr.error = f"{type(exc).__name__}: {exc}"
        else:
            kill_point("inject-returned")
            injected_at = time.time()
            if keep is not None:
                keep.cancel()
            try:
                await asyncio.to_thread(self.leases.record, lease, run_id=self.run_id, plugin=fr.plugin,
                                        undo=applied.undo, runner_pid=os.getpid(), action=_revert_action(fr))
            except asyncio.CancelledError:  # the run is ending: the fault is in, so take it out now
                with contextlib.suppress(Exception):
                    type(fr.fault).revert(dict(applied.undo))
                    undo_intent()
                raise
            fr.applied = applied
            fr.injected_at = injected_at
            kill_point("fault-confirmed")
            self.log("fault-inject", fault=fr.label, plugin=fr.plugin, targets=applied.targets,
                     planned=applied.planned or fr.planned, actual=applied.actual,
                     lease={"id": lease.id, "ttl": lease.ttl, "expires_at": lease.expires_at})
            return
        finally:
            if keep is not None:
                keep.cancel()
        self.log("fault-inject-failed", fault=fr.label, plugin=fr.plugin, error=fr.error)
        if written:  # it may have half happened: undo what the intent names (the watchdog retries if this fails)
            try:
                await asyncio.to_thread(undo_intent)
            except Exception as exc:
                self.log("fault-revert-failed", fault=fr.label, error=f"{type(exc).__name__}: {exc}",
                         lease_expires_at=lease.expires_at)
        self._error(f"fault {fr.label} could not be injected: {fr.error}")

    async def _remove(self, fr: FaultRun) -> None:
        """Remove one fault; concurrent callers (its own timer, an abort) share one removal."""
        if fr.removal is None:
            if not fr.active:
                return
            fr.removal = asyncio.ensure_future(self._do_remove(fr))
        await asyncio.shield(fr.removal)

    async def _do_remove(self, fr: FaultRun) -> None:
        with contextlib.suppress(Exception):
            fr.observed = await asyncio.wait_for(fr.fault.observed(), 2.0) or {}
        try:
            await asyncio.wait_for(fr.fault.remove(), REMOVE_TIMEOUT)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                msg = f"removal did not finish within {REMOVE_TIMEOUT:g}s"
            fr.error = msg
            exp_at = fr.lease.expires_at if fr.lease else None
            self.log("fault-remove-failed", fault=fr.label, error=msg, lease_expires_at=exp_at)
            self._errors.append(f"fault {fr.label} could not be removed: {msg} (its lease expires by itself)")
            fr.removed_at = time.time()
            return
        if _revert_action(fr) is not None:
            # before the lease goes: a runner killed while the action runs leaves it to the watchdog, which runs
            # it again; the heartbeat keeps the lease renewed meanwhile (the fault is still active until it ends)
            await self._revert_action(fr)
        fr.removed_at = time.time()
        assert fr.lease is not None
        self.leases.release(self.run_id, fr.lease.id)
        self.log("fault-remove", fault=fr.label, observed=fr.observed,
                 active_s=round(fr.removed_at - (fr.injected_at or fr.removed_at), 6))
        self._on_fault_removed(fr.label)

    async def _revert_action(self, fr: FaultRun) -> None:
        """Run the fault's ``revert:`` command after its removal; a failure makes the run ``errored``."""
        from mlchaos.engine.steps import run_async

        action = _revert_action(fr)
        assert action is not None
        self.log("fault-revert-action-start", fault=fr.label, argv=action["argv"])
        outcome = await run_async(action)
        self.log("fault-revert-action", fault=fr.label, **outcome.fields())
        if not outcome.ok:
            self._error(f"revert action of fault {fr.label} failed: {outcome.reason()}")

    def _revert_action_sync(self, fr: FaultRun) -> None:
        """The same, where the fault is undone off the event loop (a failed or cancelled injection)."""
        from mlchaos.engine.steps import run_sync

        action = _revert_action(fr)
        if action is None:
            return
        outcome = run_sync(action)
        self.log("fault-revert-action", fault=fr.label, **outcome.fields())
        if not outcome.ok:
            self._errors.append(f"revert action of fault {fr.label} failed: {outcome.reason()}")

    async def _remove_all(self, why: str) -> None:
        active = [fr for fr in self.faults if fr.active]
        if self._removal_started is None:
            self._removal_started = time.time()
        if not active:
            return
        self.log("remove-all", reason=why, faults=[fr.label for fr in active])
        await asyncio.gather(*(self._remove(fr) for fr in active), return_exceptions=True)
        self.log("removed-all", faults=[fr.label for fr in active])

    def _record_owned(self) -> None:
        """Keep the run file's list of target-owned processes current (restarts change PIDs)."""
        owned = [po for t in self.targets.values() for po in t.owned()]
        if owned != self._owned:
            self._owned = owned
            write_json_atomic(self.base / "runs" / f"{self.run_id}.json",
                              {"run_id": self.run_id, "pid": os.getpid(), "started": self.journal.t0,
                               "source": self.experiment.source, "owned": owned})

    async def _heartbeat(self) -> None:
        period = max(0.05, min(1.0, self.spec.lease_ttl / 3))
        while True:
            await asyncio.sleep(period)
            self._record_owned()
            if is_stopped(self.base):
                self.request_stop(Status.ABORTED, "stopped by 'mlchaos stop'")
            for fr in self.faults:
                if fr.active and fr.lease is not None:
                    try:
                        self.leases.renew(self.run_id, fr.lease)
                        if fr.removal is None:  # removed, its revert command running: only the lease file lives on
                            await asyncio.wait_for(fr.fault.renew(fr.lease), period)
                    except Exception as exc:
                        self.log("lease-renew-failed", fault=fr.label, error=str(exc))

