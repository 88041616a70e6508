"""The stream faults' framing on bytes alone: chunked decoding and SSE events survive any split of the reads."""

from __future__ import annotations

import json

from mlchaos.proxy import sse
from tests.proxy.sse_server import DONE, events


def chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x;ext=1\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: 1\r\n\r\n"


def test_dechunker_and_splitter_under_every_split() -> None:
    evs = events(3)
    wire = chunked([evs[0] + evs[1][:10], evs[1][10:], evs[2] + DONE])
    for step in (1, 2, 7, 64, len(wire)):
        d, s = sse.Dechunker(), sse.EventSplitter()
        got: list[bytes] = []
        for i in range(0, len(wire), step):
            for piece in d.feed(wire[i : i + step]):
                got += s.feed(piece)
        assert got == evs and d.done and s.rest() == b"", step


def test_event_terminators_and_kinds() -> None:
    s = sse.EventSplitter()
    assert s.feed(b"data: a\r\n\r\n: ping\n\nevent: x\rdata: [DONE]\r\r tail") == [
        b"data: a\r\n\r\n", b": ping\n\n", b"event: x\rdata: [DONE]\r\r"]
    assert s.rest() == b" tail"
    assert sse.is_data(b"data: a\n\n") and not sse.is_data(b": ping\n\n")
    assert sse.is_done(b"data: [DONE]\n\n") and sse.is_done(b"data:[DONE]\r\n\r\n") and not sse.is_done(events(1)[0])


def test_malformed_and_error_event() -> None:
    ev = events(1)[0]
    bad = sse.malformed(ev)
    assert bad.startswith(b"data: {") and bad.endswith(b"\n\n") and bad != ev
    try:
        json.loads(bad[6:])
    except json.JSONDecodeError:
        pass
    else:
        raise AssertionError("still valid JSON")
    err = sse.error_event("boom")
    assert json.loads(err[6:])["error"]["message"] == "boom" and err.endswith(b"\n\n")


def test_head() -> None:
    h = sse.Head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert h.status == 200 and h.sse and h.chunked and h.streams(head_request=False)
    assert not sse.Head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").streams(False)
    assert not h.streams(head_request=True) and sse.Head(b"HTTP/1.1 100 Continue\r\n\r\n").interim
    gz = sse.Head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
    assert not gz.sse and gz.streams(False)  # compressed: events are the chunks
