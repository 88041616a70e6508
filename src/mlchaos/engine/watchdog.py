"""The watchdog: reverts faults whose lease lapsed, even after ``kill -9`` of the runner.

A runner starts one watchdog per run, in its own session (so a Ctrl-C sent to
the terminal's process group does not reach it, and the runner's death does
not take it along).  The watchdog polls the run's lease files every 100 ms
and reverts any whose ``expires_at`` passed.  If the runner dies while its
run record still lists processes its targets started (a command the
experiment owns), the watchdog stops those process groups too, so a crashed
run leaves nothing running.  It exits when the run's record is gone (normal
end) and no lease of the run remains, or when the runner is dead and every
lease has been reverted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

POLL = 0.1


def _log(base: Path, run_id: str, msg: str, **fields: object) -> None:
    line = json.dumps({"t": time.time(), "run_id": run_id, "msg": msg, **fields})
    with open(base / "watchdog.log", "a") as f:
        f.write(line + "\n")


def watch(base: Path, run_id: str, runner_pid: int) -> int:
    from mlchaos.engine.lease import LeaseStore, revert_record
    from mlchaos.engine.state import pid_alive

    store = LeaseStore(base)
    run_file = base / "runs" / f"{run_id}.json"
    failures: dict[Path, int] = {}
    while True:
        now = time.time()
        leases = store.for_run(run_id)
        runner_alive = pid_alive(runner_pid)
        for path, data in leases:
            if now >= float(data.get("expires_at", 0)):
                try:
                    revert_record(data)
                except Exception as exc:  # keep trying: a fault must not stay in place
                    failures[path] = failures.get(path, 0) + 1
                    if failures[path] in (1, 10, 100):
                        _log(base, run_id, "revert failed", lease=data.get("lease_id"), error=str(exc))
                    continue
                path.unlink(missing_ok=True)
                _log(base, run_id, "lease expired: fault reverted", lease=data.get("lease_id"),
                     plugin=data.get("plugin"), late_s=round(now - float(data.get("expires_at", now)), 3))
        if not runner_alive and run_file.exists():
            _stop_owned(base, run_id, run_file)
        if not leases and (not run_file.exists() or not runner_alive):
            return 0
        time.sleep(POLL)


def _stop_owned(base: Path, run_id: str, run_file: Path) -> None:
    """The runner died: stop the process groups its targets started (checked by start time)."""
    from mlchaos.engine.state import read_json

    data = read_json(run_file) or {}
    for pid, started in data.get("owned", []):
        try:
            import psutil

            if abs(psutil.Process(int(pid)).create_time() - float(started)) > 0.05:
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
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the lease clock ends a fault
    try:
        return watch(Path(args.state_dir), args.run_id, args.runner_pid)
    except KeyboardInterrupt:
        return 1


def spawn(base: Path, run_id: str) -> int:
    """Start the watchdog for a run, detached; return its pid."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlchaos.engine.watchdog", "--state-dir", str(base),
         "--run-id", run_id, "--runner-pid", str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(base / "watchdog.err", "ab"),  # noqa: SIM115
        start_new_session=True, close_fds=True,
    )
    return proc.pid


if __name__ == "__main__":
    sys.exit(main())
