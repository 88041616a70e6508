"""Schema drift: drop, rename, reorder, add a column, widen a type; and type changes.

These faults change no stored value (except ``type_change``), so their mask
has no changed cells; ``mask.schema`` says what moved.  They are the faults
an upstream producer causes by "just" refactoring, and the ones a
name-based pipeline silently survives or a position-based one silently
misreads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlchaos.data.frames import Frame
from mlchaos.data.mask import ErrorMask

__all__ = ["add_column", "drop_column", "rename_column", "reorder_columns", "type_change", "widen_type"]

_WIDEN = {
    pa.int8(): pa.int64(), pa.int16(): pa.int64(), pa.int32(): pa.int64(), pa.int64(): pa.float64(),
    pa.uint8(): pa.int64(), pa.uint16(): pa.int64(), pa.uint32(): pa.int64(),
    pa.float16(): pa.float64(), pa.float32(): pa.float64(), pa.bool_(): pa.int64(),
    pa.string(): pa.large_string(),
}
_WIDEN_PANDAS = {
    "int8": "int64", "int16": "int64", "int32": "int64", "int64": "float64", "uint8": "int64", "uint16": "int64",
    "uint32": "int64", "uint64": "float64", "float16": "float64", "float32": "float64", "bool": "int64",
    "Int8": "Int64", "Int16": "Int64", "Int32": "Int64", "Int64": "Float64", "UInt8": "Int64", "UInt16": "Int64",
    "UInt32": "Int64", "Float32": "Float64",
}


def drop_column(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
                params: dict[str, Any]) -> ErrorMask:
    frame.drop(columns)
    return ErrorMask("drop_column", frame.n_rows, schema={"dropped": list(columns)})


def rename_column(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
                  params: dict[str, Any]) -> ErrorMask:
    mapping = params.get("mapping")
    if mapping is None:
        suffix = str(params.get("suffix", "_v2"))
        mapping = {c: f"{c}{suffix}" for c in columns}
    if not isinstance(mapping, dict):
        raise ValueError("mapping must be a dict {old: new}")
    frame.check_columns(list(mapping))
    clash = set(mapping.values()) & (set(frame.columns) - set(mapping))
    if clash:
        raise ValueError(f"mapping: new names {sorted(clash)} already exist")
    frame.rename(mapping)
    return ErrorMask("rename_column", frame.n_rows, schema={"renamed": dict(mapping)})


def reorder_columns(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
                    params: dict[str, Any]) -> ErrorMask:
    before = frame.columns
    order = params.get("order")
    if order is None:
        if len(before) < 2:
            raise ValueError("data: reorder_columns needs at least 2 columns")
        order = list(before)
        while order == before:  # a permutation that actually moves something
            order = [before[i] for i in rng.permutation(len(before))]
    order = [str(c) for c in order]
    if sorted(order) != sorted(before):
        raise ValueError(f"order must be a permutation of {before}, got {order}")
    frame.reorder(order)
    return ErrorMask("reorder_columns", frame.n_rows, schema={"order_before": before, "order_after": order})


def add_column(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
               params: dict[str, Any]) -> ErrorMask:
    name = str(params.get("name", "extra_column"))
    if name in frame.columns:
        raise ValueError(f"name: column {name!r} already exists")
    value = params.get("value")
    n = frame.n_rows
    arr = pa.nulls(n, pa.string()) if value is None else pa.array(np.full(n, value))
    frame.add(name, arr)
    return ErrorMask("add_column", n, schema={"added": name, "type": str(arr.type)})


def widen_type(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
               params: dict[str, Any]) -> ErrorMask:
    to = params.get("to")
    changes: dict[str, list[str]] = {}
    for c in columns:
        before = frame.dtype_name(c)
        if frame.kind == "pandas":
            s = frame.df[c]
            target = to or _WIDEN_PANDAS.get(str(s.dtype))
            if target is None:
                raise ValueError(f"to: no default widening for column {c!r} ({s.dtype}); pass to=")
            frame.set_pandas(c, s.astype(target))
        else:
            arr = frame.arrow(c)
            target_t = pa.type_for_alias(to) if isinstance(to, str) else (to or _WIDEN.get(arr.type))
            if target_t is None:
                raise ValueError(f"to: no default widening for column {c!r} ({arr.type}); pass to=")
            frame.set_arrow(c, arr.cast(target_t))
        changes[c] = [before, frame.dtype_name(c)]
    return ErrorMask("widen_type", frame.n_rows, schema={"retyped": changes})


_STYLES = ("str", "comma_decimal", "thousands")


def _render(values: pa.Array, style: str) -> pa.Array:
    text = pc.cast(values, pa.string())
    if style == "str":
        return text
    if style == "comma_decimal":
        return pc.replace_substring(text, ".", ",")
    # thousands separators: rendered in Python on the selected values only
    return pa.array([None if v is None else f"{v:,}" for v in values.to_pylist()], type=pa.string())


def type_change(frame: Frame, columns: list[str], idx: np.ndarray, rng: np.random.Generator,
                params: dict[str, Any]) -> ErrorMask:
    """Numbers arrive as strings.

    pandas: the column becomes ``object`` and only the selected cells hold
    strings (the mixed column a JSON or CSV producer really sends); the mask
    marks those cells.  Arrow columns have one type, so the whole column
    becomes ``string``: unselected cells hold the canonical text, selected
    cells ``style`` ('str', 'comma_decimal' as in '12,5', 'thousands' as in
    '1,234.5'); the mask marks every non-null cell, since each changed type.
    """
    style = params.get("style", "str")
    if style not in _STYLES:
        raise ValueError(f"style must be one of {_STYLES}, got {style!r}")
    n = frame.n_rows
    cells: dict[str, np.ndarray] = {}
    retyped: dict[str, list[str]] = {}
    for c in columns:
        before = frame.dtype_name(c)
        sub = frame.take(c, idx)
        if pa.types.is_string(sub.type) or pa.types.is_large_string(sub.type):
            raise ValueError(f"columns: type_change needs a non-string column; {c!r} is {sub.type}")
        rendered = _render(sub, style)
        valid = np.asarray(sub.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        mark = np.zeros(n, dtype=bool)
        if frame.kind == "pandas":
            s = frame.df[c]
            vals = s.astype(object).to_numpy(copy=True)
            txt = np.asarray(rendered.to_numpy(zero_copy_only=False), dtype=object)
            vals[idx[valid]] = txt[valid]
            frame.set_pandas(c, pd.Series(vals, index=s.index, name=s.name, dtype=object, copy=False))
            mark[idx[valid]] = True
        else:
            full = frame.arrow(c)
            text = pc.cast(full, pa.string())
            if style != "str" and idx.size:
                m = np.zeros(n, dtype=bool)
                m[idx] = True
                text = pc.replace_with_mask(text, pa.array(m), rendered)
            frame.set_arrow(c, text)
            mark = np.asarray(full.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        cells[c] = mark
        retyped[c] = [before, frame.dtype_name(c)]
    return ErrorMask("type_change", n, cells=cells, schema={"retyped": retyped})
