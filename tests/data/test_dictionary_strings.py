"""String kinds on Arrow ``dictionary<string>`` columns (a pandas category in Arrow or parquet).

They used to raise "needs a string column". What must hold: the rows hit are exactly those hit
on the same values stored densely with the same seed, the values equal the dense result, and the
column keeps its dictionary type (index type too, unless the new values no longer fit in it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlchaos.data import corrupt

STRING_KINDS = [("typos", {}), ("mojibake", {}), ("wrong_format", {"style": "upper"}),
                ("wrong_format", {"style": "whitespace"}), ("wrong_format", {"style": "truncate", "keep": 2})]
CITIES = ["Paris", "Zürich", "Berlin", "Köln", "Łódź"]


def _tables(n: int = 2000, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    vals = np.random.default_rng(seed).choice(CITIES, n)
    vals[::97] = None  # some nulls: never selected, never changed
    cat = pa.Table.from_pandas(pd.DataFrame({"city": pd.Categorical(vals)}), preserve_index=False)
    dense = pa.table({"city": pa.array(vals.tolist(), type=pa.string())})
    return cat, dense


@pytest.mark.parametrize(("kind", "params"), STRING_KINDS)
def test_dictionary_mask_and_values_equal_the_dense_column(kind: str, params: dict[str, object]) -> None:
    cat, dense = _tables()
    assert pa.types.is_dictionary(cat.schema.field("city").type)
    out, mask = corrupt(cat, kind, columns="city", fraction=0.2, seed=11, **params)
    ref, ref_mask = corrupt(dense, kind, columns="city", fraction=0.2, seed=11, **params)
    assert np.array_equal(mask.cells["city"], ref_mask.cells["city"])
    assert mask.cells["city"].sum() > 0
    assert out.column("city").to_pylist() == ref.column("city").to_pylist()
    assert out.schema.field("city").type == cat.schema.field("city").type  # dictionary<string, int8> kept
    # rows outside the mask are untouched
    before, after = cat.column("city").to_pylist(), out.column("city").to_pylist()
    untouched = ~mask.cells["city"]
    assert [a for a, u in zip(after, untouched, strict=True) if u] == [b for b, u in zip(before, untouched,
                                                                                            strict=True) if u]


def test_index_type_widens_when_new_values_do_not_fit() -> None:
    """200 distinct cities as int8 codes, typos on every row: > 127 values, so the codes widen to int32."""
    vals = [f"city-{i:03d}" for i in range(120)] * 10
    arr = pa.array(vals).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))
    out, mask = corrupt(pa.table({"c": arr}), "typos", columns="c", fraction=1.0, seed=3)
    t = out.schema.field("c").type
    assert pa.types.is_dictionary(t) and t.index_type == pa.int32() and t.value_type == pa.string()
    assert mask.cells["c"].sum() > 127


def test_parquet_round_trip_of_a_pandas_category(tmp_path: Path) -> None:
    """The form users meet: pandas writes a category column to parquet, mlchaos corrupts the file."""
    vals = np.random.default_rng(5).choice(CITIES, 1000)
    src = tmp_path / "f.parquet"
    pd.DataFrame({"city": pd.Categorical(vals), "x": np.arange(1000)}).to_parquet(src)
    assert pa.types.is_dictionary(pq.read_schema(src).field("city").type)
    out, mask = corrupt(str(src), "typos", columns="city", fraction=0.1, seed=2)
    assert mask.cells["city"].sum() == pytest.approx(100, abs=30)  # short, all-ASCII-pair names can stay
    assert pa.types.is_dictionary(out.schema.field("city").type)
    back = out.to_pandas()
    assert isinstance(back["city"].dtype, pd.CategoricalDtype)
    changed = back["city"].astype(str).to_numpy() != vals
    assert np.array_equal(changed, mask.cells["city"])


def test_dictionary_of_integers_is_still_refused() -> None:
    arr = pa.array([1, 2, 1, 2] * 10).dictionary_encode()
    with pytest.raises(ValueError, match="typos needs a string column; 'c' is dictionary"):
        corrupt(pa.table({"c": arr}), "typos", columns="c", fraction=0.5, seed=1)
