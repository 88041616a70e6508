"""Drift statistics: exact agreement with scipy (and Evidently when available), window checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from mlchaos import drift

ROOT = Path(__file__).resolve().parents[2]
EVIDENTLY_PY = ROOT / "benchmarks" / ".venv-evidently" / "bin" / "python"


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return rng.normal(0, 1, 50_000), rng.normal(0.1, 1.1, 40_000)


def test_ks_equals_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = samples
    assert drift.ks(r, c) == pytest.approx(stats.ks_2samp(r, c).statistic, abs=1e-12)
    ri = np.random.default_rng(1).integers(0, 20, 3000)  # ties
    ci = np.random.default_rng(2).integers(2, 22, 2000)
    assert drift.ks(ri, ci) == pytest.approx(stats.ks_2samp(ri, ci).statistic, abs=1e-12)


def test_wasserstein_equals_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = samples
    expected = stats.wasserstein_distance(r, c) / np.std(r)
    assert drift.wasserstein(r, c) == pytest.approx(expected, abs=1e-12)


def test_js_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    r = rng.choice(["a", "b", "c", "d"], 5000, p=[0.4, 0.3, 0.2, 0.1])
    c = rng.choice(["a", "b", "c", "e"], 4000)
    keys = sorted(set(r) | set(c))
    pr = np.array([(r == k).mean() for k in keys])
    pc_ = np.array([(c == k).mean() for k in keys])
    assert drift.jensen_shannon(r, c) == pytest.approx(distance.jensenshannon(pr, pc_), abs=1e-12)
    assert drift.jensen_shannon(r, r) == pytest.approx(0.0, abs=1e-12)


def test_psi_definitions(samples: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = samples
    edges = np.quantile(r, np.linspace(0, 1, 11)[1:-1])
    pr = np.bincount(np.searchsorted(edges, r, side="right"), minlength=10) / r.size
    pc_ = np.bincount(np.searchsorted(edges, c, side="right"), minlength=10) / c.size
    assert drift.psi(r, c) == pytest.approx(np.sum((pr - pc_) * np.log(pr / pc_)), abs=1e-12)
    e = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
    hr, hc = np.histogram(r, e)[0] / r.size, np.histogram(c, e)[0] / c.size
    hr[hr == 0] = min(hr[hr > 0]) / 1e6 if min(hr[hr > 0]) <= 1e-4 else 1e-4
    hc[hc == 0] = min(hc[hc > 0]) / 1e6 if min(hc[hc > 0]) <= 1e-4 else 1e-4
    assert drift.psi(r, c, bins="sturges") == pytest.approx(np.sum((hr - hc) * np.log(hr / hc)), abs=1e-12)
    assert drift.psi(r, r) == pytest.approx(0.0, abs=1e-12)


def test_calibration_mean_shift() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1, 200_000)
    c = rng.normal(0.5, 1, 200_000)
    assert 0.2 < drift.psi(r, c) < 0.3
    assert 0.17 < drift.ks(r, c) < 0.23
    assert 0.45 < drift.wasserstein(r, c) < 0.55


def test_inputs_pandas_arrow_nan(samples: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = samples
    with_nan = np.concatenate([c, [np.nan] * 10])
    expected = drift.ks(r, c)
    assert drift.ks(pd.Series(r), pd.Series(with_nan)) == expected
    assert drift.ks(pa.array(r), pa.chunked_array([pa.array(c)])) == expected


def test_reference_precomputed_matches(samples: tuple[np.ndarray, np.ndarray]) -> None:
    r, c = samples
    ref = drift.Reference(r)
    w = c[:10_000]
    assert ref.psi(w) == pytest.approx(drift.psi(r, w), abs=1e-12)
    assert ref.ks(w) == pytest.approx(stats.ks_2samp(r, w).statistic, abs=1e-12)
    assert ref.wasserstein(w) == pytest.approx(drift.wasserstein(r, w), rel=1e-9)
    assert drift.psi(ref, w) == ref.psi(w) and drift.ks(ref, w) == ref.ks(w)
    ri = np.random.default_rng(1).integers(0, 20, 3000)
    ci = np.random.default_rng(2).integers(2, 22, 2000)
    assert drift.Reference(ri).ks(ci) == pytest.approx(stats.ks_2samp(ri, ci).statistic, abs=1e-12)
    expected = stats.wasserstein_distance(ri, ci) / np.std(ri)
    assert drift.Reference(ri).wasserstein(ci) == pytest.approx(expected, rel=1e-9)
    far = r[:2000] + 10  # no overlap at all
    assert ref.wasserstein(far) == pytest.approx(drift.wasserstein(r, far), rel=1e-9)


def test_window_checks() -> None:
    r = np.random.default_rng(0).normal(size=1000)
    with pytest.raises(ValueError, match="current: empty window"):
        drift.psi(r, [])
    with pytest.raises(ValueError, match="current: empty window"):
        drift.ks(r, [np.nan, np.nan])
    with pytest.raises(ValueError, match="min_size=100"):
        drift.wasserstein(r, r[:50])
    with pytest.raises(ValueError, match="reference"):
        drift.ks(r[:10], r)
    assert drift.ks(r[:10], r[:20], min_size=5) >= 0
    with pytest.raises(ValueError, match="bins"):
        drift.psi(r, r, bins=1)
    with pytest.raises(ValueError, match="reference: numeric"):
        drift.ks(np.array(["a"] * 200, dtype=object), r)


EVIDENTLY_SCRIPT = r"""
import json, sys, numpy as np, pandas as pd
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.core import ColumnType
d = np.load(sys.argv[1])
r, c = pd.Series(d["r"]), pd.Series(d["c"])
rc, cc = pd.Series(d["rc"]), pd.Series(d["cc"])
print(json.dumps({
  "psi": float(_psi(r, c, ColumnType.Numerical, 0.1)[0]),
  "wasserstein": float(_wasserstein_distance_norm(r, c, ColumnType.Numerical, 0.1)[0]),
  "js_cat": float(_jensenshannon(rc, cc, ColumnType.Categorical, 0.1)[0]),
  "psi_cat": float(_psi(rc, cc, ColumnType.Categorical, 0.1)[0]),
}))
"""


def _make_evidently_venv() -> None:
    """Evidently pins pandas < 3, which mlchaos does not: it gets a venv of its own (made once, reused)."""
    venv = EVIDENTLY_PY.parent.parent
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "evidently==0.7.23", "pandas<3"],
                       check=True, capture_output=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not install evidently into {venv}: {exc}")


def _evidently_values(tmp_path: Path, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    data = tmp_path / "drift.npz"
    np.savez(data, **arrays)
    try:
        import evidently  # noqa: F401

        python = sys.executable
    except ImportError:
        if not EVIDENTLY_PY.exists():
            _make_evidently_venv()
        python = str(EVIDENTLY_PY)
    out = subprocess.run([python, "-c", EVIDENTLY_SCRIPT, str(data)], capture_output=True, text=True,
                         timeout=240, env={**os.environ, "DO_NOT_TRACK": "1"})
    if out.returncode != 0:
        pytest.skip(f"evidently could not run: {out.stderr[-500:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_equals_evidently(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0, 1, 100_000)
    c = rng.normal(0.1, 1, 100_000)
    rc = rng.choice(np.array(["a", "b", "c", "d"]), 20_000, p=[0.4, 0.3, 0.2, 0.1])
    cc = rng.choice(np.array(["a", "b", "c", "e"]), 20_000)
    ev = _evidently_values(tmp_path, {"r": r, "c": c, "rc": rc, "cc": cc})
    assert drift.psi(r, c, bins="sturges") == pytest.approx(ev["psi"], abs=1e-9)
    assert drift.wasserstein(r, c) == pytest.approx(ev["wasserstein"], abs=1e-9)
    assert drift.jensen_shannon(rc, cc) == pytest.approx(ev["js_cat"], abs=1e-9)
    assert drift.psi(rc, cc, bins="sturges") == pytest.approx(ev["psi_cat"], abs=1e-9)
