"""The run journal: append-only JSON Lines, one event per line, flushed as it happens.

Each line is a complete JSON object written with a single ``write`` and
flushed, so after ``kill -9`` of the runner the file is valid up to its last
line (a torn final line is skipped by :func:`read`).  The last line of a
finished run is the ``summary`` event.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, Any


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | tuple):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return repr(obj)


def _clean(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Journal:
    def __init__(self, path: Path | str | None) -> None:
        self.path = Path(path) if path else None
        self.t0 = time.time()
        self._f: IO[str] | None = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one journal, one run: an existing file at this path is replaced, never appended to
            self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - held for the run
        self.events: list[dict[str, Any]] = []

    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        now = time.time()
        rec = {"t": round(now, 6), "rel": round(now - self.t0, 6), "event": event, **fields}
        rec = _clean(rec)
        self.events.append(rec)
        if self._f is not None:
            self._f.write(json.dumps(rec, default=_default, separators=(",", ":")) + "\n")
            self._f.flush()
        return rec

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read(path: Path | str) -> list[dict[str, Any]]:
    """All complete events of a journal; a torn last line (crash mid-write) is ignored."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's summary as JSON data (:meth:`~mlchaos.engine.runsummary.RunSummary.from_events`).

    A journal cut short by ``kill -9`` has no ``summary`` event; one is rebuilt
    from its events, so it still reads.
    """
    from mlchaos.engine.runsummary import RunSummary

    return RunSummary.from_events(events).to_dict()
