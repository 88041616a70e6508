"""Start a proxy as a child process and learn its ports (used by the engine, the lab and tests)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from mlchaos.proxy.client import ProxyClient
from mlchaos.proxy.limits import Limits


class SpawnError(RuntimeError):
    """The proxy process did not come up; the message carries its stderr."""


class ProxyHandle:
    """A running proxy child: ``listen_addr`` ('127.0.0.1:PORT'), ``control_url``, ``client``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], info: dict[str, Any], token: str | None) -> None:
        self.proc = proc
        self.info = info
        self.listen_addr: str = info["listen"]
        self.control_url: str = info["control"]
        self.pid = proc.pid
        self.client = ProxyClient(self.control_url, token=token)
        self.log: IO[Any] | None = None
        """The child's stderr (a temporary file) when the caller did not pass one."""

    @property
    def port(self) -> int:
        return int(self.listen_addr.rsplit(":", 1)[1])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> ProxyHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(
    listen: str = "127.0.0.1:0",
    upstream: str = "127.0.0.1:80",
    mode: str = "http",
    control: str = "127.0.0.1:0",
    token: str | None = None,
    workers: int = 1,
    loop: str = "auto",
    timeout: float = 15.0,
    stderr: IO[Any] | int | None = None,
    extra_env: dict[str, str] | None = None,
    limits: Limits | None = None,
) -> ProxyHandle:
    """Start ``python -m mlchaos.proxy`` and return once it accepts traffic.

    Ports default to 0 (the OS picks); read them from the handle.  The child
    runs in its own session so a Ctrl-C on the caller's terminal does not hit
    it twice; call ``stop()`` (or use the handle as a context manager).
    The token travels in the child's environment, never its argv (which any
    local user can read in /proc/PID/cmdline); ``token=None`` means none, even
    when this process has ``$MLCHAOS_PROXY_TOKEN`` set.
    """
    cmd = [sys.executable, "-m", "mlchaos.proxy", "--listen", listen, "--upstream", upstream, "--mode", mode,
           "--control", control, "--workers", str(workers), "--loop", loop, *(limits.to_args() if limits else [])]
    env = {k: v for k, v in os.environ.items() if k != "MLCHAOS_PROXY_TOKEN"}
    if token:
        env["MLCHAOS_PROXY_TOKEN"] = token
    env.update(extra_env or {})
    log: IO[Any] | int = stderr if stderr is not None else tempfile.TemporaryFile()  # noqa: SIM115 - kept by the handle, read on failure
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            break
        r, _, _ = select.select([proc.stdout], [], [], min(left, 0.1))
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    if not line.endswith(b"\n"):
        err = b""
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if stderr is None and not isinstance(log, int):
            log.seek(0)
            err = log.read()
            log.close()
        proc.stdout.close()
        raise SpawnError(f"proxy did not start (exit {proc.returncode}): {err.decode(errors='replace').strip()}")
    handle = ProxyHandle(proc, json.loads(line), token)
    handle.log = None if isinstance(log, int) or stderr is not None else log
    return handle
