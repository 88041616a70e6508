"""Streaming response framing, without state beyond the bytes: the response head, chunked decoding, SSE events.

The stream faults (:mod:`mlchaos.proxy.faults.stream`) act on *events*: one Server-Sent Event of a
``text/event-stream`` response (a block of lines ended by a blank line; an LLM server sends one per
token), or one HTTP chunk as the upstream framed it for any other chunked response (servers that
stream flush a chunk per piece).  These classes turn upstream bytes, as they arrive in arbitrary
reads, into those events, so the shaper can delay, hold, drop or rewrite whole events and never
half of one.  Only streams a stream fault hit pass through here; pass-through streams are relayed
as raw bytes by the data path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_TERMINATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")
_DONE = re.compile(rb"^data: ?\[DONE\][ \t]*\r?$", re.M)
_DATA = re.compile(rb"^data(:|\r?$)", re.M)


class Head:
    """A parsed response head: status, the headers the shaper needs, and the raw bytes (relayed as they are)."""

    __slots__ = ("chunked", "length", "raw", "sse", "status")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.split(b"\r\n")
        try:
            self.status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self.status = 0
        self.chunked = False
        self.length: int | None = None
        self.sse = False
        encoded = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"transfer-encoding":
                self.chunked = value.endswith(b"chunked")
            elif name == b"content-length":
                try:
                    self.length = int(value)
                except ValueError:
                    self.length = None
            elif name == b"content-type":
                self.sse = value.startswith(b"text/event-stream")
            elif name == b"content-encoding":
                encoded = value not in (b"", b"identity")
        if encoded:
            self.sse = False  # compressed events cannot be told apart: the stream's chunks are its events

    @property
    def interim(self) -> bool:
        return 100 <= self.status < 200

    def streams(self, head_request: bool) -> bool:
        """True when the body is a stream the faults can act on: chunked, or delimited by the close.

        A ``Content-Length`` body, a HEAD answer, 204 and 304 carry no stream (relayed untouched).
        """
        if head_request or self.status in (204, 304) or self.status < 200:
            return False
        return self.chunked or self.length is None


class Dechunker:
    """Decode a chunked body incrementally; :meth:`feed` yields each chunk's data once it is whole.

    Whole chunks, not pieces: for a non-SSE stream one upstream chunk is one event.  Chunk
    extensions and trailers are dropped (the shaper frames its own chunks).
    """

    __slots__ = ("_buf", "_need", "done")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # -1: reading a size line; >= 0: bytes of chunk data (+ CRLF) still to come
        self.done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        buf = self._buf
        buf += data
        while not self.done:
            if self._need < 0:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return
                size_text = bytes(buf[:eol]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    size = 0  # a broken size line: the upstream parser fails the exchange; end here
                del buf[: eol + 2]
                if size == 0:
                    self.done = True
                    buf.clear()
                    return
                self._need = size
            if len(buf) < self._need + 2:
                return
            piece = bytes(buf[: self._need])
            del buf[: self._need + 2]
            self._need = -1
            yield piece


class EventSplitter:
    """Split an SSE body into events (each with its terminating blank line) as bytes arrive."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        start = 0
        while True:
            end = -1
            width = 0
            for t in _TERMINATORS:
                i = buf.find(t, start)
                if i >= 0 and (end < 0 or i < end):
                    end, width = i, len(t)
            if end < 0:
                break
            out.append(buf[start : end + width])
            start = end + width
        self._buf = buf[start:]
        return out

    def rest(self) -> bytes:
        """What arrived after the last complete event (an unterminated event at the stream's end)."""
        rest, self._buf = self._buf, b""
        return rest


def is_data(event: bytes) -> bool:
    """True for an event that carries data (comments and bare ``event:``/``id:`` blocks do not count)."""
    return _DATA.search(event) is not None


def is_done(event: bytes) -> bool:
    """True for OpenAI's end-of-stream sentinel ``data: [DONE]``."""
    return _DONE.search(event) is not None


def malformed(event: bytes) -> bytes:
    """The event with its JSON broken: the ``data:`` payload loses its last closing brace and gains a stray one.

    The line stays a ``data:`` line of the same event, so a client's SSE parser accepts it and its
    JSON decoder is what must cope.
    """
    lines = event.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"data:"):
            payload = line.rstrip(b"\r")
            cr = line[len(payload):]
            cut = payload.rfind(b"}")
            broken = payload[:cut] + b',"' if cut > 0 else payload + b'{"'
            lines[i] = broken + cr
            return b"\n".join(lines)
    return event


def error_event(message: str, code: str = "stream_error", etype: str = "server_error") -> bytes:
    """An in-band error in OpenAI's shape, as vLLM and OpenAI send one mid-stream."""
    import json

    body = json.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})
    return b"data: " + body.encode() + b"\n\n"
