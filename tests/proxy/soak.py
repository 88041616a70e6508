"""A soak driver for the proxy: ordinary keep-alive clients while attackers misbehave around them.

Shared by the CI soak (tests/proxy/test_soak.py, ~10 s) and the long one
(benchmarks/bench_proxy_soak.py).  Every ordinary request must get its 200; every attack
must end the way the proxy promises (a 4xx, or a close); then, once the clients are gone,
the proxy's file descriptors and RSS must come back to where they were.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import time
from typing import Any

import psutil

ATTACKS = ("mid_headers", "mid_body", "early_short_body", "chunked_no_end", "expect_no_body", "huge_header",
           "slowloris", "garbage", "many_lines")


def footprint(pid: int) -> dict[str, int]:
    """File descriptors and RSS (bytes) of the proxy process."""
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "rss": psutil.Process(pid).memory_info().rss}


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes,
                     timeout: float) -> int:
    writer.write(req)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(reader.readexactly(length), timeout)
    return status


async def _normal(port: int, stop: asyncio.Event, counts: collections.Counter[str], timeout: float) -> None:
    """One keep-alive client: GET /json as fast as it is answered; a new connection every 200 requests."""
    req = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["normal_connect_error"] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            for _ in range(200):
                if stop.is_set():
                    break
                status = await _roundtrip(reader, writer, req, timeout)
                counts["normal_ok" if status == 200 else f"normal_status_{status}"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            counts[f"normal_error_{type(exc).__name__}"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_to_close(reader: asyncio.StreamReader, timeout: float) -> bytes:
    out = b""
    with contextlib.suppress(OSError, TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            out += chunk
    return out


async def _attack(kind: str, port: int, counts: collections.Counter[str], rng: random.Random,
                  header_timeout: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        expect: tuple[bytes, ...] = ()
        if kind == "mid_headers":
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Half: ")
        elif kind == "mid_body":
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        elif kind == "early_short_body":
            writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            await asyncio.wait_for(reader.readuntil(b"}"), 5)
        elif kind == "chunked_no_end":
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        elif kind == "expect_no_body":
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        elif kind == "huge_header":
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 << 10) + b"\r\n\r\n")
            expect = (b"HTTP/1.1 431 ", b"")
        elif kind == "many_lines":
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 1500 + b"\r\n")
            expect = (b"HTTP/1.1 431 ", b"")
        elif kind == "garbage":
            writer.write(bytes(rng.randrange(256) for _ in range(200)) + b"\r\n\r\n")
            expect = (b"HTTP/1.1 400 ", b"")
        elif kind == "slowloris":
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            while not reader.at_eof() and time.monotonic() - t0 < header_timeout + 5:
                writer.write(b"X-Slow: 1\r\n")
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(reader.read(4096), 0.3)
                    if data.startswith(b"HTTP/1.1 408 ") or data == b"":
                        counts["attack_slowloris_closed"] += 1
                        return
            counts["attack_slowloris_not_closed"] += 1
            return
        await writer.drain()
        if expect:
            data = await _read_to_close(reader, 5)
            ok = any(data.startswith(e) if e else data == e for e in expect)
            counts[f"attack_{kind}_{'ok' if ok else 'unexpected'}"] += 1
        else:
            await asyncio.sleep(rng.random() * 0.05)
            counts[f"attack_{kind}_ok"] += 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, RuntimeError):  # uvloop: write after close
        counts[f"attack_{kind}_reset"] += 1  # the proxy closed first: fine for an attacker
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _attacker(port: int, stop: asyncio.Event, counts: collections.Counter[str], seed: int,
                    header_timeout: float, kinds: tuple[str, ...]) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        kind = rng.choice(kinds)
        try:
            await _attack(kind, port, counts, rng, header_timeout)
        except OSError:
            counts["attack_connect_error"] += 1
        await asyncio.sleep(rng.random() * 0.02)


async def soak(port: int, seconds: float, normal: int = 16, attackers: int = 8, header_timeout: float = 10.0,
               seed: int = 17, timeout: float = 10.0, kinds: tuple[str, ...] = ATTACKS) -> dict[str, Any]:
    """Run ``normal`` ordinary clients and ``attackers`` misbehaving ones for ``seconds``; return the counts."""
    stop = asyncio.Event()
    counts: collections.Counter[str] = collections.Counter()
    tasks = [asyncio.create_task(_normal(port, stop, counts, timeout)) for _ in range(normal)]
    tasks += [asyncio.create_task(_attacker(port, stop, counts, seed + i, header_timeout, kinds))
              for i in range(attackers)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), header_timeout + 30)
    return dict(counts)


def bad_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts that mean the proxy broke a promise (an ordinary request not served, an attack not ended)."""
    return {k: v for k, v in counts.items()
            if (k.startswith("normal_") and k != "normal_ok") or k.endswith(("_unexpected", "_not_closed"))}
