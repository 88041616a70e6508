"""Long soak of the fault proxy under hostile clients (issue #17), with its default limits.

What it measures, on one proxy process (HTTP mode, default limits: 64 KiB headers, 10 s header
timeout, 300 s idle timeout):

1. **Soak**: ``--normal`` ordinary keep-alive clients (GET, each must get its 200) while
   ``--attackers`` clients misbehave in turn (close mid-headers / mid-body, short bodies in front of
   an upstream that answers early, chunked bodies without their last chunk, ``Expect`` without a
   body, 100 KiB headers, 1,500 header lines, garbage, slowloris).  The proxy's fds and RSS are
   sampled every second; the verdict compares them, after the clients left and the header timeout
   passed, with the baseline taken after a warm-up.
2. **Endless header**: one client sends 16 MiB of a single header: the answer, the proxy's RSS and
   CPU (the issue saw RSS 41 -> 240 MB, never given back, and CPU growing quadratically).
3. **Slowloris**: 500 connections drip a header line every 0.5 s: how long until the proxy closed all.
4. **CLOSE-WAIT**: 100 clients close mid-headers: sockets of the proxy in CLOSE-WAIT 1 s later.

``python benchmarks/bench_proxy_soak.py --seconds 60`` (keep runs under ~90 s on the shared box);
``--json`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the soak driver lives with the tests (tests/proxy/soak.py)

from tests.proxy.soak import bad_counts, footprint, soak  # noqa: E402

from mlchaos.proxy import ProxyHandle, spawn  # noqa: E402


def _upstream() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/proxy/upstream.py")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, f"127.0.0.1:{int(proc.stdout.readline())}"


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure_soak(h: ProxyHandle, seconds: float, normal: int, attackers: int) -> dict[str, Any]:
    _run(soak(h.port, 2.0, normal=normal, attackers=0))  # warm-up: pool, allocator
    time.sleep(1.0)
    base = footprint(h.pid)
    samples: list[dict[str, int]] = []

    async def sampled() -> dict[str, Any]:
        async def sample() -> None:
            while True:
                samples.append(footprint(h.pid))
                await asyncio.sleep(1.0)

        task = asyncio.create_task(sample())
        try:
            return await soak(h.port, seconds, normal=normal, attackers=attackers, header_timeout=10.0)
        finally:
            task.cancel()

    cpu0 = sum(psutil.Process(h.pid).cpu_times()[:2])
    t0 = time.monotonic()
    counts = _run(sampled())
    wall = time.monotonic() - t0
    cpu = sum(psutil.Process(h.pid).cpu_times()[:2]) - cpu0
    time.sleep(11.0)  # the header timeout (10 s) plus a tick: every attacker's socket is gone by now
    after = footprint(h.pid)
    return {
        "seconds": round(wall, 1), "normal_clients": normal, "attackers": attackers, "counts": counts,
        "broken_promises": bad_counts(counts), "proxy_cpu_s": round(cpu, 1),
        "attacks": sum(v for k, v in counts.items() if k.startswith("attack_")),
        "baseline": base, "peak_fds": max(s["fds"] for s in samples), "peak_rss": max(s["rss"] for s in samples),
        "after": after, "active_after": h.client.health()["connections_active"],
    }


def measure_endless_header(h: ProxyHandle, total: int = 16 << 20) -> dict[str, Any]:
    p = psutil.Process(h.pid)
    rss0, cpu0 = p.memory_info().rss, sum(p.cpu_times()[:2])
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent = 0
    t0 = time.monotonic()
    try:
        while sent < total:
            s.sendall(b"a" * 65536)
            sent += 65536
    except OSError:
        pass
    answer = b""
    with contextlib.suppress(OSError):
        answer = s.recv(200)
    s.close()
    time.sleep(0.5)
    return {"sent_before_close": sent, "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace"),
            "seconds": round(time.monotonic() - t0, 2), "rss_delta_mb": round((p.memory_info().rss - rss0) / 1e6, 1),
            "proxy_cpu_s": round(sum(p.cpu_times()[:2]) - cpu0, 3)}


def measure_slowloris(h: ProxyHandle, n: int = 500) -> dict[str, Any]:
    async def go() -> list[float | None]:
        t0 = time.monotonic()

        async def one() -> float | None:
            r, w = await asyncio.open_connection("127.0.0.1", h.port)
            w.write(b"GET /json HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(60):
                    try:
                        data = await asyncio.wait_for(r.read(4096), 0.5)
                        if data == b"" or data.startswith(b"HTTP/1.1 408"):
                            return time.monotonic() - t0
                    except TimeoutError:
                        w.write(b"X-Slow: 1\r\n")
                return None
            except OSError:
                return time.monotonic() - t0
            finally:
                w.close()

        return await asyncio.gather(*(one() for _ in range(n)))

    closed = _run(go())
    done = [t for t in closed if t is not None]
    return {"connections": n, "closed": len(done), "first_s": round(min(done), 2) if done else None,
            "last_s": round(max(done), 2) if done else None}


def measure_close_wait(h: ProxyHandle, n: int = 100) -> dict[str, Any]:
    socks = [socket.create_connection(("127.0.0.1", h.port)) for _ in range(n)]
    for s in socks:
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Half: ")
    time.sleep(0.2)
    for s in socks:
        s.close()
    time.sleep(1.0)
    conns = psutil.Process(h.pid).net_connections(kind="tcp")
    return {"clients": n, "close_wait_after_1s": sum(c.status == psutil.CONN_CLOSE_WAIT for c in conns)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--normal", type=int, default=16)
    ap.add_argument("--attackers", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    up, addr = _upstream()
    try:
        with spawn(upstream=addr, mode="http") as h:
            out = {
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
                "cpus": psutil.cpu_count(), "load": [round(x, 1) for x in psutil.getloadavg()],
                "endless_header": measure_endless_header(h), "close_wait": measure_close_wait(h),
                "slowloris": measure_slowloris(h),
            }
            out["soak"] = measure_soak(h, args.seconds, args.normal, args.attackers)
    finally:
        up.kill()
        up.wait()
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    soak_ = out["soak"]
    ok = (not soak_["broken_promises"] and soak_["after"]["fds"] <= soak_["baseline"]["fds"] + 2
          and out["close_wait"]["close_wait_after_1s"] == 0 and out["slowloris"]["closed"] == 500)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
