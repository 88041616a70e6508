"""TCP mode data path: bytes relayed between Protocols, one fault decision per connection.

Raw TCP has no request boundaries, so the coin is flipped once per accepted
connection (as in Toxiproxy, but once for the connection, not per direction
and re-rolled on every change).  A connection that was hit stops being
faulted as soon as its rules are removed or their leases lapse: each chunk
checks that a rule is still alive, so expiry always means "back to
pass-through".  Latency is stamped per chunk at arrival, so queued chunks do
not accumulate delay.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import cast

from mlchaos.proxy import clock, sockets
from mlchaos.proxy.faults import Plan
from mlchaos.proxy.limits import Limits
from mlchaos.proxy.pacing import Pacer
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable


class TcpProxy:
    """Process-wide state of the TCP data path."""

    def __init__(
        self, table: FaultTable, upstream: tuple[str, int], stats: Stats | None = None, limits: Limits | None = None
    ) -> None:
        self.table = table
        self.upstream = upstream
        self.stats = stats or Stats()
        self.limits = limits or Limits()
        """Only ``max_connections`` applies in TCP mode: the bytes are opaque, and a quiet connection may be fine."""
        self.loop = asyncio.get_event_loop()

    def protocol(self) -> Client:
        return Client(self)

    def close(self) -> None:
        """Nothing pooled in TCP mode."""


class Pipe:
    """One direction of a connection: optional per-chunk delay, then optional pacing, then ``write``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, write: Callable[[bytes], None]) -> None:
        self.loop = loop
        self.write = write
        self.delay = 0.0
        self.pacer: Pacer | None = None
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: clock.Timer | None = None
        self.drained_cb: Callable[[], None] | None = None

    def configure(self, delay: float, rate: float) -> None:
        self.delay = delay
        if rate and self.pacer is None:
            self.pacer = Pacer(self.loop, self.write, rate)

    def send(self, data: bytes, faulted: bool) -> None:
        if not faulted:
            self.delay = 0.0
        if self.delay:
            self.queue.append((clock.now() + self.delay, data))
            if self.timer is None:
                self.timer = clock.at(self.loop, self.queue[0][0], self._due)
        elif self.queue:
            self.queue.append((0.0, data))  # keep order behind chunks still delayed
        elif self.pacer is not None and faulted:
            self.pacer.feed(data)
        else:
            self.write(data)

    def _due(self) -> None:
        self.timer = None
        t = clock.now()
        while self.queue and self.queue[0][0] <= t:
            _, data = self.queue.popleft()
            if self.pacer is not None:
                self.pacer.feed(data)
            else:
                self.write(data)
        if self.queue:
            self.timer = clock.at(self.loop, self.queue[0][0], self._due)
        elif self.drained_cb is not None:
            self._drained()

    def when_drained(self, cb: Callable[[], None]) -> None:
        """Call ``cb`` once every queued byte has been handed to the writer."""
        self.drained_cb = cb
        if not self.queue:
            self._drained()

    def _drained(self) -> None:
        cb, self.drained_cb = self.drained_cb, None
        if cb is None:
            return
        if self.pacer is not None:
            pacer = self.pacer
            pacer._done = cb
            pacer.finish()
        else:
            cb()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.pacer is not None:
            self.pacer.cancel()


class Client(asyncio.Protocol):
    """The accepted side of a TCP connection; owns its upstream side and both pipes."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.transport: asyncio.Transport | None = None
        self.up: Server | None = None
        self.plan: Plan | None = None
        self.pending: list[bytes] = []
        self.to_up = Pipe(self.loop, self._write_up)
        self.to_client = Pipe(self.loop, self._write_client)
        self.timers: list[clock.Timer] = []
        self.black_hole = False
        self.closed = False
        self.eofs = 0
        self.connecting = False
        self.client_eof = False
        self.upstream_eof_seen = False

    # -- plumbing -------------------------------------------------------------------------------
    def _write_up(self, data: bytes) -> None:
        if self.up is not None and self.up.transport is not None and not self.up.transport.is_closing():
            self.up.transport.write(data)

    def _write_client(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def alive(self) -> bool:
        """Is any rule of this connection's plan still active?  (Leases lapse mid-connection.)"""
        plan = self.plan
        if plan is None:
            return False
        t = clock.now()
        by_id = self.proxy.table.by_id
        if any(r.expires_at > t and by_id.get(r.id) is r for r in plan.rules):
            return True
        self.plan = None
        if self.black_hole and not self.closed:
            self.black_hole = False
        return False

    # -- client side ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        stats = self.proxy.stats
        stats.connections_total += 1
        stats.connections_active += 1
        if stats.connections_active > self.proxy.limits.max_connections:
            stats.connections_refused += 1
            self.black_hole = True
            transport.close()
            return
        table = self.proxy.table
        plan = table.plan_tcp() if table.rules else None
        self.plan = plan
        if plan is not None:
            stats.requests_faulted += 1
            if plan.refuse:
                sockets.reset(transport)
                return
            if plan.hold:
                self.black_hole = True
                if plan.hold_for is not None:
                    self.timers.append(clock.at(self.loop, clock.now() + plan.hold_for, transport.close))
                return
            self.to_up.configure(plan.delay_request, plan.rate_request)
            self.to_client.configure(plan.delay_response, plan.rate_response)
        self._connect()

    def _connect(self) -> None:
        assert self.transport is not None
        self.connecting = True
        self.transport.pause_reading()
        self.loop.create_task(self._dial())

    async def _dial(self) -> None:
        host, port = self.proxy.upstream
        try:
            _, up = await self.loop.create_connection(lambda: Server(self), host, port)
        except OSError:
            self.proxy.stats.upstream_errors += 1
            if self.transport is not None:
                self.transport.close()
            return
        self.proxy.stats.upstream_connects += 1
        if self.closed:
            if up.transport is not None:
                up.transport.close()
            return
        self.up = up
        for data in self.pending:
            self.to_up.send(data, self.plan is not None)
        self.pending.clear()
        if self.client_eof:  # the client half-closed while we dialled: pass it on after its bytes
            self._propagate_eof(self.to_up, lambda: self.up.transport if self.up else None)
        assert self.transport is not None
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        faulted = self.plan is not None and self.alive()
        if self.black_hole:
            return
        plan = self.plan
        if faulted and plan is not None and plan.reset:
            self.black_hole = True
            self.timers.append(clock.at(self.loop, clock.now() + plan.reset_after, self._reset))
            return
        if self.up is None:
            self.pending.append(data)
            if not self.connecting:  # a black hole whose lease lapsed: now pass through
                self._connect()
            return
        self.to_up.send(data, faulted)

    def eof_received(self) -> bool:
        # uvloop can deliver bytes and the EOF before pause_reading() takes effect, and then the same
        # EOF again after resume_reading(): pass each direction's EOF on once, and only to a real upstream.
        if self.black_hole:
            return False  # held by a timeout fault or being reset: the client gave up, do not linger
        if self.client_eof:
            return True
        self.client_eof = True
        if self.up is not None:
            self._propagate_eof(self.to_up, lambda: self.up.transport if self.up else None)
        return True  # keep the client side open: the upstream may still answer a half-closed request

    def _propagate_eof(self, pipe: Pipe, other: Callable[[], asyncio.BaseTransport | None]) -> None:
        """Pass an EOF on once the pipe is drained, ``close_delay`` later under slow-close."""
        plan = self.plan if self.alive() else None
        delay = plan.close_delay if plan is not None else 0.0

        def shut() -> None:
            self.eofs += 1
            t = cast(asyncio.Transport | None, other())  # duck-typed: uvloop's transports are not subclasses
            if t is not None and not t.is_closing() and t.can_write_eof():
                t.write_eof()
            if self.eofs >= 2:
                self.close()

        def drained() -> None:
            if delay:
                self.timers.append(clock.at(self.loop, clock.now() + delay, shut))
            else:
                shut()

        pipe.when_drained(drained)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.stats.connections_active -= 1
        self.closed = True
        self._cancel()
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()

    def _cancel(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()
        self.to_up.cancel()
        self.to_client.cancel()

    def _reset(self) -> None:
        if self.up is not None and self.up.transport is not None:
            sockets.reset(self.up.transport)
        if self.transport is not None and not self.closed:
            sockets.reset(self.transport)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()

    # -- upstream side (called by Server) --------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        self.to_client.send(data, self.plan is not None and self.alive())

    def upstream_eof(self) -> None:
        if self.upstream_eof_seen:
            return
        self.upstream_eof_seen = True
        self._propagate_eof(self.to_client, lambda: self.transport)

    def upstream_lost(self) -> None:
        if self.closed:
            return
        if self.to_client.queue or self.to_client.pacer is not None:
            self._propagate_eof(self.to_client, lambda: self.transport)
            self.to_client.when_drained(self.close)
        elif self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()


class Server(asyncio.Protocol):
    """The upstream side of one TCP connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.client.from_upstream(data)

    def eof_received(self) -> bool:
        self.client.upstream_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()
