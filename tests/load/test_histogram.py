"""LogHistogram: merge is exact, quantiles are within the documented precision."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos.load.histogram import MIN_VALUE, PRECISION, HistogramBuilder, LogHistogram

REL = math.sqrt(1 + PRECISION) - 1 + 1e-9  # documented bound on the relative error of a quantile


def nearest_rank(values: np.ndarray, q: float) -> float:
    s = np.sort(values)
    return float(s[max(1, math.ceil(q * len(s))) - 1])


def within_precision(got: float | None, exact: float) -> bool:
    assert got is not None
    return abs(got - exact) <= REL * exact + MIN_VALUE


latencies = st.lists(st.floats(min_value=1e-6, max_value=100.0, allow_nan=False), min_size=1, max_size=300)
qs = st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0])


@settings(max_examples=200, deadline=None)
@given(latencies, latencies, qs)
def test_merge_equals_union_and_quantiles_within_precision(a: list[float], b: list[float], q: float) -> None:
    merged = LogHistogram.from_values(a).merge(LogHistogram.from_values(b))
    union = LogHistogram.from_values(a + b)
    assert merged == union
    assert merged.count == len(a) + len(b)
    assert merged.min == min(a + b) and merged.max == max(a + b)
    assert within_precision(merged.quantile(q), nearest_rank(np.array(a + b), q))


@settings(max_examples=100, deadline=None)
@given(latencies)
def test_wire_roundtrip(a: list[float]) -> None:
    h = LogHistogram.from_values(a)
    back = LogHistogram.from_dict(h.to_dict())
    assert back == h and back.count == h.count and back.max == h.max


def test_empty() -> None:
    h = LogHistogram()
    assert h.count == 0 and h.quantile(0.99) is None and h.max is None and h.to_dict() == {}
    assert LogHistogram.merged([h, LogHistogram()]).count == 0


_CHILD = """
import json, sys
import numpy as np
from mlchaos.load.histogram import LogHistogram
vals = np.random.default_rng(int(sys.argv[1])).lognormal(mean=-7, sigma=1.5, size=50_000)
print(json.dumps([vals.tolist(), LogHistogram.from_values(vals).to_dict()]))
"""


def test_two_processes_merge_equals_union() -> None:
    """Histograms built in 2 processes and merged here equal the histogram of all their samples."""
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(seed)], stdout=subprocess.PIPE)
             for seed in (1, 2)]
    parts = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        parts.append(json.loads(out))
    allv = np.array(parts[0][0] + parts[1][0])
    merged = LogHistogram.merged(LogHistogram.from_dict(d) for _, d in parts)
    assert merged == LogHistogram.from_values(allv)
    for qq in (0.5, 0.9, 0.99, 0.999, 0.9999):
        assert within_precision(merged.quantile(qq), nearest_rank(allv, qq))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=2000.0, allow_nan=False), max_size=400), st.integers(1, 64))
def test_builder_in_slices_equals_one_pass(values: list[float], size: int) -> None:
    """The worker's tick builds its histograms slice by slice; the result must be the one-pass histogram."""
    v = np.asarray(values, dtype=np.float64)
    b = HistogramBuilder()
    for i in range(0, v.size, size):
        b.add(v[i:i + size])
    built, whole = b.build(), LogHistogram.from_values(v)
    assert built == whole
    assert built.count == len(values)
    if values:
        assert built.min == min(values) and built.max == max(values)
        assert math.isclose(built.mean or 0.0, whole.mean or 0.0, rel_tol=1e-9, abs_tol=1e-12)

