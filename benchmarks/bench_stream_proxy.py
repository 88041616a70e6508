"""Streaming pass-through of the fault proxy: latency it adds per event, and its CPU per stream.

    python benchmarks/bench_stream_proxy.py [--levels 10,100,500] [--events 40] [--itl 0.05] [--reps 2]
                                            [--out benchmarks/results/stream-proxy.json]

An LLM server sends one SSE event per token; a proxy that buffers, or wakes late, adds to every
inter-token latency.  All on 127.0.0.1, in one run:

* a server process (asyncio Protocols, uvloop when installed) answers each request with a chunked
  ``text/event-stream`` of ``--events`` OpenAI-sized events (~230 bytes), one every ``--itl`` seconds,
  each stamped with ``time.monotonic()`` when it is written (CLOCK_MONOTONIC is one clock for every
  process of the host);
* a client process opens N concurrent streams (staggered over one ITL), and records for every event
  ``arrival - stamp``: the event's own delivery latency;
* per level N (10, 100, 500), direct, through a bare uvloop byte relay (the floor of any user-space hop)
  and through ``mlchaos proxy --mode http`` (no fault: pass-through) alternate, ``--reps`` times; the
  added latency is proxy minus direct (and minus the bare relay) at p50 and p99 of the per-event
  latencies, and the CPU (``/proc/<pid>/stat``) per stream and per event of the proxy and the relay.

Goal (issue 20): p99 per event <= +1 ms, no added buffering.  The host is a shared 2-vCPU VM where
other work runs at the same time: the load average is recorded, and ratios within a run are what to
compare.  About 40-60 s with the defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlchaos.proxy import spawn

TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD = ('{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench",'
           '"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}],"ts":%.9f}')

SERVER = r'''
import asyncio, sys, time
try:
    import uvloop
except ImportError:
    uvloop = None
PAYLOAD = @PAYLOAD@
N, ITL = int(sys.argv[1]), float(sys.argv[2])

class S(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t; self.buf = b""; self.h = []
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            _, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            loop = asyncio.get_running_loop(); t0 = loop.time()
            for i in range(N):
                self.h.append(loop.call_at(t0 + i * ITL, self.ev, i == N - 1))
    def ev(self, last):
        if self.t.is_closing():
            return
        e = b"data: " + (PAYLOAD % time.monotonic()).encode() + b"\n\n"
        out = b"%x\r\n%b\r\n" % (len(e), e)
        if last:
            out += b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
        self.t.write(out)
    def connection_lost(self, exc):
        for h in self.h:
            h.cancel()

async def main():
    srv = await asyncio.get_running_loop().create_server(S, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

(uvloop.run if uvloop else asyncio.run)(main())
'''.replace("@PAYLOAD@", repr(PAYLOAD))

CLIENT = r'''
import asyncio, json, random, re, sys, time
try:
    import uvloop
except ImportError:
    uvloop = None
host, port, conc, itl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
TS = re.compile(rb'"ts":([0-9.]+)')
lat = []
done = 0

class C(asyncio.Protocol):
    def __init__(self, fut):
        self.fut = fut
    def connection_made(self, t):
        t.write(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        self.t = t
        self.buf = b""
    def data_received(self, d):
        now = time.monotonic()
        buf = self.buf + d
        cut = buf.rfind(b"\n\n") + 2  # whole events only: a stamp split across reads is read once whole
        for m in TS.finditer(buf, 0, cut):
            lat.append(now - float(m.group(1)))
        self.buf = buf[cut:]
        if d.endswith(b"0\r\n\r\n"):
            self.t.close()
    def connection_lost(self, exc):
        if not self.fut.done():
            self.fut.set_result(None)

async def one(delay):
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    await loop.create_connection(lambda: C(fut), host, port)
    await fut

async def main():
    await asyncio.gather(*(one(random.uniform(0, itl)) for _ in range(conc)))

(uvloop.run if uvloop else asyncio.run)(main())
with open(sys.argv[5], "w") as f:
    json.dump(lat, f)
'''

RELAY = r'''
import asyncio, sys
try:
    import uvloop
except ImportError:
    uvloop = None
UP = (sys.argv[1], int(sys.argv[2]))

class Up(asyncio.Protocol):
    def __init__(self, down):
        self.down = down
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.down.t.write(d)
    def connection_lost(self, exc):
        self.down.t.close()

class Down(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t; self.up = None; self.pending = []
        asyncio.get_running_loop().create_task(self.connect())
    async def connect(self):
        _, self.up = await asyncio.get_running_loop().create_connection(lambda: Up(self), *UP)
        for d in self.pending:
            self.up.t.write(d)
    def data_received(self, d):
        if self.up is None:
            self.pending.append(d)
        else:
            self.up.t.write(d)
    def connection_lost(self, exc):
        if self.up is not None:
            self.up.t.close()

async def main():
    srv = await asyncio.get_running_loop().create_server(Down, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

(uvloop.run if uvloop else asyncio.run)(main())
'''
"""The floor of any user-space proxy hop here: a bare uvloop byte relay (no HTTP, no faults, no limits).
On a busy host each hop adds a process wake-up; proxy minus relay is what the fault proxy's own work adds."""


def cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def phase(addr: str, conc: int, itl: float, proxy_pid: int | None) -> dict[str, Any]:
    host, port = addr.rsplit(":", 1)
    c0 = cpu(proxy_pid) if proxy_pid else 0.0
    t0 = time.monotonic()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, "-c", CLIENT, host, port, str(conc), str(itl), f.name], timeout=120,
                       check=True)
        wall = time.monotonic() - t0
        lat = json.loads(Path(f.name).read_text())
    res: dict[str, Any] = {"events": len(lat), "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
                           "max_ms": max(lat) * 1e3, "wall_s": wall}
    if proxy_pid:
        used = cpu(proxy_pid) - c0
        res["proxy_cpu_s"] = used
        res["cpu_ms_per_stream"] = used / conc * 1e3
        res["cpu_us_per_event"] = used / max(1, len(lat)) * 1e6
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="10,100,500")
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--itl", type=float, default=0.05)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.events), str(args.itl)], stdout=subprocess.PIPE)
    assert server.stdout is not None
    upstream = f"127.0.0.1:{int(server.stdout.readline())}"
    host, port = upstream.rsplit(":", 1)
    relay = subprocess.Popen([sys.executable, "-c", RELAY, host, port], stdout=subprocess.PIPE)
    assert relay.stdout is not None
    relay_addr = f"127.0.0.1:{int(relay.stdout.readline())}"
    proxy = spawn(upstream=upstream, mode="http")
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    try:
        for conc in levels:
            direct: list[dict[str, Any]] = []
            via: list[dict[str, Any]] = []
            bare: list[dict[str, Any]] = []
            for _ in range(args.reps):
                direct.append(phase(upstream, conc, args.itl, None))
                bare.append(phase(relay_addr, conc, args.itl, relay.pid))
                via.append(phase(proxy.listen_addr, conc, args.itl, proxy.pid))
            row = {
                "streams": conc,
                "events": sum(r["events"] for r in via),
                "direct_p50_ms": statistics.median(r["p50_ms"] for r in direct),
                "direct_p99_ms": statistics.median(r["p99_ms"] for r in direct),
                "proxy_p50_ms": statistics.median(r["p50_ms"] for r in via),
                "proxy_p99_ms": statistics.median(r["p99_ms"] for r in via),
                "relay_p50_ms": statistics.median(r["p50_ms"] for r in bare),
                "relay_p99_ms": statistics.median(r["p99_ms"] for r in bare),
                "proxy_cpu_ms_per_stream": sum(r["proxy_cpu_s"] for r in via) / (conc * len(via)) * 1e3,
                "proxy_cpu_us_per_event": sum(r["proxy_cpu_s"] for r in via) / max(1, sum(r["events"] for r in via)) * 1e6,
                "relay_cpu_us_per_event": sum(r["proxy_cpu_s"] for r in bare) / max(1, sum(r["events"] for r in bare))
                * 1e6,
                "runs": {"direct": direct, "relay": bare, "proxy": via},
            }
            row["added_p50_ms"] = row["proxy_p50_ms"] - row["direct_p50_ms"]
            row["added_p99_ms"] = row["proxy_p99_ms"] - row["direct_p99_ms"]
            row["over_relay_p50_ms"] = row["proxy_p50_ms"] - row["relay_p50_ms"]
            row["over_relay_p99_ms"] = row["proxy_p99_ms"] - row["relay_p99_ms"]
            rows.append(row)
            print(f"{conc:4d} streams, {row['events']} events: per-event latency p50/p99 ms: direct "
                  f"{row['direct_p50_ms']:.3f}/{row['direct_p99_ms']:.3f}, bare relay {row['relay_p50_ms']:.3f}/"
                  f"{row['relay_p99_ms']:.3f}, proxy {row['proxy_p50_ms']:.3f}/{row['proxy_p99_ms']:.3f}; added vs "
                  f"direct {row['added_p50_ms']:+.3f}/{row['added_p99_ms']:+.3f}, vs relay "
                  f"{row['over_relay_p50_ms']:+.3f}/{row['over_relay_p99_ms']:+.3f}; CPU proxy "
                  f"{row['proxy_cpu_ms_per_stream']:.2f} ms/stream = {row['proxy_cpu_us_per_event']:.1f} us/event, "
                  f"relay {row['relay_cpu_us_per_event']:.1f} us/event", flush=True)
    finally:
        proxy.stop()
        relay.kill()
        relay.wait()
        relay.stdout.close()
        server.kill()
        server.wait()
        server.stdout.close()
    result = {
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} vCPU, "
                   f"kernel {platform.release()}",
        "cpu_model": next((re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
                           for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), "?"),
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "events_per_stream": args.events, "itl_s": args.itl, "reps": args.reps, "rows": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
