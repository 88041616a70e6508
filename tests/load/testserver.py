"""A tiny, fast HTTP/1.1 keep-alive server for the load tests (loopback only).

Run as a subprocess: ``python testserver.py [--stall-every S --stall-for S]``; it
prints ``PORT <n>`` once listening; ``--tls-cert C --tls-key K`` serves https.  Paths:

* ``/``        → 200 ``ok``
* ``/json``    → 200 JSON ``{"model_version": "v3", "fallback": false, "prediction": <n % 2>}``
* ``/err``     → every 10th request 500, else 200
* ``/close``   → 200 with ``Connection: close``

With ``--stall-every E --stall-for F`` the server freezes for F seconds at the
start of every E-second period (from its start): requests that arrive during
a freeze are answered when it ends, the way a process under SIGSTOP or a GC
pause answers them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time

import httptools


class _Proto(asyncio.Protocol):
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        self.srv.handle(self, self.url)


class Server:
    def __init__(self, stall_every: float, stall_for: float) -> None:
        self.stall_every = stall_every
        self.stall_for = stall_for
        self.t0 = time.monotonic()
        self.n = 0
        self.loop = asyncio.get_event_loop()

    def respond(self, p: _Proto, url: bytes) -> None:
        self.n += 1
        close = False
        if url.startswith(b"/json"):
            body = json.dumps({"model_version": "v3", "fallback": False, "prediction": self.n % 2}).encode()
            status = b"200 OK"
        elif url.startswith(b"/err") and self.n % 10 == 0:
            body, status = b"boom", b"500 Internal Server Error"
        else:
            body, status = b"ok", b"200 OK"
            close = url.startswith(b"/close")
        head = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode()
        head += b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n"
        tr = p.transport
        if tr is not None and not tr.is_closing():
            tr.write(head + body)
            if close:
                tr.close()

    def handle(self, p: _Proto, url: bytes) -> None:
        if self.stall_every > 0:
            el = time.monotonic() - self.t0
            phase = el % self.stall_every
            if phase < self.stall_for:
                self.loop.call_later(self.stall_for - phase, self.respond, p, url)
                return
        self.respond(p, url)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stall-every", type=float, default=0.0)
    ap.add_argument("--stall-for", type=float, default=0.0)
    ap.add_argument("--tls-cert", help="serve https with this PEM certificate chain (and --tls-key)")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    srv = Server(a.stall_every, a.stall_for)
    ctx = None
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
    server = await asyncio.get_running_loop().create_server(lambda: _Proto(srv), "127.0.0.1", a.port, backlog=4096,
                                                            ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # exit when the parent closes our stdin (no orphan servers)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
