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

So once a second every process's CPU time is read from ``/proc`` and the
host's busy time split three ways: the system under test (the target's
*footprint*, its processes and their descendants), mlchaos (the runner and its
descendants: the generator, the watchdog, a proxy it started, this sampler),
and the rest.  :func:`mlchaos.engine.instruments.assess` reads the rest's share
in the saturated seconds of an evaluation's span.

The reading runs in a process of its own (:class:`Sampler`, ``python -m
mlchaos.engine.cpushare``, niced), and reads at each second only the system's
and mlchaos's processes (the others once, when they appear, and all of them
every 10 s): a full scan of 300 processes takes 5–8 ms of Python, and done in a
thread of the runner once a second it raised the event loop's p99.9 lag from
~1 ms to ~3 ms (benchmarks/bench_cpushare.py) — the generator's lag is an
instrument reading, and a 50 ms SLA has a 5 ms lag budget.  The sampler exits
when the runner closes its stdin, dies included.

A process that starts or ends between two readings has its CPU time of that
second counted as someone else's: the rule can then only distrust a breach,
never make a pass of it.  Where ``/proc`` is missing, nothing is known and
nothing is distrusted on this account.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Reversible
from dataclasses import dataclass

EVERY = 1.0
"""Seconds between two readings of /proc."""


@dataclass(frozen=True)
class Second:
    """One interval between two readings: idle share and the share used by neither the system nor mlchaos."""

    t0: float
    t1: float
    idle: float
    foreign: float


def cpu_times() -> tuple[int, int, int] | None:
    """(steal, idle, total) jiffies from /proc/stat (idle includes iowait), or None where unreported."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != b"cpu":
        return None
    nums = [int(x) for x in fields[1:]]
    return nums[7], nums[3] + nums[4], sum(nums[:8])


def _stat(proc: str, pid: int | str) -> tuple[int, int, int] | None:
    """(parent pid, start time, user + system jiffies) of one process, None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:  # it ended meanwhile, or is not ours to read
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None


def _pids(proc: str) -> set[int] | None:
    try:
        return {int(n) for n in os.listdir(proc) if n.isdigit()}
    except OSError:
        return None


def scan(proc: str = "/proc") -> dict[int, tuple[int, int, int]]:
    """pid → (parent pid, start time, user + system jiffies) of every process readable now."""
    out: dict[int, tuple[int, int, int]] = {}
    for pid in _pids(proc) or ():
        if (st := _stat(proc, pid)) is not None:
            out[pid] = st
    return out


def descendants(roots: Iterable[int], procs: Mapping[int, tuple[int, ...]]) -> set[int]:
    """``roots`` that run, and every process below them (``procs``: pid → (parent pid, ...))."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, info in procs.items():
        children[info[0]].append(pid)
    seen: set[int] = set()
    todo = [p for p in roots if p in procs]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


class CpuAccount:
    """The host's CPU time, reading by reading, split into idle, the system's, mlchaos's and the rest.

    ``footprint`` names the system under test's processes; ``own`` is the runner.  Only the system's and
    mlchaos's processes are read at every :meth:`sample` (the rest is the host's busy time minus theirs);
    every other process is read once, when it appears, for its parent, and all of them again every
    ``refresh`` seconds (a process whose parent died is adopted by another): with 300 processes a
    reading costs about a millisecond instead of eight.
    """

    def __init__(self, host: Callable[[], tuple[int, int, int] | None] = cpu_times,
                 footprint: Callable[[], Iterable[int]] | None = None, own: int | None = None,
                 proc: str = "/proc", refresh: float = 10.0) -> None:
        self._host = host
        self.footprint = footprint
        self._own = os.getpid() if own is None else own
        self._proc, self._refresh = proc, refresh
        self._tree: dict[int, tuple[int, int]] = {}  # pid -> (parent pid, start time)
        self._full = -float("inf")
        self._prev: tuple[float, dict[int, tuple[int, int]], tuple[int, int, int]] | None = None

    def sample(self) -> Second | None:
        """Read now; the interval since the last reading, or None (the first one, or nothing known)."""
        host = self._host()
        pids = _pids(self._proc)
        if host is None or not pids:
            return None
        t = time.time()
        self._update_tree(pids, t)
        system = descendants(named(self.footprint), self._tree)
        ours = descendants([self._own], self._tree) - system
        now: dict[int, tuple[int, int]] = {}  # pid -> (start time, jiffies), for the system's and ours
        for pid in system | ours:
            st = _stat(self._proc, pid)
            if st is not None and st[1] == self._tree[pid][1]:
                now[pid] = st[1], st[2]
        prev, self._prev = self._prev, (t, now, host)
        if prev is None:
            return None
        t0, before, host0 = prev
        total = host[2] - host0[2]
        if total <= 0:
            return None
        known = 0
        for pid, (start, jiffies) in now.items():
            then = before.get(pid)
            if then is not None and then[0] == start:  # the same process (a pid is reused after it ends)
                known += max(0, jiffies - then[1])
        idle = host[1] - host0[1]
        busy = total - idle - (host[0] - host0[0])  # stolen time is the hypervisor's, not a neighbour's
        return Second(t0, t, idle / total, max(0, busy - known) / total)

    def _update_tree(self, pids: set[int], t: float) -> None:
        if t - self._full >= self._refresh:
            self._tree, self._full = {}, t
        for pid in [p for p in self._tree if p not in pids]:
            del self._tree[pid]
        for pid in pids - self._tree.keys():
            if (st := _stat(self._proc, pid)) is not None:
                self._tree[pid] = st[0], st[1]


def named(footprint: Callable[[], Iterable[int]] | None) -> list[int]:
    """The pids a footprint names now; none when it cannot say (all of the host then counts as foreign)."""
    if footprint is None:
        return []
    try:
        return [int(p) for p in footprint()]
    except Exception:  # a target that cannot name its processes now (a lab going down, say)
        return []


def contention(seconds: Reversible[Second], a: float, b: float, min_idle: float) -> tuple[float, float] | None:
    """(idle share, foreign share) of the second with the most foreign use among those that overlap
    [a, b] and had less than ``min_idle`` idle; None when none did.  ``seconds`` newest last."""
    saturated = []
    for s in reversed(seconds):  # the spans asked about are recent: walk back from the newest, copying nothing
        if s.t1 <= a:
            break
        if s.t0 < b and s.idle < min_idle:
            saturated.append(s)
    if not saturated:
        return None
    worst = max(saturated, key=lambda s: s.foreign)
    return worst.idle, worst.foreign


class Sampler:
    """The runner's side: starts ``python -m mlchaos.engine.cpushare``, tells it the footprint, and keeps
    the seconds it reports (``seconds``, newest last)."""

    def __init__(self, footprint: Callable[[], Iterable[int]] | None = None, keep: int = 7200) -> None:
        self.footprint = footprint
        self.seconds: collections.deque[Second] = collections.deque(maxlen=keep)

    async def run(self, refresh: float = 5.0) -> None:
        """Until cancelled: the footprint (read in a thread) every ``refresh`` seconds, the sampler's lines."""
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mlchaos.engine.cpushare", "--own", str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        except OSError:
            return  # nothing known, nothing distrusted on this account
        reader = asyncio.create_task(self._read(proc))
        try:
            while proc.returncode is None:
                pids = await asyncio.to_thread(named, self.footprint)
                assert proc.stdin is not None
                proc.stdin.write((" ".join(map(str, pids)) + "\n").encode())
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
                await asyncio.sleep(refresh)
        finally:
            reader.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            with contextlib.suppress(ValueError):
                t0, t1, idle, foreign = map(float, line.split())
                self.seconds.append(Second(t0, t1, idle, foreign))


def main(argv: list[str] | None = None) -> int:
    """The sampler process: footprint pids on stdin (one line, replaced by the next), one line per second
    on stdout (``t0 t1 idle foreign``).  Ends when stdin closes or the runner is gone."""
    ap = argparse.ArgumentParser(prog="python -m mlchaos.engine.cpushare")
    ap.add_argument("--own", type=int, required=True, help="the runner's pid: it and its descendants are mlchaos")
    ap.add_argument("--every", type=float, default=EVERY)
    args = ap.parse_args(argv)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # it must never be what delays the runner or the system under test
    footprint: list[int] = []
    closed = threading.Event()

    def listen() -> None:
        for line in sys.stdin:
            with contextlib.suppress(ValueError):
                footprint[:] = [int(x) for x in line.split()]
        closed.set()

    threading.Thread(target=listen, daemon=True).start()
    account = CpuAccount(footprint=lambda: list(footprint), own=args.own)
    account.sample()  # the first reading: the first second is then reported one second from now
    while not closed.wait(args.every):
        if not os.path.exists(f"/proc/{args.own}"):
            break
        s = account.sample()
        if s is not None:
            try:
                print(f"{s.t0:.3f} {s.t1:.3f} {s.idle:.4f} {s.foreign:.4f}", flush=True)
            except BrokenPipeError:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
