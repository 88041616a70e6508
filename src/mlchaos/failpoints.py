"""Failpoints: named places in user code where an experiment may corrupt data.

``failpoint("batch.after_extract", df)`` returns ``df`` untouched unless an
experiment armed that name; armed, it applies the declared corruption (any
:func:`mlchaos.data.corrupt` kind, or ``"raise"``) and appends what it did to
an effects log.  Also usable as ``failpoint(name)(df)``, as a decorator
(``@failpoint(name)`` corrupts the function's return value) and as a context
manager (``with failpoint(name) as fp: df = fp(df)``).

The module is ``mlchaos.failpoints`` and the function ``mlchaos.failpoint`` (also
``mlchaos.failpoints.failpoint``): two names, so importing the module never shadows
the function on the package.  ``mlchaos.failpoint`` as a module path is the old
spelling, kept working by a small shim (``mlchaos/failpoint.py``).

Control channel (why files): the pipeline and the experiment runner are
separate processes that may not share anything but a disk, and a runner that
dies by ``kill -9`` must not leave the fault in place.  So arming writes one
JSON record per failpoint, ``<dir>/<name>.json``, carrying the corruption
spec and a lease ``expires_at`` (wall clock); an expired record counts as
disarmed, so the fault disappears by itself once the runner stops renewing.
A record that cannot be used (not UTF-8 or not JSON, not an object, an
expiry that is absent, not a number or not finite, a malformed field) is
disarmed too, and logged once on the ``mlchaos.failpoint`` logger: a broken
control file must never raise inside the user's job, nor arm it for good.
``<dir>`` is ``$MLCHAOS_FAILPOINT_DIR``, else ``$MLCHAOS_STATE_DIR/failpoints``,
else ``~/.local/state/mlchaos/failpoints``.  Effects go to
``<dir>/<name>.effects.jsonl``, one JSON line per armed hit.

Cost when disarmed: two environment lookups and a clock read; at most every
50 ms a ``stat`` of the directory (its mtime tells whether any record
changed; records are re-read only then).  Arming from another process takes
effect within those 50 ms; an expired lease is seen on the very next call.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlchaos.failpoint_records import (
    _cache,
    _check_name,
    _effects_path,
    _read_json,
    _read_record,
    _record_path,
    _write_json,
    failpoint_dir,
)

__all__ = ["FailpointError", "arm", "disarm", "effects", "failpoint", "failpoint_dir", "renew", "status"]

T = TypeVar("T")


class FailpointError(RuntimeError):
    """Raised inside user code by a failpoint armed with ``kind="raise"``."""




def _apply(name: str, rec: dict[str, Any], data: Any) -> Any:
    """Run the armed corruption and log its effect (errors are logged, not raised into user code)."""
    key = f"{name}\0{rec.get('lease_id')}"  # hits count per arming, so a replay needs only (seed, hit)
    hit = _cache.hits.get(key, 0) + 1
    _cache.hits[key] = hit
    entry: dict[str, Any] = {"t": time.time(), "name": name, "lease_id": rec.get("lease_id"),
                             "pid": os.getpid(), "hit": hit, "kind": rec.get("kind")}
    kind = rec.get("kind")
    try:
        if kind == "raise":
            entry["raised"] = True
            raise FailpointError(str(rec.get("params", {}).get("message", f"failpoint {name!r} armed to raise")))
        import numpy as np

        from mlchaos.data import corrupt

        seed = rec.get("seed")
        # Per-hit seed: reproducible, yet each batch gets its own rows.
        hit_seed = None if seed is None else int(np.random.SeedSequence([int(seed), hit]).generate_state(1)[0])
        params = dict(rec.get("params") or {})
        out, mask = corrupt(data, str(kind), rec.get("columns"), float(rec.get("fraction", 0.1)), hit_seed,
                            **params)
        entry.update(mask.summary())
        entry["seed"] = hit_seed
        return out
    except FailpointError:
        raise
    except Exception as exc:  # a misdeclared fault must be visible, never crash the user's job
        entry["error"] = f"{type(exc).__name__}: {exc}"
        return data
    finally:
        _log_effect(name, entry)


def _log_effect(name: str, entry: dict[str, Any]) -> None:
    try:
        path = _effects_path(Path(_cache.dir_str) if _cache.dir_str else failpoint_dir(), name)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, default=str) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


_MISSING: Any = object()


class Failpoint:
    """A named failpoint: call it on data, decorate a function with it, or use it in ``with``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = _check_name(name)

    @property
    def armed(self) -> bool:
        return _cache.lookup(self.name) is not None

    def __call__(self, data: Any) -> Any:
        if callable(data) and not _is_data(data):
            return self._wrap(data)
        rec = _cache.lookup(self.name)
        return data if rec is None else _apply(self.name, rec, data)

    def _wrap(self, func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            result: T = self(func(*args, **kwargs))
            return result

        return wrapper

    def __enter__(self) -> Failpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"Failpoint({self.name!r}, armed={self.armed})"


def _is_data(obj: Any) -> bool:
    mod = type(obj).__module__.split(".")[0]
    return mod in ("pandas", "pyarrow", "numpy", "polars")


def _failpoint(name: str, data: Any = _MISSING) -> Any:
    if data is _MISSING:
        return Failpoint(name)
    rec = _cache.lookup(name)
    if rec is None:
        return data
    return _apply(_check_name(name), rec, data)


# -- arming API (used by the engine's ``failpoint`` fault and by tests) ---------------------------
def arm(
    name: str,
    kind: str,
    *,
    columns: str | list[str] | None = None,
    fraction: float = 0.1,
    seed: int | None = None,
    ttl: float = 30.0,
    directory: str | os.PathLike[str] | None = None,
    lease_id: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Arm ``name`` with a corruption for ``ttl`` seconds; return the record (with ``lease_id``).

    ``lease_id`` lets the caller choose the arming's id ahead (the engine
    writes it in its write-ahead record, so ``disarm`` can target this arming
    even if the caller dies right after arming); default: a fresh one.

    The arguments are checked now (unknown kind or parameter, fraction out of
    range) so a wrong experiment fails at injection, not silently in the job.
    """
    _check_name(name)
    ttl = _check_ttl(ttl)
    if kind != "raise":
        from mlchaos.data.core import KINDS, _resolve_kind
        from mlchaos.data.selection import check_fraction

        spec = _resolve_kind(kind)
        extra = {"selection", "where", "given", "quantiles"}
        unknown = set(params) - spec.params - extra
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown parameter for kind {spec.name!r}")
        check_fraction(fraction)
        kind = spec.name
        assert kind in KINDS
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    now = time.time()
    record = {
        "name": name, "kind": kind, "columns": [columns] if isinstance(columns, str) else columns,
        "fraction": float(fraction), "seed": seed, "params": params, "ttl": ttl,
        "armed_at": now, "expires_at": now + ttl, "lease_id": lease_id or uuid.uuid4().hex, "armed_by": os.getpid(),
    }
    try:
        json.dumps(record)
    except TypeError as exc:
        raise ValueError(f"params must be JSON-serialisable: {exc}") from None
    _write_json(_record_path(failpoint_dir(directory), name), record)
    _cache.invalidate()
    return record


def _check_ttl(ttl: Any) -> float:
    """A lease that can expire: a positive, finite number of seconds."""
    try:
        ttl = float(ttl)
    except (TypeError, ValueError):
        raise ValueError(f"ttl must be a number of seconds, got {ttl!r}") from None
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"ttl must be a finite number > 0 seconds, got {ttl!r}")
    return ttl


def renew(name: str, ttl: float | None = None, *, directory: str | os.PathLike[str] | None = None,
          lease_id: str | None = None) -> dict[str, Any]:
    """Extend the lease of an armed failpoint by ``ttl`` (default: its own) from now.

    With ``lease_id``, only that arming is renewed (a ValueError otherwise), so
    a runner never prolongs a fault someone else armed since.
    """
    path = _record_path(failpoint_dir(directory), _check_name(name))
    rec = _read_record(path)
    if rec is None or (lease_id is not None and rec.get("lease_id") != lease_id):
        raise ValueError(f"name: failpoint {name!r} is not armed" + (" under this lease" if lease_id else ""))
    ttl = _check_ttl(rec.get("ttl", 30.0) if ttl is None else ttl)
    rec["ttl"] = ttl
    rec["expires_at"] = time.time() + ttl
    _write_json(path, rec)
    _cache.invalidate()
    return rec


def disarm(name: str, *, directory: str | os.PathLike[str] | None = None, lease_id: str | None = None) -> bool:
    """Remove the arming record (idempotent); True if there was one.

    With ``lease_id``, a record armed under another lease is left alone.
    """
    path = _record_path(failpoint_dir(directory), _check_name(name))
    if lease_id is not None:
        rec = _read_json(path)
        if rec is None or rec.get("lease_id") != lease_id:
            return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    finally:
        _cache.invalidate()
    return True


def status(name: str, *, directory: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The arming record if armed and not expired, else None."""
    rec = _read_record(_record_path(failpoint_dir(directory), _check_name(name)))
    if rec is None or rec["expires_at"] <= time.time():
        return None
    return rec


def effects(name: str, lease_id: str | None = None, *,
            directory: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """What the failpoint did, one dict per armed hit (optionally only under one lease)."""
    path = _effects_path(failpoint_dir(directory), _check_name(name))
    out: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if lease_id is None or entry.get("lease_id") == lease_id:
            out.append(entry)
    return out


class _FailpointAPI:
    """``mlchaos.failpoint``: call it on data, and reach the arming API through it.

    ``failpoint(name, data)`` returns ``data`` unchanged unless ``name`` is
    armed; ``failpoint(name)`` returns a :class:`Failpoint` (callable,
    decorator, context manager).  ``failpoint.arm/renew/disarm/status/effects``
    are the module functions of the same names.
    """

    __slots__ = ()

    def __call__(self, name: str, data: Any = _MISSING) -> Any:
        return _failpoint(name, data)

    arm = staticmethod(arm)
    renew = staticmethod(renew)
    disarm = staticmethod(disarm)
    status = staticmethod(status)
    effects = staticmethod(effects)
    directory = staticmethod(failpoint_dir)
    failpoint_dir = staticmethod(failpoint_dir)
    Failpoint = Failpoint
    FailpointError = FailpointError

    @property
    def failpoint(self) -> _FailpointAPI:
        """Itself: ``from mlchaos.failpoint import failpoint`` (the old module path, see that shim)."""
        return self


failpoint = _FailpointAPI()

