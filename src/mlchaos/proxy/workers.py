"""The multi-process proxy (``workers=N>1``): one control plane, N data planes.

* the parent binds nothing but the control API; it forks N workers *before*
  creating its event loop (forking a running loop is unsafe);
* each worker opens its own listening socket on the same port with
  ``SO_REUSEPORT``, so the kernel spreads connections across workers with no
  shared accept lock;
* the parent owns the authoritative fault table and leases, and broadcasts the
  whole table (versioned, a few hundred bytes) over a socketpair to every
  worker on each change; workers apply it before their next request;
* workers send counter deltas to the parent every 50 ms, so ``seen``/
  ``affected`` stay exact (at most 50 ms stale) across workers;
* a worker whose parent vanishes (socketpair EOF) exits; lease expiry is
  also checked per request in the worker, so a fault never outlives its
  lease even if a broadcast were lost.

Kept apart from :mod:`mlchaos.proxy.server` (which runs the single-process proxy and imports this
module only when ``workers > 1``) because the link protocol between the processes is its own concept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any, cast

from mlchaos.proxy.control import Control, ControlProtocol
from mlchaos.proxy.rules import RuleError, parse_rule
from mlchaos.proxy.server import Config, addr_text, data_path, listen_socket, new_loop, ready_info, stop_event
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable

log = logging.getLogger("mlchaos.proxy")
REPORT_EVERY = 0.05
"""Seconds between a worker's counter reports to the parent (``seen``/``affected`` at most this stale)."""


def run_workers(cfg: Config, ready: Callable[[dict[str, Any]], None] | None) -> int:
    """Fork the workers (before any event loop exists), then serve the control API until stopped."""
    # Reserve the port first (bound, not listening: the kernel hands connections only to listeners).
    reserve = listen_socket(*cfg.listen, reuse_port=True)
    port = reserve.getsockname()[1]
    listen = addr_text(reserve)
    children: list[tuple[int, socket.socket]] = []
    for _ in range(cfg.workers):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # worker
            parent_end.close()
            for _, s in children:
                s.close()
            reserve.close()
            code = 1
            try:
                code = _worker(cfg, (cfg.listen[0], port), child_end)
            finally:
                os._exit(code)
        child_end.close()
        children.append((pid, parent_end))
    loop = new_loop(cfg.loop)
    try:
        return loop.run_until_complete(_parent(cfg, listen, reserve, children, ready))
    finally:
        loop.close()
        for pid, _ in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, _ in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class _Lines(asyncio.Protocol):
    """Newline-delimited JSON over a socketpair (parent <-> worker)."""

    def __init__(self, on_message: Callable[[dict[str, Any]], None], on_lost: Callable[[], None]) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line:
                self.on_message(json.loads(line))

    def send(self, msg: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(json.dumps(msg).encode() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()


def _table_message(table: FaultTable) -> dict[str, Any]:
    return {"rules": [{"spec": r.spec, "expires_at": r.expires_at} for r in table.rules], "version": table.version}


async def _parent(
    cfg: Config,
    listen: str,
    reserve: socket.socket,
    children: list[tuple[int, socket.socket]],
    ready: Callable[[dict[str, Any]], None] | None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    links: list[_Lines] = []
    started = 0
    all_up = asyncio.Event()

    def on_message(msg: dict[str, Any]) -> None:
        nonlocal started
        if msg.get("ready"):
            started += 1
            if started == len(children):
                all_up.set()
        for rid, (seen, hit) in msg.get("counts", {}).items():
            rule = table.by_id.get(rid)
            if rule is not None:
                rule.seen += seen
                rule.affected += hit
            elif rid in table.retired:
                table.retired[rid]["seen"] += seen
                table.retired[rid]["affected"] += hit
        stats.add(msg.get("stats", {}))

    for _, sock in children:
        _, link = await loop.connect_accepted_socket(lambda: _Lines(on_message, stop.set), sock)
        links.append(link)

    def broadcast() -> None:
        msg = _table_message(table)
        for link in links:
            link.send(msg)

    table.on_change.append(broadcast)
    await asyncio.wait_for(all_up.wait(), 30)
    reserve.close()
    control = Control(table, cfg.mode, listen, cfg.upstream, cfg.token, lambda: stats, workers=len(children))
    csrv = await loop.create_server(lambda: ControlProtocol(control), *cfg.control)
    if ready is not None:
        ready(ready_info(cfg, listen, csrv, len(children)))
    await stop.wait()
    csrv.close()
    return 0


def _worker(cfg: Config, addr: tuple[str, int], link_sock: socket.socket) -> int:
    loop = new_loop(cfg.loop)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_worker_main(cfg, addr, link_sock))
    finally:
        loop.close()


async def _worker_main(cfg: Config, addr: tuple[str, int], link_sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    stop = stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    dp = data_path(cfg, table, stats)
    reported: dict[str, tuple[int, int]] = {}
    last_stats = dataclasses.asdict(stats)

    def on_message(msg: dict[str, Any]) -> None:
        rules = []
        for item in msg.get("rules", []):
            try:
                rule = parse_rule({k: v for k, v in item["spec"].items()}, cfg.mode)
            except RuleError as exc:  # cannot happen: the parent validated it; never crash on it
                log.error("worker %d: bad broadcast rule: %s", os.getpid(), exc)
                continue
            rule.expires_at = item["expires_at"]  # CLOCK_MONOTONIC is system-wide on Linux
            rules.append(rule)
        table.replace_all(rules)

    _, link = await loop.connect_accepted_socket(lambda: _Lines(on_message, stop.set), link_sock)
    sock = listen_socket(*addr, reuse_port=True)
    server = await loop.create_server(dp.protocol, sock=sock, backlog=4096)
    link.send({"ready": True, "pid": os.getpid()})

    async def report() -> None:
        nonlocal last_stats
        while True:
            await asyncio.sleep(REPORT_EVERY)
            counts: dict[str, tuple[int, int]] = {}
            for r in table.rules:
                prev = reported.get(r.id, (0, 0))
                if (r.seen, r.affected) != prev:
                    counts[r.id] = (r.seen - prev[0], r.affected - prev[1])
                    reported[r.id] = (r.seen, r.affected)
            now_stats = dataclasses.asdict(stats)
            delta = {k: now_stats[k] - last_stats[k] for k in now_stats if now_stats[k] != last_stats[k]}
            last_stats = now_stats
            if counts or delta:
                link.send({"counts": counts, "stats": delta})

    reporter = loop.create_task(report())
    await stop.wait()
    reporter.cancel()
    server.close()
    dp.close()
    return 0
