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


def process_start_time(pid: int) -> float | None:
    """The process's start time (seconds since the epoch), None if it is gone or a zombie."""
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(p.create_time())
    except Exception:
        return None


def process_alive(pid: int, started: float | None = None) -> bool:
    """``pid`` runs and, when ``started`` is given, is the same process (not a reused PID).

    A zombie counts as dead: a runner killed by SIGKILL stays a zombie until
    its parent reaps it, and it will never renew or remove anything again.
    """
    now = process_start_time(pid)
    if now is None:
        return False
    return not started or abs(now - float(started)) <= 0.05
