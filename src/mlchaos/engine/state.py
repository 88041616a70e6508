"""This machine's mlchaos state: active leases, active runs and the stop flag.

One directory, so that ``mlchaos stop`` and a watchdog started by a runner
that has since died can find every fault still in place.  It is
``$MLCHAOS_STATE_DIR`` if set, else ``$XDG_STATE_HOME/mlchaos``, else
``~/.local/state/mlchaos``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    env = os.environ.get("MLCHAOS_STATE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = Path(xdg) / "mlchaos" if xdg else Path.home() / ".local" / "state" / "mlchaos"
    for sub in ("leases", "runs"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return base


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write so that a reader never sees half a file (rename is atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def stop_flag(base: Path | None = None) -> Path:
    return (base or state_dir()) / "STOP"


def is_stopped(base: Path | None = None) -> bool:
    return stop_flag(base).exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
