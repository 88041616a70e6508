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
