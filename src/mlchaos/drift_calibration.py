"""Drift thresholds calibrated to a stated false-alarm rate, from the baseline itself.

Why: a fixed threshold (PSI 0.1, KS 0.05) means a different false-alarm rate
for every column and window size.  Measured on real columns
(``benchmarks/bench_drift.py``), KS at 0.05 false-alarms in a few percent of
no-drift 1k-row windows on one column and in a third of them on another, and
PSI's "0.1 ≈ a 0.3 sd shift" holds for Gaussian data only.  A user who writes
``false_alarm: 1%`` wants a threshold that a window *without* drift exceeds
one time in a hundred, on *their* column, at *their* window size.

How: the null distribution of the statistic is simulated by splitting the
baseline.  Each draw permutes the reference values and compares a disjoint
pseudo-reference (``m`` values) with a pseudo-window (``w`` values, the
window size).  For i.i.d. data this is *exactly* the distribution of the
statistic between two independent samples of sizes ``m`` and ``w`` — ties,
skew, gaps and all — because no value is drawn twice (a bootstrap with
replacement would add ties the column does not have, which shrinks KS and
inflates false alarms).  The threshold is the ``k``-th largest of ``B``
draws with ``k = ⌊α (B + 1)⌋``, so a new no-drift statistic exceeds it with
probability ``k / (B + 1) ≈ α``.

The run compares the *whole* reference (``n`` values) with the window, and
``m = n - w < n``: the simulated statistic is a little noisier than the real
one, so the threshold is a little high and the false-alarm rate is **at most**
α, close to α when the baseline holds several windows (``m`` is capped at ten
windows to bound the cost; beyond that the difference is under 10 % of the
variance).  When the baseline holds fewer than ``w + min_size`` values there
is no disjoint split: the draws then resample with replacement (the
``method`` says ``bootstrap``) and the rate is only approximate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mlchaos import drift

__all__ = ["Calibration", "Calibrator", "calibrate", "default_draws"]

STATISTICS = ("psi", "ks", "wasserstein", "jensen_shannon")
MAX_PSEUDO_REFERENCE_WINDOWS = 10


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A threshold and how it was obtained (reported in the probe's detail and the journal)."""

    statistic: str
    false_alarm: float
    threshold: float
    window: int
    reference_size: int
    pseudo_reference: int
    draws: int
    method: str  # "permutation" (exact for i.i.d. data, at most α) or "bootstrap" (approximate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_draws(false_alarm: float) -> int:
    """Enough draws for about 20 null statistics above the threshold (its quantile is then stable)."""
    return max(199, math.ceil(20 / false_alarm) - 1)


def _values(values: Any) -> np.ndarray:
    arr = np.asarray(values.sorted if isinstance(values, drift.Reference) else values)
    arr = arr.reshape(-1)
    if arr.dtype.kind in "fiub":
        arr = arr.astype(np.float64, copy=False)
        return arr[~np.isnan(arr)]
    return np.asarray([v for v in arr.tolist() if v is not None], dtype=object)


def statistic_of(statistic: str, ref: np.ndarray, cur: np.ndarray, bins: int | str = 10) -> float:
    """One statistic between two prepared samples (no size floor: the caller chose the sizes).

    The plain functions, not :class:`mlchaos.drift.Reference`: they give the same values (tested in
    tests/data/test_drift.py) without precomputing what one comparison never reuses."""
    if statistic == "psi":
        return float(drift.psi(ref, cur, bins=bins, min_size=1))
    if statistic == "jensen_shannon":
        return float(drift.jensen_shannon(ref, cur, min_size=1))
    if ref.dtype.kind != "f":
        raise ValueError(f"statistic: {statistic} needs a numeric column")
    fn = drift.ks if statistic == "ks" else drift.wasserstein
    return float(fn(ref, cur, min_size=1))


def calibrate(
    reference: Any,
    window: int,
    *,
    statistic: str = "psi",
    false_alarm: float = 0.01,
    bins: int | str = 10,
    draws: int | None = None,
    seed: int | np.random.Generator | None = 0,
    min_size: int = drift.MIN_WINDOW,
) -> Calibration:
    """The threshold a no-drift window of ``window`` values exceeds with probability ``false_alarm``.

    Raises ValueError naming the argument when the request cannot be honoured
    (unknown statistic, α outside (0, 0.5], a window or reference too small).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if not 0 < false_alarm <= 0.5:
        raise ValueError(f"false_alarm must be above 0 and at most 50%, got {false_alarm:g}")
    if window < min_size:
        raise ValueError(f"window: {window} values; calibration needs at least min_size={min_size}")
    ref = _values(reference)
    n = int(ref.size)
    if n < min_size:
        raise ValueError(f"reference: {n} values; calibration needs at least min_size={min_size}")
    b = int(draws) if draws is not None else default_draws(false_alarm)
    k = math.floor(false_alarm * (b + 1))
    if k < 1:
        raise ValueError(f"draws: {b} draws cannot resolve a {false_alarm:.2%} false-alarm rate; "
                         f"give at least {math.ceil(1 / false_alarm) - 1}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    stats = np.empty(b, dtype=np.float64)
    if n >= window + min_size:
        m = min(n - window, MAX_PSEUDO_REFERENCE_WINDOWS * window)
        method = "permutation"
        for i in range(b):
            pick = rng.choice(n, size=m + window, replace=False) if m + window < n else rng.permutation(n)
            stats[i] = statistic_of(statistic, ref[pick[:m]], ref[pick[m:m + window]], bins)
    else:
        m = n
        method = "bootstrap"
        for i in range(b):
            stats[i] = statistic_of(statistic, ref[rng.integers(0, n, n)], ref[rng.integers(0, n, window)], bins)
    stats.sort()
    threshold = float(stats[b - k])  # the k-th largest
    return Calibration(statistic, float(false_alarm), threshold, int(window), n, int(m), b, method)


class Calibrator:
    """Thresholds for one probe: recalibrated only when the reference or the window size moves.

    Window sizes of sampled answers vary with the load; each size is rounded
    *down* to a bucket (quarter powers of two), so a handful of calibrations
    cover a run, and rounding down is the conservative side (a smaller
    window has a higher threshold).
    """

    def __init__(self, statistic: str, false_alarm: float, *, bins: int | str = 10, draws: int | None = None,
                 seed: int = 0, min_size: int = drift.MIN_WINDOW) -> None:
        self.statistic, self.false_alarm, self.bins = statistic, false_alarm, bins
        self.draws, self.seed, self.min_size = draws, seed, min_size
        self._ref: np.ndarray | None = None
        self._cache: dict[int, Calibration] = {}

    def set_reference(self, values: Any) -> None:
        """A new reference; cached thresholds survive a change in size under 10 % (a growing baseline)."""
        ref = _values(values)
        old = self._ref
        if old is None or abs(ref.size - old.size) > 0.1 * old.size:
            self._cache.clear()
        self._ref = ref

    @property
    def has_reference(self) -> bool:
        return self._ref is not None

    @staticmethod
    def bucket(window: int) -> int:
        return int(2 ** (math.floor(4 * math.log2(max(window, 1))) / 4))

    def threshold(self, window: int) -> Calibration:
        if self._ref is None:
            raise ValueError("reference: no reference to calibrate against yet")
        w = max(self.bucket(window), self.min_size) if window >= self.min_size else window
        cal = self._cache.get(w)
        if cal is None:
            cal = calibrate(self._ref, w, statistic=self.statistic, false_alarm=self.false_alarm, bins=self.bins,
                            draws=self.draws, seed=self.seed, min_size=self.min_size)
            self._cache[w] = cal
        return cal
