"""``corrupt()``: argument checking, row selection and dispatch to a kind.

Kinds come in three scopes:

* **cell** kinds change values in place.  Rows are selected once (the same
  rows for every listed column), each column's kernel sees only the selected
  values, and the mask records exactly the cells whose value differs
  (a typo that swaps 'll' changes nothing and is not counted).
* **frame** kinds reshape the data: schema drift and row faults.
* Files are read into an Arrow table (parquet or CSV by suffix); use
  :func:`mlchaos.data.files.corrupt_file` to write a corrupted copy.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from mlchaos.data import categorical, numeric, rows, schema, strings
from mlchaos.data.frames import Frame, differs
from mlchaos.data.kernels import CellContext
from mlchaos.data.mask import ErrorMask
from mlchaos.data.selection import SELECTIONS, check_fraction, quantile_window, select_rows

__all__ = ["KINDS", "Kind", "corrupt"]

CellKernel = Callable[[pa.Array, CellContext], pa.Array]
FrameKernel = Callable[[Frame, list[str], np.ndarray, np.random.Generator, dict[str, Any]], ErrorMask]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A corruption kind: its kernel, scope and the parameters it accepts."""

    name: str
    scope: str  # "cell" | "frame"
    kernel: Callable[..., Any]
    params: frozenset[str] = frozenset()
    needs_columns: bool = True
    uses_rows: bool = True
    doc: str = ""


def _k(name: str, scope: str, kernel: Callable[..., Any], params: Sequence[str] = (), *,
       needs_columns: bool = True, uses_rows: bool = True, doc: str = "") -> Kind:
    return Kind(name, scope, kernel, frozenset(params), needs_columns, uses_rows, doc)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        _k("nulls", "cell", numeric.nulls, ["as_nan"], doc="missing values (null / NaN / None / NaT)"),
        _k("typos", "cell", strings.typos, doc="two adjacent characters swapped"),
        _k("mojibake", "cell", strings.mojibake, ["encoding"], doc="UTF-8 read as latin-1"),
        _k("wrong_format", "cell", strings.wrong_format, ["style", "keep"], doc="case, padding, truncation, dates"),
        _k("outliers", "cell", numeric.outliers, ["sigma", "side"], doc="mean ± (sigma + Exp(1))·sd"),
        _k("out_of_range", "cell", numeric.out_of_range, ["value", "side"], doc="beyond observed min/max"),
        _k("scale", "cell", numeric.scale, ["factor"], doc="unit error, ×factor (1000)"),
        _k("sign", "cell", numeric.sign, doc="sign flipped"),
        _k("mean_shift", "cell", numeric.mean_shift, ["delta", "sd"], doc="add delta or sd·σ"),
        _k("scale_shift", "cell", numeric.scale_shift, ["factor"], doc="stretch around the mean"),
        _k("category_swap", "cell", categorical.category_swap, ["mapping"], doc="another existing category"),
        _k("unseen_category", "cell", categorical.unseen_category, ["value"], doc="a never-seen category"),
        _k("label_noise", "cell", categorical.label_noise, ["classes", "mapping"], doc="label flipped"),
        _k("type_change", "frame", schema.type_change, ["style"], doc="numbers as strings"),
        _k("drop_column", "frame", schema.drop_column, uses_rows=False, doc="columns removed"),
        _k("rename_column", "frame", schema.rename_column, ["mapping", "suffix"], uses_rows=False,
           doc="columns renamed"),
        _k("reorder_columns", "frame", schema.reorder_columns, ["order"], needs_columns=False,
           uses_rows=False, doc="column order permuted"),
        _k("add_column", "frame", schema.add_column, ["name", "value"], needs_columns=False,
           uses_rows=False, doc="an unexpected column"),
        _k("widen_type", "frame", schema.widen_type, ["to"], uses_rows=False, doc="int32→int64, int→float…"),
        _k("duplicate_rows", "frame", rows.duplicate_rows, ["position"], needs_columns=False,
           doc="rows emitted twice"),
        _k("stale_rows", "frame", rows.stale_rows, ["age", "mode", "unit"], doc="old event time re-emitted"),
    ]
}
ALIASES = {"nan": "nulls", "null": "nulls", "missing": "nulls", "typo": "typos", "outlier": "outliers",
           "unit": "scale", "drop": "drop_column", "rename": "rename_column", "reorder": "reorder_columns",
           "add": "add_column", "widen": "widen_type", "duplicates": "duplicate_rows",
           "duplicate": "duplicate_rows", "stale": "stale_rows", "mistype": "type_change"}


def _resolve_kind(kind: str) -> Kind:
    if not isinstance(kind, str):
        raise ValueError(f"kind must be a string, got {type(kind).__name__}")
    name = ALIASES.get(kind, kind)
    if name not in KINDS:
        raise ValueError(f"kind: unknown corruption kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[name]


def _rng(seed: int | np.random.Generator | None) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))  # type: ignore[operator]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed)), int(seed)


def _columns(columns: str | Sequence[str] | None, kind: Kind, frame: Frame) -> list[str]:
    if columns is None:
        if kind.needs_columns and kind.name != "nulls":
            raise ValueError(f"columns is required for kind {kind.name!r}")
        return frame.columns if kind.name == "nulls" else []
    cols = [columns] if isinstance(columns, str) else [str(c) for c in columns]
    if not cols and kind.needs_columns:
        raise ValueError("columns must name at least one column")
    frame.check_columns(cols)
    return cols


def _read_path(path: str | os.PathLike[str]) -> pa.Table:
    from mlchaos.data.files import read_table

    return read_table(path)


def corrupt(
    data: Any,
    kind: str,
    columns: str | Sequence[str] | None = None,
    fraction: float = 0.1,
    seed: int | np.random.Generator | None = None,
    *,
    selection: str = "exact",
    where: Any = None,
    given: str | None = None,
    quantiles: tuple[float, float] | None = None,
    **params: Any,
) -> tuple[Any, ErrorMask]:
    """Corrupt ``data`` the way production does; return ``(corrupted, mask)``.

    ``data``: pandas DataFrame, pyarrow Table or RecordBatch (returned as the
    same type), or a path to a ``.parquet``/``.csv`` file (returned as a Table;
    the file is not touched).  ``kind``: one of :data:`KINDS` (see
    docs/data.md).  ``fraction``: share of all rows to corrupt, in [0, 1].
    ``selection``: ``'exact'`` (exactly ``round(fraction·n)`` rows) or
    ``'bernoulli'``.  ``where`` (boolean array) or ``given`` + ``quantiles``
    condition the draw.  ``seed``: same seed, same result.  The input is never
    modified.
    """
    spec = _resolve_kind(kind)
    unknown = set(params) - spec.params
    if unknown:
        raise ValueError(
            f"{sorted(unknown)[0]}: unknown parameter for kind {spec.name!r}; accepted: {sorted(spec.params)}"
        )
    fraction = check_fraction(fraction)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if isinstance(data, (str, os.PathLike)):
        data = _read_path(data)
    frame = Frame(data)
    cols = _columns(columns, spec, frame)
    rng, used_seed = _rng(seed)
    n = frame.n_rows

    idx = np.zeros(0, dtype=np.int64)
    if spec.uses_rows:
        eligible: np.ndarray | None = None
        if (spec.scope == "cell" or spec.name in ("type_change", "stale_rows")) and all(
            frame.has_missing(c) for c in cols
        ):
            # Rows whose target cells are all missing cannot change; with any complete column, all rows can.
            eligible = np.zeros(n, dtype=bool)
            for c in cols:
                eligible |= frame.not_null(c)
        if where is not None:
            w = np.asarray(where, dtype=bool)
            if w.shape != (n,):
                raise ValueError(f"where must be a boolean array of length {n}, got shape {w.shape}")
            eligible = w if eligible is None else eligible & w
        if given is not None:
            frame.check_columns([given])
            if quantiles is None:
                raise ValueError("quantiles is required with given, e.g. quantiles=(0.9, 1.0)")
            window = quantile_window(frame.numpy(given), quantiles)
            eligible = window if eligible is None else eligible & window
        elif quantiles is not None:
            raise ValueError("quantiles needs given=<column>")
        idx = select_rows(n, fraction, rng, selection=selection, eligible=eligible)

    if spec.scope == "frame":
        mask = spec.kernel(frame, cols, idx, rng, dict(params))
    else:
        cells: dict[str, np.ndarray] = {}
        for c in cols:
            sub = frame.take(c, idx)
            new = spec.kernel(sub, CellContext(c, rng, frame, dict(params)))
            if len(new) != len(sub):  # pragma: no cover - kernel contract
                raise AssertionError(f"kernel {spec.name} returned {len(new)} values for {len(sub)}")
            changed = differs(sub, new)
            hit = idx[changed]
            if hit.size:
                frame.put(c, hit, new.filter(pa.array(changed)))
            m = np.zeros(n, dtype=bool)
            m[hit] = True
            cells[c] = m
        mask = ErrorMask(spec.name, n, cells=cells)
    mask.kind = spec.name
    mask.seed = used_seed
    mask.params = {"columns": cols, "fraction": fraction, "selection": selection, **params}
    if given is not None:
        mask.params.update(given=given, quantiles=list(quantiles or ()))
    return frame.result(), mask
