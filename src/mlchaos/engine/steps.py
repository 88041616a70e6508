"""Commands mlchaos runs itself: ``command`` steps of the method, and faults' ``revert`` actions.

Real systems need actions at points of a run that no fault plugin knows
about: restart a server mlchaos did not start so it re-reads restored model
files, run ``feast materialize``, ``kubectl rollout restart``.  Why they run
the way they do:

* **Shell-free.**  ``argv`` is executed as is; a value from a variable can
  never become a second command.
* **Own process group, killed at the timeout.**  A hung ``systemctl`` must
  not hold the run (or the watchdog) hostage, and killing the group takes
  the command's children along.  A command that exits in time is not
  chased further: what it deliberately left running is its business.
* **Output to anonymous files, not pipes.**  A child that outlives its
  parent and keeps the pipe open would make "read to EOF" hang; a file
  never blocks the writer and is read back, only its tail, once the command
  exited.  The journal keeps :data:`TAIL_BYTES` of each stream.
* **One outcome shape** (:class:`Outcome`) for the runner (async, cancellable:
  a cancelled step kills its group) and for the watchdog and ``mlchaos stop``
  (sync: they have no event loop), so a revert action reads the same in the
  journal and in ``watchdog.log``.

Step scheduling (``at:``, ``when: fault-removed``, ``when: recovery``) is the
:class:`StepLifecycle` mixin of the runner.  A step is part of the method:
a run that is ending (aborted, errored) starts no further step; what must
happen whenever a fault goes away belongs in the fault's ``revert:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlchaos.engine.verdict import Status
    from mlchaos.spec.experiment import Experiment

#: Bytes of stdout and of stderr kept (the end of each) in the journal and in error messages.
TAIL_BYTES = 4096
#: Characters of stderr quoted in a run's reason (the journal has the full tail).
REASON_CHARS = 600


@dataclasses.dataclass
class Outcome:
    """What one command did."""

    argv: list[str]
    exit_code: int | None
    """None when it never ran (spawn error) or was killed at its timeout."""
    duration_s: float
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str | None = None
    """Why it failed, in words; None when it exited with the expected code."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def fields(self) -> dict[str, Any]:
        """The journal's fields for this outcome."""
        return {"argv": self.argv, "exit_code": self.exit_code, "duration_s": round(self.duration_s, 6),
                "ok": self.ok, "error": self.error, "stdout_tail": self.stdout_tail, "stderr_tail": self.stderr_tail}

    def reason(self) -> str:
        """The error with the end of stderr, short enough for a verdict line."""
        text = self.error or "ok"
        tail = self.stderr_tail.strip()
        if tail:
            tail = tail if len(tail) <= REASON_CHARS else "…" + tail[-REASON_CHARS:]
            text += f"; stderr: {tail}"
        return text


def _tail(fh: IO[bytes]) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - TAIL_BYTES))
    data = fh.read()
    text = data.decode("utf-8", "replace")
    return ("…" + text) if size > TAIL_BYTES else text


def _spawn_kwargs(action: Mapping[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (action.get("env") or {}).items()})
    return {"env": env, "cwd": action.get("cwd") or None, "stdin": subprocess.DEVNULL, "start_new_session": True}


def _judge(action: Mapping[str, Any], argv: list[str], code: int | None, started: float, out: IO[bytes],
           err: IO[bytes], error: str | None) -> Outcome:
    expect = int(action.get("expect_exit", 0))
    if error is None and code != expect:
        error = (f"exit code {code} (expected {expect})" if code is not None and code >= 0
                 else f"killed by signal {-(code or 0)} (expected exit {expect})")
    return Outcome(argv, code, time.monotonic() - started, _tail(out), _tail(err), error)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_sync(action: Mapping[str, Any]) -> Outcome:
    """Run ``action`` (the fields of :class:`mlchaos.plugin.CommandAction`) to its end; never raises."""
    argv = [str(a) for a in action["argv"]]
    timeout = float(action.get("timeout", 60.0))
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, **_spawn_kwargs(action))
        except (OSError, ValueError) as exc:
            return _judge(action, argv, None, started, out, err, f"could not start: {exc}")
        try:
            code: int | None = proc.wait(timeout)
            error = None
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            code, error = None, f"timed out after {timeout:g}s (its process group was killed)"
        return _judge(action, argv, code, started, out, err, error)


async def run_async(action: Mapping[str, Any]) -> Outcome:
    """:func:`run_sync` for the runner: cancelling it kills the command's process group."""
    argv = [str(a) for a in action["argv"]]
    timeout = float(action.get("timeout", 60.0))
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=err, **_spawn_kwargs(action))
        except (OSError, ValueError) as exc:
            return _judge(action, argv, None, started, out, err, f"could not start: {exc}")
        try:
            code: int | None = await asyncio.wait_for(proc.wait(), timeout)
            error = None
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            code, error = None, f"timed out after {timeout:g}s (its process group was killed)"
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        return _judge(action, argv, code, started, out, err, error)


def action_of(spec: Any) -> dict[str, Any]:
    """The JSON fields of a command (a step or a fault's ``revert``), as leases and the journal keep them."""
    return {k: getattr(spec, k) for k in ("argv", "timeout", "env", "cwd", "expect_exit")}


def step_label(spec: Any, index: int) -> str:
    return spec.name or f"command#{index}"


class StepLifecycle:
    """Run the method's ``command`` steps at their points of the run (a mixin of the runner)."""

    experiment: Experiment
    _stop: asyncio.Event
    _removal_started: float | None
    _step_tasks: list[asyncio.Task[None]]

    if TYPE_CHECKING:  # provided by the runner
        def log(self, event: str, **fields: Any) -> None: ...
        def request_stop(self, status: Status, reason: str) -> None: ...
        def _error(self, msg: str) -> None: ...

    def _steps(self) -> list[tuple[int, Any]]:
        return list(enumerate(getattr(self.experiment, "steps", [])))

    async def _run_step(self, index: int, spec: Any, trigger: str) -> None:
        """Run one step now, unless the run is ending; a failure ends the run as ``errored``."""
        label = step_label(spec, index)
        if self._stop.is_set():
            self.log("step-skipped", step=label, trigger=trigger, reason="the run is ending")
            return
        action = action_of(spec)
        self.log("step-start", step=label, trigger=trigger, argv=action["argv"], cwd=action["cwd"],
                 timeout=action["timeout"])
        started = time.monotonic()
        try:
            outcome = await run_async(action)
        except asyncio.CancelledError:  # the run is ending: run_async killed the command's group
            self.log("step-end", step=label, trigger=trigger, argv=action["argv"], exit_code=None,
                     duration_s=round(time.monotonic() - started, 6), ok=False,
                     error="cancelled: the run is ending (its process group was killed)")
            raise
        self.log("step-end", step=label, trigger=trigger, **outcome.fields())
        if not outcome.ok:
            self._error(f"step {label} failed: {outcome.reason()}")

    def _start_timed_steps(self, phase_start: float) -> None:
        """Schedule the ``at:`` steps against the fault phase's start, like the faults."""
        for i, spec in self._steps():
            if spec.when is None:
                self._step_tasks.append(asyncio.create_task(self._timed_step(i, spec, phase_start)))

    async def _timed_step(self, index: int, spec: Any, phase_start: float) -> None:
        delay = (spec.at or 0.0) - (time.monotonic() - phase_start)
        if delay > 0:
            await asyncio.sleep(delay)
        if self._removal_started is not None:  # the fault phase is over: too late for a step inside it
            self.log("step-skipped", step=step_label(spec, index), trigger=f"at {spec.at:g}s",
                     reason="the fault phase ended first")
            return
        await self._run_step(index, spec, f"at {spec.at:g}s")

    def _on_fault_removed(self, fault_label: str) -> None:
        """Start the steps waiting for this fault's removal (not while the run is ending)."""
        for i, spec in self._steps():
            if spec.when == "fault-removed" and spec.of == fault_label and not self._stop.is_set():
                self._step_tasks.append(asyncio.create_task(self._run_step(i, spec, f"fault {fault_label} removed")))

    async def _wait_steps(self) -> None:
        """Let the steps already running finish (each bounded by its timeout); a stop request cancels them."""
        tasks, self._step_tasks = self._step_tasks, []
        await self._until_stop(tasks)

    async def _run_steps_on(self, trigger: str) -> None:
        """Run, one after the other, the steps for ``fault-removed`` (all faults) or ``recovery``."""
        for i, spec in self._steps():
            if spec.when == trigger and (trigger != "fault-removed" or spec.of is None):
                what = "all faults removed" if trigger == "fault-removed" else trigger
                await self._until_stop([asyncio.create_task(self._run_step(i, spec, what))])

    async def _until_stop(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for ``tasks``; if the run is asked to stop first, cancel them (which kills their groups)."""
        if not tasks:
            return
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            while not stop.done() and not all(t.done() for t in tasks):
                await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)

    async def _cancel_steps(self) -> None:
        """Teardown: a step still running is cancelled, which kills its process group."""
        for t in self._step_tasks:
            t.cancel()
        await asyncio.gather(*self._step_tasks, return_exceptions=True)
        self._step_tasks = []
