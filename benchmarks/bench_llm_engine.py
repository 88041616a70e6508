"""Benchmark: the lab's LLM engine — tokens/s and requests/s at capacity, TTFT/TPOT against offered load.

Usage::

    python benchmarks/bench_llm_engine.py [--models DIR] [--size primary] [--kv-tokens 4096] [--max-batch 16]
        [--prompt-words 200] [--max-tokens 64] [--rates 2,4,8,12,16,24] [--seconds 6] [--out FILE.json]
    python benchmarks/bench_llm_engine.py --url http://127.0.0.1:PORT [--burst 64] ...   # a running endpoint

What it does (127.0.0.1 only; the engine it starts is stopped, also on failure):

* trains the two lab models into a temporary directory unless ``--models`` names a built lab's ``models/``;
* starts ``python -m mlchaos.lab.services.llm_engine`` with the given flags, or, with ``--url``, measures an
  OpenAI-compatible endpoint that is already running (the lab's ``llm-gateway``: the whole path a scenario's
  requests take, gateway, fault proxy and engine sharing the host's cores, which is the capacity the
  overload scenario must exceed);
* A. capacity: a closed burst of ``--burst`` (default ``4 × max-batch``) concurrent streaming requests (``ignore_eos``, so each
  makes exactly ``max-tokens`` tokens): generated tokens/s and completed requests/s while the batch is full;
* B. open loop: Poisson arrivals at each rate for ``--seconds`` (one task per planned arrival, no
  coordinated omission), streaming; per request TTFT (POST to first token event), TPOT ((e2e - TTFT) /
  (tokens - 1)), completed or not; per rate p50/p99 TTFT, p50/p99 TPOT, completed req/s, tokens/s.
  The knee is the highest offered rate whose completions keep up (≥ 95 % of offered) with TTFT p99 under
  1 s; above it the waiting queue grows and TTFT with it — what the overload scenario relies on.

The client is a plain aiohttp SSE reader in the same process (its CPU competes with the engine's on a
2-core host; the figures say what this host does with both).  The machine is shared with other work:
figures are this run's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def one(session: Any, url: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    body = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
    t0 = time.perf_counter()
    first = None
    n = 0
    done = False
    try:
        async with session.post(url + "/v1/completions", json=body) as r:
            if r.status != 200:
                return {"status": r.status, "ok": False}
            async for line in r.content:
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b"data: ") and b'"finish_reason":null' in line:
                    n += 1
                    if first is None:
                        first = time.perf_counter()
    except Exception as exc:  # a broken stream is a failed request, counted
        return {"status": type(exc).__name__, "ok": False}
    end = time.perf_counter()
    ttft = (first - t0) if first else None
    tpot = ((end - first) / (n - 1)) if first and n > 1 else None
    return {"status": 200, "ok": done and n == max_tokens, "ttft": ttft, "tpot": tpot, "tokens": n, "end": end}


async def burst(url: str, n: int, prompt: str, max_tokens: int) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as s:
        await one(s, url, prompt, 4)
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(one(s, url, prompt, max_tokens) for _ in range(n)))
        wall = time.perf_counter() - t0
    tokens = sum(r.get("tokens", 0) for r in rs)
    return {"requests": n, "ok": sum(r["ok"] for r in rs), "seconds": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 1), "requests_per_s": round(n / wall, 2)}


async def open_loop(url: str, rate: float, seconds: float, prompt: str, max_tokens: int, seed: int) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(seed)
    plan, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        plan.append(t)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=seconds + 30)) as s:
        start = time.perf_counter()

        async def at(offset: float) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            return await one(s, url, prompt, max_tokens)

        rs = await asyncio.gather(*(at(o) for o in plan))
        wall = time.perf_counter() - start
    ok = [r for r in rs if r["ok"]]
    ttft = [r["ttft"] for r in ok]
    tpot = [r["tpot"] for r in ok if r["tpot"] is not None]
    in_window = [r for r in ok if r["end"] - start <= seconds + 1.0]
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    return {"offered_rps": rate, "requests": len(plan), "ok": len(ok),
            "completed_rps": round(len(in_window) / (seconds + 1.0), 2),
            "tokens_per_s": round(sum(r["tokens"] for r in ok) / wall, 1), "wall_s": round(wall, 2),
            "ttft_p50_ms": ms(pct(ttft, 0.5)), "ttft_p99_ms": ms(pct(ttft, 0.99)),
            "tpot_p50_ms": ms(pct(tpot, 0.5)), "tpot_p99_ms": ms(pct(tpot, 0.99)),
            "errors": sorted({str(r["status"]) for r in rs if not r["ok"]})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, help="a built lab's models/ (default: train into a temp dir)")
    ap.add_argument("--size", default="primary", choices=("primary", "fallback"))
    ap.add_argument("--kv-tokens", type=int, default=4096)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--prompt-words", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rates", default="2,4,8,12,16,24")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--url", help="measure this running endpoint instead of starting an engine")
    ap.add_argument("--burst", type=int, help="concurrent requests of the capacity burst (default 4 x max-batch)")
    a = ap.parse_args()
    if a.url:
        run(a, a.url.rstrip("/"), None, {"url": a.url})
        return
    with tempfile.TemporaryDirectory() as tmp:
        start_engine(a, Path(tmp))


def start_engine(a: argparse.Namespace, tmp: Path) -> None:
    """Train (or take) the models, start one engine, measure it, stop it (also on failure)."""
    from mlchaos.lab.paths import free_port

    models = a.models
    train_s = None
    if models is None:
        from mlchaos.lab.llm.train import build_models

        t = time.perf_counter()
        build_models(tmp / "llm")
        train_s = round(time.perf_counter() - t, 2)
        models = tmp
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLCHAOS_LAB_PARENT"}
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos.lab.services.llm_engine", "--port", str(port),
                             "--model", str(models), "--name", f"llm-{a.size}", "--kv-tokens", str(a.kv_tokens),
                             "--max-batch", str(a.max_batch)], env=env, stdout=subprocess.DEVNULL)
    try:
        run(a, f"http://127.0.0.1:{port}", proc, {"size": a.size, "kv_tokens": a.kv_tokens, "max_batch": a.max_batch,
                                                  "train_seconds": train_s})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(a: argparse.Namespace, url: str, proc: subprocess.Popen[bytes] | None, head: dict[str, Any]) -> None:
    """Wait for ``url``'s ``/health``, then the burst and the open-loop rates; print and write the JSON."""
    import httpx

    out: dict[str, Any] = {**head, "prompt_words": a.prompt_words, "max_tokens": a.max_tokens,
                           "load_avg_before": os.getloadavg()}
    for _ in range(300):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    words = ["return", "the", "value", "of", "the", "given", "object", "and", "its", "attributes"]
    prompt = " ".join(words[i % len(words)] for i in range(a.prompt_words))
    out["capacity"] = asyncio.run(burst(url, a.burst or 4 * a.max_batch, prompt, a.max_tokens))
    print("capacity", out["capacity"], flush=True)
    out["open_loop"] = []
    for i, r in enumerate(float(x) for x in a.rates.split(",")):
        res = asyncio.run(open_loop(url, r, a.seconds, prompt, a.max_tokens, seed=i))
        out["open_loop"].append(res)
        print(res, flush=True)
    keeps = [r for r in out["open_loop"] if r["ok"] >= 0.95 * r["requests"] and (r["ttft_p99_ms"] or 1e9) < 1000]
    out["knee_rps"] = max((r["offered_rps"] for r in keeps), default=None)
    out["load_avg_after"] = os.getloadavg()
    if proc is not None:  # the engine's own step timing (a gateway has no such metric)
        step = httpx.get(url + "/metrics", timeout=5).text
        out["step_seconds"] = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in step.splitlines()
                               if ln.startswith("mlchaos_llm_step_seconds_sum") or
                               ln.startswith("mlchaos_llm_step_seconds_count")}
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
