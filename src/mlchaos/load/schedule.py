"""Arrival schedules: when each request is *intended* to be sent.

An open-loop generator is a fixed plan of send times made before any reply
is seen; latency is measured from these times, so a stalled server cannot
make the generator skip the requests that would have suffered (coordinated
omission).

The plan is built from a rate curve r(t) (the profile) and its integral
Λ(t) = ∫r, the expected number of requests by t.  Both arrival laws are the
same construction, send_k = Λ⁻¹(u_k):

* constant: u_k = k (evenly spaced in expected count, so a ramp's gaps
  shrink smoothly);
* Poisson: u_k = E_1 + … + E_k with E_i ~ Exp(1) (time-rescaling theorem:
  this is a non-homogeneous Poisson process of intensity r(t)).

Splitting over N processes keeps the law: process i of N takes
u = i, i+N, i+2N, … (constant; a stride of the global plan) or its own
Poisson stream of intensity r/N (the sum of independent Poisson streams is
Poisson of the total intensity).

The rate curve is piecewise linear, so Λ is piecewise quadratic and Λ⁻¹ has a
closed form; the plan is generated lazily in numpy chunks (a 10-minute run at
40 k req/s would be 190 MB as one array).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from mlchaos.load.spec import LoadSpec, RampProfile, SpikeProfile, StepProfile

__all__ = ["RateCurve", "Schedule", "curve_for"]


class RateCurve:
    """A piecewise-linear rate r(t) ≥ 0; after the last point the last rate holds forever."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        if not points or points[0][0] != 0.0:
            points = [(0.0, points[0][1] if points else 0.0), *points]
        ts = np.array([p[0] for p in points], dtype=np.float64)
        rs = np.array([p[1] for p in points], dtype=np.float64)
        if np.any(np.diff(ts) < 0) or np.any(rs < 0):
            raise ValueError("rate curve points must have increasing times and non-negative rates")
        self.t = ts
        self.r = rs
        seg = np.diff(ts) * (rs[:-1] + rs[1:]) / 2.0
        self.cum = np.concatenate([[0.0], np.cumsum(seg)])  # Λ at each point

    def rate(self, t: float) -> float:
        return float(np.interp(t, self.t, self.r))

    def expected(self, t: float) -> float:
        """Λ(t): expected number of requests in [0, t]."""
        i = int(np.searchsorted(self.t, t, side="right")) - 1
        i = max(0, min(i, len(self.t) - 1))
        dt = t - self.t[i]
        if i == len(self.t) - 1:
            return float(self.cum[i] + self.r[i] * dt)
        slope = (self.r[i + 1] - self.r[i]) / (self.t[i + 1] - self.t[i]) if self.t[i + 1] > self.t[i] else 0.0
        return float(self.cum[i] + self.r[i] * dt + 0.5 * slope * dt * dt)

    def inverse(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Λ⁻¹(u), vectorised; +inf where the curve never reaches u."""
        i = np.searchsorted(self.cum, u, side="right") - 1
        i = np.clip(i, 0, len(self.t) - 1)
        # after the last point: constant rate
        last = len(self.t) - 1
        t0 = self.t[i]
        r0 = self.r[i]
        du = u - self.cum[i]
        nxt = np.minimum(i + 1, last)
        span = self.t[nxt] - t0
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where((i < last) & (span > 0), (self.r[nxt] - r0) / np.where(span > 0, span, 1.0), 0.0)
            a = 0.5 * slope
            # stable root of a x² + r0 x - du = 0
            disc = np.sqrt(np.maximum(r0 * r0 + 4.0 * a * du, 0.0))
            denom = r0 + disc
            x = np.where(denom > 0, 2.0 * du / np.where(denom > 0, denom, 1.0), np.inf)
            x = np.where(du <= 0, 0.0, x)
        out: npt.NDArray[np.float64] = t0 + x
        return out

    @property
    def final_rate(self) -> float:
        return float(self.r[-1])


def curve_for(spec: LoadSpec) -> RateCurve:
    """The rate curve of a load spec's profile (total over all processes)."""
    p = spec.profile
    rate = spec.rate
    if isinstance(p, RampProfile):
        return RateCurve([(0.0, p.start), (p.over, rate)])
    if isinstance(p, SpikeProfile):
        t_up = max(0.0, p.at - p.rise)
        spike = [(0.0, p.baseline), (t_up, p.baseline), (p.at, rate), (p.at + p.length, rate),
               (p.at + p.length + p.rise, p.baseline)]
        return RateCurve(_dedupe(spike))
    if isinstance(p, StepProfile):
        pts: list[tuple[float, float]] = []
        t = 0.0
        for s in p.steps:
            pts.append((t, s.rate))
            t += s.hold
            pts.append((t, s.rate))
        return RateCurve(_dedupe(pts[:-1]) if len(pts) > 1 else pts)
    return RateCurve([(0.0, rate)])


def _dedupe(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    # a vertical jump is two points at the same time: keep both (Λ is continuous) but drop exact repeats
    out: list[tuple[float, float]] = []
    for p in pts:
        if not out or p != out[-1]:
            out.append(p)
    return out


class Schedule:
    """Lazy plan of intended send offsets (seconds from t0) for process ``index`` of ``count``."""

    def __init__(
        self,
        curve: RateCurve,
        arrivals: str = "constant",
        *,
        index: int = 0,
        count: int = 1,
        duration: float | None = None,
        seed: int | None = None,
        chunk: int = 4096,
    ) -> None:
        self.curve = curve
        self.arrivals = arrivals
        self.index = index
        self.count = count
        self.duration = math.inf if duration is None else duration
        self.chunk = chunk
        self._rng = np.random.default_rng(None if seed is None else [seed, index])
        self._next_u = float(index)  # constant: global slot number of our next request
        self._poisson_u = 0.0

    def planned(self, until: float) -> float:
        """Expected number of this process's requests in [0, min(until, duration))."""
        return self.curve.expected(min(until, self.duration)) / self.count

    def chunks(self) -> Iterator[npt.NDArray[np.float64]]:
        """Successive arrays of send offsets, increasing, ending at the duration."""
        while True:
            if self.arrivals == "poisson":
                gaps = self._rng.exponential(float(self.count), self.chunk)
                u = self._poisson_u + np.cumsum(gaps)
                self._poisson_u = float(u[-1])
            else:
                u = self._next_u + self.count * np.arange(self.chunk, dtype=np.float64)
                self._next_u = float(u[-1]) + self.count
            t = self.curve.inverse(u)
            keep = t < self.duration
            if not keep.all():
                t = t[keep]
                if t.size:
                    yield t
                return
            yield t
