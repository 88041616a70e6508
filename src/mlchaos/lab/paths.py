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
    """Ask the kernel for a free TCP port on ``host``.

    There is a window between closing this socket and the service binding it;
    on loopback with ports handed out by the kernel that race is rare, and the
    supervisor retries a failed start on a fresh port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on ``port`` now (SO_REUSEADDR, as servers set: TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
