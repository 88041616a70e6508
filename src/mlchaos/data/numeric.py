"""Numeric value faults: nulls, outliers, out-of-range, unit/scale and sign errors, distribution shift.

Outliers are drawn as ``mean ± (sigma + Exp(1)) · sd`` of the whole column
(the shape measured in the research notes): far enough to be an outlier, not
so far that any check trivially catches it.  Scale (×1000) and sign are the
unit mistakes that pass type checks.  Shifts move only the selected rows, so
``fraction=1`` is a whole-population shift and smaller fractions a mixture.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlchaos.data.kernels import CellContext, from_numpy, require_numeric, to_numpy

__all__ = ["mean_shift", "nulls", "out_of_range", "outliers", "scale", "scale_shift", "sign"]


def nulls(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Missing values: Arrow null (pandas shows NaN/None/NaT as its dtype does)."""
    if ctx.params.get("as_nan") and pa.types.is_floating(sub.type):
        return pa.array(np.full(len(sub), np.nan), type=sub.type)
    return pa.nulls(len(sub), type=sub.type)


def outliers(sub: pa.Array, ctx: CellContext) -> pa.Array:
    require_numeric(sub, ctx, "outliers")
    sigma = float(ctx.params.get("sigma", 3.0))
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    mean, sd = ctx.moments
    sd = sd or 1.0
    k = len(sub)
    side = np.where(ctx.rng.random(k) < 0.5, -1.0, 1.0)
    side_param = ctx.params.get("side", "both")
    if side_param == "high":
        side[:] = 1.0
    elif side_param == "low":
        side[:] = -1.0
    elif side_param != "both":
        raise ValueError(f"side must be 'high', 'low' or 'both', got {side_param!r}")
    values = mean + side * (sigma + ctx.rng.exponential(1.0, k)) * sd
    x = to_numpy(sub)
    values[np.isnan(x)] = np.nan
    return from_numpy(values, sub)


def out_of_range(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Values outside the column's observed range (or exactly ``value``)."""
    require_numeric(sub, ctx, "out_of_range")
    x = to_numpy(sub)
    if "value" in ctx.params:
        values = np.full(len(sub), float(ctx.params["value"]))
    else:
        lo, hi = ctx.range
        span = (hi - lo) or max(abs(hi), 1.0)
        side = ctx.params.get("side", "high")
        u = 1.0 + ctx.rng.random(len(sub))
        if side == "high":
            values = hi + u * span
        elif side == "low":
            values = lo - u * span
        elif side == "both":
            values = np.where(ctx.rng.random(len(sub)) < 0.5, lo - u * span, hi + u * span)
        else:
            raise ValueError(f"side must be 'high', 'low' or 'both', got {side!r}")
    values[np.isnan(x)] = np.nan
    return from_numpy(values, sub)


def scale(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Unit error: multiply by ``factor`` (default 1000: kg sent as g, s as ms)."""
    require_numeric(sub, ctx, "scale")
    factor = float(ctx.params.get("factor", 1000.0))
    if factor == 1.0:
        raise ValueError("factor must not be 1 (that changes nothing)")
    return from_numpy(to_numpy(sub) * factor, sub)


def sign(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Sign error: negate (debits as credits).  Zeros stay zeros and are not counted."""
    require_numeric(sub, ctx, "sign")
    return from_numpy(-to_numpy(sub), sub)


def mean_shift(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Add ``delta`` (absolute) or ``sd`` (in column standard deviations, default 0.5)."""
    require_numeric(sub, ctx, "mean_shift")
    if "delta" in ctx.params:
        delta = float(ctx.params["delta"])
    else:
        delta = float(ctx.params.get("sd", 0.5)) * (ctx.moments[1] or 1.0)
    return from_numpy(to_numpy(sub) + delta, sub)


def scale_shift(sub: pa.Array, ctx: CellContext) -> pa.Array:
    """Stretch around the column mean by ``factor`` (default 1.5): variance changes, mean does not."""
    require_numeric(sub, ctx, "scale_shift")
    factor = float(ctx.params.get("factor", 1.5))
    mean = ctx.moments[0]
    return from_numpy(mean + (to_numpy(sub) - mean) * factor, sub)
