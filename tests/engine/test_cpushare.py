"""Whose CPU it was (mlchaos.engine.cpushare): the split of the host's busy time between the system under
test, mlchaos and everyone else, on fake readings for the arithmetic and on real processes for /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlchaos.engine import cpushare
from mlchaos.engine.cpushare import CpuAccount, Sampler, Second, contention, descendants, scan
from tests.conftest import wait_until

OWN = 100


class Host:
    """Fake /proc/stat (steal, idle, total) and /proc/<pid>/stat readings, advanced by hand."""

    def __init__(self) -> None:
        self.host = (0, 0, 0)
        self.procs: dict[int, tuple[int, int, int]] = {1: (0, 1, 0), OWN: (1, 5, 0)}

    def tick(self, *, idle: int, steal: int = 0, total: int = 200, used: dict[int, int] | None = None) -> None:
        s, i, t = self.host
        self.host = (s + steal, i + idle, t + total)
        for pid, jiffies in (used or {}).items():
            ppid, start, j = self.procs[pid]
            self.procs[pid] = (ppid, start, j + jiffies)


def fake_proc(monkeypatch: pytest.MonkeyPatch, h: Host) -> None:
    """/proc as ``h.procs`` says: the pids listed, each one's stat read afresh."""
    monkeypatch.setattr(cpushare, "_pids", lambda proc: set(h.procs))
    monkeypatch.setattr(cpushare, "_stat", lambda proc, pid: h.procs.get(int(pid)))


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    h = Host()
    fake_proc(monkeypatch, h)
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(cpushare.time, "time", lambda: float(next(clock)))
    yield h


def test_busy_time_splits_into_the_systems_ours_and_the_rest(host: Host) -> None:
    host.procs.update({10: (1, 7, 0), 11: (10, 8, 0), 20: (OWN, 9, 0), 30: (1, 9, 0)})
    acc = CpuAccount(lambda: host.host, footprint=lambda: [10], own=OWN)
    assert acc.sample() is None  # the first reading
    # 200 jiffies (2 cores): 10 idle; the system (10 and its child 11) 60, mlchaos (its child 20) 30,
    # pid 30 (someone else) 100
    host.tick(idle=10, used={10: 40, 11: 20, 20: 30, 30: 100})
    sec = acc.sample()
    assert sec is not None and (sec.t0, sec.t1) == (1000.0, 1001.0)
    assert sec.idle == pytest.approx(0.05) and sec.foreign == pytest.approx(0.5)
    # the same second with pid 30 named by the target: nothing was someone else's
    acc2 = CpuAccount(lambda: host.host, footprint=lambda: [10, 30], own=OWN)
    host.procs[30] = (1, 9, 0)
    acc2.sample()
    host.tick(idle=10, used={10: 40, 11: 20, 20: 30, 30: 100})
    sec2 = acc2.sample()
    assert sec2 is not None and sec2.foreign == pytest.approx(0.0)


def test_a_process_that_started_or_ended_between_readings_counts_as_someone_elses(host: Host) -> None:
    host.procs.update({10: (1, 7, 500)})
    acc = CpuAccount(lambda: host.host, footprint=lambda: [10], own=OWN)
    acc.sample()
    # pid 10 ended and its pid was reused by a new process of the system (another start time): its
    # 500 jiffies so far are not this second's, and what it used is not known to be the system's
    host.procs[10] = (1, 99, 520)
    host.tick(idle=0, used={})
    sec = acc.sample()
    assert sec is not None and sec.foreign == pytest.approx(1.0)  # never less than what is known: a breach distrusted


def test_stolen_time_is_not_a_neighbours_and_a_failing_footprint_names_nothing(host: Host) -> None:
    def broken() -> list[int]:
        raise RuntimeError("lab going down")

    acc = CpuAccount(lambda: host.host, footprint=broken, own=OWN)
    acc.sample()
    host.tick(idle=0, steal=50, used={OWN: 50})
    sec = acc.sample()
    assert sec is not None and sec.foreign == pytest.approx(0.5)  # 200 - 50 stolen - 50 ours


def test_contention_reads_the_saturated_seconds_of_a_span() -> None:
    seconds = [Second(0, 1, 0.5, 0.9), Second(1, 2, 0.0, 0.3), Second(2, 3, 0.01, 0.6), Second(3, 4, 0.4, 0.0)]
    assert contention(seconds, 0.5, 3.5, 0.03) == (0.01, 0.6)  # the saturated second with the most foreign use
    assert contention(seconds, 1.2, 1.8, 0.03) == (0.0, 0.3)   # a short span: the second that encloses it
    assert contention(seconds, 3.0, 4.0, 0.03) is None         # idle time in every second
    assert contention(seconds, 0.0, 0.9, 0.03) is None         # 0.5 idle: busy with others, yet nobody queued
    assert contention([], 0, 10, 0.03) is None


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200)), min_size=1,
                max_size=20))
def test_shares_are_shares(steps: list[tuple[int, int, int]]) -> None:
    h = Host()
    h.procs.update({10: (1, 7, 0), 20: (OWN, 9, 0)})
    with pytest.MonkeyPatch.context() as mp:
        fake_proc(mp, h)
        acc = CpuAccount(lambda: h.host, footprint=lambda: [10], own=OWN)
        acc.sample()
        seconds = []
        for idle, sys_used, our_used in steps:
            busy = sys_used + our_used
            h.tick(idle=idle, total=idle + busy + 10, used={10: sys_used, 20: our_used})
            seconds.append(acc.sample())
    for (idle, sys_used, our_used), s in zip(steps, seconds, strict=True):
        assert s is not None and 0.0 <= s.idle <= 1.0 and 0.0 <= s.foreign <= 1.0
        assert s.idle + s.foreign <= 1.0 + 1e-9
        assert s.foreign == pytest.approx(10 / (idle + sys_used + our_used + 10))  # the 10 nobody named


def test_scan_reads_this_process_and_its_parent() -> None:
    procs = scan()
    ppid, start, jiffies = procs[os.getpid()]
    assert ppid == os.getppid() and start > 0 and jiffies >= 0
    assert os.getpid() in descendants([os.getppid()], procs)
    assert descendants([-1], procs) == set()
    assert scan("/nonexistent") == {}


def test_a_real_hog_outside_the_run_is_someone_elses_and_inside_the_footprint_it_is_not() -> None:
    """On real /proc: a CPU hog that is not our child (it is reparented when its shell exits) counts as
    foreign, unless the target names it. Two accounts read the same seconds; what tells them apart is
    exactly the hog's CPU time (measured here by psutil), however busy the host is."""
    sh = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "while 1: pass" >/dev/null 2>&1 & echo $!'],
                        capture_output=True, text=True, check=True)
    hog = psutil.Process(int(sh.stdout.strip()))
    try:
        assert hog.ppid() != os.getpid()
        from mlchaos.engine.instruments import cpu_times

        outside = CpuAccount(cpu_times)
        inside = CpuAccount(cpu_times, footprint=lambda: [hog.pid])
        outside.sample()
        inside.sample()
        c0, t0 = sum(hog.cpu_times()[:2]), time.time()
        time.sleep(1.0)
        a, b = outside.sample(), inside.sample()
        used = (sum(hog.cpu_times()[:2]) - c0) / (os.cpu_count() or 1) / (time.time() - t0)  # host share
        assert used > 0.05, "the hog never ran"
        assert a is not None and b is not None
        gap = a.foreign - b.foreign
        assert gap == pytest.approx(used, abs=0.08), (gap, used)
    finally:
        hog.kill()
        hog.wait(5)


def test_the_sampler_runs_beside_the_runner_and_goes_with_it() -> None:
    """The runner's side: the sampler process reports a second per second, learns the footprint from
    its stdin, and is gone when the task is cancelled; killed, it would end with the runner's pipe."""
    import asyncio

    sampler = Sampler(footprint=lambda: [os.getpid()])

    async def go() -> int:
        task = asyncio.create_task(sampler.run(refresh=0.5))
        await asyncio.sleep(2.6)
        kids = [c for c in psutil.Process().children() if "mlchaos.engine.cpushare" in " ".join(c.cmdline())]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert len(kids) == 1
        return kids[0].pid

    pid = asyncio.run(go())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert len(sampler.seconds) >= 1
    assert all(0.0 <= s.idle <= 1.0 and 0.0 <= s.foreign <= 1.0 and s.t1 > s.t0 for s in sampler.seconds)


def test_the_sampler_process_ends_when_its_stdin_closes() -> None:
    p = subprocess.Popen([sys.executable, "-m", "mlchaos.engine.cpushare", "--own", str(os.getpid()),
                          "--every", "0.2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(f"{os.getpid()}\n")
    p.stdin.flush()
    first = p.stdout.readline().split()
    assert len(first) == 4 and float(first[1]) > float(first[0])
    p.stdin.close()  # the runner died: its end of the pipe closed
    assert p.wait(5) == 0


def test_a_new_process_of_the_system_is_the_systems_from_its_second_reading(host: Host) -> None:
    """Only the system's and mlchaos's processes are read at every reading: one that appears (a replica
    restarted under the supervisor) is found by its parent, and one whose parent changed (adopted when
    its parent died) is re-read at the next full refresh."""
    host.procs.update({10: (1, 7, 0)})
    acc = CpuAccount(lambda: host.host, footprint=lambda: [10], own=OWN, refresh=4.0)
    acc.sample()
    host.procs[12] = (10, 50, 0)  # a child of the system starts, and uses 100 jiffies in its first second
    host.tick(idle=0, used={12: 100})
    first = acc.sample()
    host.tick(idle=0, used={12: 100})
    second = acc.sample()
    assert first is not None and first.foreign == pytest.approx(1.0)  # not yet known to be the system's
    assert second is not None and second.foreign == pytest.approx(0.5)  # 100 of 200: the system's
    host.procs[12] = (1, 50, host.procs[12][2])  # adopted by init: no longer below the system
    host.tick(idle=0, used={12: 100})
    assert (s := acc.sample()) is not None and s.foreign == pytest.approx(0.5)  # cached parent: still the system's
    host.tick(idle=0, used={12: 100})
    assert (s := acc.sample()) is not None and s.foreign == pytest.approx(1.0)  # refreshed: someone else's


def test_an_http_targets_footprint_is_what_listens_on_its_port(tmp_path: Path) -> None:
    """A service we did not write and did not start (Python's own http.server): its processes are found
    by the port it listens on, so its CPU use is the system's, not someone else's."""
    from mlchaos.targets.http import HttpTarget, HttpTargetSpec

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = HttpTarget(HttpTargetSpec(url=f"http://127.0.0.1:{port}/"), None)

        def listening() -> bool:
            target._looked = -1e9  # look again now: the server may still be starting
            return bool(target.footprint())

        assert wait_until(listening, 10)
        assert target.footprint() == [server.pid]
        server.kill()
        server.wait(5)
        assert target.footprint() == []  # gone: looked for again (at most every 30 s), nobody listens
        assert HttpTarget(HttpTargetSpec(url="http://192.0.2.1:8080/"), None).footprint() == []  # remote
    finally:
        server.kill()
        server.wait(5)
