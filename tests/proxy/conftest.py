"""Fixtures for proxy tests: a real upstream process and real proxy processes, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlchaos.proxy import ProxyHandle, spawn

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """``127.0.0.1:PORT`` of the test upstream (a separate process)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "upstream.py")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"127.0.0.1:{port}"
    proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def http_proxy(upstream: str) -> Iterator[ProxyHandle]:
    h = spawn(upstream=upstream, mode="http")
    yield h
    h.stop()


@pytest.fixture(scope="module")
def pure_http_proxy(upstream: str) -> Iterator[ProxyHandle]:
    """An HTTP proxy without the C accelerator (what a machine without a compiler runs)."""
    h = spawn(upstream=upstream, mode="http", extra_env={"MLCHAOS_PURE_PYTHON": "1"})
    yield h
    h.stop()


@pytest.fixture(scope="module")
def tcp_proxy(upstream: str) -> Iterator[ProxyHandle]:
    h = spawn(upstream=upstream, mode="tcp")
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends with no faults on the module's proxies."""
    yield
    for name in ("http_proxy", "pure_http_proxy", "json_proxy", "tcp_proxy"):
        if name in request.fixturenames:
            request.getfixturevalue(name).client.clear()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def request(
    addr: str, path: str = "/json", method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None,
    n: int = 1, timeout: float = 10.0,
) -> list[tuple[float, int, bytes]]:
    """Send ``n`` requests on one keep-alive connection; return (seconds, status, raw response) each."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            writer.write(req)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = await asyncio.wait_for(reader.readexactly(length), timeout) if method != "HEAD" else b""
            out.append((time.perf_counter() - t0, status, head + data))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return out


def run(coro):  # type: ignore[no-untyped-def]
    """Run a client coroutine on uvloop when installed (less client-side noise in timing tests)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
