"""Process monitoring for the lab supervisor: start, stop, restart dead processes, poll readiness.

This is the ReplicaSet half of the supervisor: a process that exits is started
again after ``restart_delay`` on the same port (with a doubling back-off when
it keeps dying quickly), and every process's readiness is polled (the
not-ready ones on every tick so a start is seen fast, all of them once a
second).  What to start, and with which arguments, is the supervisor's and
the topology table's business (:mod:`mlchaos.lab.topology`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from prometheus_client import Counter

from mlchaos.contract.proc import process_start_time
from mlchaos.lab import procs
from mlchaos.lab.paths import HOST
from mlchaos.lab.upstream import Upstream

if TYPE_CHECKING:
    from mlchaos.lab.supervisor import Supervisor

RESTARTS = Counter("mlchaos_supervisor_restarts_total", "Processes restarted after exiting.", ["service"])
TICK_S = 0.25
MAX_BACKOFF_S = 10.0
QUICK_EXIT_S = 5.0
"""A process that dies within this long of its start doubles its back-off."""


@dataclass
class Proc:
    """One running (or to-be-restarted) process of the lab; ``entry`` names its topology entry."""

    name: str
    system: str
    role: str  # replica | lb | proxy | service
    module: str
    port: int
    group: str | None = None
    model_version: str | None = None
    restart: bool = True
    popen: BaseProcess | None = None
    started_at: float = 0.0
    start: float | None = None
    """Its start stamp (:func:`mlchaos.contract.proc.process_start_time`): who it is, whatever the clock does."""
    restarts: int = 0
    ready: bool = False
    desired: bool = True
    restart_at: float | None = None
    backoff: float = 0.0
    control_port: int | None = None
    upstream: str | None = None
    entry: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def control_url(self) -> str | None:
        return f"http://{HOST}:{self.control_port}" if self.control_port else None

    @property
    def ready_url(self) -> str:
        # a fault proxy forwards every data-path path upstream: ask its own control API instead
        return (self.control_url + "/health") if self.control_url else self.url + "/ready"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None and self.popen.exitcode is None else None


Log = Callable[..., None]


def spawn(p: Proc, argv: list[str], log_path: str, env: dict[str, str | None], log: Log) -> None:
    """Start ``p`` (``python -m p.module`` in a child that dies with the supervisor)."""
    p.popen = procs.start(p.name, p.module, argv, log_path, env)
    p.started_at, p.ready, p.restart_at = time.time(), False, None
    p.start = process_start_time(p.popen.pid) if p.popen.pid is not None else None
    log("spawned", service=p.name, pid=p.popen.pid, port=p.port)


def terminate(p: Proc) -> None:
    """Ask ``p`` to stop (SIGTERM) and not to be restarted."""
    p.desired = False
    if p.popen is not None and p.popen.exitcode is None:
        p.popen.terminate()


async def reap(ps: list[Proc], grace: float = 3.0) -> None:
    """Stop ``ps``: SIGTERM, then SIGKILL whatever still runs after ``grace`` seconds; join them all."""
    for p in ps:
        terminate(p)
    deadline = time.monotonic() + grace
    for p in ps:
        if p.popen is None:
            continue
        while p.popen.exitcode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if p.popen.exitcode is None:
            p.popen.kill()
        p.popen.join(timeout=5)


def due_restarts(ps: list[Proc], now: float, restart_delay: float, log: Log) -> list[Proc]:
    """Note newly exited processes (their restart time) and return those whose restart is due now."""
    due = []
    for p in ps:
        if not p.desired or p.popen is None:
            continue
        code = p.popen.exitcode
        if code is None:
            continue
        if p.restart_at is None:
            quick = now - p.started_at < QUICK_EXIT_S
            p.backoff = min(max(p.backoff * 2, restart_delay), MAX_BACKOFF_S) if quick else restart_delay
            p.restart_at = now + p.backoff
            p.ready = False
            log("exited", level="warning", service=p.name, code=code, restart_in_s=p.backoff)
        elif now >= p.restart_at and p.restart:
            due.append(p)
    return due


async def poll_ready(probe: Upstream, ps: list[Proc], log: Log) -> None:
    """Ask each of ``ps`` whether it is ready (its ``/ready``, a proxy's control ``/health``)."""

    async def one(p: Proc) -> None:
        if p.pid is None:
            p.ready = False
            return
        try:
            status, _ = await probe.get_json(p.ready_url, 0.5)
            ok = status == 200
        except Exception:  # any failure to answer is "not ready"
            ok = False
        if ok and not p.ready:
            log("ready", service=p.name, after_s=round(time.time() - p.started_at, 3))
        p.ready = ok

    await asyncio.gather(*(one(p) for p in ps))


async def watch(sup: Supervisor) -> None:
    """The supervisor's loop until it stops: restart, poll readiness, autoscale, write the state."""
    from mlchaos.lab.scaling import autoscale

    last_scale = last_full = time.monotonic()
    while not sup.stopping:
        for p in due_restarts(list(sup.procs.values()), time.time(), sup.restart_delay, sup.log):
            p.restarts += 1
            RESTARTS.labels(p.name).inc()
            sup.spawn(p)
        # not-ready processes every tick (fast start-up detection), all of them once a second
        full = time.monotonic() - last_full >= 1.0
        if full:
            last_full = time.monotonic()
        await poll_ready(sup.probe, [p for p in sup.procs.values() if p.desired and (full or not p.ready)], sup.log)
        if time.monotonic() - last_scale >= 1.0:
            last_scale = time.monotonic()
            for entry in sup.autoscaled_entries():
                await autoscale(sup, entry)
        sup.write_state()
        await asyncio.sleep(TICK_S)

