"""Shared kernel contract: what a cell kernel receives and the helpers it uses.

A *cell kernel* maps the ``k`` selected values of one column (an Arrow array)
to ``k`` replacement values of the same length.  It never sees the other
``n - k`` rows, which is what keeps every kind free of Python loops over rows
that stay untouched.  Statistics of the whole column (mean, sd, categories)
come from :class:`CellContext`, computed once, vectorised.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlchaos.data.frames import Frame

__all__ = ["CellContext", "from_numpy", "is_numeric", "to_numpy"]


@dataclasses.dataclass
class CellContext:
    """Everything a cell kernel may know beyond the selected values."""

    column: str
    rng: np.random.Generator
    frame: Frame
    params: dict[str, Any]

    @functools.cached_property
    def full(self) -> pa.Array:
        return self.frame.arrow(self.column)

    @functools.cached_property
    def moments(self) -> tuple[float, float]:
        """(mean, population sd) of the whole column, ignoring missing values.

        Arrow's single-pass aggregations (no temporary copies); a NaN mean
        means NaN values are stored rather than nulls, so numpy takes over.
        """
        full = self.full
        if is_numeric(full.type) and full.null_count < len(full):
            if pa.types.is_floating(full.type) and full.null_count == 0:
                mean = float(np.sum(full.to_numpy(zero_copy_only=False))) / len(full)  # zero-copy view
            else:
                mean = pc.mean(full).as_py()
            if mean == mean:
                return float(mean), float(pc.stddev(full, ddof=0).as_py())
        x = self._finite()
        return (float(x.mean()), float(x.std())) if x.size else (0.0, 0.0)

    @functools.cached_property
    def range(self) -> tuple[float, float]:
        """(min, max) of the whole column, ignoring missing values."""
        full = self.full
        if is_numeric(full.type) and full.null_count < len(full) and not pa.types.is_floating(full.type):
            mm = pc.min_max(full)
            return float(mm["min"].as_py()), float(mm["max"].as_py())
        x = self._finite()
        return (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)

    def _finite(self) -> np.ndarray:
        x = self.frame.numpy(self.column)
        return x[~np.isnan(x)]

    @functools.cached_property
    def categories(self) -> pa.Array:
        full = self.full
        if pa.types.is_dictionary(full.type):
            full = full.dictionary_decode()
        return pc.drop_null(pc.unique(full))


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def require_numeric(sub: pa.Array, ctx: CellContext, kind: str) -> None:
    if not is_numeric(sub.type):
        raise ValueError(f"columns: {kind} needs a numeric column; {ctx.column!r} is {sub.type}")


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def require_string(sub: pa.Array, ctx: CellContext, kind: str) -> pa.Array:
    """The selected values as a dense string array, or a ValueError naming the column.

    An Arrow ``dictionary<string>`` column (what a pandas category becomes in
    Arrow and parquet) is text too: its selected values are decoded here, so a
    string kernel never sees indices; the frame re-encodes the column on the
    way back (:func:`mlchaos.data.frames._replace`), so the column keeps its
    dictionary type and only the selected rows change.
    """
    t = sub.type
    if pa.types.is_dictionary(t) and _is_text(t.value_type):
        return sub.dictionary_decode()
    if pa.types.is_null(t):  # a pandas object column with no value (empty, or all None): no type to refuse
        return sub.cast(pa.string())
    if not _is_text(t):
        raise ValueError(f"columns: {kind} needs a string column; {ctx.column!r} is {t}")
    return sub


def to_numpy(sub: pa.Array) -> np.ndarray:
    """Selected values as float64, NaN for null."""
    return np.asarray(sub.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def from_numpy(values: np.ndarray, like: pa.Array) -> pa.Array:
    """Back to the column's type; integers are rounded (an int column stays an int column)."""
    t = like.type
    if pa.types.is_integer(t):
        nan = np.isnan(values)
        info = np.iinfo(t.to_pandas_dtype())
        ints = np.clip(np.rint(np.where(nan, 0, values)), info.min, info.max).astype(np.int64)
        return pa.array(ints, mask=nan | np.asarray(like.is_null().to_numpy(zero_copy_only=False))).cast(
            t, safe=False
        )
    arr = pa.array(values, type=pa.float64(), from_pandas=False)
    # keep nulls that were nulls (not NaN) as nulls
    if like.null_count:
        arr = pc.if_else(like.is_null(), pa.scalar(None, pa.float64()), arr)
    return arr.cast(t, safe=False)
