"""Local processes: PIDs you name, or a command the experiment starts and owns.

A command target is started before preflight and stopped after the verdict
(its whole process group), so tests and demos leave nothing behind.  With
``restart: true`` it behaves like a one-replica supervisor: a process that
dies (say, from a ``process-kill`` fault) is started again after
``restart_delay``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

if TYPE_CHECKING:
    import asyncio

from mlchaos.engine.state import pid_alive
from mlchaos.plugin import Target, TargetError, TargetSpec
from mlchaos.spec.types import Duration
from mlchaos.targets.http import join_url as _join


class ProcessTargetSpec(TargetSpec):
    platform: str = "process"
    pids: list[int] | None = Field(None, description="Existing local PIDs to act on.")
    command: list[str] | None = Field(None, description="A command the experiment starts and stops.")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(None, description="Base URL the process serves, for HTTP probes and load.")
    ready: str | None = Field(None, description="Path polled after start until it answers (status < 500).")
    ready_timeout: Duration = 15.0
    restart: bool = Field(False, description="Start the command again when it dies (a one-replica supervisor).")
    restart_delay: Duration = 0.5
    log: str | None = Field(None, description="File for the command's stdout/stderr (default: discarded).")


class ProcessTarget(Target):
    """Local processes: PIDs you name, or a command the run starts, watches and stops."""

    Spec = ProcessTargetSpec

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.spec: ProcessTargetSpec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    def _spawn(self) -> None:
        assert self.spec.command
        out: Any = subprocess.DEVNULL
        if self.spec.log:
            out = open(self.spec.log, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                self.spec.command, cwd=self.spec.cwd, env={**os.environ, **self.spec.env},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {self.spec.command[0]!r}: {exc.strerror or exc}") from None
        finally:
            if out is not subprocess.DEVNULL:
                out.close()

    async def start(self) -> None:
        import asyncio  # here: validating an experiment imports this module, not an event loop

        if not self.spec.command:
            return
        self._spawn()
        if self.spec.ready and self.spec.url:
            await self._wait_ready()
        if self.spec.restart:
            self._monitor = asyncio.create_task(self._watch())

    async def _wait_ready(self) -> None:
        import asyncio

        import httpx

        deadline = time.monotonic() + self.spec.ready_timeout
        url = self.url(self.spec.ready or "")
        last = ""
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise TargetError(f"command exited with code {self.proc.returncode} before it was ready")
                try:
                    r = await client.get(url)
                    if r.status_code < 500:
                        return
                    last = f"status {r.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                await asyncio.sleep(0.05)
        raise TargetError(f"{url} not ready within {self.spec.ready_timeout:g}s ({last})")

    async def _watch(self) -> None:
        import asyncio

        while not self._stopping:
            await asyncio.sleep(0.05)
            if self.proc is not None and self.proc.poll() is not None and not self._stopping:
                self.ctx.log("target-exited", pid=self.proc.pid, code=self.proc.returncode)
                await asyncio.sleep(self.spec.restart_delay)
                if self._stopping:
                    return
                self._spawn()
                self.restarts += 1
                self.ctx.log("target-restarted", pid=self.proc.pid if self.proc else None, restarts=self.restarts)

    async def preflight(self) -> dict[str, Any]:
        pids = self.pids()
        dead = [p for p in pids if not pid_alive(p)]
        if dead:
            raise TargetError(f"process(es) not running: {dead}")
        if not pids:
            raise TargetError("no process: give 'pids' or 'command'")
        return {"pids": pids, "url": self.spec.url}

    async def stop(self) -> None:
        import asyncio

        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        p = self.proc
        if p is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGCONT)  # a paused process cannot die of SIGTERM
            os.killpg(p.pid, signal.SIGTERM)
        for _ in range(50):
            if p.poll() is not None:
                break
            await asyncio.sleep(0.05)
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)

    def owned(self) -> list[list[float]]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            import psutil

            return [[self.proc.pid, float(psutil.Process(self.proc.pid).create_time())]]
        except Exception:
            return []

    def url(self, path: str = "") -> str:
        if not self.spec.url:
            raise TargetError("this process target has no 'url'")
        return _join(self.spec.url, path)

    def pids(self, selector: str | None = None) -> list[int]:
        if self.spec.pids:
            return list(self.spec.pids)
        if self.proc is not None and self.proc.poll() is None:
            return [self.proc.pid]
        return []
