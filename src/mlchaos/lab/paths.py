"""Where the lab keeps its state, and how it picks ports.

Everything the lab owns (ports, pids, logs, data, models, batch outputs) lives
under one directory so that ``lab down`` and the tests can account for all of
it, and so that two labs in two directories never collide.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

ENV_LAB_DIR = "MLCHAOS_LAB_DIR"
HOST = "127.0.0.1"


def default_lab_dir() -> Path:
    """``$MLCHAOS_LAB_DIR`` or ``~/.local/state/mlchaos/lab``."""
    env = os.environ.get(ENV_LAB_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "state" / "mlchaos" / "lab"


def resolve_lab_dir(value: str | Path | None = None, *, default: str | Path | None = None) -> Path:
    """The one rule for which lab directory is meant: ``value`` when given, else ``default`` (a command's own
    default, e.g. the demo's lab), else :func:`default_lab_dir`; always absolute, ``~`` expanded.

    ``Lab``, the CLI, the demo and the delivery faults and probes all resolve through here, so one spelling
    of a directory (relative, ``~``, a symlink) names the same lab everywhere.
    """
    chosen = value if value else (default if default else default_lab_dir())
    return Path(chosen).expanduser().resolve()


class LabPaths:
    """Named locations inside one lab directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = resolve_lab_dir(root)

    @property
    def state(self) -> Path:
        """The supervisor's view of every process (written atomically)."""
        return self.root / "state.json"

    @property
    def token(self) -> Path:
        """The admin token (0600), fresh at each supervisor start: see :mod:`mlchaos.lab.auth`."""
        return self.root / "admin.token"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def feature_db(self) -> Path:
        return self.data / "features.sqlite"

    @property
    def offline(self) -> Path:
        return self.data / "offline"

    @property
    def batch(self) -> Path:
        return self.root / "batch"

    def log_for(self, service: str) -> Path:
        """``logs/<service>.log``; ``service`` must be a plain name (it may come from a command line)."""
        from mlchaos.lab.auth import inside

        return inside(self.logs, service, ".log", "service")

    def ensure(self) -> None:
        for p in (self.root, self.logs, self.data, self.models, self.batch):
            p.mkdir(parents=True, exist_ok=True)


def free_port(host: str = HOST) -> int:
    """A port on ``host`` that the kernel will hand to no one else for a minute.

    The port is chosen by the kernel, then left in TIME_WAIT by a connection to itself that this side
    closes first.  Until TIME_WAIT ends (60 s on Linux) the kernel picks it neither for another
    ``bind(0)`` nor as the local port of an outgoing connection, while a server that sets
    SO_REUSEADDR (uvicorn, the fault proxy, every lab service) can still listen on it.  A port only
    asked for and closed again is a normal ephemeral port: on a busy host an outgoing connection took
    one before the service it was meant for bound it, and that service was restarted on it for ever
    (CI, 2026-12-05: "not ready after 180s: embedding-proxy").
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, 0))
        srv.listen(1)
        port = int(srv.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as cli:
            cli.connect((host, port))
            conn, _ = srv.accept()
            conn.close()  # this side first: its end of the connection, host:port, waits in TIME_WAIT
    return port


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on ``port`` now (SO_REUSEADDR, as servers set: TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
