"""Row faults: duplicated rows and stale rows (old event timestamps re-emitted).

Neither has a library equivalent.  Duplicates are what an at-least-once
producer emits after a retry; stale rows are what a replayed queue or a
lagging feature job emits: rows whose event time is older than anything the
consumer should still accept.  Both add rows, so their mask records
``inserted`` (output positions) and ``source`` (the input row each copies).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from mlchaos.data.frames import Frame
from mlchaos.data.mask import ErrorMask

__all__ = ["duplicate_rows", "stale_rows"]

_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _insert_copies(frame: Frame, idx: np.ndarray, position: str) -> tuple[np.ndarray, np.ndarray]:
    """Take rows so that copies of ``idx`` appear; return (inserted positions, their sources)."""
    n = frame.n_rows
    src = np.concatenate([np.arange(n, dtype=np.int64), idx])
    if position == "adjacent":
        order = np.argsort(src, kind="stable")  # each copy right after its original
    elif position == "end":
        order = np.arange(src.size)
    else:
        raise ValueError(f"position must be 'adjacent' or 'end', got {position!r}")
    frame.take_rows(src[order])
    is_copy = np.concatenate([np.zeros(n, dtype=bool), np.ones(idx.size, dtype=bool)])[order]
    inserted = np.flatnonzero(is_copy).astype(np.int64)
    return inserted, src[order][inserted]


def duplicate_rows(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
                   params: dict[str, Any]) -> ErrorMask:
    inserted, source = _insert_copies(frame, idx, str(params.get("position", "adjacent")))
    return ErrorMask("duplicate_rows", frame.n_rows, inserted=inserted, source=source)


def _age_seconds(age: Any) -> float:
    if isinstance(age, dt.timedelta):
        return age.total_seconds()
    if isinstance(age, str):
        from mlchaos.spec.units import parse_duration

        text = age.strip()
        try:
            value = float(text[:-1]) * 86400.0 if text.endswith("d") else parse_duration(text)
        except ValueError:
            raise ValueError(f"age must be a duration such as '2h' or '1d', got {age!r}") from None
    else:
        value = float(age)
    if value <= 0:
        raise ValueError(f"age must be a positive duration, got {age!r}")
    return value


def stale_rows(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
               params: dict[str, Any]) -> ErrorMask:
    """Move event time back by ``age`` (default 1 day).

    ``mode='append'`` (default) re-emits copies of the selected rows at the
    end with the old timestamp (a replay); ``mode='replace'`` ages the
    selected rows in place (a lagging writer).  ``columns`` names the one
    event-time column: Arrow/pandas timestamps, or numbers in ``unit``
    (s/ms/us/ns since the epoch, default s).
    """
    if len(columns) != 1:
        raise ValueError(f"columns: stale_rows needs exactly one event-time column, got {columns}")
    col = columns[0]
    age_s = _age_seconds(params.get("age", 86400.0))
    mode = params.get("mode", "append")
    if mode not in ("append", "replace"):
        raise ValueError(f"mode must be 'append' or 'replace', got {mode!r}")
    unit = str(params.get("unit", "s"))
    if unit not in _UNIT_NS:
        raise ValueError(f"unit must be one of {sorted(_UNIT_NS)}, got {unit!r}")
    if mode == "append":
        inserted, source = _insert_copies(frame, idx, "end")
        targets = inserted
    else:
        inserted = source = np.zeros(0, dtype=np.int64)
        targets = idx
    sub = frame.take(col, targets)
    t = sub.type
    if pa.types.is_timestamp(t):
        step = int(age_s * 10**9) // _UNIT_NS[t.unit]
        ints = np.asarray(sub.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        new = pa.array(ints - step, mask=np.asarray(sub.is_null().to_numpy(zero_copy_only=False))).cast(t)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        step_f = age_s * 10**9 / _UNIT_NS[unit]
        vals = np.asarray(sub.cast(pa.float64()).to_numpy(zero_copy_only=False)) - step_f
        new = pa.array(vals, mask=np.asarray(sub.is_null().to_numpy(zero_copy_only=False))).cast(t, safe=False)
    else:
        raise ValueError(f"columns: {col!r} is {t}, not a timestamp or epoch number")
    frame.put(col, targets, new)
    cells = {col: np.zeros(frame.n_rows, dtype=bool)}
    valid = np.asarray(sub.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    cells[col][targets[valid]] = True
    return ErrorMask("stale_rows", frame.n_rows, cells=cells, inserted=inserted, source=source,
                     schema={})
