"""Local processes: PIDs you name, or a command the experiment starts and owns.

A command target is started before preflight and stopped after the verdict
(its whole process group), so tests and demos leave nothing behind.  With
``restart: true`` it behaves like a one-replica supervisor: a process that
dies (say, from a ``process-kill`` fault) is started again after
``restart_delay``.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

if TYPE_CHECKING:
    import asyncio

from mlchaos.contract.proc import pid_alive, process_start_time
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


#: How much of a dying command's stderr the error and the journal show.
STDERR_LINES = 20
_CHUNK = 4096  # a line longer than this is kept in pieces: memory stays bounded whatever the child writes


class StderrTail:
    """The last lines a child wrote to stderr, kept in a bounded ring.

    A thread drains the pipe as the child writes, so a chatty child never blocks on a full pipe
    and memory never grows past ``STDERR_LINES`` lines of at most ``_CHUNK`` bytes.  Without it a
    command that dies before it is ready says only its exit code; the cause (``No module named x``,
    ``Address already in use``) was on its stderr.
    """

    def __init__(self, stream: Any, lines: int = STDERR_LINES) -> None:
        self._ring: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True, name="mlchaos-stderr")
        self._thread.start()

    def _drain(self, stream: Any) -> None:
        try:
            for raw in iter(lambda: stream.readline(_CHUNK), b""):
                text = raw.decode(errors="replace").rstrip()
                if text:
                    self._ring.append(text)
        except (OSError, ValueError):  # the pipe went away under us: keep what was read
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def lines(self, wait: float = 1.0) -> list[str]:
        """The lines so far; after the child exited, first wait (briefly) for the drain to reach its end."""
        self._thread.join(wait)
        return list(self._ring)


def _file_tail(path: str, lines: int = STDERR_LINES) -> list[str]:
    """The last lines of a log file (the command's output goes there when ``log`` is set)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - lines * 200))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


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
        self._stderr: StderrTail | None = None

    def _spawn(self) -> None:
        assert self.spec.command
        out: Any = subprocess.DEVNULL
        err: Any = subprocess.PIPE
        if self.spec.log:
            out = open(self.spec.log, "ab")  # noqa: SIM115 - owned by the child
            err = subprocess.STDOUT
        try:
            self.proc = subprocess.Popen(
                self.spec.command, cwd=self.spec.cwd, env={**os.environ, **self.spec.env},
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {self.spec.command[0]!r}: {exc.strerror or exc}") from None
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self._stderr = StderrTail(self.proc.stderr) if self.proc.stderr is not None else None

    def stderr_tail(self) -> list[str]:
        """The last lines the command wrote to stderr (to its log file when ``log`` is set)."""
        if self.spec.log:
            return _file_tail(self.spec.log)
        return self._stderr.lines() if self._stderr is not None else []

    def _exited(self, when: str) -> TargetError:
        """The command died: the error (and the journal) carry its exit code and its last stderr lines."""
        assert self.proc is not None
        tail = self.stderr_tail()
        self.ctx.log("target-exited", pid=self.proc.pid, code=self.proc.returncode, stderr=tail)
        msg = f"command {' '.join(self.spec.command or [])!r} exited with code {self.proc.returncode} {when}"
        if tail:
            msg += "; its last stderr lines:\n" + "\n".join(f"  | {ln}" for ln in tail)
        else:
            msg += " (it wrote nothing to stderr)"
        return TargetError(msg)

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
                    raise self._exited("before it was ready")
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
                self.ctx.log("target-exited", pid=self.proc.pid, code=self.proc.returncode,
                             stderr=self.stderr_tail()[-5:])
                await asyncio.sleep(self.spec.restart_delay)
                if self._stopping:
                    return
                self._spawn()
                self.restarts += 1
                self.ctx.log("target-restarted", pid=self.proc.pid if self.proc else None, restarts=self.restarts)

    async def preflight(self) -> dict[str, Any]:
        if self.spec.command and self.proc is not None and self.proc.poll() is not None and not self.spec.restart:
            raise self._exited("before preflight")
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
        started = process_start_time(self.proc.pid, zombies=True)
        return [[self.proc.pid, started]] if started is not None else []

    def url(self, path: str = "") -> str:
        if not self.spec.url:
            raise TargetError("this process target has no 'url'")
        return _join(self.spec.url, path)

    def pids(self, selector: str | None = None) -> list[int]:
        """The target's processes; ``selector`` is a glob on each one's name or command line.

        A selector is part of the blast radius: one that matches nothing is an error, never "all of
        them" (an unnamed process paused because ``select:`` was ignored is the bug this prevents).
        """
        if self.spec.pids:
            pids = list(self.spec.pids)
        elif self.proc is not None and self.proc.poll() is None:
            pids = [self.proc.pid]
        else:
            pids = []
        if selector is None:
            return pids
        chosen = [pid for pid in pids if any(fnmatch.fnmatchcase(text, selector) for text in _names(pid))]
        if not chosen:
            raise TargetError(f"select {selector!r} matched none of the target's {len(pids)} process(es) "
                              f"(names: {', '.join(sorted({n for p in pids for n in _names(p)[:1]})) or 'none'})")
        return chosen


def _names(pid: int) -> list[str]:
    """What a ``select:`` glob is matched against: the process name, then its whole command line."""
    import psutil

    try:
        p = psutil.Process(pid)
        return [p.name(), " ".join(p.cmdline())]
    except psutil.Error:
        return []
