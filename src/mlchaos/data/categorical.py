"""Categorical faults: category swap, unseen categories, label noise.

A swap replaces each selected value by a *different* category drawn
uniformly from the column's own categories (so the set of values stays
plausible and only the joint distribution breaks); an unseen category is a
value the model never saw in training; label noise is a swap on the label
column, optionally restricted to declared ``classes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlchaos.data.kernels import CellContext, is_numeric

__all__ = ["category_swap", "label_noise", "unseen_category"]


def _decode(sub: pa.Array) -> pa.Array:
    return sub.dictionary_decode() if pa.types.is_dictionary(sub.type) else sub


def _swap(sub: pa.Array, cats: pa.Array, ctx: CellContext) -> pa.Array:
    sub = _decode(sub)
    mapping: dict[Any, Any] | None = ctx.params.get("mapping")
    if mapping is not None:
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError("mapping must be a non-empty dict {old: new}")
        keys = pa.array(list(mapping), type=sub.type)
        vals = pa.array(list(mapping.values()), type=sub.type)
        pos = pc.index_in(sub, value_set=keys)
        hit = pc.is_valid(pos)
        return pc.if_else(hit, pc.take(vals, pc.fill_null(pos, 0)), sub)
    c = len(cats)
    if c < 2:
        raise ValueError(f"columns: {ctx.column!r} has fewer than 2 categories to swap between")
    code = np.asarray(pc.fill_null(pc.index_in(sub, value_set=cats), -1).to_numpy(zero_copy_only=False))
    draw = np.floor(ctx.rng.random(len(sub)) * (c - 1)).astype(np.int64)
    draw = np.where((code >= 0) & (draw >= code), draw + 1, draw)  # never the value it had
    new = pc.take(cats, pa.array(draw))
    return pc.if_else(sub.is_null(), sub, new)


def category_swap(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Each selected value becomes another of the column's categories (or per ``mapping``)."""
    return _swap(sub, ctx.categories, ctx)


def label_noise(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Flip labels to a different class (``classes`` default: those present in the column)."""
    classes = ctx.params.get("classes")
    cats = ctx.categories if classes is None else pa.array(list(classes), type=_decode(sub).type)
    return _swap(sub, cats, ctx)


def unseen_category(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """A value absent from the column: ``value`` (default ``'__unseen__'``, or max+1 for integers)."""
    if len(sub) == 0:  # nothing selected; an empty pandas object column has no type to make a value of
        return sub
    t = _decode(sub).type
    if "value" in ctx.params:
        value = ctx.params["value"]
    elif is_numeric(t):
        value = int(ctx.range[1]) + 1 if pa.types.is_integer(t) else ctx.range[1] + 1.0
    else:
        value = "__unseen__"
    if pc.any(pc.equal(ctx.categories, pa.scalar(value, type=t))).as_py():
        raise ValueError(f"value {value!r} is already a category of column {ctx.column!r}")
    return pc.if_else(sub.is_null(), _decode(sub), pa.scalar(value, type=t))
