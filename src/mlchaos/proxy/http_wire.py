"""HTTP/1.1 on the wire, without state: requests rebuilt from their parts, message bounds, response rewriting.

Pure functions and small value classes used by the HTTP data path (:mod:`mlchaos.proxy.http_path`):
a parsed request and its re-serialisation, chunk framing, the relay parser's boundary callbacks,
and the JSON corruption of a whole buffered response with its framing fixed up (``Content-Length``,
``Transfer-Encoding``).  Nothing here touches a socket, a timer or the fault table, so each piece is
tested on bytes alone (tests/proxy/test_splice.py) and the data path imports them once at module
level (no indirection per request).
"""

from __future__ import annotations

import os

import httptools

from mlchaos.proxy.faults import Plan
from mlchaos.proxy.limits import Limits

try:  # optional C build of corrupt_response's common case (setup.py); same bytes, ~13x less CPU (bench_splice.py)
    if os.environ.get("MLCHAOS_PURE_PYTHON"):
        raise ImportError("MLCHAOS_PURE_PYTHON is set")
    from mlchaos.proxy import _splice
except ImportError:  # no compiler at install time, or the fallback asked for (tests, A/B benchmarks)
    _splice = None  # type: ignore[assignment]

class Message:
    """One parsed request; ``raw`` holds its exact bytes when it arrived as one whole chunk."""

    __slots__ = ("body", "buffered", "chunked", "complete", "forwarded", "head", "headers", "headers_done",
                 "keep_alive", "method", "over", "raw", "seen_at", "size", "url", "version")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.version = "1.1"
        self.keep_alive = True
        self.body: list[bytes] = []
        self.chunked = False
        self.complete = False
        self.headers_done = False
        self.forwarded = False
        self.raw: bytes | None = None
        self.head = 0
        """Bytes read while this request's headers were incomplete (the header-size limit, while they arrive)."""
        self.size = 0
        """Bytes of the parsed header lines (the header-size limit, once they are complete)."""
        self.buffered = 0
        """Body bytes held by the proxy (not yet forwarded)."""
        self.over: tuple[int, str] | None = None
        """A limit this request broke while being parsed: the status and message to answer with."""
        self.seen_at: float | None = None
        """Loop time when the sweep first saw this request's headers incomplete (the header timeout)."""

    def find_chunked(self) -> None:
        """Set ``chunked`` from the headers (only the rare re-serialised path needs it)."""
        self.chunked = any(
            k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in self.headers
        )

    def serialise(self) -> bytes:
        """Rebuild the request from its parts (pipelined or multi-chunk requests only)."""
        self.find_chunked()
        out = [self.method, b" ", self.url, b" HTTP/", self.version.encode(), b"\r\n"]
        for k, v in self.headers:
            out += [k, b": ", v, b"\r\n"]
        out.append(b"\r\n")
        for piece in self.body:
            out.append(frame(piece) if self.chunked else piece)
        if self.complete and self.chunked:
            out.append(b"0\r\n\r\n")
        return b"".join(out)


def too_big(lim: Limits, size: int) -> tuple[int, str]:
    """The 431 answer for a request whose header block broke a limit (``size``: its bytes so far)."""
    if size > lim.max_header_bytes:
        return 431, f"mlchaos proxy: request headers exceed {lim.max_header_bytes} bytes (--max-header-size)"
    return 431, f"mlchaos proxy: more than {lim.max_header_lines} request header lines (--max-header-lines)"


def frame(piece: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(piece), piece)


class Bounds:
    """Callbacks of the relay path's parser: where a request begins and ends, nothing else.

    httptools calls only the callbacks its protocol object has, so leaving out
    ``on_url``/``on_header``/``on_body`` removes a Python call per header and piece.
    """

    __slots__ = ("begun", "done", "keep_alive", "method", "parser")

    def __init__(self) -> None:
        self.begun = self.done = 0
        self.keep_alive = True
        self.method = b""
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.keep_alive = parser.should_keep_alive()  # llhttp forgets it once the message completes
        self.method = parser.get_method()

    def on_message_complete(self) -> None:
        self.done += 1


def corrupt_response(data: bytes, plan: Plan) -> bytes:
    """Apply the plan's JSON corruptions to a whole buffered response; fix the framing if the body changed.

    Works on the raw bytes (no per-header parser callbacks): the header block is searched once, the
    body is the rest (de-chunked when needed), and only Content-Length / Transfer-Encoding lines change.
    The usual case (one fault, one plain path, a constant replacement, Content-Length framing) runs in C
    when the extension is built; it returns None for anything else, which continues here.
    """
    if _splice is not None and len(plan.corrupt) == 1:
        fault = plan.corrupt[0]
        if fault.needles is not None and fault.constant is not None:
            out = _splice.rewrite(data, fault.needles, fault.constant)
            if out is not None:
                return out
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return data
    head = data[:head_end]
    lhead = head.lower()
    # membership tests first: the usual response has neither header, and `in` costs no Python call
    if b"\r\ncontent-encoding:" in lhead and _header(lhead, b"content-encoding", b"") != b"identity":
        return data  # compressed bodies are passed on untouched (documented limitation)
    body = data[head_end + 4 :]
    chunked = b"\r\ntransfer-encoding:" in lhead
    if chunked and b"chunked" in (_header(lhead, b"transfer-encoding", b"") or b""):
        plain = dechunk(body)
        if plain is None:
            return data
        body = plain
    new = body
    for fault in plan.corrupt:
        patched = fault.corrupt(new)
        if patched is not None:
            new = patched
    if new is body:
        return data
    if chunked:
        head = _drop_header(head, lhead, b"transfer-encoding")
        lhead = head.lower()
    return b"%b\r\nContent-Length: %d\r\n\r\n%b" % (_drop_header(head, lhead, b"content-length"), len(new), new)


def _drop_header(head: bytes, lhead: bytes, name: bytes) -> bytes:
    """``head`` without the header line ``name`` (splice, no split/join of every line)."""
    i = lhead.find(b"\r\n" + name + b":")
    if i < 0:
        return head
    j = lhead.find(b"\r\n", i + 2)
    return head[:i] + (head[j:] if j >= 0 else b"")


def _header(lhead: bytes, name: bytes, default: bytes) -> bytes | None:
    """The (lower-cased, stripped) value of header ``name`` in a lower-cased header block, or None."""
    i = lhead.find(b"\r\n" + name + b":")
    if i < 0:
        return None
    start = i + len(name) + 3
    end = lhead.find(b"\r\n", start)
    return lhead[start : end if end >= 0 else len(lhead)].strip() or default


def dechunk(body: bytes) -> bytes | None:
    """Decode a chunked body (trailers ignored); None when it is malformed."""
    out: list[bytes] = []
    i = 0
    try:
        while True:
            eol = body.index(b"\r\n", i)
            size = int(body[i:eol].split(b";", 1)[0], 16)
            if size == 0:
                return b"".join(out)
            out.append(body[eol + 2 : eol + 2 + size])
            i = eol + 2 + size + 2
    except ValueError:
        return None
