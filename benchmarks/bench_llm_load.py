"""Benchmark: the LLM load generator on token streams — capacity while VALID, and accuracy against a reference.

Usage::

    python benchmarks/bench_llm_load.py [--out benchmarks/results/llm-load-DATE.json] [--quick] [--repeats 3]

What it does (all on 127.0.0.1; every process it starts is stopped, also on failure):

* starts a streaming server of its own (``--serve``): one timer for all streams writes one SSE event
  to every active stream every ``itl`` (a ``chat.completion.chunk`` of ~150 bytes), then a finish chunk,
  usage and ``[DONE]``; one timer instead of a sleep per stream keeps the server's cost per event at a
  ``transport.write``, so the generator, not the server, is what saturates first (its CPU is reported);
* A. accuracy: ``mlchaos load`` (open loop, 20 req/s) and a reference client in another process at the
  same rate against the same server, in the same seconds: TTFT and ITL p50/p99 of both.  The reference is
  a plain aiohttp client written after vLLM's ``async_request_openai_chat_completions``
  (``vllm/benchmarks/lib/endpoint_request_func.py``: time from just before the POST, ITL between chunks
  with ``choices``), open loop (one task per planned arrival).  Neither vLLM's client nor AIPerf is used:
  vLLM's needs vllm, and ``pip install aiperf`` would pull ~45 packages (transformers, datasets, kubernetes,
  a different orjson/psutil/rich) into the shared environment;
* B. capacity: mlchaos at rising rates of 1 s streams (50 events, 20 ms apart), so concurrent streams ≈
  rate: events/s, generator CPU (cores), events/s per generator core, lag p99, VALID or not (lag budget
  50 ms: 10 % of a 500 ms TTFT SLO, what an experiment bounding TTFT at 500 ms gives its load).

The machine is shared (2 cores, other work running): figures are this run's, ratios within it matter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# -- the streaming server ------------------------------------------------------------------------------

_CHUNK = (b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
          b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n')
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _c(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Stream(asyncio.Protocol):
    def __init__(self, srv: _Server) -> None:
        self.srv = srv
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        i = self.buf.find(b"\r\n\r\n")
        if i < 0:
            return
        head = self.buf[:i].lower()
        n = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        if len(self.buf) < i + 4 + n:
            return
        self.buf = self.buf[i + 4 + n:]
        self.transport.write(_HEAD)
        self.srv.active.append([self, time.monotonic() + self.srv.ttft, self.srv.n])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _Server:
    def __init__(self, ttft: float, itl: float, n: int) -> None:
        self.ttft, self.itl, self.n = ttft, itl, n
        self.active: list[list[Any]] = []
        self.gaps: list[float] = []  # the server's own tick-to-tick gaps: the ground truth of ITL it produced
        self._last = 0.0
        self.chunk = _c(_CHUNK)
        tail = (b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
                b'"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n')
        usage = b'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":%d}}\n\n' % n
        self.end = _c(tail) + _c(usage) + _c(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    def tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if self._last and self.active:
            self.gaps.append(now - self._last)
        self._last = now
        keep = []
        for s in self.active:
            proto, due, left = s
            if proto.transport is None:
                continue
            if now >= due:
                proto.transport.write(self.chunk)
                left -= 1
                if left == 0:
                    proto.transport.write(self.end)
                    continue
                s[2] = left
            keep.append(s)
        self.active = keep
        loop.call_at(loop.time() + self.itl - (time.monotonic() - now), self.tick)


async def _serve(ttft: float, itl: float, n: int) -> None:
    srv = _Server(ttft, itl, n)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Stream(srv), "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    loop.call_soon(srv.tick)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    g = sorted(srv.gaps)
    print("TICKS " + json.dumps({"n": len(g), "p50_ms": g[len(g) // 2] * 1e3 if g else None,
                                 "p99_ms": g[int(len(g) * 0.99)] * 1e3 if g else None}), flush=True)


# -- the reference client (aiohttp, after vLLM's request function) ----------------------------------------

async def _reference(url: str, rate: float, duration: float) -> dict[str, list[float]]:
    import aiohttp

    ttfts: list[float] = []
    itls: list[float] = []
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50,
            "stream": True, "stream_options": {"include_usage": True}}

    async def one(session: aiohttp.ClientSession) -> None:
        st = time.perf_counter()
        last = st
        first = True
        async with session.post(url, json=body) as resp:
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    msg, buf = buf.split(b"\n\n", 1)
                    data = msg.strip().removeprefix(b"data: ")
                    if not data or data == b"[DONE]":
                        continue
                    ts = time.perf_counter()
                    if json.loads(data).get("choices"):
                        if first:
                            ttfts.append(ts - st)
                            first = False
                        else:
                            itls.append(ts - last)
                        last = ts

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.perf_counter()
        tasks = []
        k = 0
        while k / rate < duration:
            await asyncio.sleep(max(0.0, t0 + k / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session)))
            k += 1
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"ttft": ttfts, "itl": itls}


# -- the runs -------------------------------------------------------------------------------------------

def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.quantile(np.asarray(values), q, method="inverted_cdf"))


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return p, f"http://127.0.0.1:{int(line.split()[1])}"


def _stop(p: subprocess.Popen[str]) -> dict[str, Any] | None:
    """Stop a server; return what it says about its own tick gaps (None if it could not say)."""
    out = ""
    with contextlib.suppress(Exception):
        if p.stdin is not None:
            p.stdin.close()
    try:
        p.wait(5)
        out = p.stdout.read() if p.stdout is not None else ""
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for line in (out or "").splitlines():
        if line.startswith("TICKS "):
            return dict(json.loads(line[6:]))
    return None


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def _mlchaos(url: str, rate: float, duration: float, stall: float = 5.0) -> Any:
    from mlchaos.load import LoadRunner, LoadSpec

    spec = LoadSpec.model_validate({"rate": f"{rate}/s", "duration": f"{duration}s", "lag_budget": "50ms",  # 10 % of a 500 ms TTFT SLO: what an experiment would give
                                    "llm": {"model": "bench", "max_tokens": 50, "stall_timeout": f"{stall}s",
                                            "prompts": {"generate": {"tokens": 8}}}})
    runner = LoadRunner(spec, url)
    await runner.start()
    return await runner.wait()


def part_a(duration: float) -> dict[str, Any]:
    srv, base = _start(["--serve", "0.05", "0.02", "20"])
    try:
        ref = subprocess.Popen([sys.executable, __file__, "--reference", base + "/v1/chat/completions", "20",
                                str(duration)], stdout=subprocess.PIPE, text=True)
        try:
            rep = asyncio.run(_mlchaos(base, 20, duration))
            out, _ = ref.communicate(timeout=duration + 30)
        finally:
            if ref.poll() is None:
                ref.kill()
                ref.wait()
    finally:
        ticks = _stop(srv)
    r = json.loads(out)
    llm = rep.llm
    res = {"duration_s": duration, "rate": 20, "script": "ttft 50 ms, 20 events 20 ms apart",
           "server_tick_gaps": ticks,
           "mlchaos": {"requests": llm["completed"], "ttft_p50_ms": llm["ttft_ms"]["p50"],
                       "ttft_p99_ms": llm["ttft_ms"]["p99"], "itl_p50_ms": llm["itl_ms"]["p50"],
                       "itl_p99_ms": llm["itl_ms"]["p99"], "valid": rep.valid, "lag_p99_ms":
                           (rep.validity.lag_p99 or 0) * 1e3},
           "reference_aiohttp": {"requests": len(r["ttft"]),
                                 **{f"{k}_{n}_ms": (v * 1e3 if (v := _q(r[k], q)) is not None else None)
                                    for k in ("ttft", "itl") for n, q in (("p50", 0.5), ("p99", 0.99))}}}
    m, f = res["mlchaos"], res["reference_aiohttp"]
    res["diff_ms"] = {k: round(m[k] - f[k], 3) for k in ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms")
                      if m[k] is not None and f[k] is not None}
    return res


def part_b(rates: list[float], duration: float) -> list[dict[str, Any]]:
    rows = []
    for rate in rates:
        srv, base = _start(["--serve", "0.02", "0.02", "50"])
        try:
            c0, t0 = _cpu(srv.pid), time.monotonic()
            rep = asyncio.run(_mlchaos(base, rate, duration))
            srv_cpu = (_cpu(srv.pid) - c0) / (time.monotonic() - t0)
        finally:
            _stop(srv)
        llm = rep.llm
        events = llm["itl_ms"]["count"] + llm["ttft_ms"]["count"]
        gen_cpu = rep.validity.cpu or 0.0
        eps = events / rep.duration
        rows.append({"rate": rate, "concurrent_streams": round(rate * (0.02 + 50 * 0.02)), "events": events,
                     "events_per_s": round(eps), "generator_cpu_cores": round(gen_cpu, 3),
                     "events_per_s_per_core": round(eps / gen_cpu) if gen_cpu else None,
                     "server_cpu_cores": round(srv_cpu, 3), "completed": llm["completed"],
                     "errors": llm["errors"], "lag_p99_ms": round((rep.validity.lag_p99 or 0) * 1e3, 3),
                     "itl_p99_ms": llm["itl_ms"]["p99"], "valid": rep.valid,
                     "invalid_reason": rep.invalid_reason})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=3, metavar=("TTFT", "ITL", "N"))
    ap.add_argument("--reference", nargs=3, metavar=("URL", "RATE", "DURATION"))
    ap.add_argument("--out", default=str(HERE / "results" / f"llm-load-{time.strftime('%Y-%m-%d', time.gmtime())}.json"))
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of part A (the host's noise differs per run)")
    a = ap.parse_args()
    if a.serve:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(_serve(float(a.serve[0]), float(a.serve[1]), int(a.serve[2])))
        return
    if a.reference:
        print(json.dumps(asyncio.run(_reference(a.reference[0], float(a.reference[1]), float(a.reference[2])))))
        return
    dur = 3.0 if a.quick else 8.0
    load = os.getloadavg()
    res = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
           "loadavg_before": load, "A_accuracy": [part_a(dur) for _ in range(1 if a.quick else a.repeats)],
           "B_capacity": part_b([100, 300] if a.quick else [100, 200, 300, 600], 4.0 if a.quick else 6.0),
           "loadavg_after": os.getloadavg()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
