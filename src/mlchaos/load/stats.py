"""Aggregation of worker intervals: live windows, per-second series, the final report and its verdict.

Workers report what *finished* in each 250 ms interval (histograms, counts,
error kinds).  The aggregator keeps those intervals, so a window over the last
``s`` seconds is the exact merge of the intervals that ended within it
(granularity: one interval), across all processes.  Nothing here touches the
hot path; ``window()`` costs one numpy merge of a few dozen sparse arrays.

The validity rule (issue 5, after MLPerf LoadGen's "Scheduled vs Completed"):
a run is INVALID when the generator dispatched < 99 % of what its plan scheduled,
or when its schedule lag p99 exceeds the budget (default max(1 ms, 1 % of the
tightest latency tolerance)).  An INVALID load cannot support a ``passed``
verdict: the numbers would describe the generator, not the system.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any

from mlchaos.budget import MIN_ACHIEVED
from mlchaos.load.histogram import LogHistogram
from mlchaos.load.llmstats import LLMStats
from mlchaos.load.report import LoadReport

__all__ = ["ERROR_KINDS", "Aggregator", "Interval", "LoadReport", "Validity", "WindowStats"]

ERROR_KINDS = ("status", "timeout", "connection")


@dataclasses.dataclass
class Interval:
    """One worker tick, decoded."""

    worker: int
    t: float
    dt: float
    scheduled: int
    dispatched: int
    sent: int
    done: int
    codes: dict[int, int]
    timeouts: int
    conn: int
    lat: LogHistogram
    svc: LogHistogram
    lag: LogHistogram
    inflight: int
    conns: int
    cpu: float
    local: int
    conn_kinds: dict[str, int]
    samples: list[dict[str, Any]]
    llm: LLMStats | None = None
    """Token-level figures of an LLM load (``load.llm``); None for a plain HTTP load."""

    @classmethod
    def from_msg(cls, m: dict[str, Any], t_offset: float = 0.0) -> Interval:
        return cls(
            worker=int(m["w"]),
            t=float(m["t"]) + t_offset,
            dt=float(m["dt"]),
            scheduled=int(m["scheduled"]),
            dispatched=int(m.get("dispatched", m["sent"])),
            sent=int(m["sent"]),
            done=int(m["done"]),
            codes={int(k): int(v) for k, v in m["codes"].items()},
            timeouts=int(m["timeouts"]),
            conn=int(m["conn"]),
            lat=LogHistogram.from_dict(m["lat"]),
            svc=LogHistogram.from_dict(m["svc"]),
            lag=LogHistogram.from_dict(m["lag"]),
            inflight=int(m["inflight"]),
            conns=int(m["conns"]),
            cpu=float(m["cpu"]),
            local=int(m.get("local", 0)),
            conn_kinds={str(k): int(v) for k, v in (m.get("conn_kinds") or {}).items()},
            samples=list(m.get("samples") or []),
            llm=LLMStats.from_msg(m["llm"]) if m.get("llm") else None,
        )

    @property
    def status_errors(self) -> int:
        return sum(v for k, v in self.codes.items() if k >= 400)


@dataclasses.dataclass
class WindowStats:
    """What happened in the last ``seconds`` (all processes), for probes polled every 250 ms.

    ``count`` is the number of requests that finished in the window (responses,
    timeouts and connection errors).  Latencies are from the intended send time;
    timed-out requests are included at their age when they timed out, so a
    stall longer than the timeout still shows in the tail.  ``errors`` maps
    'status' (HTTP ≥ 400), 'timeout' and 'connection' to counts.
    """

    seconds: float
    covered: float
    """Seconds of load the window's intervals actually span (≤ seconds + one interval)."""
    count: int
    errors: dict[str, int]
    codes: dict[int, int]
    latency: LogHistogram
    service: LogHistogram
    lag: LogHistogram
    samples: list[dict[str, Any]]
    scheduled: int = 0
    """Requests the schedule planned in the window's intervals, and how many went out: a
    generator that dispatched fewer than it scheduled offered less load than asked for."""
    dispatched: int = 0
    llm: LLMStats | None = None
    """Token-level figures of an LLM load over the window (:mod:`mlchaos.load.llmstats`)."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float | None:
        return self.error_count / self.count if self.count else None

    @property
    def throughput(self) -> float | None:
        """Finished requests per second over the covered part of the window."""
        return self.count / self.covered if self.covered > 0 else None

    def quantile(self, q: float) -> float | None:
        return self.latency.quantile(q)

    @property
    def p50(self) -> float | None:
        return self.latency.quantile(0.5)

    @property
    def p90(self) -> float | None:
        return self.latency.quantile(0.9)

    @property
    def p99(self) -> float | None:
        return self.latency.quantile(0.99)

    @property
    def max(self) -> float | None:
        return self.latency.max

    def tick_extra(self) -> dict[str, Any]:
        """Fields a journal tick adds for this kind of load: an LLM load's TTFT/ITL p99 (s), goodput, completion."""
        llm = self.llm
        if llm is None:
            return {}
        return {"ttft_p99": llm.ttft.quantile(0.99), "itl_p99": llm.itl.quantile(0.99),
                "e2e_p99": llm.e2e.quantile(0.99), "goodput": llm.good / self.covered if self.covered > 0 else None,
                "stream_completion": llm.stream_completion, "llm_errors": dict(llm.kinds)}

    def to_dict(self) -> dict[str, Any]:
        p50, p90, p99 = self.latency.quantiles([0.5, 0.9, 0.99])
        return {
            "seconds": self.seconds,
            "covered": self.covered,
            "count": self.count,
            "errors": dict(self.errors),
            "error_rate": self.error_rate,
            "throughput": self.throughput,
            "latency": {"p50": p50, "p90": p90, "p99": p99, "max": self.latency.max},
            "samples": len(self.samples),
        }


@dataclasses.dataclass
class Validity:
    """The generator's verdict on itself: VALID, or INVALID with the reasons."""

    valid: bool
    reasons: list[str]
    scheduled: int
    dispatched: int
    achieved: float | None
    """dispatched / scheduled (1.0 = the generator issued every planned request by the end)."""
    lag_p99: float | None
    lag_max: float | None
    lag_budget: float
    cpu: float | None
    """Generator CPU in cores (summed over processes), averaged over the run."""

    @property
    def verdict(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": self.verdict}


class Aggregator:
    """Collects intervals from any number of workers; answers windows and builds the report."""

    def __init__(self, keep_seconds: float = 300.0) -> None:
        """Intervals older than ``keep_seconds`` are dropped (windows longer than that see only the rest);
        per-second rows are reduced to their quantiles once 5 s old, so memory stays flat in long runs."""
        self.intervals: deque[Interval] = deque()
        self.keep_seconds = keep_seconds
        self.series: dict[int, dict[str, Any]] = {}
        self._open_secs: list[int] = []
        self.total_lat = LogHistogram()
        self.total_svc = LogHistogram()
        self.total_lag = LogHistogram()
        self._pending: list[Interval] = []
        self.scheduled = 0
        self.dispatched = 0
        self.sent = 0
        self.done = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.codes: dict[int, int] = {}
        self.cpu = 0.0
        self.last_t = 0.0
        self.local_errors = 0
        self.conn_kinds: dict[str, int] = {}
        self.total_llm: LLMStats | None = None

    def add(self, iv: Interval) -> None:
        self.intervals.append(iv)
        self._pending.append(iv)
        self.scheduled += iv.scheduled
        self.dispatched += iv.dispatched
        self.sent += iv.sent
        self.done += iv.done
        self.errors["status"] += iv.status_errors
        self.errors["timeout"] += iv.timeouts
        self.errors["connection"] += iv.conn
        for k, v in iv.codes.items():
            self.codes[k] = self.codes.get(k, 0) + v
        self.cpu += iv.cpu
        self.local_errors += iv.local
        for name, n in iv.conn_kinds.items():
            self.conn_kinds[name] = self.conn_kinds.get(name, 0) + n
        self.last_t = max(self.last_t, iv.t)
        key = math.floor(max(0.0, iv.t - 1e-9))
        sec = self.series.get(key)
        if sec is None:
            sec = self.series[key] = {"sent": 0, "done": 0, "errors": 0, "_lat": []}
            self._open_secs.append(key)
            self._open_secs.sort()
        sec["sent"] += iv.sent
        sec["done"] += iv.done
        sec["errors"] += iv.status_errors + iv.timeouts + iv.conn
        if "_lat" in sec:  # else: a straggler > 5 s late; its counts are kept, its quantiles were final
            sec["_lat"].append(iv.lat)
        self._close_seconds(math.floor(self.last_t) - 5)
        while self.intervals and self.intervals[0].t < self.last_t - self.keep_seconds:
            self.intervals.popleft()
        if len(self._pending) >= 64:
            self._fold()

    def _fold(self) -> None:
        if self._pending:
            p = self._pending
            self.total_lat = LogHistogram.merged([self.total_lat, *(i.lat for i in p)])
            self.total_svc = LogHistogram.merged([self.total_svc, *(i.svc for i in p)])
            self.total_lag = LogHistogram.merged([self.total_lag, *(i.lag for i in p)])
            if llms := [i.llm for i in p if i.llm is not None]:
                self.total_llm = LLMStats.merged([*([self.total_llm] if self.total_llm else []), *llms])
            self._pending = []

    def window(self, seconds: float, now: float | None = None) -> WindowStats:
        """Merge the intervals that ended within ``seconds`` of ``now`` (default: the latest interval)."""
        end = self.last_t if now is None else now
        start = end - seconds
        ivs = [iv for iv in reversed(self.intervals) if iv.t > start + 1e-9]
        if not ivs:
            return WindowStats(seconds, 0.0, 0, dict.fromkeys(ERROR_KINDS, 0), {}, LogHistogram(),
                               LogHistogram(), LogHistogram(), [])
        errors = {
            "status": sum(i.status_errors for i in ivs),
            "timeout": sum(i.timeouts for i in ivs),
            "connection": sum(i.conn for i in ivs),
        }
        codes: dict[int, int] = {}
        for i in ivs:
            for k, v in i.codes.items():
                codes[k] = codes.get(k, 0) + v
        # the span the included intervals really cover (the newest ≤ 250 ms may not be reported yet, and
        # the oldest interval may start a little before the window): count / covered is then a true rate
        first = min(i.t - i.dt for i in ivs)
        last = max(i.t for i in ivs)
        covered = last - first
        samples = [s for i in reversed(ivs) for s in i.samples]
        return WindowStats(
            seconds=seconds,
            covered=max(covered, 0.0),
            count=sum(i.done for i in ivs),
            errors=errors,
            codes=codes,
            latency=LogHistogram.merged(i.lat for i in ivs),
            service=LogHistogram.merged(i.svc for i in ivs),
            lag=LogHistogram.merged(i.lag for i in ivs),
            samples=samples,
            scheduled=sum(i.scheduled for i in ivs),
            dispatched=sum(i.dispatched for i in ivs),
            llm=LLMStats.merged(i.llm for i in ivs if i.llm is not None) if any(i.llm for i in ivs) else None,
        )

    def validity(self, lag_budget: float, elapsed: float | None = None) -> Validity:
        self._fold()
        reasons: list[str] = []
        achieved = self.dispatched / self.scheduled if self.scheduled else None
        lag_p99 = self.total_lag.quantile(0.99)
        lag_max = self.total_lag.max
        cpu = self.cpu / elapsed if elapsed else None
        if self.scheduled == 0:
            reasons.append("no request was scheduled")
        elif achieved is not None and achieved < MIN_ACHIEVED:
            reasons.append(
                f"generator dispatched {achieved:.1%} of the scheduled requests (< {MIN_ACHIEVED:.0%}): "
                "it could not keep up, the numbers describe the generator"
            )
        if self.local_errors:
            reasons.append(
                f"the generator hit its own socket limits {self.local_errors} times "
                f"({', '.join(sorted(self.conn_kinds))}): raise 'ulimit -n' or use fewer connections"
            )
        if lag_p99 is not None and lag_p99 > lag_budget:
            reasons.append(
                f"schedule lag p99 {lag_p99 * 1e3:.3g} ms exceeds the budget {lag_budget * 1e3:.3g} ms"
            )
        return Validity(
            valid=not reasons,
            reasons=reasons,
            scheduled=self.scheduled,
            dispatched=self.dispatched,
            achieved=achieved,
            lag_p99=lag_p99,
            lag_max=lag_max,
            lag_budget=lag_budget,
            cpu=cpu,
        )

    def _close_seconds(self, before: int) -> None:
        while self._open_secs and self._open_secs[0] < before:
            sec = self._open_secs.pop(0)
            d = self.series[sec]
            h = LogHistogram.merged(d.pop("_lat"))
            d["p50"], d["p99"] = h.quantiles([0.5, 0.99])
            d["max"] = h.max

    def per_second(self) -> list[dict[str, Any]]:
        """Rows ``{t, sent, done, errors, p50, p99, max}``, one per second of the run."""
        self._close_seconds(2**62)
        return [{"t": sec, **self.series[sec]} for sec in sorted(self.series)]

    def totals(self) -> tuple[LogHistogram, LogHistogram, LogHistogram]:
        self._fold()
        return self.total_lat, self.total_svc, self.total_lag
