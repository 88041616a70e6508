"""A scripted OpenAI-compatible test server: SSE events at times known by construction.

Run as ``python tests/load/llm_server.py [--default 'ttft=0.05 itl=0.01 n=10']``; it prints ``PORT n``
and serves until its stdin closes.  Each request's script is read from its prompt (the last message's
content, or ``prompt``) after ``@@``, else the default, as ``key=value`` words:

* ``ttft`` (s): the first content event is written ``ttft`` after the request was read; ``itl`` (s): event
  k at ``ttft + k·itl``; ``n``: content events; each is flushed at once (no buffering);
* ``end``: ``done`` (finish chunk, usage chunk when asked for, ``data: [DONE]``), ``stall`` (nothing more,
  the connection stays open), ``cut`` (the connection is closed mid-body), ``clean`` (the chunked body
  ends properly but without ``[DONE]``), ``error`` (an in-band ``{"error": ...}`` event, then ``[DONE]``),
  ``malformed`` (a ``data:`` line that is not JSON, then ``[DONE]``);
* ``status``: answer this HTTP status with OpenAI's error body instead (e.g. 429);
* ``answer``: ``json`` streams the pieces of ``{"ok": true, "n": 1}``, ``bad`` of ``not json``; default
  ``tok0 tok1 …``;
* ``usage=0``: never send a usage chunk; ``nostream=1``: answer one JSON object even to a streaming request.

Non-streaming requests get one ``chat.completion`` (or ``text_completion``) after ``ttft + (n-1)·itl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any

_JSON_PIECES = ['{"ok"', ": ", "true", ', "n": ', "1", "}"]


def _script(body: dict[str, Any], default: str) -> dict[str, str]:
    text = ""
    if isinstance(body.get("messages"), list) and body["messages"]:
        text = str(body["messages"][-1].get("content", ""))
    elif isinstance(body.get("prompt"), str):
        text = body["prompt"]
    words = text.split("@@", 1)[1].split() if "@@" in text else default.split()
    return dict(w.split("=", 1) for w in words if "=" in w)


def _pieces(s: dict[str, str]) -> list[str]:
    n = int(s.get("n", "10"))
    answer = s.get("answer")
    if answer == "json":
        return _JSON_PIECES
    if answer == "bad":
        return ["not", " json"]
    return [f"tok{i} " for i in range(n)]


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: Any) -> bytes:
    return _chunk(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")


async def _respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, default: str) -> bool:
    """Serve one request; False when the connection must end."""
    head = await reader.readuntil(b"\r\n\r\n")
    t_req = time.monotonic()
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    if method == "GET":
        body = b'{"status": "ok"}' if path == "/health" else b'{"object": "list", "data": [{"id": "scripted"}]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        return True
    req = json.loads(raw or b"{}")
    s = _script(req, default)
    chat = path.endswith("chat/completions")
    ttft, itl = float(s.get("ttft", "0.05")), float(s.get("itl", "0.01"))
    pieces = _pieces(s)
    status = int(s.get("status", "200"))
    if status != 200:
        err = json.dumps({"error": {"message": "scripted error", "type": "server_error", "param": None,
                                    "code": status}}).encode()
        extra = b"Retry-After: 1\r\n" if status == 429 else b""
        writer.write(b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (status, extra, len(err), err))
        return True
    base = {"id": "cmpl-1", "created": 0, "model": req.get("model", "scripted"),
            "object": "chat.completion.chunk" if chat else "text_completion"}

    async def at(t: float) -> None:
        await asyncio.sleep(max(0.0, t_req + t - time.monotonic()))

    if not req.get("stream") or s.get("nostream") == "1":
        await at(ttft + (len(pieces) - 1) * itl)
        text = "".join(pieces)
        choice = {"index": 0, "finish_reason": "length"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        out = json.dumps({**base, "object": "chat.completion" if chat else "text_completion", "choices": [choice],
                          "usage": {"prompt_tokens": 1, "completion_tokens": len(pieces),
                                    "total_tokens": len(pieces) + 1}}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(out), out))
        return True
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    if chat:  # a role-only first chunk, as vLLM and OpenAI send: no content, so not the first token
        writer.write(_event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                  "finish_reason": None}]}))
    end = s.get("end", "done")
    for k, p in enumerate(pieces):
        await at(ttft + k * itl)
        choice = {"index": 0, "delta": {"content": p}} if chat else {"index": 0, "text": p}
        writer.write(_event({**base, "choices": [{**choice, "finish_reason": None}]}))
    if end == "stall":
        await reader.read()  # until the client gives up
        return False
    if end == "cut":
        writer.transport.abort()
        return False
    if end == "error":
        writer.write(_event({"error": {"message": "scripted in-band error", "type": "server_error", "param": None,
                                       "code": 500}}))
    if end == "malformed":
        writer.write(_event(b'{"choices": [{"delta": {"content": "x"'))
    if end != "clean":
        last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
        writer.write(_event({**base, "choices": [{**last, "finish_reason": "length"}]}))
        if s.get("usage", "1") == "1" and (req.get("stream_options") or {}).get("include_usage"):
            writer.write(_event({**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": len(pieces),
                                                                   "total_tokens": len(pieces) + 1}}))
        writer.write(_event(b"[DONE]"))
    writer.write(b"0\r\n\r\n")
    return True


async def _serve(default: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await _respond(reader, writer, default):
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--default", default="ttft=0.05 itl=0.01 n=10")
    asyncio.run(_serve(ap.parse_args().default))


if __name__ == "__main__":
    main()
