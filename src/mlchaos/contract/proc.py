"""Is a process still there, and is it the same one?

Targets check the PIDs they resolved (:mod:`mlchaos.targets.process`), the
watchdog and ``mlchaos stop`` check the runner that holds a lease: one
answer for both, so a zombie or a reused PID is judged the same everywhere.
"""

from __future__ import annotations

import os

__all__ = ["pid_alive", "process_alive", "process_start_time"]


def pid_alive(pid: int) -> bool:
    """``pid`` exists (a process we may not signal counts as alive: it is there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
WALL_CLOCK = 1e9
"""A start stamp above this is a wall-clock time (epoch seconds), as records written before 2026-12-05
hold; below it, seconds since boot (31 years of uptime would be needed to reach it)."""


def process_start_time(pid: int, zombies: bool = False) -> float | None:
    """When ``pid`` started, in seconds since the machine booted: an identity stamp, not a date.
    None if it is gone, or a zombie unless ``zombies`` (a zombie group leader still names its group).

    One process writes it (a lease, a lab's state, an undo record) and another compares it later, so it
    must not move when the wall clock does.  psutil's ``create_time()`` is the boot time plus the start
    ticks, and the boot time is the kernel's ``btime``, recomputed from the wall clock and cached by
    each process at its first use: after a clock step (NTP, a VM resumed) two processes disagree by
    whole seconds about the same process, and a paused process "was someone else" at revert and stayed
    paused.  The start ticks (``/proc/PID/stat`` field 22) never change.  Where ``/proc`` is missing
    (not Linux), psutil's epoch time stands in.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _create_time(pid, zombies)
    except OSError:
        return _create_time(pid, zombies)
    fields = raw[raw.rfind(b")") + 2:].split()
    if not fields or (fields[0] in (b"Z", b"X") and not zombies):  # a zombie will never act again
        return None
    return int(fields[19]) / CLOCK_TICKS


def _create_time(pid: int, zombies: bool = False) -> float | None:
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE and not zombies:
            return None
        return float(p.create_time())
    except Exception:
        return None


def process_alive(pid: int, started: float | None = None, tolerance: float = 0.05, zombies: bool = False) -> bool:
    """``pid`` runs and, when ``started`` (its :func:`process_start_time`) is given, is the same process
    (not a reused PID).

    A zombie counts as dead: a runner killed by SIGKILL stays a zombie until its parent reaps it, and it
    will never renew or remove anything again.  A wall-clock ``started`` (an older record) is compared
    with psutil's ``create_time()`` within ``tolerance`` seconds, as it was written.
    """
    now = process_start_time(pid, zombies)
    if now is None:
        return False
    if not started:
        return True
    if now > WALL_CLOCK:  # no /proc: both are psutil's epoch times
        return abs(now - float(started)) <= tolerance
    if float(started) > WALL_CLOCK:  # an older record
        then = _create_time(pid, zombies)
        return then is not None and abs(then - float(started)) <= tolerance
    return abs(now - float(started)) < 0.5 / CLOCK_TICKS  # the same tick
