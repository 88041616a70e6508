"""Benchmark: what write-ahead leases (issue #16, finding 5) cost per injected fault.

Before #16 the runner wrote one lease file per fault, after ``inject`` returned,
without fsync.  Now it writes an *intent* before ``inject`` (write, fsync of the
file, rename, fsync of the directory) and replaces it by the lease afterwards
(same again).  Two measurements, each over ``--faults`` faults (default 250):

A. The records alone, in a loop on the state directory's file system:
   ``old`` = one non-durable ``LeaseStore``-style write (the pre-#16 record),
   ``intent`` = ``LeaseStore.intend`` (durable), ``confirm`` = ``LeaseStore.record``
   (durable), ``new`` = intent + confirm, i.e. the whole write-ahead cost per fault.
B. Inside a real run: an experiment with ``--faults`` no-op faults (a fault plugin
   registered in this process that touches nothing), each timed by the plugin
   itself from the end of its ``intent()`` to the start of its ``inject()``: what
   the runner spends between planning and injecting (durable intent write, its
   journal line, the kill-point check, the intent-renewal task), i.e. how much
   later a fault lands because of the write-ahead record.

Run: ``python benchmarks/bench_writeahead.py [--faults 250]``; prints a Markdown
section for benchmarks/RESULTS.md.  Runs in ~10-30 s.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``xs``."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def row(name: str, xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.3f} | {pct(ms, 99):.3f} | {max(ms):.3f} | "
            f"{statistics.fmean(ms):.3f} |")


def part_a(base: Path, n: int) -> dict[str, list[float]]:
    from mlchaos.contract.lease import Lease
    from mlchaos.engine.lease import LeaseStore
    from mlchaos.engine.state import write_json_atomic

    store = LeaseStore(base)
    out: dict[str, list[float]] = {"old": [], "intent": [], "confirm": [], "new": []}
    undo = {"pids": [[12345, 1764860000.123], [12346, 1764860000.456]]}
    for i in range(n):
        lease = Lease.new(f"{i}-bench", 2.0)
        rec = {"run_id": "bench", "lease_id": lease.id, "plugin": "process-pause", "undo": undo, "ttl": 2.0,
               "expires_at": lease.expires_at, "runner_pid": os.getpid(), "created": time.time()}
        t0 = time.perf_counter()
        write_json_atomic(store.path("bench-old", lease.id), rec)  # the pre-#16 record
        t1 = time.perf_counter()
        store.intend(lease, run_id="bench", plugin="process-pause", undo=undo, runner_pid=os.getpid())
        t2 = time.perf_counter()
        store.record(lease, run_id="bench", plugin="process-pause", undo=undo, runner_pid=os.getpid())
        t3 = time.perf_counter()
        out["old"].append(t1 - t0)
        out["intent"].append(t2 - t1)
        out["confirm"].append(t3 - t2)
        out["new"].append(t3 - t1)
        store.release("bench", lease.id)
        store.release("bench-old", lease.id)
    return out


def part_b(n: int) -> tuple[list[float], str]:
    import asyncio

    from mlchaos import registry
    from mlchaos.engine.runner import run_experiment
    from mlchaos.plugin import Applied, Fault, FaultSpec
    from mlchaos.spec.loader import load_dict

    planned: dict[int, float] = {}
    gaps: list[float] = []

    class Noop(Fault):
        """Touches nothing; times the runner's work between its intent() and its inject()."""

        class Spec(FaultSpec):
            pass

        async def intent(self, lease: Any) -> dict[str, Any]:
            planned[id(self)] = time.perf_counter()
            return {}

        async def inject(self, lease: Any) -> Applied:
            gaps.append(time.perf_counter() - planned[id(self)])
            await asyncio.sleep(0)
            return Applied(targets=["noop"])

        async def remove(self) -> None:
            return None

    registry.register("fault", "bench-noop", Noop)
    # a real target the run can preflight: a tiny service on a free port
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = subprocess.Popen([sys.executable, "-m", "mlchaos.examples.tiny_service", "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        # staggered by 40 ms so each injection is timed on its own, not queued behind the others
        exp = {"title": "write-ahead bench", "target": {"platform": "http", "url": url, "health": "/health"},
               "method": [{"fault": "bench-noop", "name": f"f{i}", "at": f"{i * 40}ms", "duration": "100ms"}
                          for i in range(n)],
               "phases": {"baseline": "100ms", "recovery": "100ms"}, "lease_ttl": "2s", "max_duration": "120s"}
        with tempfile.TemporaryDirectory() as d:
            res = run_experiment(load_dict(exp), journal_path=Path(d) / "j.jsonl")
        return gaps, res.status.value
    finally:
        svc.kill()
        svc.wait()
        registry.unregister("fault", "bench-noop")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faults", type=int, default=250)
    args = ap.parse_args()
    from mlchaos.engine.state import state_dir

    sd = state_dir()
    fs = subprocess.run(["df", "-T", str(sd)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    with tempfile.TemporaryDirectory(dir=sd) as d:
        a = part_a(Path(d), args.faults)
    b, status = part_b(args.faults)
    load = os.getloadavg()
    print(f"### Write-ahead record cost per fault ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, state dir on {fs}, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; `python benchmarks/bench_writeahead.py "
          f"--faults {args.faults}`.\n")
    print("| record | n | p50 ms | p99 ms | max ms | mean ms |\n|---|---|---|---|---|---|")
    print(row("A. pre-#16 lease (no fsync)", a["old"]))
    print(row("A. intent (write + fsync file + dir)", a["intent"]))
    print(row("A. confirm (lease, write + fsync file + dir)", a["confirm"]))
    print(row("A. write-ahead total (intent + confirm)", a["new"]))
    print(row(f"B. in a run: intent() → inject() (run {status})", b))


if __name__ == "__main__":
    main()
