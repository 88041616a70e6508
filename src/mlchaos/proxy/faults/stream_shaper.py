"""Carry out the stream faults on one response, event by event, as the upstream's bytes arrive.

The data path creates a :class:`Shaper` only for a request some stream fault hit; every other
response is relayed as raw bytes (no parsing, no buffering).  The shaper relays the response head
untouched, decodes the body (chunked or delimited by the close) into events (:mod:`mlchaos.proxy.sse`),
decides each event against the stream rules that are still alive, and writes what remains through a
queue of (release time, item): delays become release times, a stall is a gate on the queue, a cut is
an item in it, so the order of events is kept whatever the faults do.

Leases: each event asks whether each rule is still in the table and within its lease, so a lease that
lapses mid-stream (or a fault removed mid-stream) leaves the *next* event unfaulted; a stall polls for
it (every 50 ms, or at the lease's deadline if sooner) and then releases what it held.  Nothing a
stream fault does outlives its fault.

A faulted chunked stream is re-framed one event per chunk (events may be dropped, duplicated or
rewritten); the bytes of each event are the upstream's, except where the fault changes them.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from mlchaos.proxy import clock, sse
from mlchaos.proxy.faults.stream import (
    StreamCorrupt,
    StreamCorruptParams,
    StreamCut,
    StreamDelay,
    StreamStall,
)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from mlchaos.proxy.rules import Rule
    from mlchaos.proxy.table import FaultTable

POLL = 0.05
"""A stall checks its fault's lease at least this often (seconds)."""
HOLD_LIMIT = 1 << 20
"""Bytes held (delayed or stalled) before the upstream connection stops being read (TCP backpressure)."""
MAX_HEAD = 1 << 16

_HEAD, _BODY, _PASS, _ENDED = range(4)


class _Mark:
    """A queue item that is not bytes: a stall gate, a cut, the end of the upstream's body."""

    __slots__ = ("clean", "rule", "what")

    def __init__(self, what: str, rule: Rule | None = None, clean: bool = False) -> None:
        self.what = what
        self.rule = rule
        self.clean = clean


class Shaper:
    """The stream faults of one response.  ``down`` is the client side (:class:`~mlchaos.proxy.http_path.Downstream`)."""

    def __init__(self, down: Any, rules: list[Rule], table: FaultTable, head_request: bool) -> None:
        self.down = down
        self.loop: asyncio.AbstractEventLoop = down.loop
        self.rules = rules
        self.table = table
        self.head_request = head_request
        self.phase = _HEAD
        self.head_buf = bytearray()
        self.chunked = False
        self.sse = False
        self.dechunk: sse.Dechunker | None = None
        self.split: sse.EventSplitter | None = None
        self.n = 0
        """Data events received from the upstream, ``[DONE]`` excepted."""
        self.first = True
        self.last = 0.0
        """Release time of the last queued item (monotonic seconds)."""
        self.last_data = -1e18
        self.queue: collections.deque[tuple[float, bytes | _Mark]] = collections.deque()
        self.held = 0
        self.paused = False
        self.stalled: Rule | None = None
        self.marked: set[str] = set()
        """Stall rules already placed in this stream's queue (a stall happens once per stream)."""
        self.timer: clock.Timer | None = None
        self.poll: clock.Timer | None = None
        self.stall_timer: clock.Timer | None = None
        self.finish: Callable[[], None] | None = None

    # -- the rules ----------------------------------------------------------------------------
    def alive(self, rule: Rule, now: float) -> bool:
        """The rule is still in the table and within its lease (else the stream goes on unfaulted)."""
        return rule.expires_at > now and self.table.by_id.get(rule.id) is rule

    # -- input ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Raw bytes from the upstream (head and body), in arrival order."""
        phase = self.phase
        if phase == _PASS:
            self.down.transport.write(data)
            return
        if phase == _ENDED:
            return  # after a cut or the error event: the rest of the upstream's stream is dropped
        if phase == _HEAD:
            self.head_buf += data
            while True:
                end = self.head_buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head_buf) > MAX_HEAD:  # not a head we can read: relay it untouched
                        self._pass(bytes(self.head_buf))
                    return
                raw, rest = bytes(self.head_buf[: end + 4]), bytes(self.head_buf[end + 4 :])
                self.head_buf.clear()
                head = sse.Head(raw)
                if head.interim:
                    self.down.transport.write(raw)
                    self.head_buf += rest
                    continue
                if not head.streams(self.head_request):
                    self._pass(raw + rest)
                    return
                self.down.transport.write(raw)
                self._start(head)
                data = rest
                break
        self._body(data)

    def _pass(self, data: bytes) -> None:
        self.phase = _PASS
        self.head_buf.clear()
        self.down.transport.write(data)

    def _start(self, head: sse.Head) -> None:
        self.phase = _BODY
        self.chunked = head.chunked
        self.sse = head.sse
        self.dechunk = sse.Dechunker() if head.chunked else None
        self.split = sse.EventSplitter() if head.sse else None
        now = clock.now()
        self.last = now
        for r in self.rules:
            f = r.fault
            if isinstance(f, StreamStall) and f.params.after is not None:
                after = float(f.params.after)
                self.stall_timer = clock.at(self.loop, now + after, self._stall_now, r)

    def _body(self, data: bytes) -> None:
        if not data:
            return
        pieces = list(self.dechunk.feed(data)) if self.dechunk is not None else [data]
        for piece in pieces:
            if self.split is not None:
                for ev in self.split.feed(piece):
                    self._event(ev)
            else:
                self._event(piece)
            if self.phase != _BODY:
                break
        self._pump()

    def _event(self, ev: bytes) -> None:
        """Decide one event against the rules alive now and queue what remains of it."""
        if self.phase != _BODY:
            return
        data = sse.is_data(ev) if self.sse else True
        done = data and self.sse and sse.is_done(ev)
        now = clock.now()
        alive = [r for r in self.rules if self.alive(r, now)]
        out = [ev]
        end_after = False
        if data:
            for r in alive:
                f = r.fault
                if isinstance(f, StreamCut) and self.n >= f.params.after_events:
                    self._enqueue(self.last, _Mark("cut", r, clean=f.params.mode == "clean"))
                    self.phase = _ENDED
                    return
                if isinstance(f, StreamStall) and r.id not in self.marked:
                    after = f.params.after_events
                    if after is not None and self.n >= after:  # the first event past N ([DONE] too) waits
                        self.marked.add(r.id)
                        self._enqueue(self.last, _Mark("stall", r))
            if not done:
                self.n += 1
                for r in alive:
                    f = r.fault
                    if isinstance(f, StreamCorrupt) and f.hits(self.n, r.rng):
                        p = f.params
                        assert isinstance(p, StreamCorruptParams)
                        if p.mode == "drop":
                            out = []
                        elif p.mode == "duplicate":
                            out = out + out
                        elif self.sse and p.mode == "malformed":
                            out = [sse.malformed(x) for x in out]
                        elif self.sse and p.mode == "error-event":
                            out = [sse.error_event(p.message)]
                            end_after = True
        release = max(now, self.last)
        if data:
            rate = 0.0
            for r in alive:
                f = r.fault
                if isinstance(f, StreamDelay):
                    release += f.gap(self.first, r.rng)
                    cap = f.params.rate
                    if cap and (not rate or cap < rate):
                        rate = cap
            if rate:
                release = max(release, self.last_data + 1.0 / rate)
            self.first = False
            self.last_data = release
        for x in out:
            self._enqueue(release, x)
        if end_after:
            self._enqueue(release, _Mark("cut", None, clean=True))
            self.phase = _ENDED

    def _enqueue(self, release: float, item: bytes | _Mark) -> None:
        self.last = max(self.last, release)
        self.queue.append((self.last, item))
        if isinstance(item, bytes):
            self.held += len(item)
            up = self.down.up
            if self.held > HOLD_LIMIT and not self.paused and up is not None and up.transport is not None:
                self.paused = True
                up.transport.pause_reading()

    def upstream_done(self, finish: Callable[[], None], complete: bool) -> None:
        """The upstream's response ended (``complete``: properly; else it was lost mid-body)."""
        if self.phase in (_PASS, _HEAD):
            if self.head_buf:
                self.down.transport.write(bytes(self.head_buf))
            finish()
            return
        if self.phase == _ENDED:
            return  # a cut is queued: it ends the exchange
        if self.split is not None:
            rest = self.split.rest()
            if rest:
                self._event(rest)
                if self.phase != _BODY:
                    self._pump()
                    return
        self.finish = finish
        self._enqueue(self.last, _Mark("end" if complete or not self.chunked else "lost"))
        self.phase = _ENDED
        self._pump()

    # -- output -----------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Write every queued item whose time has come, unless a stall holds the gate."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        q = self.queue
        down = self.down
        while q and self.stalled is None:
            release, item = q[0]
            now = clock.now()
            if release > now:
                # Only a delay fault sets a time ahead: once none is alive (lease lapsed, fault removed),
                # what it still holds goes out now.  Else wake at the release, or sooner to check again.
                delays = [r for r in self.rules if isinstance(r.fault, StreamDelay) and self.alive(r, now)]
                if delays:
                    wake = min(release, now + POLL, *(r.expires_at for r in delays))
                    self.timer = clock.at(self.loop, wake, self._tick)
                    return
                self.last = self.last_data = now
                q = self.queue = collections.deque((now, x) for _, x in q)
                continue
            q.popleft()
            if down.closed or down.transport is None:
                q.clear()
                return
            if isinstance(item, bytes):
                self.held -= len(item)
                down.transport.write(b"%x\r\n%b\r\n" % (len(item), item) if self.chunked else item)
                continue
            if item.what == "stall":
                assert item.rule is not None
                if self.alive(item.rule, clock.now()):
                    self._hold(item.rule)
                    return
                continue
            q.clear()
            self.cancel()
            if item.what == "cut":
                down.stream_cut(item.clean, self.chunked)
            elif item.what == "lost":
                down.stream_cut(False, self.chunked)
            else:
                if self.chunked:
                    down.transport.write(b"0\r\n\r\n")
                finish, self.finish = self.finish, None
                if finish is not None:
                    finish()
            return
        if self.paused and self.held < HOLD_LIMIT // 2:
            self.paused = False
            up = down.up
            if up is not None and up.transport is not None:
                up.transport.resume_reading()

    def _tick(self) -> None:
        self.timer = None
        self._pump()

    def _stall_now(self, rule: Rule) -> None:
        """``after: T`` has passed: close the gate now (queued events stay held)."""
        self.stall_timer = None
        if self.phase == _BODY and self.alive(rule, clock.now()):
            self._hold(rule)

    def _hold(self, rule: Rule) -> None:
        self.stalled = rule
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._arm_poll()

    def _arm_poll(self) -> None:
        rule = self.stalled
        assert rule is not None
        self.poll = clock.at(self.loop, min(clock.now() + POLL, rule.expires_at), self._check_stall)

    def _check_stall(self) -> None:
        self.poll = None
        rule = self.stalled
        if rule is None:
            return
        if self.alive(rule, clock.now()):
            self._arm_poll()
            return
        self.stalled = None  # the lease lapsed or the fault was removed: the stream goes on
        self._pump()

    def cancel(self) -> None:
        """Stop every timer (the client left, or the exchange ended)."""
        for t in (self.timer, self.poll, self.stall_timer):
            if t is not None:
                t.cancel()
        self.timer = self.poll = self.stall_timer = None
