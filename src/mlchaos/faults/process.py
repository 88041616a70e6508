"""Process faults on local PIDs: pause (SIGSTOP/SIGCONT) and kill.

A paused process is the cheapest faithful model of a hung replica or a GC
storm: its sockets stay open, connections queue, nothing answers.  Each
paused PID is recorded with its start time, so a revert after a crash never
sends SIGCONT to an unrelated process that reused the PID.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from typing import Any, Literal

from pydantic import Field

from mlchaos.contract.blast import BlastRadiusError, select_count
from mlchaos.contract.proc import process_alive, process_start_time
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Percent


class _Selection(FaultSpec):
    pids: list[int] | None = Field(None, description="PIDs to choose from; default: the target's processes.")
    select: str | None = Field(None, description="Which of the target's processes, e.g. 'serving-[0-9]' on a lab target.")
    count: int | None = Field(None, ge=1, description="Hit exactly this many processes.")
    percent: Percent | None = Field(None, description="Hit this share of the processes (rounded up).")
    keep_healthy: int = Field(0, ge=0, description="Leave at least this many processes untouched.")
    seed: int | None = Field(None, description="Seed for choosing which processes (default: random).")


class _ProcessFault(Fault):
    spec: _Selection

    def _candidates(self) -> list[int]:
        if self.spec.pids:
            return list(self.spec.pids)
        return self.ctx.target(self.spec.target).pids(self.spec.select)

    def _choose(self) -> tuple[list[int], dict[str, Any]]:
        pids = [p for p in self._candidates() if process_start_time(p) is not None]
        try:
            n = select_count(len(pids), count=self.spec.count, percent=self.spec.percent,
                             keep_healthy=self.spec.keep_healthy)
        except BlastRadiusError as exc:
            raise FaultError(str(exc)) from None
        chosen = random.Random(self.spec.seed).sample(pids, n)
        return chosen, {"of": len(pids), "count": n, "pids": chosen}

    async def preflight(self) -> dict[str, Any]:
        chosen, planned = self._choose()
        for pid in chosen:
            try:
                os.kill(pid, 0)
            except PermissionError:
                raise FaultError(f"no permission to signal pid {pid}") from None
        return planned


class ProcessPauseSpec(_Selection):
    fault: Literal["process-pause"] = "process-pause"


class ProcessKillSpec(_Selection):
    fault: Literal["process-kill"] = "process-kill"
    signal: Literal["KILL", "TERM", "INT"] = Field("KILL", description="Signal to send.")


class ProcessPause(_ProcessFault):
    """SIGSTOP the chosen processes; SIGCONT on removal or lease expiry.

    ``intent`` chooses the PIDs (with their start times) before any is
    stopped, so a runner killed between two SIGSTOPs leaves a record naming
    all of them; ``revert`` sends SIGCONT to each that is still the same
    process, which is harmless for the ones never stopped.
    """

    Spec = ProcessPauseSpec

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._plan: tuple[list[list[float]], dict[str, Any]] | None = None

    def _planned(self) -> tuple[list[list[float]], dict[str, Any]]:
        chosen, planned = self._choose()
        with_start = [[pid, st] for pid in chosen if (st := process_start_time(pid)) is not None]
        return with_start, planned

    async def intent(self, lease: Any) -> dict[str, Any]:
        self._plan = self._planned()
        return {"pids": self._plan[0]}

    async def inject(self, lease: Any) -> Applied:
        from mlchaos.contract.lease import kill_point

        chosen, planned = self._plan or self._planned()
        paused: list[list[float]] = []
        for pid, st in chosen:
            try:
                os.kill(int(pid), signal.SIGSTOP)
            except ProcessLookupError:
                continue
            paused.append([pid, st])
            kill_point(f"process-pause:stopped:{len(paused)}")
        if not paused:
            raise FaultError(f"none of the chosen processes {[p for p, _ in chosen]} could be paused")
        self._paused = paused
        return Applied(targets=[f"pid:{int(p)}" for p, _ in paused], planned=planned,
                       actual={"count": len(paused)}, undo={"pids": paused})

    async def remove(self) -> None:
        self.revert({"pids": getattr(self, "_paused", [])})

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        for pid, st in undo.get("pids", []):
            if not process_alive(int(pid), st):
                continue  # gone, or the PID now belongs to someone else
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGCONT)


class ProcessKill(_ProcessFault):
    """Kill the chosen processes.  Not reversible: whatever supervises them brings them back."""

    Spec = ProcessKillSpec
    spec: ProcessKillSpec

    async def intent(self, lease: Any) -> dict[str, Any]:
        """Nothing to plan for undo: a killed process is not brought back by mlchaos (see the class)."""
        return {}

    async def inject(self, lease: Any) -> Applied:
        chosen, planned = self._choose()
        sig = getattr(signal, "SIG" + self.spec.signal)
        killed = []
        for pid in chosen:
            try:
                os.kill(pid, sig)
                killed.append(pid)
            except ProcessLookupError:
                continue
        if not killed:
            raise FaultError(f"none of the chosen processes {chosen} could be killed")
        return Applied(targets=[f"pid:{p}" for p in killed], planned=planned,
                       actual={"count": len(killed), "signal": self.spec.signal}, undo={})

    async def remove(self) -> None:
        return None
