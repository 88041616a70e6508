"""Who a process is, whatever the wall clock does (mlchaos.contract.proc.process_start_time).

psutil's ``create_time()`` is the start in ticks since boot *plus the kernel's boot time*, which the kernel
derives from the wall clock and psutil reads afresh at every call: a clock step (NTP, a VM resumed) moves
every process's create time by whole seconds.  A lease, a lab's state or an undo record written before
the step and checked after it then named "another process": a live runner looked dead to its watchdog
(which reverts its faults), a paused process was not resumed at revert, a running lab was "not up".  Here
the step is made by moving psutil's boot time; the real clock is not touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from mlchaos.contract.proc import CLOCK_TICKS, process_alive, process_start_time
from tests.conftest import wait_until


@pytest.fixture
def clock_step(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """The wall clock stepped 3 s forward, as psutil sees it: every create_time() is 3 s later."""
    from psutil import _pslinux

    real = _pslinux.boot_time
    monkeypatch.setattr(_pslinux, "boot_time", lambda: real() + 3.0)
    yield 3.0


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    p.kill()
    p.wait(5)


def test_the_stamp_is_the_start_tick_since_boot() -> None:
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
    assert process_start_time(os.getpid()) == ticks / CLOCK_TICKS
    assert process_start_time(os.getpid()) == pytest.approx(psutil.Process().create_time() - psutil.boot_time())


def test_a_clock_step_moves_create_time_but_not_the_stamp(clock_step: float) -> None:
    before = psutil.Process().create_time() - clock_step  # what a record written before the step held
    stamp = process_start_time(os.getpid())
    assert psutil.Process().create_time() - before == pytest.approx(clock_step)
    assert stamp is not None and process_alive(os.getpid(), stamp)
    assert not process_alive(os.getpid(), before)  # the old wall-clock record: "another process"


def test_same_process_or_not(sleeper: subprocess.Popen[bytes]) -> None:
    stamp = process_start_time(sleeper.pid)
    assert stamp is not None and process_alive(sleeper.pid, stamp) and process_alive(sleeper.pid)
    assert not process_alive(sleeper.pid, stamp + 1.0)  # the pid reused by a process started later
    assert not process_alive(os.getpid(), stamp)
    # a record written before 2026-12-05: the wall-clock create time, within its tolerance
    wall = psutil.Process(sleeper.pid).create_time()
    assert process_alive(sleeper.pid, wall) and not process_alive(sleeper.pid, wall - 100)
    sleeper.kill()
    assert wait_until(lambda: psutil.Process(sleeper.pid).status() == psutil.STATUS_ZOMBIE, 5)
    assert process_start_time(sleeper.pid) is None and process_start_time(sleeper.pid, zombies=True) == stamp
    # a zombie will never act again, but as a group leader it still names its group
    assert not process_alive(sleeper.pid, stamp)
    assert process_alive(sleeper.pid, stamp, zombies=True)
    sleeper.wait(5)
    assert not process_alive(sleeper.pid, stamp, zombies=True) and process_start_time(sleeper.pid) is None


def test_a_paused_process_is_resumed_after_a_clock_step(sleeper: subprocess.Popen[bytes],
                                                        clock_step: float) -> None:
    """process-pause's revert, as the watchdog or `mlchaos stop` runs it after the clock stepped."""
    from mlchaos.faults.process import ProcessPause

    undo = {"pids": [[sleeper.pid, process_start_time(sleeper.pid)]]}
    os.kill(sleeper.pid, signal.SIGSTOP)
    assert wait_until(lambda: psutil.Process(sleeper.pid).status() == psutil.STATUS_STOPPED, 5)
    ProcessPause.revert(undo)
    assert wait_until(lambda: psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED, 5)


def test_a_running_lab_supervisor_is_up_after_a_clock_step(clock_step: float) -> None:
    from mlchaos.lab.lifetime import supervisor_runs

    me = {"pid": os.getpid(), "start": process_start_time(os.getpid()),
          "started_at": psutil.Process().create_time() - clock_step}
    assert supervisor_runs(me)
    assert not supervisor_runs({**me, "start": None, "started_at": me["started_at"] - clock_step})
    legacy = {"pid": os.getpid(), "started_at": psutil.Process().create_time() - 0.5}  # an older state.json
    assert supervisor_runs(legacy)


def test_stop_pid_waits_for_a_lab_helper_caught_mid_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process on its way out has no command line any more (its memory is gone) yet still runs for a
    moment: `lab down` waits for it instead of skipping it, and never signals it."""
    import time

    from mlchaos.lab.lifetime import stop_pid

    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.4)"])
    monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
    t0 = time.monotonic()
    stop_pid(p.pid, time.monotonic() + 5)
    assert time.monotonic() - t0 >= 0.2  # it waited for the exit
    assert p.wait(5) == 0  # and did not signal it (a SIGTERM would give -15)
