"""Lab processes live no longer than their supervisor, and a dead lab's leftovers are reaped.

The supervisor starts its services from a ``multiprocessing`` fork server, so
a service's parent is the fork server, not the supervisor; and the fork server
stays up while any service holds its "alive" pipe, so it does not die with the
supervisor either.  ``kill -9`` of the supervisor therefore used to leave every
service running and listening, with nobody to stop it.  Two mechanisms fix
that, both started in each service at birth (:func:`die_with`):

* ``PR_SET_PDEATHSIG`` (Linux): SIGTERM when the parent (the fork server) dies;
* a watch thread on the supervisor itself: a ``pidfd`` (or, without one, a
  /proc poll every 100 ms) that wakes when the supervisor exits, even as an
  unreaped zombie.  It sends this process SIGTERM (uvicorn shuts down
  gracefully), and if it is still alive ``grace`` seconds later kills its own
  children (a grandchild has no watch thread: threads do not survive fork)
  and exits.

When both fail (the service was stopped, or wedged), the next ``Lab`` command
reaps what a dead lab left, from the records in its ``state.json``
(:func:`leftovers`, :func:`reap`): the services' pids, checked against their
start times so a reused pid is never killed, and the members of the
supervisor's process group (it is a session leader, and Linux never hands out
a pid still in use as a group id).

A lab may itself have an *owner*: ``mlchaos demo`` starts its lab with
``--exit-with PID:START`` (:func:`owner_arg`), and the supervisor brings the
lab down when that process is gone (:func:`wait_exit` with its start time, so
a reused pid does not keep the lab alive).  ``kill -9`` of the demo, or the
SIGHUP of a closed terminal, then leaves no lab behind.  A lab started by
``mlchaos lab up`` has no owner: it is a long-lived system under test.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from mlchaos.contract.proc import process_alive, process_start_time

PR_SET_PDEATHSIG = 1
GRACE_S = 1.0
"""Seconds a service gets to shut down gracefully after its supervisor died, before it is killed."""


def die_with(supervisor_pid: int, grace: float = GRACE_S) -> None:
    """Make this process exit when ``supervisor_pid`` exits (call at the start of a lab service)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(
        target=_watch, args=(supervisor_pid, grace), name="mlchaos-supervisor-watch", daemon=True
    ).start()


def exit_with_parent() -> None:
    """Leave at once (``os._exit``) when this process's parent exits: for helpers with nothing to shut down."""
    parent = os.getppid()

    def watch() -> None:
        wait_exit(parent)
        os._exit(0)

    threading.Thread(target=watch, name="mlchaos-parent-watch", daemon=True).start()


def _watch(pid: int, grace: float) -> None:
    wait_exit(pid)
    sys.stdout.write(f'{{"ts": {time.time():.3f}, "level": "warning", "event": "supervisor_gone", '
                     f'"supervisor": {pid}, "pid": {os.getpid()}}}\n')
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    # still here: the graceful path is stuck (or SIGTERM is ignored); take our children with us
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    os._exit(1)


def wait_exit(pid: int, started_at: float | None = None) -> None:
    """Block until ``pid`` has exited (a zombie counts as exited).

    With ``started_at`` (its :func:`mlchaos.contract.proc.process_start_time`), a process with that pid
    but another start is not the one waited for: it has exited already and the pid was reused.
    """
    def gone() -> bool:
        return is_gone(pid) or (started_at is not None and not _same_start(pid, started_at))

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfd (old kernel, not Linux): poll
        while not gone():
            time.sleep(0.1)
        return
    if gone():  # checked after the pidfd is open: the fd then names this very process, whatever comes later
        os.close(fd)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(fd)


def down_when_gone(owner: tuple[int, float | None], control_url: str, token: str | None, *,
                   stopping: Callable[[], bool], log: Callable[..., None]) -> None:
    """Once ``owner`` (pid, start time) has exited, ``POST /down`` to the supervisor at ``control_url``.

    A daemon thread, so it never holds the supervisor up.  ``/down`` is the very path of ``mlchaos lab
    down``: services stopped, state written, then the server.  It is retried while the control API is not
    up yet (an owner that died while the lab was starting); after a minute without it, the supervisor
    SIGTERMs itself, and its services die with it (:func:`die_with`).
    """
    def run() -> None:
        import httpx

        from mlchaos.lab import auth

        pid, started_at = owner
        wait_exit(pid, started_at)
        log("owner_gone", level="warning", owner=pid)
        headers = auth.bearer(token) if token else None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stopping():
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(control_url + "/down", headers=headers, timeout=60).status_code == 200:
                    return
            time.sleep(0.2)
        if not stopping():
            log("owner_gone_exit", level="error", owner=pid)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=run, name="mlchaos-owner-watch", daemon=True).start()


def owner_arg(pid: int | None = None) -> str:
    """``PID:START`` of ``pid`` (default: this process), the supervisor's ``--exit-with`` value."""
    pid = os.getpid() if pid is None else pid
    start = process_start_time(pid)
    if start is None:
        raise psutil.NoSuchProcess(pid)
    return f"{pid}:{start!r}"


def parse_owner(value: str) -> tuple[int, float | None]:
    """``PID`` or ``PID:START`` → (pid, start time or None); ValueError names what is wrong."""
    pid_s, _, start_s = value.partition(":")
    try:
        pid = int(pid_s)
        start = float(start_s) if start_s else None
    except ValueError:
        raise ValueError(f"expected PID or PID:START, got {value!r}") from None
    if pid <= 0:
        raise ValueError(f"expected a positive pid, got {value!r}")
    return pid, start


def is_gone(pid: int) -> bool:
    """True when ``pid`` does not run: absent, or a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def _ours(proc: psutil.Process) -> bool:
    """Only ever stop our own kind of process: a lab service, the fork server, the resource tracker."""
    try:
        cmd = " ".join(proc.cmdline())
        return ("mlchaos" in cmd or "multiprocessing" in cmd) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def leftovers(state: Mapping[str, Any]) -> dict[int, str]:
    """Processes a dead lab left running (pid → name), from its last ``state.json``; empty if the lab is up."""
    sup = state.get("supervisor") or {}
    sup_pid = sup.get("pid")
    if not isinstance(sup_pid, int) or supervisor_runs(sup):
        return {}  # nothing is left over from a lab that runs
    sup_gone = is_gone(sup_pid)
    found: dict[int, str] = {}
    for s in state.get("services") or []:
        pid = s.get("pid")
        if isinstance(pid, int) and _same_start(pid, _stamp(s)):
            with contextlib.suppress(psutil.Error):
                if _ours(psutil.Process(pid)):
                    found[pid] = str(s.get("name"))
    # its process group: the fork server, the resource tracker, grandchildren.  A group id is only
    # ours while its leader (the supervisor) is gone or our zombie: Linux does not reuse a pid that
    # still names a group, so a live process with that pid means the group died and was reborn.
    if sup.get("pgid") == sup_pid and sup_gone:
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.pid != sup_pid and os.getpgid(proc.pid) == sup_pid and _ours(proc):
                    found.setdefault(proc.pid, proc.name())
    return found


def supervisor_runs(sup: Mapping[str, Any]) -> bool:
    """The supervisor ``state.json`` records (its ``supervisor`` part) runs, and is not another process
    that reused its pid (told apart by its ``start`` stamp, or an older state's ``started_at``)."""
    pid = sup.get("pid")
    if not isinstance(pid, int) or is_gone(pid):
        return False
    start = _stamp(sup)
    return start is None or _same_start(pid, start)


def _stamp(record: Mapping[str, Any]) -> object:
    """A record's start stamp: ``start``, or an older state's wall-clock ``started_at``."""
    return record["start"] if record.get("start") is not None else record.get("started_at")


def _same_start(pid: int, started_at: object) -> bool:
    """``pid`` is the process whose start stamp is ``started_at``, not a reuse of its pid.

    The stamp is the start in ticks since boot (:func:`mlchaos.contract.proc.process_start_time`): a
    wall-clock create time adds the kernel's boot time, which a clock step moves by whole seconds, so a
    record written before the step and read after it named "another process" (a running lab "not up").  A state written before
    2026-12-05 holds a wall-clock time, compared within 2 s as it was written.
    """
    if not isinstance(started_at, int | float):
        return False
    return process_alive(pid, float(started_at), tolerance=2.0)


def reap(pids: Mapping[int, str], timeout: float = 3.0) -> list[int]:
    """SIGTERM (and SIGCONT, for a stopped one) each pid, SIGKILL what is left after ``timeout``; the pids stopped."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            p.terminate()
            p.resume()
            procs.append(p)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=2.0)
    return [p.pid for p in procs]


def reap_if_child(pid: int) -> None:
    """Collect the exit status of a supervisor this process started through another ``Lab`` handle."""
    with contextlib.suppress(ChildProcessError, OSError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.02)


def stop_pid(pid: int, deadline: float) -> None:
    """Stop one process a lab started (TERM, then KILL at ``deadline``), never a reused pid's new owner."""
    try:
        proc = psutil.Process(pid)
        # a pid from an old state.json may have been reused: only ever stop our own kind of process
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    if not cmd:  # exiting (its memory, command line included, already gone) or a kernel thread: not
        # signalled, but a lab helper that is on its way out is waited for (CI, 2026-12-05: the fork
        # server and resource tracker were caught mid-exit and reported as left behind)
        with contextlib.suppress(psutil.Error):
            proc.wait(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
        return
    if "mlchaos" not in cmd and "multiprocessing" not in cmd:
        return
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return
        try:  # give helpers that exit on their own (fork server, resource tracker) a moment first
            proc.wait(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            return
        except psutil.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    except psutil.NoSuchProcess:
        return
