"""The in-process API: start generator processes, watch live windows, collect the report.

Used by the engine during an experiment and by ``mlchaos load``::

    runner = LoadRunner(spec, base_url="http://127.0.0.1:8000")
    await runner.start()                 # processes ready, plan running from t0
    stats = runner.window(10.0)          # cheap; call every 250 ms
    stats.p99, stats.error_rate, stats.throughput, stats.samples
    report = await runner.stop()         # or: await runner.wait() for the planned duration
    report.validity.valid                # False → the experiment cannot pass

Each process is ``python -m mlchaos.load.worker`` at rate/N (see
:mod:`mlchaos.load.worker` for the protocol); all share t0 on the machine's
monotonic clock.  Their 250 ms intervals are read on the caller's event loop by
one small task per process, so the engine's loop only parses four short JSON
lines per second per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from mlchaos.load.schedule import curve_for
from mlchaos.load.spec import LoadSpec
from mlchaos.load.stats import Aggregator, Interval, LoadReport, Validity, WindowStats
from mlchaos.load.worker_config import config_for

__all__ = ["LoadError", "LoadRunner", "arun_load", "make_report", "resolve_url", "run_load"]


class LoadError(RuntimeError):
    """The generator could not start or died; the message says why."""


def resolve_url(spec: LoadSpec, base_url: str | None) -> str:
    """The absolute URL of the spec's request: ``request.url``, else ``base_url`` + ``request.path``."""
    if spec.request.url:
        return spec.request.url
    if not base_url:
        raise LoadError("load: no URL (give request.url, or a target with a base URL)")
    return base_url.rstrip("/") + spec.request.path


class LoadRunner:
    """A running open-loop load.  Create, ``await start()``, poll ``window()``, ``await stop()``."""

    def __init__(
        self,
        spec: LoadSpec | Mapping[str, Any],
        base_url: str | None = None,
        *,
        latency_tolerance: float | None = None,
        interval: float = 0.25,
        on_interval: Callable[[Interval], None] | None = None,
    ) -> None:
        """``spec``: a :class:`LoadSpec` (or its dict form); ``base_url``: the target's URL, to which
        ``request.path`` is appended; ``latency_tolerance`` (seconds): the tightest latency bound of the
        experiment, which sets the default lag budget (max(1 ms, 1 % of it))."""
        if not isinstance(spec, LoadSpec):
            spec = LoadSpec.model_validate(spec)
        self.spec = spec
        self.url = resolve_url(spec, base_url)
        self.interval = interval
        self.lag_budget = spec.lag_budget_for(latency_tolerance)
        self.on_interval = on_interval
        self.agg = Aggregator()
        self.n = spec.n_processes()
        self.t0: float | None = None
        self._procs: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []
        self._done: dict[int, dict[str, Any]] = {}
        self._errors: list[str] = []
        self._stopped_at: float | None = None
        self._report: LoadReport | None = None

    # -- lifecycle ----------------------------------------------------------------
    async def start(self, ready_timeout: float = 20.0) -> None:
        """Spawn the processes, wait until each has its warm connections, then start the plan."""
        curve = curve_for(self.spec)
        cfgs = [config_for(self.spec, self.url, index=i, count=self.n, interval=self.interval, curve=curve)
                for i in range(self.n)]
        for cfg in cfgs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mlchaos.load.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                limit=2**24,
            )
            assert proc.stdin is not None
            proc.stdin.write(orjson.dumps(cfg) + b"\n")
            await proc.stdin.drain()
            self._procs.append(proc)
        try:
            await asyncio.wait_for(asyncio.gather(*(self._ready(p) for p in self._procs)), ready_timeout)
        except BaseException as exc:
            await self._kill()
            if isinstance(exc, asyncio.TimeoutError):
                raise LoadError(f"load generator processes not ready after {ready_timeout:g}s") from None
            raise
        self.t0 = time.monotonic() + 0.02
        for proc in self._procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {self.t0!r}\n".encode())
            await proc.stdin.drain()
        self._readers = [asyncio.ensure_future(self._read(p)) for p in self._procs]

    async def _ready(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            err = b""
            if proc.stderr is not None:
                with contextlib.suppress(Exception):
                    err = await asyncio.wait_for(proc.stderr.read(), 2.0)
            raise LoadError(f"load generator exited before it was ready: {err.decode(errors='replace')[-2000:]}")
        msg = orjson.loads(line)
        if msg.get("type") == "error":
            raise LoadError(f"load generator: {msg['error']}")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            msg = orjson.loads(line)
            kind = msg.get("type")
            if kind == "tick":
                iv = Interval.from_msg(msg)
                self.agg.add(iv)
                if self.on_interval is not None:
                    self.on_interval(iv)
            elif kind == "done":
                self._done[int(msg["w"])] = msg
            elif kind == "error":
                self._errors.append(str(msg.get("error")))
        await proc.wait()
        if proc.returncode and proc.stderr is not None:
            err = await proc.stderr.read()
            self._errors.append(f"generator exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")

    async def wait(self) -> LoadReport:
        """Wait for the planned duration (and the drain) to end; return the report."""
        if self.spec.duration is None:
            raise LoadError("wait() needs a load with a duration; use stop()")
        await asyncio.gather(*self._readers)
        return self._build()

    async def stop(self, drain: float | None = None) -> LoadReport:
        """Stop the plan now, let in-flight requests finish (≤ ``drain`` s, default the timeout); report."""
        if self._report is not None:
            return self._report
        if self.t0 is None:
            raise LoadError("stop() before start()")
        self._stopped_at = time.monotonic()
        d = self.spec.timeout if drain is None else drain
        for proc in self._procs:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.write(f"stop {d!r}\n".encode())
                    await proc.stdin.drain()
        try:
            await asyncio.wait_for(asyncio.gather(*self._readers), d + 10.0)
        except TimeoutError:
            await self._kill()
        return self._build()

    async def _kill(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await proc.wait()

    async def __aenter__(self) -> LoadRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._report is None and self.t0 is not None:
            await self.stop(drain=0.0)
        await self._kill()

    # -- live views -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.t0 is not None and any(p.returncode is None for p in self._procs)

    @property
    def elapsed(self) -> float:
        """Seconds since t0 (0 before start)."""
        return 0.0 if self.t0 is None else max(0.0, time.monotonic() - self.t0)

    def window(self, seconds: float) -> WindowStats:
        """Requests that finished in the last ``seconds`` (all processes, 250 ms granularity).  Cheap."""
        return self.agg.window(seconds, now=self.elapsed)

    def validity(self) -> Validity:
        """The generator's verdict on itself so far (final once stopped)."""
        if self._report is not None:
            return self._report.validity
        return self.agg.validity(self.lag_budget, self._duration())

    @property
    def errors(self) -> list[str]:
        """Process-level failures (a worker that died); empty in a healthy run."""
        return list(self._errors)

    # -- report ---------------------------------------------------------------------
    def _duration(self) -> float:
        if self.t0 is None:
            return 0.0
        end = self._stopped_at or time.monotonic()
        d = end - self.t0
        if self.spec.duration is not None:
            d = min(d, self.spec.duration)
        return max(d, 0.0)

    def _build(self) -> LoadReport:
        if self._report is None:
            self._report = make_report(self.agg, self.spec, self.url, self.n, self._duration(), self.lag_budget,
                                       list(self._done.values()), self._errors)
        return self._report


def make_report(
    agg: Aggregator,
    spec: LoadSpec,
    url: str,
    processes: int,
    duration: float,
    lag_budget: float,
    done: list[dict[str, Any]],
    errors: list[str],
) -> LoadReport:
    """Fold an aggregator and the workers' ``done`` messages into a report (local and Locust runs alike)."""
    lat, svc, lag = agg.totals()
    validity = agg.validity(lag_budget, duration)
    if errors:
        validity.valid = False
        validity.reasons.extend(errors)
    return LoadReport(
        url=url,
        target_rate=spec.rate,
        arrivals=spec.arrivals,
        profile=spec.profile.type,
        processes=processes,
        duration=duration,
        scheduled=agg.scheduled,
        dispatched=agg.dispatched,
        sent=agg.sent,
        completed=agg.done,
        errors=dict(agg.errors),
        codes=dict(agg.codes),
        latency=lat,
        service=svc,
        lag=lag,
        series=agg.per_second(),
        validity=validity,
        peak_connections=sum(int(d.get("peak_connections", 0)) for d in done),
        abandoned=sum(int(d.get("abandoned", 0)) for d in done),
        loop=str(done[0].get("loop")) if done else "?",
        connection_errors=dict(agg.conn_kinds),
        llm=agg.total_llm.to_dict(duration) if agg.total_llm is not None else None,
    )


async def arun_load(
    spec: LoadSpec,
    base_url: str | None = None,
    *,
    latency_tolerance: float | None = None,
    on_interval: Callable[[Interval], None] | None = None,
) -> LoadReport:
    """Run a load with a duration to its end and return the report (async)."""
    runner = LoadRunner(spec, base_url, latency_tolerance=latency_tolerance, on_interval=on_interval)
    await runner.start()
    try:
        return await runner.wait()
    except BaseException:
        await runner.stop(drain=0.0)
        raise
    finally:
        await runner._kill()


def run_load(
    spec: LoadSpec,
    base_url: str | None = None,
    *,
    latency_tolerance: float | None = None,
    on_interval: Callable[[Interval], None] | None = None,
) -> LoadReport:
    """Run a load with a duration to its end and return the report (blocking; for the CLI)."""
    return asyncio.run(arun_load(spec, base_url, latency_tolerance=latency_tolerance, on_interval=on_interval))
