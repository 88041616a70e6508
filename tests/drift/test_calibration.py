"""Calibrated drift thresholds: the stated false-alarm rate holds, on skewed and tied data too.

The false-alarm tests run 200 seeds (fixed, so the test is deterministic): each draws a fresh
reference and a fresh no-drift window from the same distribution, calibrates at α = 5 %, and
counts windows above the threshold. The count must lie in the 99.9 % binomial interval of
Bin(200, 5 %); the calibration is exact for i.i.d. data up to a slightly conservative
pseudo-reference (see mlchaos.drift_calibration), so it must not sit above it either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from mlchaos.drift_calibration import Calibrator, calibrate, default_draws, statistic_of
from mlchaos.probes.drift import DriftProbe
from tests.data.standalone import Ctx

SEEDS, ALPHA, N_REF, WINDOW, DRAWS = 200, 0.05, 1100, 100, 39  # 39 draws: k = 2, P(exceed) = 2/40 = 5 %
LOW, HIGH = int(binom.ppf(0.0005, SEEDS, ALPHA)), int(binom.isf(0.0005, SEEDS, ALPHA))

Gen = Callable[[np.random.Generator, int], np.ndarray]
DISTRIBUTIONS: dict[str, Gen] = {
    "lognormal": lambda r, n: r.lognormal(0.0, 1.5, n),  # heavy right skew
    "poisson": lambda r, n: r.poisson(3.0, n).astype(float),  # few distinct values: ties everywhere
}


def _false_alarms(gen: Gen, statistic: str) -> int:
    alarms = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        ref, cur = gen(rng, N_REF), gen(rng, WINDOW)
        cal = calibrate(ref, WINDOW, statistic=statistic, false_alarm=ALPHA, draws=DRAWS, seed=seed)
        alarms += statistic_of(statistic, ref, cur) > cal.threshold
    return alarms


@pytest.mark.parametrize(("dist", "statistic"), [("lognormal", "ks"), ("poisson", "psi"), ("lognormal", "psi")])
def test_false_alarm_rate_within_its_binomial_bound(dist: str, statistic: str) -> None:
    alarms = _false_alarms(DISTRIBUTIONS[dist], statistic)
    assert LOW <= alarms <= HIGH, f"{alarms} false alarms of {SEEDS}; Bin({SEEDS}, {ALPHA}) 99.9 %: [{LOW}, {HIGH}]"


def test_a_real_shift_is_detected() -> None:
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        ref = rng.lognormal(0.0, 1.0, N_REF)
        cur = rng.lognormal(0.0, 1.0, 400) * 1.5  # a unit-ish error of +50 %
        cal = calibrate(ref, 400, statistic="ks", false_alarm=0.01, draws=99, seed=seed)
        hits += statistic_of("ks", ref, cur) > cal.threshold
    assert hits >= 38


def test_calibration_reports_how_it_was_obtained() -> None:
    ref = np.random.default_rng(1).normal(size=5000)
    assert default_draws(0.01) == 1999 and default_draws(0.2) == 199
    cal = calibrate(ref, 1000, statistic="psi", false_alarm=0.01, draws=199, seed=1)
    assert cal.method == "permutation" and cal.draws == 199
    assert cal.pseudo_reference == 4000 and cal.reference_size == 5000 and cal.window == 1000
    small = calibrate(ref[:600], 1000, statistic="psi", false_alarm=0.05, draws=99, seed=1)
    assert small.method == "bootstrap"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"false_alarm": 0.0}, "false_alarm must be above 0"),
    ({"false_alarm": 0.6}, "at most 50%"),
    ({"statistic": "chi2"}, "statistic must be one of"),
    ({"draws": 10, "false_alarm": 0.01}, "draws: 10 draws cannot resolve"),
])
def test_bad_requests_name_the_argument(kwargs: dict[str, object], message: str) -> None:
    ref = np.random.default_rng(1).normal(size=1000)
    with pytest.raises(ValueError, match=message):
        calibrate(ref, 200, **kwargs)  # type: ignore[arg-type]


def test_ks_on_strings_is_refused() -> None:
    ref = np.array(["a", "b"] * 300, dtype=object)
    with pytest.raises(ValueError, match="ks needs a numeric column"):
        calibrate(ref, 100, statistic="ks", false_alarm=0.05, draws=39)


@settings(max_examples=25, deadline=None)
@given(a=st.floats(0.01, 0.2), b=st.floats(0.01, 0.2), seed=st.integers(0, 2**32 - 1))
def test_threshold_is_monotone_in_the_false_alarm_rate(a: float, b: float, seed: int) -> None:
    ref = np.random.default_rng(seed).exponential(size=400)
    lo, hi = sorted((a, b))
    t_lo = calibrate(ref, 100, statistic="ks", false_alarm=lo, draws=199, seed=seed).threshold
    t_hi = calibrate(ref, 100, statistic="ks", false_alarm=hi, draws=199, seed=seed).threshold
    assert t_lo >= t_hi


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7))
def test_window_buckets_round_down_by_less_than_a_quarter_octave(w: int) -> None:
    b = Calibrator.bucket(w)
    assert b <= w and b > w / 2**0.25 - 1


def test_probe_reports_statistic_over_calibrated_threshold(tmp_path: Path) -> None:
    """The reference is the whole baseline (5000 rows), the window the last 500; a shift breaches max: 1."""
    rng = np.random.default_rng(3)
    path = tmp_path / "preds.parquet"
    pd.DataFrame({"score": rng.lognormal(0, 1, 5000)}).to_parquet(path)

    class Phase(Ctx):
        now = "baseline"

        @property
        def phase(self) -> str:
            return self.now

    ctx = Phase()
    probe = DriftProbe(DriftProbe.Spec(probe="drift", path=str(path), column="score", statistic="ks", last=500,
                                       false_alarm="5%", draws=99, max=1), ctx)
    base = asyncio.run(probe.measure())
    cal = base.detail["calibration"]
    # windows are calibrated at their size rounded down to a quarter octave (the conservative side)
    assert cal["reference_size"] == 5000 and cal["window"] == Calibrator.bucket(500) == 430
    assert cal["false_alarm"] == 0.05
    assert base.value == pytest.approx(base.detail["value"] / base.detail["threshold"])
    assert base.value < 1
    ctx.now = "fault"
    shifted = pd.DataFrame({"score": np.concatenate([rng.lognormal(0, 1, 4500), rng.lognormal(0, 1, 500) * 2])})
    shifted.to_parquet(path)
    after = asyncio.run(probe.measure())
    assert after.detail["calibration"]["reference_size"] == 5000  # frozen when the baseline ended
    assert after.value > 1


def test_predictions_probe_calibrates_on_each_sampled_answer_once() -> None:
    """Overlapping load windows: the reference holds each sampled answer once (duplicates would shrink the
    permutation null and raise false alarms); a shifted score breaches max: 1, the same scores do not."""
    from types import SimpleNamespace
    from typing import Any

    from mlchaos.probes.predictions import PredictionsProbe, PredictionsSpec

    rng = np.random.default_rng(9)

    class Load:
        def __init__(self) -> None:
            self.samples: list[dict[str, Any]] = []

        def window(self, seconds: float) -> Any:
            return SimpleNamespace(samples=list(self.samples))

    load = Load()

    class Phase(Ctx):
        now = "baseline"

        @property
        def phase(self) -> str:
            return self.now

        @property
        def services(self) -> dict[str, Any]:
            return {"load": load}

    def answers(t0: int, n: int, scale: float = 1.0) -> list[dict[str, Any]]:
        return [{"t": float(t), "latency": 0.01, "status": 200,
                 "json": {"predictions": [float(x) for x in rng.lognormal(0, 1, 4) * scale]}}
                for t in range(t0, t0 + n)]

    ctx = Phase()
    spec = PredictionsSpec(probe="predictions", field="predictions[*]", stat="ks", false_alarm="5%", draws=99,
                           min_samples=100, max=1)
    probe = PredictionsProbe(spec, ctx)
    load.samples = answers(0, 300)          # 1200 rows
    asyncio.run(probe.measure())
    load.samples = load.samples[100:] + answers(300, 100)  # the next window overlaps the first by 200 answers
    base = asyncio.run(probe.measure())
    assert base.detail["reference"] == 400 * 4  # 400 distinct answers of 4 rows, not 500 with repeats
    ctx.now = "fault"
    load.samples = answers(400, 100, scale=2.0)
    assert asyncio.run(probe.measure()).value > 1
    load.samples = answers(500, 100)
    same = asyncio.run(probe.measure())
    assert same.detail["reference"] == 1600 and same.detail["calibration"]["window"] == Calibrator.bucket(400)
    assert same.value < 1  # seeded: this no-drift window is not among the 5 % that exceed
