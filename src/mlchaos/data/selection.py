"""Row selection: which rows a corruption may touch, chosen once per call.

Why a module of its own: every kind shares the same arithmetic, and it is the
part that decides both speed (pick ``k`` positions once, never scan rows in
Python) and statistical meaning:

* ``exact``: exactly ``round(fraction * n)`` rows, drawn without replacement.
* ``bernoulli``: each row independently with probability ``fraction`` (the
  count varies, as it does in production).
* Missing completely at random by default.  ``given=column`` with
  ``quantiles=(lo, hi)`` restricts the draw to rows whose value in that
  column lies in that quantile window (missing at random when ``given`` is
  another column, not at random when it is the corrupted column itself);
  ``where`` takes any boolean array.  ``fraction`` stays a share of *all*
  rows; the draw is concentrated in the eligible ones.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SELECTIONS", "check_fraction", "quantile_window", "sample_sorted", "select_rows"]

SELECTIONS = ("exact", "bernoulli")


def check_fraction(fraction: float) -> float:
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    return value


def quantile_window(values: np.ndarray, quantiles: tuple[float, float]) -> np.ndarray:
    """Boolean array: ``values`` within the [lo, hi] quantile window (NaN never eligible)."""
    try:
        lo, hi = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be a pair (lo, hi) in [0, 1], got {quantiles!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= lo <= hi <= 1, got {quantiles!r}")
    vals = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(vals)
    if not finite.any():
        return np.zeros(vals.shape, dtype=bool)
    qlo, qhi = np.quantile(vals[finite], [lo, hi])
    return finite & (vals >= qlo) & (vals <= qhi)


_SMALL = 65_536


def sample_sorted(m: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random k-subset of ``range(m)``, sorted, without sorting.

    For large ``m`` it marks i.i.d. uniform draws in a bitmap until ``k``
    distinct positions are hit, then drops a uniform random surplus: given
    its size, the set of distinct draws is a uniform subset, so the result is
    uniform over all k-subsets.  ``flatnonzero`` returns it already sorted,
    which saves the O(k log k) sort that ``Generator.choice`` needs, the
    largest cost of selecting 500k of 5M rows.
    """
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= m:
        return np.arange(m, dtype=np.int64)
    if k > m // 2:  # choose the rows to leave alone instead
        keep = np.ones(m, dtype=bool)
        keep[sample_sorted(m, m - k, rng)] = False
        return np.flatnonzero(keep).astype(np.int64, copy=False)
    if m < _SMALL:
        return np.sort(rng.choice(m, size=k, replace=False, shuffle=False)).astype(np.int64, copy=False)
    mark = np.zeros(m, dtype=bool)
    got = 0
    while got < k:
        # expected draws to reach the missing distinct positions, with a margin
        need = -(m - got) * math.log1p(-(k - got) / (m - got))
        mark[rng.integers(0, m, int(need * 1.02) + 64)] = True
        got = int(np.count_nonzero(mark))
    idx = np.flatnonzero(mark).astype(np.int64, copy=False)
    if got > k:
        idx = np.delete(idx, rng.choice(got, size=got - k, replace=False))
    return idx


def select_rows(
    n: int,
    fraction: float,
    rng: np.random.Generator,
    *,
    selection: str = "exact",
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted int64 positions of the selected rows among ``n``.

    ``eligible`` (bool, length ``n``) limits the candidates.  With ``exact`` the
    count is ``round(fraction * n)``; if fewer rows are eligible than that, a
    ValueError names ``fraction`` (silently corrupting less than asked would
    make an experiment look milder than declared).
    """
    fraction = check_fraction(fraction)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if n == 0 or fraction == 0.0:
        return np.zeros(0, dtype=np.int64)
    if eligible is None:
        candidates = None
        m = n
    else:
        eligible = np.asarray(eligible, dtype=bool)
        if eligible.shape != (n,):
            raise ValueError(f"where must be a boolean array of length {n}, got shape {eligible.shape}")
        if eligible.all():  # every row eligible: skip the extra indirection
            candidates = None
            m = n
        else:
            candidates = np.flatnonzero(eligible)
            m = int(candidates.size)
    if selection == "exact":
        k = round(fraction * n)
        if k > m:
            raise ValueError(
                f"fraction={fraction} asks for {k} rows but only {m} rows are eligible "
                "(check where/given/quantiles, or null cells that cannot change)"
            )
        picks = sample_sorted(m, k, rng)
    else:
        p = fraction * n / m if m else 0.0
        if p > 1.0:
            raise ValueError(
                f"fraction={fraction} is more than the {m} eligible rows can hold with bernoulli selection"
            )
        # a Binomial count, then a uniform subset of that size: the same law as m coin flips
        picks = sample_sorted(m, int(rng.binomial(m, p)), rng)
    return picks if candidates is None else candidates[picks]
