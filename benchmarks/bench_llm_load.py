"""Benchmark: the LLM load generator on token streams — capacity while VALID, and accuracy against references.

Usage::

    python benchmarks/bench_llm_load.py [--out benchmarks/results/llm-load-DATE.json] [--quick] [--repeats 3]
        [--rate 50] [--duration 24] [--aiperf VENV/bin/aiperf] [--pin] [--no-capacity]

What it does (all on 127.0.0.1; every process it starts is stopped, also on failure):

* A. accuracy, against the server's own stamps (``llm_load_truth.py``: every stream on its own timers, TTFT
  50 ms then 20 events 20 ms apart; the server stamps when it received each request and wrote each event,
  on CLOCK_MONOTONIC, which every process shares).  In the same seconds, each at ``--rate`` req/s with
  Poisson arrivals for ``--duration`` s (50/s x 24 s: ~1,200 requests per client, so a p99 rests on ~12
  samples): ``mlchaos load`` and two copies of a plain aiohttp client written after vLLM's
  ``async_request_openai_chat_completions``.  Two copies of one client, because how far *they* differ at
  p99 is the noise floor of this host: no client can be shown closer to another than that.  With
  ``--aiperf``, each repeat then also runs mlchaos against NVIDIA AIPerf (``pip install aiperf`` in a venv
  of its own: 138 packages, no torch, ~90 s; it gets a word-level tokenizer written locally).  Each client's
  figures are set against the truth of its own requests (``above_truth``), and against each other
  (``diffs``; ``ttft_open``: the reference's TTFT from its planned send time, mlchaos's definition).
  vLLM's client (in the ``vllm`` package) and guidellm are not used: guidellm pulls torch and 14 CUDA
  wheels (99 packages);
* B. capacity: mlchaos at rising rates of 1 s streams (50 events, 20 ms apart) from the one-timer server
  below (``--serve``), so concurrent streams ≈ rate: events/s, generator CPU (cores), events/s per generator
  core, lag p99, VALID or not (lag budget 50 ms: 10 % of a 500 ms TTFT SLO, what an experiment bounding
  TTFT at 500 ms gives its load).  One timer for all streams keeps the server's cost per event at a
  ``transport.write``, so the generator, not the server, is what saturates first (its CPU is reported).

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

# one event shape and chunk framing for both of the benchmark's servers (llm_load_truth.py: part A)
from llm_load_truth import _CHUNK, _c  # noqa: E402

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


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


# -- the runs -------------------------------------------------------------------------------------------

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


def part_a(rate: float, duration: float, seed: int, pin: bool, aiperf: str | None = None) -> dict[str, Any]:
    """mlchaos and one reference in the same seconds against the stamping server (``llm_load_truth``).

    The reference is the aiohttp client after vLLM's, or AIPerf when ``aiperf`` (its executable) is given:
    AIPerf starts first (its services take seconds to come up) and mlchaos starts on its first request.
    """
    import tempfile

    from llm_load_truth import TOKENIZER, aiperf_command, aiperf_records, compare

    from mlchaos.load import LoadRunner, LoadSpec
    from mlchaos.load.schedule import Schedule, curve_for

    n_ids = int(rate * duration * 1.5) + 100
    cores = sorted(os.sched_getaffinity(0))
    pinned = pin and len(cores) >= 2
    art = ""
    with tempfile.TemporaryDirectory(prefix="llm-load-") as tmp:
        prompts = Path(tmp, "prompts.jsonl")
        prompts.write_text("".join(f'"m{k}"\n' for k in range(n_ids)))  # ids: the server knows whose request
        truth_file = str(Path(tmp, "server.json"))
        srv = subprocess.Popen([sys.executable, str(HERE / "llm_load_truth.py"), "--serve", "0.05", "0.02", "20",
                                truth_file], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               preexec_fn=(lambda: os.sched_setaffinity(0, {cores[-1]})) if pinned else None)
        assert srv.stdout is not None
        base = f"http://127.0.0.1:{int(srv.stdout.readline().split()[1])}"
        if pinned:  # the clients (this process, its mlchaos worker, the reference) on the first core
            os.sched_setaffinity(0, {cores[0]})
        spec = LoadSpec.model_validate({
            "rate": f"{rate}/s", "duration": f"{duration}s", "arrivals": "poisson", "seed": seed,
            "lag_budget": "50ms", "llm": {"model": "bench", "max_tokens": 20, "stall_timeout": "5s",
                                          "prompts": {"file": str(prompts)}}})
        try:
            if aiperf:
                art = str(Path(tmp, "aiperf"))
                Path(tmp, "ds.jsonl").write_text("".join(json.dumps({"text": f"a{k}"}) + "\n" for k in range(n_ids)))
                subprocess.run([str(Path(aiperf).with_name("python")), "-c", TOKENIZER, str(Path(tmp, "tok"))],
                               check=True, capture_output=True, timeout=120)
                ref = subprocess.Popen(aiperf_command(aiperf, base, rate, duration + 2, seed + 1, str(Path(tmp, "tok")),
                                                      str(Path(tmp, "ds.jsonl")), art),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 120
                while not Path(truth_file + ".first-a").exists():
                    if ref.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"aiperf sent nothing (exit {ref.poll()}); its log: {art}/logs")
                    time.sleep(0.05)
            else:  # two identical references: how far two copies of one client differ is the noise floor
                refs = [subprocess.Popen([sys.executable, str(HERE / "llm_load_truth.py"), "--reference",
                                          base + "/v1/chat/completions", str(rate), str(duration), str(seed + j),
                                          "20", t], stdout=subprocess.PIPE, text=True)
                        for j, t in ((1, "r"), (2, "s"))]
            try:
                runner = LoadRunner(spec, base)

                async def go() -> Any:
                    await runner.start()
                    return await runner.wait()

                rep = asyncio.run(go())
                if aiperf:
                    ref.communicate(timeout=duration + 90)
                    ref_recs = {"aiperf": (aiperf_records(art + "/profile_export_raw.jsonl"), "a")}
                else:
                    ref_recs = {name: (json.loads(r.communicate(timeout=duration + 30)[0]), t)
                                for r, name, t in zip(refs, ("aiohttp", "aiohttp_2"), "rs", strict=True)}
            finally:
                for r in [ref] if aiperf else refs:
                    if r.poll() is None:
                        r.kill()
                        r.wait()
        finally:
            if pinned:
                os.sched_setaffinity(0, cores)
            _stop(srv)
        server = json.loads(Path(truth_file).read_text())
    assert runner.t0 is not None
    sched = Schedule(curve_for(spec), "poisson", index=0, count=1, duration=spec.duration, seed=spec.seed)
    intended = [runner.t0 + t for chunk in sched.chunks() for t in chunk.tolist()]
    res = {"reference_client": "aiperf" if aiperf else "aiohttp (after vLLM), twice", "duration_s": duration,
           "when": time.strftime("%H:%M:%S UTC", time.gmtime()), "loadavg_after": os.getloadavg(),
           "rate_each": rate, "arrivals": "poisson", "pinned": pinned,
           "script": "ttft 50 ms, then 20 events 20 ms apart, every stream on its own timers",
           "mlchaos_valid": rep.valid, "mlchaos_lag_p99_ms": round((rep.validity.lag_p99 or 0) * 1e3, 3),
           "mlchaos_errors": rep.llm["errors"], **compare(server, intended, rep.llm, ref_recs)}
    print(json.dumps({k: res[k] for k in ("reference_client", "diffs", "above_truth")}), file=sys.stderr)
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
    ap.add_argument("--out", default=str(HERE / "results" / f"llm-load-{time.strftime('%Y-%m-%d', time.gmtime())}.json"))
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of part A (the host's noise differs per run)")
    ap.add_argument("--rate", type=float, default=50.0, help="part A: requests/s of each client (Poisson)")
    ap.add_argument("--duration", type=float, default=24.0, help="part A: seconds per run (50/s x 24 s: ~1,200 "
                    "requests per client, so a p99 rests on ~12 samples, not 2)")
    ap.add_argument("--pin", action="store_true", help="part A: server on the last core, clients on the first")
    ap.add_argument("--no-capacity", action="store_true", help="skip part B")
    ap.add_argument("--aiperf", help="part A: AIPerf's executable (in a venv of its own: `python -m venv V && "
                    "V/bin/pip install aiperf`); each repeat then also runs mlchaos against AIPerf")
    a = ap.parse_args()
    if a.serve:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(_serve(float(a.serve[0]), float(a.serve[1]), int(a.serve[2])))
        return
    dur = 4.0 if a.quick else a.duration
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
                           "command": " ".join(["python", *sys.argv]), "loadavg_before": os.getloadavg()}
    res["A_accuracy"] = []
    for i in range(1 if a.quick else a.repeats):
        res["A_accuracy"].append(part_a(a.rate, dur, 7 + 4 * i, a.pin))
        if a.aiperf:
            res["A_accuracy"].append(part_a(a.rate, dur, 9 + 4 * i, a.pin, a.aiperf))
    if not a.no_capacity:
        res["B_capacity"] = part_b([100, 300] if a.quick else [100, 200, 300, 600], 4.0 if a.quick else 6.0)
    res["loadavg_after"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
