"""Write bytes at a fixed rate (the bandwidth fault), using never-early timers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mlchaos.proxy import clock

TICK = 0.010  # seconds between slices: coarse enough to be cheap, fine enough to look like a thin pipe


class Pacer:
    """Deliver ``data`` through ``write`` at ``rate`` bytes/second, then call ``done``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write: Callable[[bytes], None],
        rate: float,
        done: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._write = write
        self._rate = rate
        self._done = done
        self._buf = bytearray()
        self._timer: clock.Timer | None = None
        self._finishing = False
        self._next = clock.now()

    def feed(self, data: bytes) -> None:
        self._buf += data
        if self._timer is None:
            self._tick()

    def finish(self) -> None:
        """No more data: call ``done`` once the buffer is drained."""
        self._finishing = True
        if self._timer is None:
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        if self._buf:
            n = max(1, int(self._rate * TICK))
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._write(chunk)
            # schedule the next slice so the average rate holds: len/rate seconds after this one
            self._next = max(self._next, clock.now()) + len(chunk) / self._rate
            self._timer = clock.at(self._loop, self._next, self._tick)
        elif self._finishing and self._done is not None:
            done, self._done = self._done, None
            done()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._done = None
