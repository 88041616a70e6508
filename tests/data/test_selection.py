"""Property tests for row-selection arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos.data.selection import quantile_window, select_rows


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 5000), fraction=st.floats(0, 1), seed=st.integers(0, 2**32))
def test_exact_count_sorted_unique_in_range(n: int, fraction: float, seed: int) -> None:
    idx = select_rows(n, fraction, np.random.default_rng(seed))
    assert idx.size == round(fraction * n)
    assert np.all(np.diff(idx) > 0)
    assert idx.size == 0 or (idx[0] >= 0 and idx[-1] < n)
    again = select_rows(n, fraction, np.random.default_rng(seed))
    np.testing.assert_array_equal(idx, again)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3000), fraction=st.floats(0, 1), share=st.floats(0.05, 1), seed=st.integers(0, 2**32))
def test_eligible_rows_only(n: int, fraction: float, share: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    eligible = rng.random(n) < share
    k = round(fraction * n)
    if k > eligible.sum():
        with pytest.raises(ValueError, match="fraction"):
            select_rows(n, fraction, rng, eligible=eligible)
        return
    idx = select_rows(n, fraction, rng, eligible=eligible)
    assert idx.size == k and eligible[idx].all() and np.unique(idx).size == k


@settings(max_examples=50, deadline=None)
@given(fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**32))
def test_bernoulli_count_within_tolerance(fraction: float, seed: int) -> None:
    n = 20000
    idx = select_rows(n, fraction, np.random.default_rng(seed), selection="bernoulli")
    sd = (n * fraction * (1 - fraction)) ** 0.5
    assert abs(idx.size - n * fraction) <= 6 * sd + 1
    assert np.all(np.diff(idx) > 0)


@settings(max_examples=100, deadline=None)
@given(lo=st.floats(0, 1), width=st.floats(0, 1), seed=st.integers(0, 2**32))
def test_quantile_window_share(lo: float, width: float, seed: int) -> None:
    hi = min(1.0, lo + width)
    x = np.random.default_rng(seed).normal(size=4001)
    w = quantile_window(x, (lo, hi))
    share = w.mean()
    assert hi - lo - 0.002 <= share <= hi - lo + 0.002


@pytest.mark.parametrize("fraction", [-0.01, 1.01, float("nan"), "half"])
def test_fraction_rejected(fraction: object) -> None:
    with pytest.raises(ValueError, match="fraction"):
        select_rows(10, fraction, np.random.default_rng(0))  # type: ignore[arg-type]


# -- end to end: for any data and any cell kind, the mask is exactly the change ------------------
NUMERIC_KINDS = ["nulls", "outliers", "out_of_range", "scale", "sign", "mean_shift", "scale_shift",
                 "category_swap", "unseen_category", "label_noise"]
STRING_KINDS = ["nulls", "typos", "mojibake", "wrong_format", "category_swap", "unseen_category"]


def _values(data: object, col: str) -> list[object]:
    import math

    import pandas as pd

    if isinstance(data, pd.DataFrame):
        vals = data[col].astype(object).tolist()
    else:
        vals = data.column(col).to_pylist()  # type: ignore[attr-defined]
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in vals]


@settings(max_examples=60, deadline=None)
@given(
    nums=st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), min_size=0, max_size=60),
    texts=st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=60, max_size=60),
    kind_i=st.integers(0, 100),
    fraction=st.floats(0, 1),
    as_arrow=st.booleans(),
    as_float=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_mask_is_exactly_the_change(nums: list[int | None], texts: list[str | None], kind_i: int, fraction: float,
                                    as_arrow: bool, as_float: bool, seed: int) -> None:
    import pandas as pd
    import pyarrow as pa

    from mlchaos.data import corrupt

    n = len(nums)
    num_col = pa.array([None if v is None else (float(v) if as_float else v) for v in nums],
                       type=pa.float64() if as_float else pa.int64())
    table = pa.table({"n": num_col, "t": pa.array(texts[:n], type=pa.string())})
    data: object = table if as_arrow else table.to_pandas()
    use_numeric = kind_i % 2 == 0
    kinds = NUMERIC_KINDS if use_numeric else STRING_KINDS
    kind = kinds[kind_i % len(kinds)]
    col = "n" if use_numeric else "t"
    try:
        out, mask = corrupt(data, kind, col, fraction=fraction, seed=seed)
    except ValueError as exc:
        # legitimate refusals only: too few non-null rows, too few categories, value already present
        assert any(w in str(exc) for w in ("fraction", "categories", "already")), str(exc)
        return
    before, after = _values(data, col), _values(out, col)
    changed = np.array([a != b for a, b in zip(before, after, strict=True)], dtype=bool)
    np.testing.assert_array_equal(mask.cells[col], changed)
    assert changed.sum() <= round(fraction * n)
    other = "t" if col == "n" else "n"
    assert _values(out, other) == _values(data, other)
    assert isinstance(out, pd.DataFrame) != as_arrow


def test_large_sample_is_uniform() -> None:
    from mlchaos.data.selection import sample_sorted

    m, k, runs = 100_000, 30_000, 40  # above the bitmap threshold
    counts = np.zeros(10)
    first_half = []
    for seed in range(runs):
        x = sample_sorted(m, k, np.random.default_rng(seed))
        assert x.size == k and np.all(np.diff(x) > 0)
        counts += np.bincount(x // (m // 10), minlength=10)
        first_half.append(np.count_nonzero(x < m // 2))
    share = counts / counts.sum()
    assert np.all(np.abs(share - 0.1) < 0.003)
    # hypergeometric spread of the count in one half: sd = sqrt(k * 1/2 * 1/2 * (m-k)/(m-1)) ≈ 65
    assert abs(np.mean(first_half) - k / 2) < 4 * 65 / np.sqrt(runs) + 1
    assert 20 < np.std(first_half) < 130
