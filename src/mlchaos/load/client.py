"""A minimal HTTP/1.1 keep-alive client pool for the open-loop hot path.

Why not httpx or aiohttp: measured in ``research/load.md``, httpx could not
hold 1 k req/s open-loop and aiohttp collapses near 10 k; a raw
``asyncio.Protocol`` with pre-encoded requests and httptools' response parser
held 20 k (stdlib loop) to 60 k (uvloop) per core.  So this module does only
what a load generator needs: one request in flight per connection (no
pipelining: it would hide head-of-line blocking), connections opened on
demand up to a cap, FIFO backlog when the cap is reached, per-request
timeout, and outcome accounting in plain lists and dicts.

Every request carries its *intended* send time; latency is ``done -
intended`` (what a user would see), service time ``done - sent`` (what the
server did), lag ``dispatched - intended`` (how late the generator was;
connection set-up and backlog waits are the system's doing and are
in the latency, not in the lag).  These are appended to lists; the
worker turns them into histograms off the hot path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import ssl as ssl_
import time
from array import array
from collections.abc import Sequence
from typing import Any

import httptools

__all__ = ["ClientPool", "Outcomes", "build_requests"]

_mono = time.monotonic
_LOCAL_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.ENOMEM}
_MAX_CONNECTING = 32
"""Concurrent connects per pool: grows the pool fast (loopback connects take ~0.1 ms) without a storm."""


def build_requests(
    host: str,
    port: int,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    bodies: Sequence[bytes] | None = None,
    *,
    tls: bool = False,
) -> list[bytes]:
    """Pre-encode full request messages (one per body; cycled by the pool)."""
    default_port = 443 if tls else 80
    hdrs = {"Host": host if port == default_port else f"{host}:{port}", "User-Agent": "mlchaos-load"}
    for k, v in (headers or {}).items():
        hdrs[k] = v
    if bodies and not any(k.lower() == "content-type" for k in hdrs):
        hdrs["Content-Type"] = "application/json"
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    if not bodies:
        return [(head + "\r\n").encode("latin-1")]
    return [(head + f"Content-Length: {len(b)}\r\n\r\n").encode("latin-1") + b for b in bodies]


class Outcomes:
    """Raw per-interval records, swapped out by the worker every flush."""

    __slots__ = ("codes", "conn_errors", "conn_kinds", "dispatched", "lag", "latency", "local_errors", "samples", "sent", "service", "timeouts")

    def __init__(self) -> None:
        # array('d'): appends as cheap as a list's, and numpy reads it without a copy
        self.latency: array[float] = array("d")
        self.service: array[float] = array("d")
        self.lag: array[float] = array("d")
        self.codes: dict[int, int] = {}
        self.timeouts = 0
        self.conn_errors = 0
        self.sent = 0
        self.dispatched = 0
        self.local_errors = 0
        self.conn_kinds: dict[str, int] = {}
        self.samples: list[tuple[float, int, float, bytes]] = []


class _Conn(asyncio.Protocol):
    """One keep-alive connection; feeds httptools and reports to the pool."""

    __slots__ = ("body", "busy", "eof_framed", "intended", "parser", "pool", "sample", "sent_at", "transport")

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.intended = 0.0
        self.sent_at = 0.0
        self.sample = False
        self.body: list[bytes] | None = None
        self.eof_framed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.pool._failed(self, "connection")

    def on_headers_complete(self) -> None:
        # A response with neither Content-Length nor chunked framing ends when the server closes
        # (HTTP/1.0 style, e.g. Python's http.server); llhttp then never completes it by itself, and
        # such a response is exactly one that cannot be kept alive.
        self.eof_framed = not self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.eof_framed = False
        self.pool._completed(self, self.parser.get_status_code(), self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self.busy and self.eof_framed:  # a clean close ends a close-delimited body
            self.pool._completed(self, self.parser.get_status_code(), False)
        self.pool._lost(self)


class _SamplingConn(_Conn):
    """A connection that can keep response bodies; used only when sampling is on.

    httptools looks its callbacks up once, when the parser is created, so
    connections of a run without sampling pay no Python call per body chunk.
    """

    __slots__ = ()

    def on_body(self, body: bytes) -> None:
        if self.body is not None:
            self.body.append(body)


class _HeadConn(_Conn):
    """A connection for HEAD requests: the answer ends with its headers.

    A HEAD response announces the Content-Length of the body it does not send, and a response parser
    cannot know the request was HEAD, so it would wait for that body until the timeout.
    """

    __slots__ = ()

    def on_headers_complete(self) -> None:
        parser = self.parser
        status, keep_alive = parser.get_status_code(), parser.should_keep_alive()
        self.parser = httptools.HttpResponseParser(self)  # the old one would wait for the announced body
        self.pool._completed(self, status, keep_alive)

    def on_message_complete(self) -> None:
        pass  # a zero-length HEAD answer also completes in llhttp: already counted at its headers


class ClientPool:
    """Connections to one origin; ``send(intended)`` is the only hot call."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: list[bytes],
        *,
        timeout: float = 5.0,
        max_connections: int = 1024,
        sample_every: int = 0,
        max_samples: int = 50,
        ssl: ssl_.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl = ssl
        self.port = port
        self.requests = requests
        self._nreq = len(requests)
        self._req_i = 0
        self.timeout = timeout
        self.max_connections = max_connections
        self.sample_every = sample_every
        self._sample_ctr = 0
        self.max_samples = max_samples
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()
        self.conns = 0  # open or opening
        self.connecting = 0
        self.peak_connections = 0
        self.backlog: collections.deque[float] = collections.deque()
        self.out = Outcomes()
        self.loop = asyncio.get_event_loop()
        self._closing = False
        self._conn_cls: type[_Conn] = (
            _HeadConn if requests and requests[0].startswith(b"HEAD ") else _SamplingConn if sample_every else _Conn
        )

    # -- hot path ---------------------------------------------------------------
    def send(self, intended: float) -> None:
        """Send one request intended at ``intended`` (monotonic seconds), now or as soon as a connection frees.

        Schedule lag is recorded here, at dispatch: it measures the generator (pacer and CPU), not a
        wait for a connection, which is the system's doing and shows in the latency instead.
        """
        now = _mono()
        out = self.out
        out.lag.append(now - intended)
        out.dispatched += 1
        if self.idle:
            self._write(self.idle.pop(), intended, now)
            return
        self.backlog.append(intended)
        if (self.conns < self.max_connections and self.connecting < len(self.backlog)
                and self.connecting < _MAX_CONNECTING):
            self._open()

    def _write(self, conn: _Conn, intended: float, now: float | None = None) -> None:
        if now is None:
            now = _mono()
        conn.busy = True
        conn.intended = intended
        conn.sent_at = now
        self.busy.add(conn)
        out = self.out
        out.sent += 1
        if self.sample_every:
            self._sample_ctr += 1
            if self._sample_ctr >= self.sample_every:
                self._sample_ctr = 0
                conn.body = [] if len(out.samples) < self.max_samples else None
            else:
                conn.body = None
        i = self._req_i
        self._req_i = i + 1 if i + 1 < self._nreq else 0
        conn.transport.write(self.requests[i])  # type: ignore[union-attr]

    def _completed(self, conn: _Conn, status: int, keep_alive: bool) -> None:
        if not conn.busy:
            return
        now = _mono()
        out = self.out
        lat = now - conn.intended
        out.latency.append(lat)
        out.service.append(now - conn.sent_at)
        codes = out.codes
        codes[status] = codes.get(status, 0) + 1
        if conn.body is not None:
            out.samples.append((conn.intended, status, lat, b"".join(conn.body)))
            conn.body = None
        conn.busy = False
        self.busy.discard(conn)
        if not keep_alive:
            self._drop(conn)
            self._refill()
        elif self.backlog:
            self._write(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)

    # -- connection management --------------------------------------------------
    def _open(self) -> None:
        self.conns += 1
        self.connecting += 1
        self.peak_connections = max(self.peak_connections, self.conns)
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            cls = self._conn_cls
            _, conn = await self.loop.create_connection(lambda: cls(self), self.host, self.port, ssl=self.ssl)
        except (TimeoutError, OSError) as exc:
            self.connecting -= 1
            self.conns -= 1
            # a TLS failure's errno is the library's code, not the system's: name it by its class
            name = type(exc).__name__ if isinstance(exc, ssl_.SSLError) else errno.errorcode.get(
                getattr(exc, "errno", None) or 0, type(exc).__name__)
            kinds = self.out.conn_kinds
            kinds[name] = kinds.get(name, 0) + 1
            if getattr(exc, "errno", None) in _LOCAL_ERRNOS:
                # our own limits (descriptors, ephemeral ports): not the system's fault.  Stop growing the
                # pool; the request waits in the backlog for a connection and the run is marked INVALID.
                self.out.local_errors += 1
                self.max_connections = max(1, self.conns)
                if not self.conns and self.backlog:
                    self.backlog.popleft()
                return
            if self.backlog:
                self.backlog.popleft()
                self.out.conn_errors += 1
            return
        self.connecting -= 1
        if self._closing:
            if conn.transport is not None:
                conn.transport.close()
            return
        if self.backlog:
            self._write(conn, self.backlog.popleft())
            self._refill()
        else:
            self.idle.append(conn)

    def _failed(self, conn: _Conn, kind: str) -> None:
        """A protocol error on a connection: count the in-flight request, drop the connection."""
        if conn.busy:
            conn.busy = False
            self.busy.discard(conn)
            if kind == "timeout":
                self.out.timeouts += 1
                lat = _mono() - conn.intended
                self.out.latency.append(lat)
            else:
                self.out.conn_errors += 1
        self._drop(conn)
        if conn.transport is not None:
            conn.transport.abort()
        self._refill()

    def _lost(self, conn: _Conn) -> None:
        if conn.busy:
            conn.busy = False
            self.busy.discard(conn)
            self.out.conn_errors += 1
        self._drop(conn)
        self._refill()

    def _drop(self, conn: _Conn) -> None:
        if conn.pool is not self:
            return
        conn.pool = _NullPool  # type: ignore[assignment]
        self.conns -= 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    def _refill(self) -> None:
        if self._closing:
            return
        while (self.backlog and self.conns < self.max_connections and self.connecting < len(self.backlog)
               and self.connecting < _MAX_CONNECTING):
            self._open()

    # -- housekeeping -------------------------------------------------------------
    async def warm(self, n: int, wait: float = 2.0) -> None:
        """Open ``n`` connections before t0 so the first second does not pay for connects."""
        n = min(n, self.max_connections)
        tasks = []
        for _ in range(n):
            self.conns += 1
            self.connecting += 1
            tasks.append(self.loop.create_task(self._connect()))
        self.peak_connections = max(self.peak_connections, self.conns)
        if tasks:
            await asyncio.wait(tasks, timeout=wait)

    def sweep(self) -> None:
        """Time out requests older than ``timeout`` (in flight or still in the backlog)."""
        now = _mono()
        limit = now - self.timeout
        for conn in [c for c in self.busy if c.intended < limit]:
            self._failed(conn, "timeout")
        backlog = self.backlog
        while backlog and backlog[0] < limit:
            t = backlog.popleft()
            self.out.timeouts += 1
            self.out.latency.append(now - t)

    def swap(self) -> Outcomes:
        """Hand the records of the interval to the caller and start new ones."""
        out, self.out = self.out, Outcomes()
        return out

    @property
    def inflight(self) -> int:
        return len(self.busy) + len(self.backlog)

    def close(self) -> None:
        self._closing = True
        for conn in list(self.idle) + list(self.busy):
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


class _NullPoolType:
    """Stands in for the pool once a connection is dropped, so late callbacks are no-ops."""

    def _completed(self, *a: Any) -> None: ...
    def _failed(self, *a: Any) -> None: ...
    def _lost(self, *a: Any) -> None: ...


_NullPool = _NullPoolType()
