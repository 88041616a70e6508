"""Start, stop or restart a real ``mlflow models serve`` — the service "mlchaos did not start" in the tests.

Why a script: an experiment's ``command`` step restarts the server (so that it re-reads
its model directory), as an operator's ``systemctl restart`` would; the test's fixture
uses the same functions to start it and to stop it at the end.  The server runs in a
session of its own (so the step's process group can end without taking it along) and its
PID is kept in a file: whoever stops it next, the step or the fixture, reads it there.

    python tests/stacks/serve_ctl.py restart --pidfile P --model DIR --port N --log FILE

``start`` and ``restart`` return once ``GET /ping`` answers 200 (exit 1, with the end of the
server's log on stderr, when it does not within ``--wait`` seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _alive(pgid: int) -> bool:
    """Whether a process of the group still runs; a zombie does not count (only its parent can reap it, and
    the first server's parent is the test process, not the restart step)."""
    import psutil

    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def stop(pidfile: Path) -> None:
    """Stop the server's whole process group (the mlflow CLI and its uvicorn), SIGKILL after 2 s."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child (the fixture's first start)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    pidfile.unlink(missing_ok=True)


def start(pidfile: Path, model: Path, port: int, log: Path, wait: float = 90.0) -> int:
    """Start the server on 127.0.0.1:port and wait until it answers; return its PID (its group's id)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    argv = [str(mlflow) if mlflow.exists() else "mlflow", "models", "serve", "-m", str(model), "--env-manager",
            "local", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _up(port):
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(pidfile)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"mlflow models serve did not answer /ping on port {port}; its log ends:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["start", "stop", "restart"])
    ap.add_argument("--pidfile", type=Path, required=True)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--port", type=int)
    ap.add_argument("--log", type=Path)
    ap.add_argument("--wait", type=float, default=90.0)
    a = ap.parse_args(argv)
    if a.action in ("stop", "restart"):
        stop(a.pidfile)
    if a.action in ("start", "restart"):
        if a.model is None or a.port is None or a.log is None:
            ap.error("start and restart need --model, --port and --log")
        try:
            start(a.pidfile, a.model, a.port, a.log, a.wait)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
