"""The watchdog: reverts faults whose lease lapsed, even after ``kill -9`` of the runner.

A runner starts one watchdog per run, in its own session (so a Ctrl-C sent to
the terminal's process group does not reach it, and the runner's death does
not take it along).  The watchdog polls the run's lease files every 100 ms.
Those are leases (confirmed faults) and *intents* (faults about to be, or
half, injected: see :mod:`mlchaos.engine.lease`); it treats both alike:

* a record whose ``expires_at`` passed is reverted (the runner stopped
  renewing it, e.g. it is frozen or hung);
* every record of a runner that is dead is reverted **at once**, not at its
  TTL: nothing will ever renew, confirm or remove it, so waiting only keeps
  the target faulted longer.  "Dead" is checked by PID *and* start time, so
  a reused PID does not keep a fault alive; where the watchdog cannot tell
  (the runner is stopped by SIGSTOP, or hangs), the TTL is the bound.

An intent without an undo record (a third-party plugin with no ``intent``)
cannot be reverted: it is logged as such and dropped.  A revert that fails
(the target's API is down) is tried again, for as long as the watchdog lives,
with a back-off that doubles up to :data:`MAX_BACKOFF`: a fault must not stay
in place, and a target that is struggling should not be hit ten times a second
for it.  Each failure is written into the record (``revert_failures``,
``revert_error``), where ``mlchaos stop`` and a person reading the state
directory find it, and logged at the 1st, 2nd, 4th, 8th… attempt.  If the runner dies
while its run record still lists processes its targets started (a command
the experiment owns), the watchdog stops those process groups too, so a
crashed run leaves nothing running.  It exits only when no intent or lease
of the run remains and either the run's record is gone (normal end) or the
runner is dead.

Before the runner writes its first intent it calls :func:`ensure`, which
waits until this run's watchdog has announced itself (``runs/<run>.watchdog``)
and starts another if the first one died: no fault is injected unguarded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

POLL = 0.1
MAX_BACKOFF = 30.0
"""Seconds between two tries of a revert that keeps failing, at most."""


def _log(base: Path, run_id: str, msg: str, **fields: object) -> None:
    line = json.dumps({"t": time.time(), "run_id": run_id, "msg": msg, **fields})
    with open(base / "watchdog.log", "a") as f:
        f.write(line + "\n")


def _note_failure(path: Path, data: dict[str, object], attempts: int, error: str) -> None:
    """Write the failure into the record, unless its runner rewrote it meanwhile (a renewal wins)."""
    from mlchaos.engine.state import read_json, write_json_atomic

    if read_json(path) != data:
        return
    data.update(revert_failures=attempts, revert_error=error[:500])
    with contextlib.suppress(OSError):  # the log line says it; the revert is what matters
        write_json_atomic(path, data)


def ready_file(base: Path, run_id: str) -> Path:
    """Where a run's watchdog announces itself (not ``*.json``: ``mlchaos stop`` signals those pids)."""
    return base / "runs" / f"{run_id}.watchdog"


def watch(base: Path, run_id: str, runner_pid: int, runner_started: float | None = None) -> int:
    from mlchaos.contract.proc import process_alive, process_start_time
    from mlchaos.engine.lease import INTENT, LeaseStore, Unplanned, revert_record
    from mlchaos.engine.state import read_json, write_json_atomic

    store = LeaseStore(base)
    run_file = base / "runs" / f"{run_id}.json"
    announce = ready_file(base, run_id)
    me = {"pid": os.getpid(), "started": process_start_time(os.getpid()), "ready": True}
    failures: dict[Path, int] = {}
    next_try: dict[Path, float] = {}
    loaded: set[str] = set()
    write_json_atomic(announce, me)  # ready: the imports below only speed up a revert
    _warm_up()
    try:
        while True:
            if read_json(announce) != me:  # first round, or spawn() wrote its placeholder after us
                write_json_atomic(announce, me)
            now = time.time()
            records = store.for_run(run_id)
            runner_alive = process_alive(runner_pid, runner_started)
            for path, data in records:
                _preload(str(data.get("plugin")), loaded)
                expired = now >= float(data.get("expires_at", 0))
                if (not expired and runner_alive) or next_try.get(path, 0.0) > now:
                    continue
                why = "lease expired" if expired else "runner died"
                state = data.get("state") or "active"
                outcome = None
                try:
                    outcome = revert_record(data)
                except Unplanned as exc:
                    _log(base, run_id, "intent without an undo record: not reverted", lease=data.get("lease_id"),
                         plugin=data.get("plugin"), error=str(exc))
                except Exception as exc:  # keep trying: a fault must not stay in place
                    n = failures[path] = failures.get(path, 0) + 1
                    next_try[path] = now + min(MAX_BACKOFF, POLL * 2 ** (n - 1))
                    _note_failure(path, data, n, str(exc))
                    if n & (n - 1) == 0:
                        _log(base, run_id, "revert failed", lease=data.get("lease_id"), state=state, error=str(exc),
                             attempts=n, next_try_in_s=round(next_try[path] - now, 3))
                    continue
                now_data = read_json(path)
                if now_data is not None and state == INTENT and now_data.get("state") != INTENT:
                    continue  # confirmed meanwhile by a live runner: the lease is judged on its own next round
                path.unlink(missing_ok=True)
                _log(base, run_id, f"{why}: fault reverted", lease=data.get("lease_id"), state=state,
                     plugin=data.get("plugin"), late_s=round(now - float(data.get("expires_at", now)), 3))
                if outcome is not None:  # its revert command ran once; a failure is logged, not retried
                    _log(base, run_id, "revert action " + ("ran" if outcome.ok else "failed"),
                         lease=data.get("lease_id"), **outcome.fields())
            if not runner_alive and run_file.exists():
                _stop_owned(base, run_id, run_file)
            if not records and (not run_file.exists() or not runner_alive):
                return 0
            time.sleep(POLL)
    finally:
        if read_json(announce) == me:
            announce.unlink(missing_ok=True)


def _warm_up() -> None:
    """Pay the plugin machinery's imports (pydantic, entry points: ~0.4 s on a busy 2-core box) now,
    while the runner lives, not between its death and the first revert."""
    try:
        import mlchaos.plugin  # noqa: F401
        from mlchaos import registry

        registry.names("fault")
    except Exception:  # a broken plugin environment is revert_record's to report
        return


def _preload(plugin: str, loaded: set[str]) -> None:
    """Import a record's plugin when the record first appears, not when it must be reverted.

    The import (a fault module, its libraries) takes a few hundred ms on a
    busy machine; paid while the runner lives, it is off the path from the
    runner's death to the revert.  Errors are left for ``revert_record``.
    """
    if plugin in loaded:
        return
    loaded.add(plugin)
    from mlchaos import registry

    try:
        registry.get("fault", plugin)
    except Exception:
        return


def _stop_owned(base: Path, run_id: str, run_file: Path) -> None:
    """The runner died: stop the process groups its targets started (checked by start time)."""
    from mlchaos.contract.proc import process_alive
    from mlchaos.engine.state import read_json

    data = read_json(run_file) or {}
    for pid, started in data.get("owned", []):
        try:
            if not process_alive(int(pid), started, zombies=True):  # a zombie leader still names its group
                continue
            try:
                os.killpg(int(pid), signal.SIGCONT)
                os.killpg(int(pid), signal.SIGTERM)
            except ProcessLookupError:  # not a group leader: signal the process itself
                os.kill(int(pid), signal.SIGCONT)
                os.kill(int(pid), signal.SIGTERM)
            _log(base, run_id, "runner died: stopped a process it had started", pid=pid)
        except Exception:
            continue
    run_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlchaos-watchdog")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--runner-pid", type=int, required=True)
    parser.add_argument("--runner-started", type=float, default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the lease clock ends a fault
    try:
        return watch(Path(args.state_dir), args.run_id, args.runner_pid, args.runner_started)
    except KeyboardInterrupt:
        return 1


def spawn(base: Path, run_id: str) -> int:
    """Start the watchdog for a run, detached; return its pid (it announces itself once it watches)."""
    import subprocess

    from mlchaos.contract.proc import process_start_time
    from mlchaos.engine.state import write_json_atomic

    started = process_start_time(os.getpid())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlchaos.engine.watchdog", "--state-dir", str(base),
         "--run-id", run_id, "--runner-pid", str(os.getpid())]
        + (["--runner-started", repr(started)] if started else []),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(base / "watchdog.err", "ab"),  # noqa: SIM115
        start_new_session=True, close_fds=True,
    )
    announce = ready_file(base, run_id)
    if not announce.exists():  # the child may already have announced itself
        write_json_atomic(announce, {"pid": proc.pid, "started": process_start_time(proc.pid), "ready": False})
    return proc.pid


def ensure(base: Path, run_id: str, timeout: float = 30.0) -> int:
    """Return the pid of this run's watchdog once it watches; start one if none is alive.

    The runner calls this before writing an intent: an intent is only a
    promise if a live watchdog will act on it when the runner dies.  Raises
    RuntimeError when no watchdog comes up within ``timeout`` (generous: it
    is ~0.1 s on a quiet machine, and a late fault beats an unguarded one).
    """
    from mlchaos.contract.proc import process_alive
    from mlchaos.engine.state import read_json

    deadline = time.monotonic() + timeout
    spawned = 0
    while True:
        info = read_json(ready_file(base, run_id)) or {}
        pid = int(info.get("pid") or 0)
        alive = bool(pid) and process_alive(pid, info.get("started"))
        if alive and info.get("ready"):
            return pid
        if not alive and spawned < 2:
            pid = spawn(base, run_id)
            spawned += 1
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the watchdog of run {run_id} did not start within {timeout:g}s "
                               f"(see {base / 'watchdog.err'})")
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
