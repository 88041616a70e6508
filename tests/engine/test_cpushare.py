"""Whose CPU it was (mlchaos.engine.cpushare): the split of the host's busy time between the system under
test, mlchaos and everyone else, on fake readings for the arithmetic and on real processes for /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlchaos.engine import cpushare
from mlchaos.engine.cpushare import CpuAccount, Second, descendants, scan

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


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    h = Host()
    monkeypatch.setattr(cpushare, "scan", lambda proc="/proc": dict(h.procs))
    clock = iter(range(1000, 2000))
    monkeypatch.setattr(cpushare.time, "time", lambda: float(next(clock)))
    yield h


def test_busy_time_splits_into_the_systems_ours_and_the_rest(host: Host) -> None:
    host.procs.update({10: (1, 7, 0), 11: (10, 8, 0), 20: (OWN, 9, 0), 30: (1, 9, 0)})
    acc = CpuAccount(lambda: host.host, footprint=lambda: [10], own=OWN)
    acc.sample()
    # 200 jiffies (2 cores): 10 idle; the system (10 and its child 11) 60, mlchaos (its child 20) 30,
    # pid 30 (someone else) 100
    host.tick(idle=10, used={10: 40, 11: 20, 20: 30, 30: 100})
    acc.sample()
    (sec,) = acc.seconds
    assert (sec.t0, sec.t1) == (1000.0, 1001.0)
    assert sec.idle == pytest.approx(0.05) and sec.foreign == pytest.approx(0.5)
    # the same second with pid 30 named by the target: nothing was someone else's
    acc2 = CpuAccount(lambda: host.host, footprint=lambda: [10, 30], own=OWN)
    host.procs[30] = (1, 9, 0)
    acc2.sample()
    host.tick(idle=10, used={10: 40, 11: 20, 20: 30, 30: 100})
    acc2.sample()
    assert acc2.seconds[0].foreign == pytest.approx(0.0)


def test_a_process_that_started_or_ended_between_readings_counts_as_someone_elses(host: Host) -> None:
    host.procs.update({10: (1, 7, 500)})
    acc = CpuAccount(lambda: host.host, footprint=lambda: [10], own=OWN)
    acc.sample()
    # pid 10 ended and its pid was reused by a new process of the system (another start time): its
    # 500 jiffies so far are not this second's, and what it used is not known to be the system's
    host.procs[10] = (1, 99, 520)
    host.tick(idle=0, used={})
    acc.sample()
    assert acc.seconds[-1].foreign == pytest.approx(1.0)  # never less than what is known: a breach distrusted


def test_stolen_time_is_not_a_neighbours_and_a_failing_footprint_names_nothing(host: Host) -> None:
    def broken() -> list[int]:
        raise RuntimeError("lab going down")

    acc = CpuAccount(lambda: host.host, footprint=broken, own=OWN)
    acc.sample()
    host.tick(idle=0, steal=50, used={OWN: 50})
    acc.sample()
    assert acc.seconds[-1].foreign == pytest.approx(0.5)  # 200 - 50 stolen - 50 ours


def test_contention_reads_the_saturated_seconds_of_a_span() -> None:
    acc = CpuAccount(lambda: None)
    acc.seconds.extend([Second(0, 1, 0.5, 0.9), Second(1, 2, 0.0, 0.3), Second(2, 3, 0.01, 0.6),
                        Second(3, 4, 0.4, 0.0)])
    assert acc.contention(0.5, 3.5, 0.03) == (0.01, 0.6)  # the saturated second with the most foreign use
    assert acc.contention(1.2, 1.8, 0.03) == (0.0, 0.3)   # a short span: the second that encloses it
    assert acc.contention(3.0, 4.0, 0.03) is None         # idle time in every second
    assert acc.contention(0.0, 0.9, 0.03) is None         # 0.5 idle: busy with others, yet nobody queued
    assert CpuAccount(lambda: None).contention(0, 10, 0.03) is None


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200)), min_size=1,
                max_size=20))
def test_shares_are_shares(steps: list[tuple[int, int, int]]) -> None:
    h = Host()
    h.procs.update({10: (1, 7, 0), 20: (OWN, 9, 0)})
    original = cpushare.scan
    cpushare.scan = lambda proc="/proc": dict(h.procs)
    try:
        acc = CpuAccount(lambda: h.host, footprint=lambda: [10], own=OWN)
        acc.sample()
        for idle, sys_used, our_used in steps:
            busy = sys_used + our_used
            h.tick(idle=idle, total=idle + busy + 10, used={10: sys_used, 20: our_used})
            acc.sample()
    finally:
        cpushare.scan = original
    for s in acc.seconds:
        assert 0.0 <= s.idle <= 1.0 and 0.0 <= s.foreign <= 1.0
        assert s.idle + s.foreign <= 1.0 + 1e-9


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
        outside.sample()
        inside.sample()
        used = (sum(hog.cpu_times()[:2]) - c0) / (os.cpu_count() or 1) / (time.time() - t0)  # host share
        assert used > 0.05, "the hog never ran"
        gap = outside.seconds[-1].foreign - inside.seconds[-1].foreign
        assert gap == pytest.approx(used, abs=0.08), (gap, used)
    finally:
        hog.kill()
        hog.wait(5)
