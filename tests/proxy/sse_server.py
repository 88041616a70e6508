"""A minimal OpenAI-style SSE server that emits events at scripted times (a separate process in tests).

Independent of the proxy and of the lab's engine: plain asyncio streams, nothing shared with the code
under test, so a test that compares what a client receives through the proxy with :func:`events` checks
the proxy byte for byte.  Any POST (or GET) is answered from its JSON body:

* ``model`` (echoed in every event), ``n`` events (default 5), ``first`` seconds before the first event,
  ``gap`` seconds between events, or ``times``: explicit offsets (seconds from the request) of each event;
* ``stream`` (default true): false answers one ``chat.completion`` JSON with ``Content-Length``;
* ``framing``: ``chunked`` (default) or ``close`` (no length, the close ends the body; connection closes);
* ``done`` (default true): end with ``data: [DONE]``.

Each event is one chunk (``chunked``), flushed as soon as it is due, as LLM servers do.  Prints its port
on stdout once listening.  Usable by other tests: ``python tests/proxy/sse_server.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

DONE = b"data: [DONE]\n\n"


def event(i: int, model: str = "m") -> bytes:
    """The ``i``-th event (0-based) of a stream for ``model``: one token ``t<i>``."""
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
             "choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def events(n: int, model: str = "m", done: bool = True) -> list[bytes]:
    """Every event of a stream of ``n`` tokens, in order, ``[DONE]`` last when ``done``."""
    return [event(i, model) for i in range(n)] + ([DONE] if done else [])


def completion(model: str, n: int) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant",
                                                            "content": "".join(f"t{i}" for i in range(n))},
                                    "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}}).encode()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Serve one request; False when the connection must close."""
    head = await reader.readuntil(b"\r\n\r\n")
    t0 = time.monotonic()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    raw = await reader.readexactly(length) if length else b"{}"
    spec: dict[str, Any] = json.loads(raw or b"{}")
    model = str(spec.get("model", "m"))
    n = int(spec.get("n", 5))
    if not spec.get("stream", True):
        body = completion(model, n)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        await writer.drain()
        return True
    times = spec.get("times") or [float(spec.get("first", 0)) + i * float(spec.get("gap", 0)) for i in range(n)]
    chunked = spec.get("framing", "chunked") == "chunked"
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" + framing
                 + b"\r\n")
    await writer.drain()
    out = [event(i, model) for i in range(len(times))]
    if spec.get("done", True):
        out.append(DONE)
        times = [*times, times[-1] if times else 0.0]
    for at, ev in zip(times, out, strict=True):
        wait = t0 + float(at) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        writer.write(b"%x\r\n%b\r\n" % (len(ev), ev) if chunked else ev)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    return chunked


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await answer(reader, writer):
            pass
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
