"""A small, fast HTTP upstream for proxy tests (run as a separate process so it never shares our GIL).

Routes: ``/json`` (a ~700-byte feature vector), ``/chunked`` (same JSON, chunked),
``/echo`` (echoes the request body), ``/big?n=N`` (N bytes), ``/early`` (answers as soon as the
headers are in, then reads and drops the body, as servers do that refuse a request early),
anything else -> /json.
A request with ``Expect: 100-continue`` gets ``100 Continue`` when its headers are in (as nginx does).
Prints its port on stdout once listening.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httptools

FEATURES = {f"f{i:02d}": round(0.123456 * (i + 1), 6) for i in range(32)}
DOC = json.dumps({"model": "fraud-v3", "entity": "user-42", "features": FEATURES, "amount": 12.50,
                  "ts": "2026-11-26T22:00:00Z"}).encode()


def response(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


class Server(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # type: ignore[attr-defined]

    def on_message_begin(self) -> None:
        self.url, self.body = b"", b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[attr-defined]

    def on_headers_complete(self) -> None:
        if self.url.partition(b"?")[0] == b"/early":
            self.transport.write(response(b'{"early": true}'))  # type: ignore[attr-defined]

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path, _, query = self.url.partition(b"?")
        method = self.parser.get_method()
        if path == b"/early":
            return  # answered at on_headers_complete
        if path == b"/echo":
            out = response(self.body)
        elif path == b"/chunked":
            half = len(DOC) // 2
            out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, DOC[:half], len(DOC) - half, DOC[half:]))
        elif path == b"/big":
            n = int(query.split(b"=")[1]) if query else 100000
            out = response(b"x" * n)
        else:
            out = response(DOC)
        if method == b"HEAD":
            out = out[: out.index(b"\r\n\r\n") + 4]
        self.transport.write(out)  # type: ignore[attr-defined]
        if not self.parser.should_keep_alive():
            self.transport.close()  # type: ignore[attr-defined]


async def main() -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Server, "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
