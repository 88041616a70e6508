"""Every corruption kind: mask == change, fraction, untouched cells identical, seed → same result."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlchaos.data import KINDS, ErrorMask, corrupt

from .conftest import N, make_frame

CELL_CASES: list[tuple[str, str, dict[str, Any], float]] = [
    # kind, column, params, minimum share of selected cells that must really change
    ("nulls", "x", {}, 1.0),
    ("nulls", "i", {}, 1.0),
    ("nulls", "s", {}, 1.0),
    ("typos", "s", {}, 0.8),
    ("typos", "u", {}, 0.8),
    ("mojibake", "u", {}, 1.0),
    ("wrong_format", "d", {"style": "date_dmy"}, 1.0),
    ("wrong_format", "s", {"style": "upper"}, 1.0),
    ("wrong_format", "s", {"style": "whitespace"}, 1.0),
    ("wrong_format", "s", {"style": "truncate", "keep": 2}, 1.0),
    ("outliers", "x", {"sigma": 3}, 1.0),
    ("out_of_range", "i", {}, 1.0),
    ("out_of_range", "x", {"side": "low"}, 1.0),
    ("scale", "x", {"factor": 1000}, 1.0),
    ("scale", "i", {}, 1.0),
    ("sign", "x", {}, 1.0),
    ("mean_shift", "x", {"sd": 1.0}, 1.0),
    ("scale_shift", "x", {"factor": 2.0}, 1.0),
    ("category_swap", "c", {}, 1.0),
    ("category_swap", "s", {}, 1.0),
    ("unseen_category", "c", {}, 1.0),
    ("unseen_category", "s", {"value": "zulu"}, 1.0),
    ("label_noise", "y", {}, 1.0),
]


def column_values(data: Any, name: str) -> list[Any]:
    if isinstance(data, pd.DataFrame):
        s = data[name]
        return [None if (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT) else v
                for v in s.astype(object).tolist()]
    col = data.column(name)
    vals = col.to_pylist()
    return [None if isinstance(v, float) and math.isnan(v) else v for v in vals]


def n_rows(data: Any) -> int:
    return len(data) if isinstance(data, pd.DataFrame) else data.num_rows


def raw_bytes(data: Any, name: str) -> np.ndarray:
    """Per-row bytes of a numeric column (to prove untouched cells are byte-identical)."""
    if isinstance(data, pd.DataFrame):
        return data[name].to_numpy()
    return np.asarray(data.column(name).to_numpy())


@pytest.mark.parametrize(("kind", "col", "params", "min_changed"), CELL_CASES)
def test_cell_kind(any_data: Any, kind: str, col: str, params: dict[str, Any], min_changed: float) -> None:
    fraction = 0.1
    out, mask = corrupt(any_data, kind, col, fraction=fraction, seed=7, **params)
    assert type(out) is type(any_data)
    assert isinstance(mask, ErrorMask) and mask.kind == kind and mask.seed == 7
    before = column_values(any_data, col)
    after = column_values(out, col)
    changed = np.array([a != b for a, b in zip(before, after, strict=True)])
    # the mask is exactly the change
    np.testing.assert_array_equal(mask.cells[col], changed)
    k = round(fraction * N)
    assert min_changed * k <= changed.sum() <= k
    # other columns are untouched
    for other in make_frame().columns:
        if other != col:
            assert column_values(out, other) == column_values(any_data, other)
    # untouched cells of the column: same values, and same bytes for numeric columns
    keep = ~changed
    assert [v for v, t in zip(after, keep, strict=True) if t] == [v for v, t in zip(before, keep, strict=True) if t]
    if col in ("x", "i") and kind != "nulls":
        b0, b1 = raw_bytes(any_data, col), raw_bytes(out, col)
        if b1.dtype == b0.dtype:
            assert b0[keep].tobytes() == b1[keep].tobytes()
    # same seed, same result; other seed, other rows
    out2, mask2 = corrupt(any_data, kind, col, fraction=fraction, seed=7, **params)
    np.testing.assert_array_equal(mask2.cells[col], mask.cells[col])
    assert column_values(out2, col) == after
    _, mask3 = corrupt(any_data, kind, col, fraction=fraction, seed=8, **params)
    assert not np.array_equal(mask3.cells[col], mask.cells[col])


def test_input_never_modified(frame: pd.DataFrame) -> None:
    copy = frame.copy(deep=True)
    for kind, col, params, _ in CELL_CASES:
        corrupt(frame, kind, col, fraction=0.3, seed=1, **params)
    pd.testing.assert_frame_equal(frame, copy)


def test_nulls_kind_semantics(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "nulls", ["x", "s"], fraction=0.05, seed=3)
    assert out["x"].isna().sum() == 100 and out["s"].isna().sum() == 100
    # the same rows for every listed column
    np.testing.assert_array_equal(mask.cells["x"], mask.cells["s"])
    assert mask.n_rows_changed == 100 and mask.n_cells_changed == 200
    out_i, _ = corrupt(frame, "nulls", "i", fraction=0.05, seed=3)
    assert out_i["i"].dtype == np.float64  # pandas semantics: an int column with NaN is float
    table = pa.Table.from_pandas(frame, preserve_index=False)
    t_out, _t_mask = corrupt(table, "nulls", "i", fraction=0.05, seed=3)
    assert t_out.column("i").type == pa.int64() and t_out.column("i").null_count == 100
    nan_out, _ = corrupt(table, "nulls", "x", fraction=0.05, seed=3, as_nan=True)
    assert nan_out.column("x").null_count == 0 and np.isnan(nan_out.column("x").to_numpy()).sum() == 100


def test_already_null_cells_are_not_selected() -> None:
    df = pd.DataFrame({"x": [np.nan] * 50 + list(range(50))})
    out, mask = corrupt(df, "nulls", "x", fraction=0.5, seed=0)
    assert out["x"].isna().all() and mask.n_cells_changed == 50
    with pytest.raises(ValueError, match="fraction"):
        corrupt(df, "nulls", "x", fraction=0.6, seed=0)


def test_outliers_are_far(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "outliers", "x", fraction=0.1, seed=1, sigma=3)
    z = (out["x"][mask.cells["x"]] - frame["x"].mean()) / frame["x"].std(ddof=0)
    assert (z.abs() >= 3 - 1e-9).all()


def test_scale_and_sign_values(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "scale", "x", fraction=0.1, seed=1)
    m = mask.cells["x"]
    np.testing.assert_allclose(out["x"][m], frame["x"][m] * 1000)
    out, mask = corrupt(frame, "sign", "i", fraction=0.1, seed=1)
    m = mask.cells["i"]
    np.testing.assert_array_equal(out["i"][m], -frame["i"][m])
    assert out["i"].dtype == frame["i"].dtype


def test_category_swap_mapping_and_unseen(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "category_swap", "s", fraction=1.0, seed=1, mapping={"alpha": "bravo"})
    assert (out["s"] != "alpha").all()
    assert mask.n_cells_changed == int((frame["s"] == "alpha").sum())
    out, mask = corrupt(frame, "unseen_category", "c", fraction=0.1, seed=1)
    assert "__unseen__" in out["c"].cat.categories and (out["c"] == "__unseen__").sum() == mask.n_cells_changed
    with pytest.raises(ValueError, match="value"):
        corrupt(frame, "unseen_category", "s", fraction=0.1, seed=1, value="alpha")


def test_label_noise_binary_flips(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "label_noise", "y", fraction=0.2, seed=2)
    m = mask.cells["y"]
    assert ((out["y"][m] + frame["y"][m]) == 1).all() and m.sum() == 400


def test_type_change(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "type_change", "x", fraction=0.1, seed=1)
    assert out["x"].dtype == object
    strs = out["x"].map(lambda v: isinstance(v, str)).to_numpy()
    np.testing.assert_array_equal(strs, mask.cells["x"])
    assert strs.sum() == 200
    np.testing.assert_allclose(out["x"].astype(float), frame["x"])  # same numbers, as text
    assert mask.schema["retyped"]["x"] == ["float64", "object"]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    t_out, t_mask = corrupt(table, "type_change", "i", fraction=0.1, seed=1, style="comma_decimal")
    assert t_out.column("i").type == pa.string()
    assert t_mask.cells["i"].all()
    t_out, _ = corrupt(table, "type_change", "x", fraction=0.5, seed=1, style="comma_decimal")
    assert sum("," in v for v in t_out.column("x").to_pylist()) == N // 2


@pytest.mark.parametrize("fmt", ["pandas", "table"])
def test_schema_drift(frame: pd.DataFrame, fmt: str) -> None:
    data: Any = frame if fmt == "pandas" else pa.Table.from_pandas(frame, preserve_index=False)
    cols = list(frame.columns)

    def names(d: Any) -> list[str]:
        return list(d.columns) if isinstance(d, pd.DataFrame) else d.column_names

    out, mask = corrupt(data, "drop_column", "x")
    assert names(out) == [c for c in cols if c != "x"] and mask.schema == {"dropped": ["x"]}
    assert not mask.cells and bool(mask)
    out, mask = corrupt(data, "rename_column", "x", mapping={"x": "amount"})
    assert names(out)[0] == "amount" and mask.schema == {"renamed": {"x": "amount"}}
    out, mask = corrupt(data, "reorder_columns", seed=3)
    assert sorted(names(out)) == sorted(cols) and names(out) != cols
    assert names(out) == mask.schema["order_after"]
    out, mask = corrupt(data, "reorder_columns", order=cols[::-1])
    assert names(out) == cols[::-1]
    out, mask = corrupt(data, "add_column", name="surprise", value=1.5)
    assert names(out)[-1] == "surprise"
    out, mask = corrupt(data, "widen_type", "i")
    assert mask.schema["retyped"]["i"][0] in ("int64",)
    assert column_values(out, "i") == column_values(data, "i")
    for _name in ("x", "s"):
        assert column_values(out, _name) == column_values(data, _name)


def test_widen_arrow_int32() -> None:
    t = pa.table({"a": pa.array([1, 2, 3], pa.int32()), "f": pa.array([1.0, 2.0, 3.0], pa.float32())})
    out, mask = corrupt(t, "widen_type", ["a", "f"])
    assert out.schema.field("a").type == pa.int64() and out.schema.field("f").type == pa.float64()
    assert mask.schema["retyped"] == {"a": ["int32", "int64"], "f": ["float", "double"]}


@pytest.mark.parametrize("position", ["adjacent", "end"])
def test_duplicate_rows(any_data: Any, position: str) -> None:
    out, mask = corrupt(any_data, "duplicate_rows", fraction=0.05, seed=4, position=position)
    k = round(0.05 * N)
    assert n_rows(out) == N + k and mask.n_rows == N + k and mask.inserted.size == k
    assert mask.rows.sum() == k
    # every inserted row is a copy of its source row; removing them gives the input back
    for col in ("x", "s", "ts"):
        after = column_values(out, col)
        before = column_values(any_data, col)
        assert [after[p] for p in mask.inserted] == [before[s] for s in mask.source]
        keep = np.ones(N + k, dtype=bool)
        keep[mask.inserted] = False
        assert [v for v, t in zip(after, keep, strict=True) if t] == before
    if position == "adjacent":
        np.testing.assert_array_equal(np.asarray(column_values(out, "x"))[mask.inserted - 1],
                                      np.asarray(column_values(any_data, "x"))[mask.source])


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_stale_rows(any_data: Any, mode: str) -> None:
    out, mask = corrupt(any_data, "stale_rows", "ts", fraction=0.1, seed=5, age="2h", mode=mode)
    before = pd.to_datetime(pd.Series(column_values(any_data, "ts")))
    after = pd.to_datetime(pd.Series(column_values(out, "ts")))
    k = round(0.1 * N)
    if mode == "append":
        assert len(after) == N + k
        np.testing.assert_array_equal(after.iloc[mask.inserted].to_numpy(),
                                      (before.iloc[mask.source] - pd.Timedelta(hours=2)).to_numpy())
        assert (after.iloc[:N].to_numpy() == before.to_numpy()).all()
    else:
        m = mask.cells["ts"]
        assert m.sum() == k
        np.testing.assert_array_equal(after[m].to_numpy(), (before[m] - pd.Timedelta(hours=2)).to_numpy())
        assert (after[~m].to_numpy() == before[~m].to_numpy()).all()


def test_stale_rows_epoch_seconds() -> None:
    df = pd.DataFrame({"t": np.arange(1000, dtype=np.int64) + 1_700_000_000})
    out, mask = corrupt(df, "stale_rows", "t", fraction=0.1, seed=1, age="1d", mode="replace")
    m = mask.cells["t"]
    assert (df["t"][m] - out["t"][m] == 86400).all()


def test_bernoulli_selection(frame: pd.DataFrame) -> None:
    _, mask = corrupt(frame, "nulls", "x", fraction=0.1, seed=1, selection="bernoulli")
    assert 100 < mask.n_cells_changed < 300  # Binomial(2000, 0.1): sd ≈ 13


def test_conditioned_selection(frame: pd.DataFrame) -> None:
    _out, mask = corrupt(frame, "nulls", "x", fraction=0.05, seed=1, given="i", quantiles=(0.8, 1.0))
    hit = mask.cells["x"]
    assert hit.sum() == 100
    assert (frame["i"][hit] >= frame["i"].quantile(0.8)).all()
    # not at random: conditioned on the corrupted column itself
    _, mask = corrupt(frame, "nulls", "x", fraction=0.05, seed=1, given="x", quantiles=(0.0, 0.1))
    assert (frame["x"][mask.cells["x"]] <= frame["x"].quantile(0.1)).all()
    where = (frame["s"] == "alpha").to_numpy()
    _, mask = corrupt(frame, "scale", "x", fraction=0.05, seed=1, where=where)
    assert where[mask.cells["x"]].all()


def test_mask_records(frame: pd.DataFrame) -> None:
    _, mask = corrupt(frame, "nulls", ["x", "s"], fraction=0.01, seed=1)
    rec = mask.to_records()
    assert len(rec) == 40 and set(rec["column"]) == {"x", "s"} and set(rec["fault"]) == {"nulls"}
    assert mask.to_pandas().sum().sum() == 40
    summary = mask.summary()
    assert summary["cells_changed"] == 40 and summary["rows_changed"] == 20


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": "nope", "columns": "x"}, "kind"),
        ({"kind": "nulls", "columns": "missing"}, "columns"),
        ({"kind": "nulls", "columns": "x", "fraction": 1.5}, "fraction"),
        ({"kind": "nulls", "columns": "x", "fraction": -0.1}, "fraction"),
        ({"kind": "nulls", "columns": "x", "selection": "odd"}, "selection"),
        ({"kind": "nulls", "columns": "x", "seed": -1}, "seed"),
        ({"kind": "scale", "columns": "x", "factr": 3}, "factr"),
        ({"kind": "scale", "columns": "s"}, "columns"),
        ({"kind": "typos", "columns": "x"}, "columns"),
        ({"kind": "scale"}, "columns"),
        ({"kind": "nulls", "columns": "x", "given": "i"}, "quantiles"),
        ({"kind": "nulls", "columns": "x", "given": "i", "quantiles": (0.9, 0.1)}, "quantiles"),
        ({"kind": "wrong_format", "columns": "s", "style": "odd"}, "style"),
        ({"kind": "stale_rows", "columns": ["ts", "x"]}, "columns"),
        ({"kind": "stale_rows", "columns": "ts", "age": "soon"}, "age"),
    ],
)
def test_bad_arguments(frame: pd.DataFrame, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        corrupt(frame, **kwargs)


def test_bad_data_type() -> None:
    with pytest.raises(ValueError, match="data"):
        corrupt([1, 2, 3], "nulls")


def test_every_kind_is_tested() -> None:
    tested = {k for k, *_ in CELL_CASES} | {"type_change", "drop_column", "rename_column", "reorder_columns",
                                            "add_column", "widen_type", "duplicate_rows", "stale_rows"}
    assert tested == set(KINDS)


def test_seed_none_is_replayable(frame: pd.DataFrame) -> None:
    out, mask = corrupt(frame, "typos", "s", fraction=0.1)
    assert mask.seed is not None
    out2, _mask2 = corrupt(frame, "typos", "s", fraction=0.1, seed=mask.seed)
    pd.testing.assert_frame_equal(out, out2)


def test_arrow_string_fast_path_keeps_utf8_valid() -> None:
    arr = pa.array(["ab", "αβγ", "aé", "日本語テキスト", None, "x", ""] * 300)
    out, mask = corrupt(pa.table({"s": arr}), "typos", "s", fraction=0.5, seed=1)
    col = out.column("s")
    col.validate(full=True)
    for a, b, m in zip(arr.to_pylist(), col.to_pylist(), mask.cells["s"], strict=True):
        assert (a != b) == m
        if m:
            assert sorted(a) == sorted(b) and len(a) == len(b)
