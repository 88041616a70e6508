"""Failpoint arming records on disk: where they live, how they are read and checked, the per-process cache.

Split from :mod:`mlchaos.failpoints` (the user-facing hook and the arming API) because this is the
part both sides share: the job that calls ``failpoint(...)`` reads records through :class:`_Cache`,
the runner writes them with :func:`_write_json`; a record that cannot be used is disarmed and logged
once (see the module docstring of :mod:`mlchaos.failpoints` for the control channel's design).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, TypeGuard

from mlchaos.atomic import write_json_atomic

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
log = logging.getLogger("mlchaos.failpoint")  # the name users configured before the module was renamed
_CHECK_INTERVAL = 0.05
"""Seconds between two looks at the failpoint directory from a disarmed call."""
_RECENT_NS = 1_000_000_000
"""Directory mtimes younger than this are not trusted: filesystem timestamps come from a coarse
clock (a few ms on Linux, up to 1 s on some filesystems), so two changes can share one mtime."""


def failpoint_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where arming records live: ``directory`` if given, else from the environment (see module doc)."""
    if directory is not None:
        return Path(directory)
    explicit = os.environ.get("MLCHAOS_FAILPOINT_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("MLCHAOS_STATE_DIR")
    base = Path(state) if state else Path.home() / ".local" / "state" / "mlchaos"
    return base / "failpoints"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name: invalid failpoint name {name!r} (letters, digits, '_', '.', '-')")
    return name


def _record_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def _effects_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.effects.jsonl"


def _write_json(path: Path, record: dict[str, Any]) -> None:
    write_json_atomic(path, record, mkdir=True, sort_keys=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when absent or unreadable (an unreadable one is logged once)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        _warn_once(path, f"{type(exc).__name__}: {exc}")
        return None
    if not isinstance(data, dict):
        _warn_once(path, f"a JSON {type(data).__name__}, not an object")
        return None
    return data


_warned: set[tuple[str, str]] = set()


def _warn_once(path: Path, reason: str) -> None:
    """Log a record that cannot be used, once per file and reason: the caller's job goes on, disarmed."""
    key = (str(path), reason)
    if key not in _warned:
        _warned.add(key)
        log.warning("failpoint record %s cannot be used, treated as disarmed: %s", path, reason)


def _is_number(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _problem(rec: dict[str, Any]) -> str | None:
    """Why an arming record cannot be applied, or None when it is well-formed.

    Checked once per read, so that a hand-edited or half-corrupted record never
    raises inside the user's job, and a lease that cannot expire (NaN, inf, absent)
    never arms anything: the guarantee is that a fault goes away on its own.
    """
    exp = rec.get("expires_at")
    if not _is_number(exp) or not math.isfinite(exp):
        return f"expires_at must be a finite number, got {exp!r}"
    if not isinstance(rec.get("kind"), str):
        return f"kind must be a string, got {rec.get('kind')!r}"
    cols = rec.get("columns")
    if cols is not None and not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
        return f"columns must be a list of names, got {cols!r}"
    frac = rec.get("fraction", 0.1)
    if not _is_number(frac) or not math.isfinite(frac):
        return f"fraction must be a finite number, got {frac!r}"
    seed = rec.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        return f"seed must be a non-negative int, got {seed!r}"
    if not isinstance(rec.get("params", {}), dict):
        return f"params must be an object, got {rec.get('params')!r}"
    return None


def _read_record(path: Path) -> dict[str, Any] | None:
    """A usable arming record at ``path`` (expired or not), else None; a malformed one is logged once."""
    rec = _read_json(path)
    if rec is None:
        return None
    problem = _problem(rec)
    if problem is not None:
        _warn_once(path, problem)
        return None
    return rec


class _Cache:
    """Records of one directory, re-read only when the directory's mtime moves.

    The directory is checked at most every :data:`_CHECK_INTERVAL` seconds
    (so a disarmed call costs two environment lookups and a clock read), and
    on every call while its mtime is fresh.  Arming from another process
    therefore takes effect within that interval; arming, renewing or
    disarming from this process takes effect at once.
    """

    def __init__(self) -> None:
        self.directory: str | None = None
        self.env_key: tuple[str | None, str | None] = (None, "\0unset")
        self.dir_str = ""
        self.mtime_ns = -1
        self.absent = True
        self.next_check = 0.0
        self.records: dict[str, dict[str, Any]] = {}
        self.hits: dict[str, int] = {}

    def invalidate(self) -> None:
        self.next_check = 0.0
        self.records = {}

    def _refresh(self, now: float) -> None:
        try:
            mtime = os.stat(self.dir_str).st_mtime_ns
        except OSError:  # no directory: nothing was ever armed
            self.absent, self.records, self.directory = True, {}, None
            self.next_check = now + _CHECK_INTERVAL
            return
        self.absent = False
        fresh = time.time_ns() - mtime < _RECENT_NS
        if self.dir_str != self.directory or mtime != self.mtime_ns or fresh:
            self.records = {}
            self.directory, self.mtime_ns = self.dir_str, mtime
        self.next_check = now if fresh else now + _CHECK_INTERVAL

    def lookup(self, name: str) -> dict[str, Any] | None:
        env = os.environ
        key = (env.get("MLCHAOS_FAILPOINT_DIR"), env.get("MLCHAOS_STATE_DIR"))
        if key != self.env_key:  # resolve the directory only when the environment changes
            self.env_key, self.dir_str = key, str(failpoint_dir())
            self.next_check = 0.0
        now = time.monotonic()
        if now >= self.next_check:
            self._refresh(now)
        if self.absent:
            return None
        rec = self.records.get(name)
        if rec is None:
            _check_name(name)  # only on a cache miss: a bad name never reaches the filesystem
            rec = _read_record(_record_path(Path(self.dir_str), name)) or {}
            self.records[name] = rec
        if not rec or rec["expires_at"] <= time.time():
            return None
        return rec


_cache = _Cache()
