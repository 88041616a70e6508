"""Why mlchaos.proxy._splice exists: JSON corruption in C vs the pure-Python path, A/B in one process.

Two measurements, both without a kernel in the way (so the difference is the proxy's own work):

1. ``corrupt_response`` alone on the benchmark's 639-byte feature-vector response;
2. whole proxy exchanges (request in, response out) through the real ``Downstream``/``Upstream``
   protocol objects with in-memory transports: pass-through, 10 % 503 + 10 % JSON-null, 100 % JSON-null.

Each figure is the best of ``--rounds`` interleaved rounds (the machine is shared; the minimum is the
least disturbed).  ``bench_proxy.py`` measures the same faults end to end against HAProxy.

    python benchmarks/bench_splice.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench_proxy  # the same document as the end-to-end benchmark

from mlchaos.proxy import http_path, http_wire
from mlchaos.proxy.faults import Plan
from mlchaos.proxy.rules import parse_rule
from mlchaos.proxy.table import FaultTable

DOC = bench_proxy.DOC
REQ = b"GET /features.json HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESP = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 01:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\nETag: \"abc\"\r\n"
        b"Accept-Ranges: bytes\r\n\r\n" % len(DOC)) + DOC
NULL = {"kind": "json-corrupt", "fields": ["features.f07"]}
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "pass-through": [],
    "10% 503 + 10% JSON-null": [{"kind": "http-error", "status": 503, "probability": "10%"},
                                {**NULL, "probability": "10%"}],
    "100% JSON-null": [NULL],
}


class Transport:
    """Just enough of an asyncio transport for the protocol objects."""

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, *args: Any, **kwargs: Any) -> None:
        return None


def corrupt_us(n: int) -> float:
    rule = parse_rule(NULL, "http")
    plan = Plan()
    plan.corrupt.append(rule.fault)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for _ in range(n):
        http_wire.corrupt_response(RESP, plan)
    return (time.perf_counter() - t0) / n * 1e6


async def exchange_us(faults: list[dict[str, Any]], n: int) -> float:
    table = FaultTable()
    for f in faults:
        table.add(parse_rule(f, "http"), schedule=False)
    proxy = http_path.HttpProxy(table, ("127.0.0.1", 9))
    up = http_path.Upstream(proxy)
    up.connection_made(Transport())  # type: ignore[arg-type]
    proxy.idle.append(up)
    down = proxy.protocol()
    down.connection_made(Transport())  # type: ignore[arg-type]

    def one() -> None:
        down.data_received(REQ)
        if down.up is not None and not down.up.idle:
            down.up.data_received(RESP)

    for _ in range(500):
        one()
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    c_module = http_wire._splice
    if c_module is None:
        print("the C extension is not built (pip install -e . with a compiler); nothing to compare", file=sys.stderr)
        return 1
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for impl in ("C", "Python"):
            http_wire._splice = c_module if impl == "C" else None
            rows = {"corrupt_response alone": corrupt_us(args.n)}
            for name, faults in CONFIGS.items():
                rows[f"exchange, {name}"] = asyncio.run(exchange_us(faults, args.n))
            for name, us in rows.items():
                best[(impl, name)] = min(best.get((impl, name), float("inf")), us)
    http_wire._splice = c_module
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
          f"best of {args.rounds} interleaved rounds of {args.n}\n")
    print("| µs per call (proxy's own work, no kernel) | Python | C | Python / C |")
    print("|---|---|---|---|")
    names = ["corrupt_response alone", *(f"exchange, {n}" for n in CONFIGS)]
    for name in names:
        py, c = best[("Python", name)], best[("C", name)]
        print(f"| {name} | {py:.2f} | {c:.2f} | {py / c:.1f}× |")
    base = {impl: best[(impl, "exchange, pass-through")] for impl in ("C", "Python")}
    print("\n| exchange over pass-through | Python | C |\n|---|---|---|")
    for name in CONFIGS:
        key = f"exchange, {name}"
        print(f"| {name} | +{best[('Python', key)] - base['Python']:.2f} µs | +{best[('C', key)] - base['C']:.2f} µs |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
