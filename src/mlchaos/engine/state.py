"""This machine's mlchaos state: active leases, active runs and the stop flag.

One directory, so that ``mlchaos stop`` and a watchdog started by a runner
that has since died can find every fault still in place.  It is
``$MLCHAOS_STATE_DIR`` if set, else ``$XDG_STATE_HOME/mlchaos``, else
``~/.local/state/mlchaos``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlchaos import atomic


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


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = False) -> None:
    """Write so that a reader never sees half a file (:mod:`mlchaos.atomic`; 0600, these are leases and runs).

    ``durable`` also fsyncs the file before the rename and the directory after
    it, so the record survives a machine crash, not only a process crash (the
    page cache outlives ``kill -9`` anyway).  Write-ahead records need it: an
    intent that a power cut loses is a fault nobody knows to undo.  Renewals
    do not: losing one only makes a lease look older, the safe direction.
    """
    atomic.write_json_atomic(path, data, durable=durable, mode=0o600)


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
