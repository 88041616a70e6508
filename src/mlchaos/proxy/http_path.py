"""HTTP mode data path: one fault decision per request, original bytes forwarded untouched.

Design (measured in docs/proxy.md and the research note):

* asyncio Protocols, not streams (streams cost ~3x the user CPU); httptools
  (llhttp) parses both directions (0.6 us vs 55 us for h11).
* The request's headers decide its :class:`Plan`; on pass-through the exact
  bytes the client sent are written upstream and the upstream's bytes are
  written back as they arrive, with no copy or re-serialisation.
* Exchanges on one client connection run one at a time (pipelined requests
  wait in a backlog and are re-serialised from their parsed parts), so
  ordering never needs bookkeeping.
* Each client connection borrows a pooled upstream connection and keeps it
  while healthy; the pool hands it to the next client connection when this
  one closes.  Fault decisions stay per request even though the upstream
  connection is reused (Toxiproxy's per-connection coin makes "10 %" mean
  "all or nothing" behind a keep-alive pool).
* Responses a fault must transform (corrupt, delay, throttle, abort) are
  buffered whole; everything else streams.  A stream fault (``stream-*``) hands
  the response to a :class:`~mlchaos.proxy.faults.stream_shaper.Shaper`, which
  acts per event as the bytes arrive; a rule matching on the JSON body's
  ``model`` makes requests wait for their body (at most ``rules.MATCH_BODY``)
  before the decision.
* While no active fault matches on method, path or headers (the proxy's usual
  state: no fault, or faults with a probability only), a request that arrives
  whole in one read on an idle connection takes a relay path: a second parser
  with boundary callbacks only (no URL, header or body callbacks, no
  per-request call chain) proves it is exactly one complete request; the
  fault decision is made as usual, and on pass-through its bytes go upstream
  as they are.  Anything else (a fault appears, a partial or
  pipelined read, a parse error) is parsed again by the full parser, which is
  at the same message boundary, so nothing is lost.
* Hostile clients (issue #17) meet the limits of :mod:`mlchaos.proxy.limits`: header size and
  lines are counted where the headers are parsed (the relay path takes only reads that cannot
  break them), the header/idle/body timeouts are one sweep per tick over the connections, and an
  upstream connection returns to the pool only with its request whole and answered.

The stateless wire pieces (request re-serialisation, chunk framing, the relay parser's bounds,
response rewriting for JSON corruption) are in :mod:`mlchaos.proxy.http_wire`.  What stays here,
over 400 lines, is one state machine on the hot path: :class:`HttpProxy` (pool, sweep),
:class:`Downstream` and :class:`Upstream` call one another on every request (``acquire``,
``upstream_ready``, ``response_complete``, ``upstream_lost``, ``release``) and share each other's
flags; split across modules, a transition would be read in three places and each call would go
through another module's globals.  It is kept whole on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Any, cast

import httptools

from mlchaos.proxy import clock, sockets
from mlchaos.proxy.faults import LocalResponse, Plan, StreamKind
from mlchaos.proxy.faults.stream_shaper import Shaper
from mlchaos.proxy.http_wire import Bounds, Message, corrupt_response, frame, too_big
from mlchaos.proxy.limits import Limits
from mlchaos.proxy.pacing import Pacer
from mlchaos.proxy.rules import MATCH_BODY, body_model
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable

MAX_IDLE = 512


def _expects(m: Message) -> bool:
    """``Expect: 100-continue``: the client sends its body only after an answer, so the decision cannot wait for it."""
    return any(k.lower() == b"expect" for k, _ in m.headers)


class HttpProxy:
    """Process-wide state of the HTTP data path: the fault table, the upstream pool, counters."""

    def __init__(
        self, table: FaultTable, upstream: tuple[str, int], stats: Stats | None = None, limits: Limits | None = None
    ) -> None:
        self.table = table
        self.upstream = upstream
        self.stats = stats or Stats()
        self.limits = limits or Limits()
        self.relay_cap = self.limits.relay_cap
        self.idle: list[Upstream] = []
        self.conns: set[Downstream] = set()
        self.loop = asyncio.get_event_loop()
        self._sweeper: asyncio.TimerHandle | None = None

    def protocol(self) -> Downstream:
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.limits.tick, self._sweep)
        return Downstream(self)

    def _sweep(self) -> None:
        """Apply the timeouts (header, idle, stalled body) once per tick: no timer per connection or request.

        A connection marks itself ``fresh`` on every read; the sweep turns that into the time it was
        last seen active, so the data path pays one attribute store per read.
        """
        lim = self.limits
        now = self.loop.time()
        self._sweeper = self.loop.call_later(lim.tick, self._sweep)
        for d in list(self.conns):
            if d.fresh:
                d.fresh = False
                d.active_at = now
            if d.closed or d.black_hole:
                continue  # held by a fault on purpose, or already going
            m = d.parsing
            if m is not None and not m.headers_done:
                if d.paused:  # a pipelined request we stopped reading ourselves: its clock has not started
                    m.seen_at = None
                elif m.seen_at is None:
                    m.seen_at = d.active_at  # the tick that first saw its bytes (at most one tick late)
                elif now - m.seen_at >= lim.header_timeout:
                    self.stats.timeouts += 1
                    d.black_hole = True
                    d._fail(408, f"mlchaos proxy: request headers not complete within {lim.header_timeout:g} s "
                                 "(--header-timeout)")
            elif now - d.active_at >= lim.idle_timeout and (
                (m is None and d.cur is None and not d.backlog)  # idle keep-alive connection
                or (m is not None and not m.complete and not d.paused)  # a request body that stopped coming
            ):
                self.stats.timeouts += 1
                d.black_hole = True
                if d.transport is not None:
                    d.transport.close()

    def acquire(self, owner: Downstream) -> Upstream | None:
        """An idle pooled connection, or None after starting a connect that calls ``owner.upstream_ready``."""
        while self.idle:
            up = self.idle.pop()
            self.stats.upstream_idle = len(self.idle)
            if not up.closed:
                return up
        self.connect(owner)
        return None

    def connect(self, owner: Downstream) -> None:
        """Start a fresh upstream connection; it calls ``owner.upstream_ready`` (or ``upstream_failed``)."""
        self.loop.create_task(self._connect(owner))

    async def _connect(self, owner: Downstream) -> None:
        host, port = self.upstream
        try:
            _, up = await self.loop.create_connection(lambda: Upstream(self), host, port)
        except OSError as exc:
            self.stats.upstream_errors += 1
            owner.upstream_failed(f"upstream {host}:{port} unreachable: {exc.strerror or exc}")
            return
        self.stats.upstream_connects += 1
        owner.upstream_ready(up)

    def release(self, up: Upstream) -> None:
        """Return a healthy idle connection to the pool (or close it when the pool is full).

        Healthy means the upstream has the whole of every request written to it and has answered
        it: a request cut short (a body shorter than its Content-Length, a chunked body without its
        last chunk, ``Expect: 100-continue`` and no body) leaves the upstream expecting bytes, and
        the next client's request would be read as their continuation.
        """
        up.owner = None
        if up.closed:
            return
        if not (up.idle and up.req_done):
            up.close()
            return
        if len(self.idle) < MAX_IDLE:
            self.idle.append(up)
            self.stats.upstream_idle = len(self.idle)
        else:
            up.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for up in self.idle:
            up.close()
        self.idle.clear()
        self.stats.upstream_idle = 0


class Downstream(asyncio.Protocol):
    """The client side of one connection: parses requests, applies plans, writes responses."""

    def __init__(self, proxy: HttpProxy) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.parsing: Message | None = None
        self.backlog: collections.deque[Message] = collections.deque()
        self.cur: Message | None = None
        self.plan: Plan | None = None
        self.up: Upstream | None = None
        self.resp_buf: list[bytes] | None = None
        self.shaper: Shaper | None = None
        """The stream faults of the response in progress (None: relayed as it arrives)."""
        self.deciding = False
        """The request waits for its body (up to MATCH_BODY bytes): a rule matches on its JSON ``model``."""
        self.timers: list[Any] = []
        self.began = 0
        self.completed = 0
        self.black_hole = False
        self.paused = False
        self.closed = False
        self.waiting_local = False
        self.bounds: Bounds | None = None
        self.relay_msg: Message | None = None
        self.replay: bytes | None = None
        """The bytes of the request in progress while it may be sent again (see ``upstream_lost``)."""
        self.resend: bytes | None = None
        """Bytes to write on the next upstream connection instead of the request's own (the retry)."""
        self.eof = False
        self.fresh = True
        """Set by every read; the sweep (HttpProxy._sweep) turns it into ``active_at``."""
        self.relay_cap = proxy.relay_cap
        self.active_at = self.loop.time()

    # -- connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        proxy = self.proxy
        proxy.stats.connections_total += 1
        proxy.stats.connections_active += 1
        if len(proxy.conns) >= proxy.limits.max_connections:
            proxy.stats.connections_refused += 1
            self.black_hole = True
            self._fail(503, f"mlchaos proxy: {proxy.limits.max_connections} client connections are open "
                            "(--max-connections)")
            return
        proxy.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.stats.connections_active -= 1
        self.proxy.conns.discard(self)
        for t in self.timers:
            t.cancel()
        self.timers.clear()
        up, self.up = self.up, None
        if up is not None:
            if up.owner is self and self.cur is not None:
                up.close()  # mid-exchange: its state is unknown, do not pool it
            else:
                self.proxy.release(up)

    def pause_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.resume_reading()

    def eof_received(self) -> bool:
        """The client half-closed (HTTP/1.0 tools, ``nc -N``): answer what it sent, then close.

        A request still being parsed can never complete now (cut mid-headers or mid-body): close
        at once, so the socket does not wait in CLOSE-WAIT for an answer nobody will send, and
        ``connection_lost`` drops the upstream connection that may hold its first half.
        """
        self.eof = True
        if self.black_hole or self.parsing is not None:
            return False  # held by a timeout fault, being reset, or cut short: do not linger
        return self.cur is not None or bool(self.backlog)

    def data_received(self, data: bytes) -> None:
        self.fresh = True
        if self.black_hole:
            return
        if (self.cur is None and self.parsing is None and not self.backlog and not self.proxy.table.matchers
                and (len(data) <= self.relay_cap or self._head_fits(data)) and self._relay(data)):
            return
        idle = self.parsing is None
        self.began = self.completed = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(501, "mlchaos proxy: protocol upgrade is not supported in HTTP mode; use --mode tcp")
            return
        except httptools.HttpParserError as exc:
            self.proxy.stats.bad_requests += 1
            self._fail(400, f"mlchaos proxy: malformed HTTP request: {exc}")
            return
        m = self.parsing
        if m is not None and (not m.headers_done or m.over is not None) and self._over_limit(m, data, idle):
            return
        m = self.cur
        if m is not None and m.over is not None:  # a held body went over the limit and completed in this read
            self._over_limit(m, data, idle)
            return
        if idle and self.began == 1 and self.completed == 1 and self.parsing is None:
            self.backlog[-1].raw = data  # exactly one whole request: forward these very bytes
        if self.cur is None:
            self._pump()
        elif self.waiting_local and self.cur.complete:
            self._respond_local()
        elif self.deciding and (self.cur.complete or self.cur.buffered >= MATCH_BODY):
            self._decide(self.cur)
        if self.cur is not None and self.backlog and not self.paused and self.transport is not None:
            self.paused = True  # pipelined requests wait for the exchange in progress; resumed by _pump
            self.transport.pause_reading()

    def _head_fits(self, data: bytes) -> bool:
        """True when the header block in ``data`` is within both header limits (reads over ``relay_cap``)."""
        lim = self.proxy.limits
        end = data.find(b"\r\n\r\n", 0, lim.max_header_bytes + 4)
        return end >= 0 and data.count(b"\n", 0, end) < lim.max_header_lines

    def _over_limit(self, m: Message, data: bytes, idle: bool) -> bool:
        """Answer and close when the request being parsed broke a limit; True when it did.

        The read counts toward the header size when it belongs to this request's header block:
        a request that continued from an earlier read, or one that began this read on an idle
        connection.  A request that began behind others in the same read is counted from its
        next read, so a pipelined burst never looks like an oversized header.
        """
        if m.over is None and not m.headers_done:
            if not idle or (self.began == 1 and self.completed == 0):
                m.head += len(data)
            if m.head > self.proxy.limits.max_header_bytes:
                m.over = (431, f"mlchaos proxy: request headers exceed {self.proxy.limits.max_header_bytes} bytes "
                               "(--max-header-size)")
        if m.over is None:
            return False
        self.proxy.stats.bad_requests += 1
        self.black_hole = True
        self._fail(*m.over)
        return True

    def _relay(self, data: bytes) -> bool:
        """Take ``data`` on the relay path when it is exactly one whole request.

        Only while no active fault has method/path/header matchers: the decision then
        needs nothing the relay parser skips.
        False (nothing done) sends the read through the full parser instead; the relay
        parser is then replaced, since it may have stopped inside a message.
        """
        b = self.bounds
        if b is None:
            b = self.bounds = Bounds()
        b.begun = b.done = 0
        try:
            b.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # the full parser reports it
            b.begun = 0
        if b.begun != 1 or b.done != 1:
            self.bounds = None
            return False
        m = self.relay_msg
        if m is None:  # one per connection, reused: the relay path runs only between exchanges
            m = self.relay_msg = Message()
            m.complete = m.headers_done = True
        m.raw = data
        m.method = b.method
        m.keep_alive = b.keep_alive
        proxy = self.proxy
        proxy.stats.requests_total += 1
        self.cur = m
        table = proxy.table
        if table.rules:  # none has matchers, so the decision needs no URL or headers
            c = table.count + 1
            if c < table.next_due and clock.now() < table.earliest:
                table.count = c  # no rule is due: FaultTable.plan_http's first test, without its call
            else:
                plan = self.plan = table.plan_http(m.method, b"", [])
                if plan is not None:
                    self._execute(m, plan)
                    return True
        self.plan = None
        self._forward(m)
        return True

    def _fail(self, status: int, text: str) -> None:
        """Answer a request we cannot relay and close (used for parse errors and upstream failures)."""
        if self.transport is None or self.transport.is_closing():
            return
        body = text.encode()
        self.transport.write(LocalResponse(status, body, [("Content-Type", "text/plain")]).wire(False))
        self.transport.close()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.began += 1
        m = Message()
        self.parsing = m
        self.backlog.append(m)

    def on_url(self, url: bytes) -> None:
        assert self.parsing is not None
        self.parsing.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        m = self.parsing
        assert m is not None
        m.size += len(name) + len(value) + 4
        lim = self.proxy.limits
        if len(m.headers) < lim.max_header_lines and m.size <= lim.max_header_bytes:
            m.headers.append((name, value))
        elif m.over is None:
            m.over = too_big(lim, m.size)

    def on_headers_complete(self) -> None:
        m = self.parsing
        assert m is not None
        m.headers_done = True
        if m.over is None and m.size + len(m.url) > self.proxy.limits.max_header_bytes:
            m.over = too_big(self.proxy.limits, m.size + len(m.url))
        m.method = self.parser.get_method()
        m.version = self.parser.get_http_version()
        m.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        m = self.parsing
        assert m is not None
        if m.forwarded:  # streams on (m is the exchange in progress)
            piece = frame(body) if m.chunked else body
            up = self.up
            if up is not None and up.transport is not None:
                up.transport.write(piece)
                if self.replay is not None:  # a reused connection: keep a copy while it stays small
                    self.replay = self.replay + piece if len(self.replay) < self.proxy.limits.max_body_buffer else None
                return
            if self.resend is not None:  # a retry is connecting (upstream_lost): the piece goes with it
                self.resend += piece
                return
        else:
            m.buffered += len(body)
            if m.buffered > self.proxy.limits.max_body_buffer:
                if m.over is None:
                    m.over = (413, f"mlchaos proxy: request body held by a fault exceeds "
                                   f"{self.proxy.limits.max_body_buffer} bytes (--max-body-buffer)")
                return
            m.body.append(body)

    def on_message_complete(self) -> None:
        m = self.parsing
        assert m is not None
        m.complete = True
        self.completed += 1
        self.parsing = None
        if m.forwarded and self.up is not None:
            self.up.req_done = True  # the upstream has the whole request: its connection may be pooled again
            if m.chunked and self.up.transport is not None:
                self.up.transport.write(b"0\r\n\r\n")
                if self.replay is not None:
                    self.replay += b"0\r\n\r\n"
        elif m.forwarded and self.resend is not None and m.chunked:
            self.resend += b"0\r\n\r\n"  # a retry is connecting: the end goes with it

    # -- exchanges ----------------------------------------------------------------------------
    def _pump(self) -> None:
        """Start the next request when the connection is free and its headers are in."""
        while self.cur is None and self.backlog and self.backlog[0].headers_done and not self.closed:
            m = self.backlog.popleft()
            self.cur = m
            self._start(m)
        if self.paused and (self.cur is None or not self.backlog) and self.transport is not None:
            self.paused = False  # idle with a request still arriving: its rest must be read
            self.transport.resume_reading()

    def _start(self, m: Message) -> None:
        if m.over is not None:  # broke a limit and arrived whole in one read: refused before any decision
            self.proxy.stats.bad_requests += 1
            self.black_hole = True
            self._fail(*m.over)
            return
        self.proxy.stats.requests_total += 1
        table = self.proxy.table
        if table.body_match and not m.complete and m.buffered < MATCH_BODY and not _expects(m):
            self.deciding = True  # a rule matches on the body's "model": decide once it is in (data_received)
            return
        self._decide(m)

    def _decide(self, m: Message) -> None:
        self.deciding = False
        table = self.proxy.table
        if not table.rules:
            plan = None
        elif table.body_match:
            plan = table.plan_http(m.method, m.url, m.headers, body_model(m.body))
        else:
            plan = table.plan_http(m.method, m.url, m.headers)
        self.plan = plan
        if plan is None:
            self._forward(m)
        else:
            self._execute(m, plan)

    def _execute(self, m: Message, plan: Plan) -> None:
        """Carry out a request's plan (some fault hit it)."""
        self.proxy.stats.requests_faulted += 1
        if plan.refuse or (plan.reset and not plan.reset_after):
            self._reset()
            return
        if plan.reset:
            self.black_hole = True
            self.timers.append(clock.at(self.loop, clock.now() + plan.reset_after, self._reset))
            return
        if plan.hold:
            self.black_hole = True
            if plan.hold_for is not None and self.transport is not None:
                self.timers.append(clock.at(self.loop, clock.now() + plan.hold_for, self.transport.close))
            return
        if plan.delay_request:
            self.timers.append(clock.at(self.loop, clock.now() + plan.delay_request, self._proceed, m))
        else:
            self._proceed(m)

    def _proceed(self, m: Message) -> None:
        if self.closed:
            return
        if self.plan is not None and self.plan.local is not None:
            self.waiting_local = True
            if m.complete:
                self._respond_local()
            return
        self._forward(m)

    def _respond_local(self) -> None:
        self.waiting_local = False
        m, plan = self.cur, self.plan
        assert m is not None and plan is not None and plan.local is not None
        self._deliver(plan.local.wire(m.keep_alive), m.keep_alive)

    def _forward(self, m: Message) -> None:
        plan = self.plan
        if plan is None:
            self.resp_buf = self.shaper = None
        elif plan.touches_response:
            self.resp_buf, self.shaper = [], None  # buffered whole: stream faults have nothing to act on
        else:
            self.resp_buf = None
            streams = [r for r in plan.rules if isinstance(r.fault, StreamKind)]
            self.shaper = Shaper(self, streams, self.proxy.table, m.method == b"HEAD") if streams else None
            if self.shaper is not None:
                self.timers.append(self.shaper)
        up = self.up
        if up is None or up.closed:
            up = self.proxy.acquire(self)
            if up is None:
                return  # upstream_ready() continues
        self._send(m, up)

    def upstream_ready(self, up: Upstream) -> None:
        if self.closed or self.cur is None:
            self.proxy.release(up)
            return
        self._send(self.cur, up)
        self.replay = None  # a fresh connection: a loss on it is the upstream's real failure

    def upstream_failed(self, reason: str) -> None:
        if not self.closed:
            self._fail(502, "mlchaos proxy: " + reason)

    def _send(self, m: Message, up: Upstream) -> None:
        self.up = up
        up.start(self, head=m.method == b"HEAD")
        assert up.transport is not None
        data = self.resend
        if data is None:
            data = m.raw if m.raw is not None else m.serialise()
        else:
            self.resend = None
        up.transport.write(data)
        up.req_done = m.complete
        # Replayable once if the upstream turns out to have closed a reused connection (upstream_ready
        # clears it for a fresh one; on_body keeps a copy of a body that streams on, up to --max-body-buffer).
        self.replay = data
        if m.body:
            m.body = []
        if not m.complete:
            m.forwarded = True  # the rest of the body streams from on_body

    def response_complete(self, up: Upstream, keep_alive: bool) -> None:
        """The upstream finished one response (called by :class:`Upstream`)."""
        m = self.cur
        assert m is not None
        self.replay = None
        if not keep_alive:
            up.close()
            self.up = None
        if self.resp_buf is None:
            shaper = self.shaper
            if shaper is not None:  # it ends the exchange once its queue is written (or a stall lets go)
                ka = m.keep_alive and keep_alive
                shaper.upstream_done(lambda: self._finish(ka), up.done)
                return
            self._finish(m.keep_alive and keep_alive)
            return
        data = b"".join(self.resp_buf)
        self.resp_buf = None
        plan = self.plan
        if plan is not None and plan.corrupt:
            data = corrupt_response(data, plan)
        self._deliver(data, m.keep_alive and keep_alive)

    def stream_cut(self, clean: bool, chunked: bool) -> None:
        """End a faulted stream early (``stream-cut``, an error event, or an upstream lost mid-body).

        ``clean``: a chunked body gets its last chunk and the connection stays usable; a body delimited by
        the close is ended by the close.  Otherwise the connection closes mid-body (a chunked body without
        its last chunk) or, without chunking, is reset, so the client cannot take it for a whole answer.
        The upstream connection, if still streaming, is closed (its state is mid-response).
        """
        m = self.cur
        self.shaper = None
        if self.closed or m is None or self.transport is None:
            return
        up = self.up
        if up is not None and up.owner is self:
            up.close()
            self.up = None
        if clean and chunked:
            self.transport.write(b"0\r\n\r\n")
            self._finish(m.keep_alive)
        elif clean or chunked:
            self.black_hole = True
            self.transport.close()
        else:
            self._reset()

    def flush_interim(self) -> None:
        """Pass interim (1xx) responses on at once even while the final response is buffered for a fault.

        The client may be waiting for '100 Continue' before it sends the body the final response needs.
        """
        assert self.resp_buf is not None
        data = b"".join(self.resp_buf)
        out = []
        while data.startswith(b"HTTP/") and data[9:10] == b"1":
            cut = data.find(b"\r\n\r\n")
            if cut < 0:
                break
            out.append(data[: cut + 4])
            data = data[cut + 4 :]
        self.resp_buf = [data] if data else []
        if out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    def upstream_lost(self, up: Upstream) -> None:
        """The upstream closed: finish a read-until-close response, retry, or fail the exchange.

        A keep-alive connection the upstream closed while idle (its keep-alive timeout: Python's
        ``ThreadingHTTPServer``, nginx ``keepalive_timeout``) can race the next request written on
        it: EOF or RST arrives before any response byte.  As HTTP clients do, the request is then
        written once more on a fresh connection, from the copy ``replay`` kept of what went out
        (only on a reused connection); a body still arriving streams on to the new connection.  A
        request on a fresh connection, a second loss, or a streamed body that outgrew
        ``--max-body-buffer`` (no copy kept) still fails.
        """
        if self.up is up:
            self.up = None
        if self.cur is None or self.closed:
            return
        if up.headers_done:
            self.response_complete(up, False)  # read-until-close body (or a truncated one): pass the EOF on
        elif self.replay is not None and not up.got_bytes:
            self.resend, self.replay = self.replay, None
            self.proxy.stats.upstream_retries += 1
            self.proxy.connect(self)  # a fresh connection (never another pooled one): upstream_ready sends
        elif self.cur.forwarded or up.got_bytes:
            self._reset()  # a half-delivered response cannot be repaired: pass the failure on
        else:
            self._fail(502, "mlchaos proxy: upstream closed the connection before responding")

    # -- response effects ---------------------------------------------------------------------
    def _deliver(self, data: bytes, keep_alive: bool) -> None:
        plan = self.plan
        if plan is not None and plan.delay_response:
            self.timers.append(clock.at(self.loop, clock.now() + plan.delay_response, self._write_out, data, keep_alive))
        else:
            self._write_out(data, keep_alive)

    def _write_out(self, data: bytes, keep_alive: bool) -> None:
        if self.closed or self.transport is None:
            return
        plan = self.plan
        if plan is not None and plan.abort_fraction is not None:
            head_end = data.find(b"\r\n\r\n") + 4
            cut = head_end + int((len(data) - head_end) * plan.abort_fraction)
            self.transport.write(data[:cut])
            self._reset()
            return
        if plan is not None and plan.rate_response:
            pacer = Pacer(self.loop, self.transport.write, plan.rate_response, lambda: self._end(keep_alive))
            self.timers.append(pacer)
            pacer.feed(data)
            pacer.finish()
            return
        self.transport.write(data)
        self._end(keep_alive)

    def _end(self, keep_alive: bool) -> None:
        plan = self.plan
        if plan is not None and plan.close_delay and self.transport is not None:
            self.black_hole = True
            self.timers.append(clock.at(self.loop, clock.now() + plan.close_delay, self.transport.close))
            return
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> None:
        self.cur = None
        self.plan = None
        self.shaper = None
        if self.timers:
            self.timers.clear()
        if not keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if self.backlog:
            self._pump()
        elif self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if self.eof and self.cur is None and self.transport is not None:
            self.transport.close()  # the client half-closed: nothing more can arrive

    def _reset(self) -> None:
        self.black_hole = True
        up, self.up = self.up, None
        if up is not None:
            if up.owner is self and self.cur is not None and not up.idle:
                up.close()
            else:
                self.proxy.release(up)
        if self.transport is not None and not self.closed:
            sockets.reset(self.transport)


class Upstream(asyncio.Protocol):
    """One pooled connection to the upstream; reports each response's end to its current owner."""

    def __init__(self, proxy: HttpProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.owner: Downstream | None = None
        # Only "headers done" and "message done" callbacks: no Python call per header or body piece.
        # Faults that transform a response work on the buffered raw bytes (see corrupt_response).
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle = True
        self.head = False
        self.done = False
        self.headers_done = False
        self.got_bytes = False
        self.keep_alive = True
        self.interim = False
        self.req_done = True
        """False while the request written on this connection is incomplete (its body still streaming)."""

    def start(self, owner: Downstream, head: bool) -> None:
        """Prepare for the response to the request ``owner`` is about to write."""
        self.owner = owner
        self.idle = False
        self.head = head
        self.done = self.headers_done = self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner, self.owner = self.owner, None
        if owner is not None and not self.idle:
            owner.upstream_lost(self)
        with contextlib.suppress(ValueError):
            self.proxy.idle.remove(self)
            self.proxy.stats.upstream_idle = len(self.proxy.idle)

    def pause_writing(self) -> None:
        if self.owner is not None and self.owner.transport is not None:
            self.owner.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.owner is not None and self.owner.transport is not None:
            self.owner.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.owner = None
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None or self.idle:
            self.close()  # bytes nobody asked for: the connection is out of sync
            return
        self.got_bytes = True
        if owner.resp_buf is None:
            shaper = owner.shaper
            if shaper is None:
                owner.transport.write(data)  # type: ignore[union-attr]
            else:
                shaper.feed(data)
                if self.closed:
                    return  # the shaper cut the stream and closed this connection
        else:
            owner.resp_buf.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.proxy.stats.upstream_errors += 1
            self.close()
            owner._reset()
            return
        if self.interim:
            self.interim = False
            if owner.resp_buf is not None:
                owner.flush_interim()
        if self.done or (self.head and self.headers_done):
            keep = self.keep_alive and self.req_done  # answered early (before the whole body): not reusable
            if self.head:  # llhttp still expects the body a HEAD response announces: start afresh
                self.parser = httptools.HttpResponseParser(self)
            self.idle = True
            self.owner = None
            owner.response_complete(self, keep)

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message completes

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            # 100 Continue / 103 Early Hints: the final response follows on the same exchange
            self.interim = True
            self.headers_done = False
        else:
            self.done = True

