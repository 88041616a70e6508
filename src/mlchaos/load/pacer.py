"""The pacer: dispatch each planned request at its intended time, not at the next timer tick.

Why its own pacer (``research/load.md`` §2.2): event-loop timers quantise.
The stdlib selector loop rounds an epoll timeout *up* to 1 ms, so timers fire
in 1 ms batches (lag p99 ≈ 1.1 ms at any rate); uvloop rounds ``call_later``
to the *nearest* ms and turns anything under 0.5 ms into ``call_soon``.

So the pacer sleeps on the loop's timer until ``spin`` seconds before the
next slot (0.5 ms on uvloop, 1 ms on the stdlib loop: the worst rounding of
each), then yields with ``sleep(0)`` until the slot: the loop keeps
reading replies while the pacer waits, and the send is µs-accurate.  Every
request whose time has come is sent in one batch; a pacer that fell behind
never skips a request, it sends it late and the lateness is recorded as
schedule lag (and in the latency, which is measured from the plan).

``spin: 0`` turns spinning off: the pacer then only sleeps on the loop's
timer (at least 1 ms), which keeps the CPU low on a machine shared with the
system under test, at the price of up to ~1 ms of lag.

The cost of spinning is CPU: at rates above ~1/spin the pacer is always
spinning, so the generator's CPU reads ~100 % even when it is far from its
capacity.  That is why CPU is reported but is not part of the validity rule;
lag and achieved rate are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from mlchaos.load.schedule import Schedule

__all__ = ["Pacer"]

_MAX_SLEEP = 0.05  # wake at least this often to notice a stop


class Pacer:
    """Runs a :class:`Schedule` against ``send(intended_monotonic_time)``."""

    def __init__(self, schedule: Schedule, t0: float, send: Callable[[float], None], spin: float) -> None:
        self.schedule = schedule
        self.t0 = t0
        self.send = send
        self.spin = spin
        self.dispatched = 0
        self.stopped = False
        self.finished = False
        self.last_intended = t0
        self._cur: list[float] = []
        self._pos = 0

    def stop(self) -> None:
        self.stopped = True

    def scheduled_until(self, now: float) -> int:
        """Planned requests with intended time ≤ now (dispatched or not): the 'scheduled' count."""
        cur, pos = self._cur, self._pos
        if pos >= len(cur) or cur[pos] > now:
            return self.dispatched
        extra = int(np.searchsorted(np.asarray(cur[pos:]), now, side="right"))
        return self.dispatched + extra

    async def run(self) -> None:
        mono = time.monotonic
        sleep = asyncio.sleep
        send = self.send
        spin = self.spin
        t0 = self.t0
        for chunk in self.schedule.chunks():
            times: list[float] = (chunk + t0).tolist()
            self._cur, self._pos = times, 0
            n = len(times)
            i = 0
            while i < n:
                if self.stopped:
                    self.finished = True
                    return
                t = times[i]
                now = mono()
                d = t - now
                if d > 0:
                    if spin <= 0:  # timer only: never busy-wait (lag up to ~1 ms, CPU-friendly)
                        await sleep(min(max(d, 0.001), _MAX_SLEEP))
                    elif d > spin:
                        await sleep(min(d - spin, _MAX_SLEEP))
                    else:
                        await sleep(0)
                    continue
                j = i
                while j < n and times[j] <= now:
                    send(times[j])
                    j += 1
                self.dispatched += j - i
                self.last_intended = times[j - 1]
                i = j
                self._pos = i
                await sleep(0)  # let replies in between batches, even when behind
        self._cur, self._pos = [], 0
        self.finished = True
