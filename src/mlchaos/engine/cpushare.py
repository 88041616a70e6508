"""Whose CPU it was: the system under test's, mlchaos's own, or someone else's.

A host with no idle CPU delays whatever runs on it.  When the system under test
saturates the host by itself (a retry storm, an overloaded model server on the
same machine), its slow answers are its own doing and a breach is evidence.
When other programs do (a CI neighbour, a build, a CPU hog), the system's
answers queue behind them, and a breach says more about the neighbours than
about the system.  The load generator can stay on time meanwhile (it needs
little CPU and the scheduler favours a process that sleeps), so its lateness
alone does not tell the two apart (CI, 2026-12-05: a mitigated scenario under
two CPU hogs answered at p99 235 ms instead of 33 ms, every instrument on
time, and was judged ``failed``).

So once a second this module reads every process's CPU time from ``/proc`` and
splits the host's busy time three ways: the system under test (the target's
*footprint*, its processes and their descendants), mlchaos (this process and
its descendants: the generator, the watchdog, a proxy it started), and the
rest.  :func:`mlchaos.engine.instruments.assess` reads the rest's share in the
saturated seconds of an evaluation's span.

A process that starts or ends between two readings has its CPU time of that
second counted as someone else's: the rule can then only distrust a breach,
never make a pass of it.  Where ``/proc`` is missing, nothing is known and
nothing is distrusted on this account.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HostTimes = Callable[[], "tuple[int, int, int] | None"]
"""(steal, idle, total) jiffies of the whole host: :func:`mlchaos.engine.instruments.cpu_times`."""


@dataclass(frozen=True)
class Second:
    """One interval between two readings: idle share and the share used by neither the system nor mlchaos."""

    t0: float
    t1: float
    idle: float
    foreign: float


def scan(proc: str = "/proc") -> dict[int, tuple[int, int, int]]:
    """pid → (parent pid, start time, user + system jiffies) of every process readable now."""
    out: dict[int, tuple[int, int, int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:  # it ended meanwhile, or is not ours to read
            continue
        fields = raw[raw.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
        with contextlib.suppress(IndexError, ValueError):
            out[int(name)] = (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))
    return out


def descendants(roots: Iterable[int], procs: dict[int, tuple[int, int, int]]) -> set[int]:
    """``roots`` that run, and every process below them."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, (ppid, _, _) in procs.items():
        children[ppid].append(pid)
    seen: set[int] = set()
    todo = [p for p in roots if p in procs]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


class CpuAccount:
    """The host's CPU time, second by second, split into idle, the system's, mlchaos's and the rest.

    ``footprint`` names the system under test's processes (read once a second; it must not block for
    long); ``host`` reads the host's jiffies.  :meth:`sample` blocks for a few milliseconds (a scan of
    ``/proc``): call it from a thread.
    """

    def __init__(self, host: HostTimes, footprint: Callable[[], Iterable[int]] | None = None,
                 own: int | None = None, keep: int = 7200) -> None:
        self._host = host
        self.footprint = footprint
        self._own = os.getpid() if own is None else own
        self._prev: tuple[float, dict[int, tuple[int, int, int]], tuple[int, int, int]] | None = None
        self.seconds: collections.deque[Second] = collections.deque(maxlen=keep)

    def sample(self) -> None:
        host = self._host()
        if host is None:
            return
        t, procs = time.time(), scan()
        if not procs:
            return
        prev, self._prev = self._prev, (t, procs, host)
        if prev is None:
            return
        t0, before, host0 = prev
        total = host[2] - host0[2]
        if total <= 0:
            return
        system = descendants(self._footprint(), procs)
        ours = descendants([self._own], procs) - system
        known = 0
        for pid in system | ours:
            now, then = procs[pid], before.get(pid)
            if then is not None and then[1] == now[1]:  # the same process (a pid is reused after it ends)
                known += max(0, now[2] - then[2])
        idle = host[1] - host0[1]
        busy = total - idle - (host[0] - host0[0])  # stolen time is the hypervisor's, not a neighbour's
        self.seconds.append(Second(t0, t, idle / total, max(0, busy - known) / total))

    def _footprint(self) -> list[int]:
        if self.footprint is None:
            return []
        try:
            return [int(p) for p in self.footprint()]
        except Exception:  # a target that cannot name its processes now: all of it counts as foreign
            return []

    def contention(self, a: float, b: float, min_idle: float) -> tuple[float, float] | None:
        """(lowest idle share, foreign share then) over the seconds that overlap [a, b] and had less than
        ``min_idle`` idle; the one with the most foreign use when several did.  None when none did."""
        saturated = []
        for s in reversed(self.seconds):  # the spans asked about are recent: walk back from the newest
            if s.t1 <= a:
                break
            if s.t0 < b and s.idle < min_idle:
                saturated.append(s)
        if not saturated:
            return None
        worst = max(saturated, key=lambda s: s.foreign)
        return worst.idle, worst.foreign
