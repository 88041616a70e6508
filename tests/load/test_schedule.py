"""Arrival plans: constant spacing, Poisson law (KS test), profiles, splitting over processes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mlchaos.load.schedule import RateCurve, Schedule, curve_for
from mlchaos.load.spec import LoadSpec


def plan(spec: LoadSpec, index: int = 0, count: int = 1) -> np.ndarray:
    s = Schedule(curve_for(spec), spec.arrivals, index=index, count=count, duration=spec.duration, seed=spec.seed)
    return np.concatenate(list(s.chunks()))


def test_constant_is_evenly_spaced() -> None:
    t = plan(LoadSpec(rate="1000/s", duration="10s"))
    assert len(t) == 10_000
    assert np.allclose(np.diff(t), 1e-3)


def test_poisson_interarrivals_are_exponential() -> None:
    t = plan(LoadSpec(rate="1000/s", duration="20s", arrivals="poisson", seed=7))
    gaps = np.diff(t)
    assert stats.kstest(gaps, "expon", args=(0, 1e-3)).pvalue > 0.01
    n = len(t)
    assert abs(n - 20_000) < 4 * np.sqrt(20_000)


def test_poisson_split_over_processes_is_still_poisson_of_the_total_rate() -> None:
    spec = LoadSpec(rate="1000/s", duration="20s", arrivals="poisson", seed=3)
    t = np.sort(np.concatenate([plan(spec, i, 2) for i in range(2)]))
    assert stats.kstest(np.diff(t), "expon", args=(0, 1e-3)).pvalue > 0.01


def test_constant_split_is_a_stride_of_the_plan() -> None:
    spec = LoadSpec(rate="900/s", duration="3s")
    whole = plan(spec)
    parts = np.sort(np.concatenate([plan(spec, i, 3) for i in range(3)]))
    assert np.allclose(whole, parts)


def test_ramp_spike_step_counts() -> None:
    ramp = plan(LoadSpec(rate="1000/s", duration="10s", profile={"type": "ramp", "start": 0, "over": "10s"}))
    assert abs(len(ramp) - 5000) <= 1
    # rate grows: the first half holds a quarter of the requests
    assert abs((ramp < 5).sum() - 1250) <= 1
    spike = plan(LoadSpec(rate="1000/s", duration="10s",
                          profile={"type": "spike", "baseline": "100/s", "at": "4s", "length": "2s"}))
    assert abs(len(spike) - (8 * 100 + 2 * 1000)) <= 1
    assert abs(((spike >= 4) & (spike < 6)).sum() - 2000) <= 1
    step = plan(LoadSpec(rate=1, duration="6s",
                         profile={"type": "step", "steps": [{"rate": "100/s", "for": "2s"},
                                                            {"rate": "300/s", "for": "2s"}]}))
    assert abs(len(step) - (200 + 300 * 4)) <= 1


def test_rate_curve_inverse_is_inverse() -> None:
    c = RateCurve([(0, 10.0), (5, 100.0), (5, 20.0), (8, 0.0)])
    u = np.linspace(0, c.expected(7.9), 50)
    t = c.inverse(u)
    assert np.allclose([c.expected(x) for x in t], u, atol=1e-6)
    assert np.isinf(c.inverse(np.array([c.expected(8.0) + 1]))).all()


def test_spec_units_and_flat_request() -> None:
    s = LoadSpec.model_validate({"rate": "300/s", "duration": "1m", "path": "predict", "body_from": "x.jsonl",
                                 "sample": "1%"})
    assert s.rate == 300 and s.duration == 60 and s.request.path == "/predict"
    assert s.request.method == "POST" and s.request.body_file == "x.jsonl" and s.sample == 0.01
    with pytest.raises(ValueError):
        LoadSpec.model_validate({"rate": "300/s", "bogus": 1})
    assert LoadSpec(rate="90000/s").n_processes(cpus=2) == 2
    # a tenth of the latency bound, never below 1 ms (#16: 1 % made almost every load INVALID on 2 cores)
    assert LoadSpec(rate="100/s").lag_budget_for(0.5) == pytest.approx(0.05)
    assert LoadSpec(rate="100/s").lag_budget_for(0.005) == pytest.approx(0.001)
    assert LoadSpec(rate="100/s").lag_budget_for(None) == pytest.approx(0.001)
