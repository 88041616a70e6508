"""One interface over pandas DataFrames, Arrow Tables and RecordBatches.

Why: the kernels should be written once, against *the selected values only*
(an Arrow array of ``k`` elements), and never see the container.  This module
is the only place that knows how to read those ``k`` values out of a column
and scatter the replacements back:

* pandas columns held in numpy (float, int, bool, datetime, object): numpy
  fancy indexing on a copy of that column only; other columns are shared.
* Arrow columns and pandas extension columns: ``pyarrow.compute.replace_with_mask``
  (one vectorised pass; buffers of untouched columns are reused).

Writes are copy-on-write: the input object is never modified.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Frame", "differs"]


def _bool_mask(n: int, idx: np.ndarray) -> pa.Array:
    m = np.zeros(n, dtype=bool)
    m[idx] = True
    return pa.array(m, type=pa.bool_())


def _combine(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _replace(arr: pa.Array, idx: np.ndarray, new: pa.Array) -> pa.Array:
    """Scatter ``new`` into positions ``idx`` of ``arr``; buffers are reused where possible."""
    if pa.types.is_dictionary(arr.type):
        if pa.types.is_dictionary(new.type):
            new = new.dictionary_decode()
        dense = _replace(arr.dictionary_decode(), idx, new)
        return _encode_like(dense.dictionary_encode(), arr.type)
    if new.type != arr.type:
        new = new.cast(arr.type)
    if idx.size == 0:
        return arr
    t = arr.type
    flat = pa.types.is_primitive(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
    if new.null_count == len(new) and arr.offset == 0 and flat and not pa.types.is_boolean(t):
        # Nulls only: a new validity bitmap; the data buffers are shared, not copied.
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool) if arr.null_count \
            else np.ones(len(arr), dtype=bool)
        valid[idx] = False
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        return pa.Array.from_buffers(t, len(arr), [bitmap, *arr.buffers()[1:]],
                                     null_count=len(arr) - int(np.count_nonzero(valid)))
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and arr.offset == 0 and new.null_count == 0:
        patched = _replace_same_length(arr, idx, new)
        if patched is not None:
            return patched
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and arr.null_count == 0 and new.null_count == 0:
        vals = arr.to_numpy(zero_copy_only=False).copy()
        vals[idx] = new.to_numpy(zero_copy_only=False)
        return pa.array(vals, type=t)
    return pc.replace_with_mask(arr, _bool_mask(len(arr), idx), new)


def _encode_like(encoded: pa.DictionaryArray, like: pa.DictionaryType) -> pa.Array:
    """Re-encoded values in the column's own dictionary type (a pandas category of a few values is
    ``dictionary<string, int8>``): the same index type when the values still fit in it, else the
    32-bit indices ``dictionary_encode`` gives (corruption can add new values: 200 typos of four
    cities need more than 127 codes).  ``ordered`` is kept."""
    if encoded.type == like:
        return encoded
    try:
        return encoded.cast(like)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return encoded.cast(pa.dictionary(pa.int32(), like.value_type, like.ordered))


def _string_offsets(arr: pa.Array) -> np.ndarray:
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr) + 1]


def _replace_same_length(arr: pa.Array, idx: np.ndarray, new: pa.Array) -> pa.Array | None:
    """Strings that keep their byte length (typos, ASCII case changes): patch a copy of the
    data buffer in place and reuse offsets and validity, instead of rebuilding the array."""
    off = _string_offsets(arr)  # a view: only the selected rows' offsets are converted
    start = off[idx].astype(np.int64)
    new_off = _string_offsets(new).astype(np.int64)
    lengths = new_off[1:] - new_off[:-1]
    if not np.array_equal(off[idx + 1] - start, lengths):
        return None
    if arr.null_count and not np.asarray(arr.is_valid().take(pa.array(idx)).to_numpy(zero_copy_only=False)).all():
        return None
    data_buf = arr.buffers()[2]
    if data_buf is None:
        return None
    data = np.frombuffer(data_buf, dtype=np.uint8).copy()
    total = int(lengths.sum())
    if total:
        new_data = np.frombuffer(new.buffers()[2], dtype=np.uint8)[new_off[0] : new_off[0] + total]
        dst = np.repeat(start - (new_off[:-1] - new_off[0]), lengths)
        dst += np.arange(total, dtype=np.int64)
        data[dst] = new_data
    return pa.Array.from_buffers(arr.type, len(arr), [arr.buffers()[0], arr.buffers()[1], pa.py_buffer(data)],
                                 null_count=arr.null_count)


def differs(old: pa.Array, new: pa.Array) -> np.ndarray:
    """Element-wise "value changed", null-aware (null == null, NaN == NaN)."""
    if len(old) == 0:
        return np.zeros(0, dtype=bool)
    if pa.types.is_dictionary(old.type):
        old = old.dictionary_decode()
    if pa.types.is_dictionary(new.type):
        new = new.dictionary_decode()
    if old.type != new.type:
        try:
            new = new.cast(old.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return np.ones(len(old), dtype=bool)
    eq = pc.fill_null(pc.equal(old, new), False)
    same = pc.or_(eq, pc.and_(old.is_null(), new.is_null()))
    if pa.types.is_floating(old.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(old), pc.is_nan(new)), False))
    return ~np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)


class Frame:
    """A copy-on-write view of the input that kernels read and write by column."""

    def __init__(self, data: Any) -> None:
        self.kind: str
        if isinstance(data, pd.DataFrame):
            self.kind = "pandas"
            self.df: pd.DataFrame = data.copy(deep=False)
        elif isinstance(data, pa.Table):
            self.kind = "table"
            self.table: pa.Table = data
        elif isinstance(data, pa.RecordBatch):
            self.kind = "batch"
            self.table = pa.Table.from_batches([data])
        else:
            raise ValueError(
                "data must be a pandas DataFrame, pyarrow Table or RecordBatch, or a path to a "
                f"parquet/CSV file, got {type(data).__name__}"
            )

    # -- shape -----------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return len(self.df) if self.kind == "pandas" else self.table.num_rows

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.df.columns] if self.kind == "pandas" else list(self.table.column_names)

    def check_columns(self, columns: list[str]) -> None:
        have = self.columns
        for c in columns:
            if c not in have:
                raise ValueError(f"columns: unknown column {c!r} (have {have})")

    # -- reading ---------------------------------------------------------------
    def arrow(self, name: str) -> pa.Array:
        """The whole column as one Arrow array (pandas: converted, NaN becomes null)."""
        if self.kind == "pandas":
            s = self.df[name]
            if isinstance(s.dtype, pd.CategoricalDtype):
                return pa.array(s.astype(object).to_numpy(), from_pandas=True)
            if isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
                vals = s.to_numpy()
                if not np.isnan(np.sum(vals)):
                    return pa.array(vals)  # zero-copy: no NaN, so no validity bitmap to build
            return _combine(pa.array(s, from_pandas=True))
        return _combine(self.table.column(name))

    def numpy(self, name: str) -> np.ndarray:
        """Column values as float64 with NaN for missing (for statistics and quantile windows)."""
        if self.kind == "pandas":
            s = self.df[name]
            if s.dtype.kind in "mM":
                return s.to_numpy().astype("int64").astype(np.float64)
            return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        arr = self.arrow(name)
        if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
            arr = arr.cast(pa.int64())
        if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)):
            raise ValueError(f"column {name!r} is not numeric ({arr.type})")
        return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)

    def has_missing(self, name: str) -> bool:
        """Any null or NaN in the column?  One pass, no n-sized temporary for plain float columns."""
        if self.kind == "pandas":
            s = self.df[name]
            if isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
                return bool(np.isnan(np.sum(s.to_numpy())))  # inf - inf also lands here: harmless
            if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
                return False
            return bool(s.isna().any())
        arr = self.arrow(name)
        if arr.null_count:
            return True
        if pa.types.is_floating(arr.type):
            return bool(np.isnan(np.sum(arr.to_numpy(zero_copy_only=False))))
        return False

    def not_null(self, name: str) -> np.ndarray:
        if self.kind == "pandas":
            return self.df[name].notna().to_numpy()
        arr = self.arrow(name)
        if pa.types.is_floating(arr.type) and arr.null_count == 0:
            return ~np.isnan(arr.to_numpy(zero_copy_only=False))
        if arr.null_count == 0 and not pa.types.is_floating(arr.type):
            return np.ones(len(arr), dtype=bool)
        valid = arr.is_valid()
        if pa.types.is_floating(arr.type):
            valid = pc.and_(valid, pc.invert(pc.fill_null(pc.is_nan(arr), False)))
        return np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)

    def take(self, name: str, idx: np.ndarray) -> pa.Array:
        """The selected values of one column, as Arrow (``k`` elements, not ``n``)."""
        if self.kind == "pandas":
            s = self.df[name]
            if isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiubmMO":
                vals = s.to_numpy()[idx]
                if s.dtype.kind == "O":
                    return pa.array(vals, from_pandas=True)
                return pa.array(vals, from_pandas=s.dtype.kind == "f")
            return self.arrow(name).take(pa.array(idx))
        return self.arrow(name).take(pa.array(idx))

    # -- writing ---------------------------------------------------------------
    def put(self, name: str, idx: np.ndarray, new: pa.Array) -> None:
        """Scatter ``new`` (k values) into rows ``idx`` of column ``name``."""
        if self.kind != "pandas":
            self.set_arrow(name, _replace(self.arrow(name), idx, new))
            return
        s = self.df[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            vals = s.astype(object).to_numpy(copy=True)
            vals[idx] = new.to_numpy(zero_copy_only=False)
            cats = list(s.cat.categories)
            extra = [v for v in pd.unique(vals[idx]) if v is not None and v == v and v not in set(cats)]
            self.df[name] = pd.Series(
                pd.Categorical(vals, categories=cats + extra, ordered=s.cat.ordered), index=s.index, name=s.name
            )
            return
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiubmMO":
            vals = s.to_numpy(copy=True)
            repl = new.to_numpy(zero_copy_only=False)
            if s.dtype.kind in "iub" and (new.null_count or np.asarray(repl).dtype.kind == "f"):
                vals = vals.astype(np.float64)  # pandas semantics: a missing int becomes a float NaN
                repl = np.asarray(repl, dtype=np.float64)
            elif s.dtype.kind == "O":
                repl = np.asarray(repl, dtype=object)
                if new.null_count:
                    repl[np.asarray(new.is_null().to_numpy(zero_copy_only=False))] = None
            vals[idx] = repl
            self.df[name] = pd.Series(vals, index=s.index, name=s.name, copy=False)  # ours: no second copy
            return
        # pandas extension dtypes (Arrow-backed strings, nullable ints): through Arrow.
        out = _replace(self.arrow(name), idx, new)
        series = pd.Series(out.to_pandas(), name=s.name)
        series.index = s.index
        with contextlib.suppress(TypeError, ValueError):
            series = series.astype(s.dtype)
        self.df[name] = series

    def set_arrow(self, name: str, arr: pa.Array) -> None:
        """Replace a whole column (its type may change)."""
        if self.kind == "pandas":
            series = pd.Series(arr.to_pandas(), name=name)
            series.index = self.df.index
            self.df[name] = series
            return
        i = self.table.column_names.index(name)
        self.table = self.table.set_column(i, pa.field(name, arr.type), arr)

    def set_pandas(self, name: str, series: pd.Series) -> None:
        self.df[name] = series

    def dtype_name(self, name: str) -> str:
        return str(self.df[name].dtype) if self.kind == "pandas" else str(self.table.schema.field(name).type)

    # -- schema and rows -------------------------------------------------------
    def drop(self, names: list[str]) -> None:
        if self.kind == "pandas":
            self.df = self.df.drop(columns=names)
        else:
            self.table = self.table.drop_columns(names)

    def rename(self, mapping: dict[str, str]) -> None:
        if self.kind == "pandas":
            self.df = self.df.rename(columns=mapping)
        else:
            self.table = self.table.rename_columns([mapping.get(c, c) for c in self.table.column_names])

    def reorder(self, order: list[str]) -> None:
        if self.kind == "pandas":
            self.df = self.df[order]
        else:
            self.table = self.table.select(order)

    def add(self, name: str, arr: pa.Array) -> None:
        if self.kind == "pandas":
            series = pd.Series(arr.to_pandas(), name=name)
            series.index = self.df.index
            self.df[name] = series
        else:
            self.table = self.table.append_column(pa.field(name, arr.type), arr)

    def take_rows(self, order: np.ndarray) -> None:
        if self.kind == "pandas":
            self.df = self.df.iloc[order]
        else:
            self.table = self.table.take(pa.array(order))

    def result(self) -> Any:
        if self.kind == "pandas":
            return self.df
        if self.kind == "batch":
            return self.table.combine_chunks().to_batches()[0] if self.table.num_rows else pa.RecordBatch.from_pylist(
                [], schema=self.table.schema
            )
        return self.table
