"""What reading whose CPU it was costs the runner's event loop (mlchaos.engine.cpushare).

Once a second every process's /proc/PID/stat is read and parsed (~8 ms of Python with 300 processes).
Done in a thread of the runner, that work shares the GIL with the event loop that times the load
generator's sends; done in a process of its own (what ships: ``Sampler``), it shares only the CPU.
This measures the loop's lag (how late a 4 ms timer fires) with no reading, with a full scan in a
thread once a second (the first version), and with the sampler process (what ships: niced, and
reading only the system's and mlchaos's processes at each second, the others when they appear and
every 10 s), in alternating rounds, with ``--procs`` idle processes present (a CI host runs a few
hundred).

    python benchmarks/bench_cpushare.py --seconds 30 --rounds 3 --procs 250
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import time

from mlchaos.engine.cpushare import Sampler, scan

MODES = ("none", "thread", "process")


async def lag(mode: str, seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    async def in_thread() -> None:  # the first version: every process read at every second
        while True:
            await asyncio.to_thread(scan)
            await asyncio.sleep(1.0)

    task = (asyncio.create_task(in_thread()) if mode == "thread"
            else asyncio.create_task(Sampler(lambda: []).run()) if mode == "process" else None)
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = loop.time()
        await asyncio.sleep(0.004)
        out.append(loop.time() - t0 - 0.004)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return out


def q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=250)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    # detached (their shell exits: adopted by init), as a host's other processes are: not the runner's
    subprocess.run(["sh", "-c", f"for i in $(seq {args.procs}); do sleep 3600 & done"], check=True)
    try:
        t = time.perf_counter()
        n = len(scan())
        scan_ms = (time.perf_counter() - t) * 1e3
        rows = []
        for r in range(args.rounds):
            for mode in MODES:
                xs = asyncio.run(lag(mode, args.seconds))
                rows.append({"round": r, "mode": mode, "n": len(xs), "p99_ms": round(q(xs, 0.99), 3),
                             "p999_ms": round(q(xs, 0.999), 3), "max_ms": round(max(xs) * 1e3, 3)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        subprocess.run(["pkill", "-x", "-f", "sleep 3600"], check=False)
    result = {"machine": platform.node(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
              time.gmtime()), "processes": n, "scan_ms": round(scan_ms, 2), "rows": rows}
    for mode in MODES:
        mine = [x for x in rows if x["mode"] == mode]
        print(mode, "p99", [x["p99_ms"] for x in mine], "p99.9", [x["p999_ms"] for x in mine])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
